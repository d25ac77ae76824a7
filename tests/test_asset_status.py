"""One status per asset: the last attempt (exported / failed with why and when / never exported)
beside the last good version, in status.json, latest.json, catalog.json and the gallery."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg

from pipeline.definitions import defs
from pipeline.export.catalog import collect_assets, rebuild_catalog
from pipeline.export.profiles import build_profile, level_glbs
from pipeline.export.publish import open_target, publish
from pipeline.export.status import EXPORTED, FAILED, attempt, read_status, record_attempt
from pipeline.sensors import record_failed_runs
from tests.test_catalog_gallery import _gallery_cards
from tests.test_export_profiles import sample_input
from tests.test_pipeline import SMALL, draw_blob, run_asset


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_failed_attempt_is_reported_beside_the_published_version(tmp_path):
    target = open_target(str(tmp_path))
    inp = sample_input("crate", levels=((6, 12), (4, 8)))
    publish(target, "crate", inp.version, {"web": build_profile(inp, "web")}, level_glbs(inp))
    assert record_attempt(target, attempt("crate", EXPORTED, version=inp.version, run_id="r1"))
    assert not record_attempt(target, attempt("crate", EXPORTED, version=inp.version, run_id="r2")), \
        "re-exporting the same version rewrote the status"
    published = {k: v for k, v in _files(tmp_path).items() if k.startswith(f"crate/{inp.version}/")}

    failure = attempt("crate", FAILED, stage="concept_art", reason="file front.png: not an image", run_id="r3")
    assert record_attempt(target, failure)
    latest = json.loads((tmp_path / "crate" / "latest.json").read_text())
    assert latest["version"] == inp.version and latest["last_attempt"] == failure == read_status(target, "crate")
    assert {k: v for k, v in _files(tmp_path).items() if k.startswith(f"crate/{inp.version}/")} == published

    rebuild_catalog(target, {"crate": None, "barrel": None, "Bad Name": "invalid asset id"})
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    (entry,) = catalog["assets"]
    assert entry["status"] == "failed" and entry["version"] == inp.version and entry["exports"]["web"]["sha256"]
    assert entry["last_attempt"]["reason"] == "file front.png: not an image" and entry["last_attempt"]["at"]
    missing = {e["asset_id"]: e for e in catalog["not_exported"]}
    assert missing["barrel"]["status"] == "never_exported" and "no export attempt" in missing["barrel"]["reason"]
    assert "invalid asset id" in missing["Bad Name"]["reason"]
    assert catalog["status_counts"] == {"exported": 0, "failed": 1, "never_exported": 2}
    cards = {c["id"]: c for c in _gallery_cards((tmp_path / "index.html").read_text())}
    assert (cards["crate"]["status"], cards["crate"]["stage"], cards["crate"]["version"]) == (
        "failed", "concept_art", inp.version)
    assert cards["crate"]["reason"] == "file front.png: not an image" and cards["crate"]["lods"]
    assert [cards[a]["status"] for a in ("barrel", "Bad Name")] == ["never_exported"] * 2

    # the next good export clears the failure everywhere
    assert record_attempt(target, attempt("crate", EXPORTED, version=inp.version, run_id="r4"))
    entries, _ = collect_assets(target)
    assert entries[0]["status"] == "exported" and entries[0]["last_attempt"]["run_id"] == "r4"


def test_failing_step_records_the_attempt_and_the_sensor_backs_it_up(kiln_env):
    broken = kiln_env / "concepts" / "broken"
    broken.mkdir()
    (broken / "front.png").write_text("this is not an image")
    draw_blob(kiln_env / "concepts" / "waiting" / "front.png")
    (kiln_env / "concepts" / "waiting" / "asset.toml").write_text(SMALL)
    with dg.instance_for_test() as instance:
        result = run_asset(instance, "broken")
        assert not result.success
        status = json.loads((kiln_env / "exports" / "broken" / "status.json").read_text())
        assert status["status"] == "failed" and status["stage"] == "concept_art" and status["run_id"] == result.run_id
        assert "front.png" in status["reason"] and not status["reason"].startswith("asset broken")

        assert defs.resolve_job_def("kiln_catalog_job").execute_in_process(instance=instance).success
        catalog = json.loads((kiln_env / "exports" / "catalog.json").read_text())
        assert catalog["assets"] == []
        states = {e["asset_id"]: (e["status"], e["reason"]) for e in catalog["not_exported"]}
        assert states["broken"][0] == "failed" and "front.png" in states["broken"][1]
        assert states["waiting"][0] == "never_exported"

        # A run that died before its step could write: the run-failure sensor records it.
        (kiln_env / "exports" / "broken" / "status.json").unlink()
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in instance.all_logs(result.run_id) if e.is_dagster_event
                       and e.dagster_event.event_type_value == "PIPELINE_FAILURE").dagster_event
        with dg.build_run_status_sensor_context(sensor_name="record_failed_runs", dagster_event=failure,
                                                dagster_instance=instance, dagster_run=run) as ctx:
            request = record_failed_runs(ctx.for_run_failure())
        assert isinstance(request, dg.RunRequest)
        again = json.loads((kiln_env / "exports" / "broken" / "status.json").read_text())
        assert again["stage"] == "concept_art" and "front.png" in again["reason"] and again["run_id"] == result.run_id


def test_a_reason_cannot_break_out_of_the_gallery_page(tmp_path):
    target = open_target(str(tmp_path))
    reason = 'file front.png: "</script><script>alert(1)</script>" & <b>not</b> an image'
    record_attempt(target, attempt("weird", FAILED, stage="concept_art", reason=reason))
    rebuild_catalog(target)
    html = (tmp_path / "index.html").read_text()
    assert "<script>alert(1)" not in html and html.count("</script>") == 2  # the data block and the page script
    (card,) = _gallery_cards(html)
    assert card["reason"] == reason and card["status"] == "failed"
