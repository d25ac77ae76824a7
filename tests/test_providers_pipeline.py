"""Each vendor through the real Dagster pipeline: a concept folder, its emulator, the asset job.

Every vendor materializes `concept_art` -> `generated_model` (+ its check) for one partition with the
run config selecting the provider and pointing `base_url` at the emulator; Runware also runs the
whole chain to the engine export and a second run that reuses the paid result. The URL-only vendors
(ModelsLab, Pixazo) run against a real S3 server (SeaweedFS), so the emulator downloads the concept
art through a real presigned GET URL.
"""

from __future__ import annotations

import hashlib

import dagster as dg
import pytest

from pipeline.definitions import defs
from tests.emulators.kit import VENDORS, open_vendor, png_bytes

pytest_plugins = ["tests.s3server"]

GENERATION = [dg.AssetKey("concept_art"), dg.AssetKey("generated_model")]


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def make_concept(kiln_env, asset_id: str, provider: str) -> None:
    folder = kiln_env / "concepts" / asset_id
    folder.mkdir(parents=True)
    (folder / "front.png").write_bytes(png_bytes(96))
    (folder / "asset.toml").write_text(
        f'provider = "{provider}"\ncategory = "prop"\nprompt = "a sturdy oak crate"\nseed = 11\n'
        "[options]\npoll_interval_s = 0.005\n")


def run(instance, asset_id: str, emu, provider: str, selection=None):
    if asset_id not in instance.get_dynamic_partitions("game_assets"):
        instance.add_dynamic_partitions("game_assets", [asset_id])
    config = {"ops": {"generated_model": {"config": {"provider": provider, "base_url": emu.base_url}}}}
    return defs.get_job_def("kiln_asset_job").execute_in_process(
        partition_key=asset_id, instance=instance, raise_on_error=False, run_config=config,
        asset_selection=selection)


def generated_metadata(instance, asset_id: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("generated_model"), asset_partitions=[asset_id]), limit=1).records
    return {k: v.value for k, v in records[0].asset_materialization.metadata.items()}


def failure(result) -> str:
    from pipeline.cli import _failure_message

    return _failure_message(result)


@pytest.mark.parametrize("name", list(VENDORS))
def test_generated_model_through_the_vendor_emulator(name, kiln_env, instance, tmp_path, monkeypatch, request):
    if VENDORS[name].url_only:
        s3 = request.getfixturevalue("s3_server")
        monkeypatch.setenv("KILN_STORE_URI", s3.uri())
    rig = open_vendor(name, tmp_path, monkeypatch)
    try:
        make_concept(kiln_env, "crate", name)
        result = run(instance, "crate", rig.emu, name, GENERATION)
        assert result.success, failure(result)
        meta = generated_metadata(instance, "crate")
        assert meta["provider"] == name and meta["job_id"] in rig.emu.jobs
        assert meta["lineage"]["raw_glb_sha256"] == hashlib.sha256(rig.emu.glb).hexdigest()
        assert rig.emu.submissions == 1
        if VENDORS[name].url_only:  # the vendor fetched the art from S3 through the presigned URL
            assert not any(c[1].startswith("/_blobs/") for c in rig.emu.calls)
    finally:
        rig.emu.__exit__()


def test_runware_full_chain_then_a_rerun_reuses_the_paid_generation(kiln_env, instance, tmp_path, monkeypatch):
    rig = open_vendor("runware", tmp_path, monkeypatch)
    try:
        make_concept(kiln_env, "crate", "runware")
        first = run(instance, "crate", rig.emu, "runware")
        assert first.success, failure(first)
        assert {e.asset_key.path[-1] for e in first.get_asset_materialization_events()} >= {
            "concept_art", "generated_model", "lod_chain", "engine_export"}
        assert generated_metadata(instance, "crate")["reused_previous_generation"] is False
        calls = len(rig.emu.calls)
        second = run(instance, "crate", rig.emu, "runware", GENERATION)
        assert second.success, failure(second)
        assert generated_metadata(instance, "crate")["reused_previous_generation"] is True
        assert rig.emu.submissions == 1 and len(rig.emu.calls) == calls  # not one more API call
    finally:
        rig.emu.__exit__()


def test_an_unanswered_paid_submission_fails_once_and_force_resubmit_pays_again_in_the_lineage(
        kiln_env, instance, tmp_path, monkeypatch):
    rig = open_vendor("goneural", tmp_path, monkeypatch)
    try:
        make_concept(kiln_env, "crate", "goneural")
        rig.emu.fail("submit", 502, after_work=True)  # goneural took the job; the gateway lost the answer
        first = run(instance, "crate", rig.emu, "goneural", GENERATION)
        assert not first.success and "force_resubmit: true" in failure(first)
        assert rig.emu.submissions == 1  # no automatic retry of the step paid again
        config = {"ops": {"generated_model": {"config": {"provider": "goneural", "base_url": rig.emu.base_url,
                                                         "force_resubmit": True}}}}
        forced = defs.get_job_def("kiln_asset_job").execute_in_process(
            partition_key="crate", instance=instance, raise_on_error=False, run_config=config,
            asset_selection=GENERATION)
        assert forced.success, failure(forced)
        lineage = generated_metadata(instance, "crate")["lineage"]
        assert rig.emu.submissions == 2 and lineage["force_resubmit"] == forced.run_id
    finally:
        rig.emu.__exit__()
