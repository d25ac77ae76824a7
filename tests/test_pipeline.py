"""The chain for real: concept folder -> generated model -> LODs -> export -> catalog, in-process."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.assets.lods import SIDE_BY_SIDE_PX
from pipeline.cli import reused_stages
from pipeline.definitions import defs
from pipeline.geometry.glb import read_asset_extras, read_glb
from tests import khronos

SMALL = '[options]\nresolution = 96\ntexture_size = 256\n'


def draw_blob(path: Path, color=(180, 90, 40), size=160) -> None:
    img = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((size * 0.2, size * 0.12, size * 0.8, size * 0.94), fill=color + (255,))
    d.rectangle((size * 0.38, size * 0.38, size * 0.62, size * 0.7), fill=(240, 220, 120, 255))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def run_asset(instance, asset_id: str, run_config: dict | None = None, stages: list[str] | None = None):
    """One asset's run of kiln_asset_job (only `stages`, asset names, when given)."""
    if asset_id not in instance.get_dynamic_partitions("game_assets"):
        instance.add_dynamic_partitions("game_assets", [asset_id])
    return defs.resolve_job_def("kiln_asset_job").execute_in_process(
        partition_key=asset_id, instance=instance, raise_on_error=False, run_config=run_config or {},
        asset_selection=[dg.AssetKey(s) for s in stages] if stages else None)


def materialization(instance, key: str, partition: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=[partition]), limit=1).records
    assert records, f"no materialization of {key} for {partition}"
    return records[0].asset_materialization


def failure_text(result) -> str:
    from pipeline.cli import _failure_message

    return _failure_message(result)


def test_one_partition_end_to_end(kiln_env, instance):
    folder = kiln_env / "concepts" / "blob"
    draw_blob(folder / "front.png")
    (folder / "asset.toml").write_text('category = "small_prop"\nheight_m = 0.3\n' + SMALL)

    result = run_asset(instance, "blob")
    assert result.success, failure_text(result)
    assert reused_stages(result) == []

    concept = materialization(instance, "concept_art", "blob")
    generated = materialization(instance, "generated_model", "blob")
    lods = materialization(instance, "lod_chain", "blob")
    export = materialization(instance, "engine_export", "blob")

    # concept_art's data version is the folder's content hash, so edited art shows as stale downstream
    content_hash = concept.metadata["content_hash"].value
    assert concept.tags["dagster/data_version"] == content_hash
    assert len(concept.metadata["source_sha256"].value) == 1

    gm = generated.metadata
    assert gm["provider"].value == "local"
    assert gm["triangles"].value > 1000 and gm["vertices"].value > 500
    assert abs(gm["size_m"].value[1] - 0.3) < 1e-3  # height in meters from asset.toml
    assert gm["lineage"].value["concept_hash"] == content_hash
    assert "data:image/webp;base64," in gm["preview"].value and len(gm["preview"].value) < 1000
    assert not [k for k in gm if k.startswith("gen_")], "the runner's fields are mapped to one key each"

    tris = lods.metadata["triangles_per_level"].value
    assert len(tris) >= 3 and all(a > b for a, b in zip(tris, tris[1:]))
    assert lods.metadata["lineage"].value["glb_sha256"] == gm["lineage"].value["glb_sha256"]
    # the source beside every level, one camera: a cell per model, and no two levels look the same
    assert "data:image/webp;base64," in lods.metadata["side_by_side"].value
    sheet = np.asarray(Image.open(lods.metadata["side_by_side_file"].value).convert("RGB")).astype(int)
    cell = SIDE_BY_SIDE_PX + 8
    assert sheet.shape[1] == 8 + cell * (1 + len(tris))
    cells = [sheet[8:8 + SIDE_BY_SIDE_PX, 8 + i * cell:8 + i * cell + SIDE_BY_SIDE_PX] for i in range(1 + len(tris))]
    assert all((np.abs(c - c[0, 0]).sum(axis=2) > 30).mean() > 0.05 for c in cells), "a cell shows no model"
    assert all(np.abs(a - b).mean() > 0 for a, b in zip(cells[1:], cells[2:]))
    # every level rendered beside the source at its switch size: the table and the render strip
    assert lods.metadata["rendered_at_switch_size"].value.count("\n") >= 1 + len(tris)
    assert Image.open(lods.metadata["switch_size_strip_file"].value).size[0] > 0

    version = export.metadata["version"].value
    exports = kiln_env / "exports"
    latest = json.loads((exports / "blob" / "latest.json").read_text())
    assert latest["version"] == version
    # lod_chain's side-by-side ships with the export, where the gallery's viewer shows it
    web_manifest = exports / latest["exports"]["web"]["manifest"]
    assert json.loads(web_manifest.read_text())["side_by_side"] == "side_by_side.png"
    assert web_manifest.with_name("side_by_side.png").read_bytes() == \
        Path(lods.metadata["side_by_side_file"].value).read_bytes()
    assert latest["last_attempt"]["status"] == "exported" and latest["last_attempt"]["version"] == version

    # every GLB the export wrote is valid for the Khronos validator, and carries its provenance
    glbs = sorted((exports / "blob" / version).rglob("*.glb"))
    assert glbs
    reports = khronos.validate_files(glbs)
    for path in glbs:
        khronos.assert_valid(reports[str(path)], str(path))
    # each profile's GLBs (the per-level files under lods/ are plain levels) trace back to the art
    packaged = [p for p in glbs if p.parent.name != "lods"]
    assert packaged
    for path in packaged:
        assert read_asset_extras(path.read_bytes())["provenance"]["concept_hash"] == content_hash, path

    # the run lists its export in catalog.json itself (a dropped folder is listed when its run ends) ...
    assert export.metadata["listed_in_catalog"].value is True
    listed = json.loads((exports / "catalog.json").read_text())
    assert [(e["asset_id"], e["version"]) for e in listed["assets"]] == [("blob", version)]
    # ... and the catalog's own run, a rebuild from the export target, agrees
    cat = defs.resolve_job_def("kiln_catalog_job").execute_in_process(instance=instance, raise_on_error=False)
    assert cat.success, failure_text(cat)
    catalog = json.loads((exports / "catalog.json").read_text())
    (entry,) = catalog["assets"]
    assert entry["asset_id"] == "blob" and entry["version"] == version and entry["provider"] == "local"
    assert entry["validation"]["status"] == "passed", entry["validation"]
    assert [lv["triangles"] for lv in entry["lods"]] == tris
    assert all(0 <= lv["silhouette_px"] < 1 and lv["shading_diff"] >= 0 for lv in entry["lods"]), entry["lods"]
    for lv in entry["lods"]:
        assert read_glb((exports / lv["uri"]).read_bytes() if not Path(lv["uri"]).is_absolute()
                        else Path(lv["uri"]).read_bytes()).triangle_count == lv["triangles"]
    assert entry["exports"] and all(e["sha256"] and e["bytes"] > 0 for e in entry["exports"].values())
    assert catalog["assets"] == listed["assets"]

    # a second run on unchanged art re-generates nothing
    again = run_asset(instance, "blob")
    assert again.success
    assert reused_stages(again) == ["generation", "LODs", "export"]  # what make demo prints per asset
    gm2 = materialization(instance, "generated_model", "blob").metadata
    assert gm2["reused_previous_generation"].value is True
    lods2 = materialization(instance, "lod_chain", "blob").metadata
    assert lods2["reused_previous_chain"].value is True
    assert lods2["side_by_side_file"].value == lods.metadata["side_by_side_file"].value
    assert materialization(instance, "engine_export", "blob").metadata["already_published"].value is True


@pytest.mark.parametrize(
    "name, setup, expect",
    [
        ("corrupt", lambda f: (f / "front.png").write_bytes(_png_bytes()[:-300]), "front.png"),
        ("notimage", lambda f: (f / "front.png").write_text("this is not an image"), "front.png"),
        ("toomany", lambda f: [draw_blob(f / f"v{i}.png", size=64) for i in range(6)], "at most 5"),
        ("twoprops", lambda f: _two_props(f / "front.png"), "front.png: no single object"),
    ],
)
def test_bad_input_fails_only_that_partition(kiln_env, instance, name, setup, expect):
    folder = kiln_env / "concepts" / name
    folder.mkdir(parents=True)
    setup(folder)
    result = run_asset(instance, name)
    assert not result.success
    message = failure_text(result)
    assert str(folder) in message and expect in message, message
    assert "retry" not in message  # bad art fails at once

    good = kiln_env / "concepts" / "good"
    draw_blob(good / "front.png")
    (good / "asset.toml").write_text(SMALL)
    ok = run_asset(instance, "good")
    assert ok.success, failure_text(ok)


def _two_props(path: Path) -> None:
    """Two props side by side on one sheet, far apart: not one object."""
    img = Image.new("RGBA", (320, 160), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((10, 20, 90, 140), fill=(180, 90, 40, 255))
    d.rectangle((200, 30, 300, 140), fill=(60, 90, 180, 255))
    img.save(path)


def _png_bytes() -> bytes:
    buf = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 4), dtype=np.uint8)
    Image.fromarray(noise, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def test_import_feeds_an_existing_model_through_the_chain(kiln_env, instance, testdata):
    blub = testdata / "glb/textured/adobe__lagrange-test-data/open/core/blub/blub.glb"
    folder = kiln_env / "concepts" / "blub"
    folder.mkdir()
    shutil.copyfile(blub, folder / "model.glb")
    (folder / "asset.toml").write_text('category = "prop"\nheight_m = 0.5\n')
    # a per-run LOD budget from the launchpad overrides the category's
    result = run_asset(instance, "blub", {"ops": {"lod_chain": {"config": {"lod0_triangles": 4000, "ratios": [0.5, 0.2]}}}})
    assert result.success, failure_text(result)
    generated = materialization(instance, "generated_model", "blub").metadata
    assert generated["provider"].value == "import"
    assert generated["raw_triangles"].value == read_glb(blub.read_bytes()).triangle_count
    assert abs(generated["size_m"].value[1] - 0.5) < 1e-3
    lods = materialization(instance, "lod_chain", "blub").metadata
    tris = lods["triangles_per_level"].value
    budget = lods["budget"].value
    # the launchpad's ceilings are used; the category's switch sizes follow the shorter chain
    assert budget["lod0_triangles"] == 4000 and budget["ratios"] == [0.5, 0.2]
    assert budget["screen_sizes"] == [1.0, 0.4, 0.2]
    assert 1 <= len(tris) <= 3 and all(b < a for a, b in zip(tris, tris[1:]))
    assert lods["screen_size_per_level"].value == [1.0, 0.4, 0.2][: len(tris)]
    # every level past LOD0 says whether it got a baked normal map, and why not where not
    rows = lods["normal_maps"].value.strip().splitlines()[2:]
    assert len(rows) == len(tris) - 1 and all("| baked |" in r or "plain maps" in r for r in rows), rows
    version = materialization(instance, "engine_export", "blub").metadata["version"].value
    glbs = sorted((kiln_env / "exports" / "blub" / version).rglob("*.glb"))
    reports = khronos.validate_files(glbs)
    for path in glbs:
        khronos.assert_valid(reports[str(path)], str(path))


def test_two_assets_imported_from_one_file_each_get_their_own_model(kiln_env, instance):
    """The normalized GLB carries its asset's name and id: a second asset made from the same file
    must not reuse the first asset's (the normalize record is keyed by asset as well as file)."""
    from pipeline.geometry.glb import write_glb
    from pipeline.geometry.model import Model
    from tests.test_normalize import cube

    glb = write_glb(Model([cube((0.4, 0.6, 0.3))]))
    for name in ("crate_a", "crate_b"):
        folder = kiln_env / "concepts" / name
        folder.mkdir()
        (folder / "model.glb").write_bytes(glb)
        (folder / "asset.toml").write_text('category = "prop"\nheight_m = 0.6\n')
    shas = {}
    for name in ("crate_a", "crate_b"):
        result = run_asset(instance, name, stages=["concept_art", "generated_model"])
        assert result.success, failure_text(result)
        model = result.output_for_node("generated_model")
        shas[name] = model["glb_sha256"]
        blob = next((kiln_env / "store").rglob(shas[name]))
        assert read_asset_extras(blob.read_bytes())["asset_id"] == name
        assert read_glb(blob.read_bytes()).name == name
    assert shas["crate_a"] != shas["crate_b"]


def test_skinned_import_is_its_bind_pose_or_refused_by_asset_toml(kiln_env, instance, testdata):
    folder = kiln_env / "concepts" / "fox"
    folder.mkdir()
    shutil.copyfile(testdata / "glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models/Fox/glTF-Binary/Fox.glb",
                    folder / "model.glb")
    (folder / "asset.toml").write_text('[import]\nskinned = "refuse"\n')
    result = run_asset(instance, "fox")
    assert not result.success
    message = failure_text(result)
    assert "model.glb" in message and "skinned" in message and str(folder) in message, message


def test_a_run_hands_its_manifests_between_steps_without_reading_them_back(kiln_env, monkeypatch):
    """The IO manager keeps what a run stored for the run's later steps in the same process; a value
    from another run (or another process) is read from the store."""
    from pipeline.resources import KilnStorage, ManifestIOManager
    from pipeline.storage import LocalBlobStore

    manager = ManifestIOManager(storage=KilnStorage())
    key = dg.AssetKey("lod_chain")
    manager.handle_output(dg.build_output_context(asset_key=key, run_id="run-a"), {"levels": [1, 2]})
    reads = []
    read = LocalBlobStore.get_record
    monkeypatch.setattr(LocalBlobStore, "get_record", lambda self, name: reads.append(name) or read(self, name))

    def load(run_id: str):
        return manager.load_input(dg.build_input_context(
            asset_key=key, upstream_output=dg.build_output_context(asset_key=key, run_id=run_id)))

    assert load("run-a") == {"levels": [1, 2]} and reads == []
    assert load("run-b") == {"levels": [1, 2]} and reads == ["manifests/lod_chain/__all__.json"]
