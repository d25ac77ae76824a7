"""Engine export profiles: layout per engine, manifests, provenance, and the Khronos validator."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.spatial import ConvexHull

from pipeline.export.collision import convex_collision
from pipeline.export.meshopt_ext import compress_glb, decompress_glb
from pipeline.export.profiles import (
    PROFILES,
    ExportInput,
    ExportLevel,
    ExportOptions,
    build_profile,
    level_glbs,
    version_for,
)
from pipeline.geometry.glb import parse_container, read_asset_extras, read_glb
from pipeline.geometry.model import Material, Model, Primitive, Texture, vertex_normals
from tests import khronos

# ----------------------------------------------------------------------------------------------
# Sample inputs (also used by the publish, catalog and three.js tests)


def png(color: tuple[int, int, int], size: int = 32) -> bytes:
    """A small checkered PNG (not flat, so a texture or preview has something to show)."""
    pixels = np.zeros((size, size, 3), np.uint8)
    pixels[:] = color
    pixels[(np.indices((size, size)).sum(axis=0) // 4) % 2 == 1] //= 2
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def uv_sphere(rings: int, segments: int, radius: float = 0.5) -> Primitive:
    theta = np.linspace(0.0, np.pi, rings + 1)
    phi = np.linspace(0.0, 2.0 * np.pi, segments + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    positions = np.stack([radius * np.sin(t) * np.cos(p), radius * (1.0 + np.cos(t)),
                          radius * np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    uvs = np.stack([p / (2.0 * np.pi), t / np.pi], -1).reshape(-1, 2)
    w = segments + 1
    i, j = np.meshgrid(np.arange(rings), np.arange(segments), indexing="ij")
    a, b, c, d = i * w + j, i * w + j + 1, (i + 1) * w + j, (i + 1) * w + j + 1
    upper = np.stack([a, b, c], -1)[1:].reshape(-1, 3)  # the pole rows' quads are triangles
    lower = np.stack([b, d, c], -1)[:-1].reshape(-1, 3)
    indices = np.concatenate([upper, lower]).reshape(-1).astype(np.uint32)
    positions = positions.astype(np.float32)
    return Primitive(positions, indices, vertex_normals(positions, indices), uvs.astype(np.float32))


SPHERE_LEVELS = ((24, 48), (12, 24), (6, 12))
SCREEN_SIZES = (1.0, 0.35, 0.08)


def sample_input(asset_id: str = "crate", levels=SPHERE_LEVELS, color=(200, 120, 40), cost: float = 0.25,
                 **extra) -> ExportInput:
    """A textured 3-level LOD chain of spheres (1 m), with provenance and a preview."""
    texture = Texture(png(color))
    out = []
    for level, (rings, segments) in enumerate(levels):
        prim = uv_sphere(rings, segments)
        model = Model([prim], [Material("paint", base_color_texture=Texture(texture.data))], name=asset_id)
        out.append(ExportLevel(level, model, prim.triangle_count, 0.002 * level, SCREEN_SIZES[level]))
    inp = ExportInput(
        asset_id=asset_id, version="", levels=out,
        provenance={"concept_sha256": ["c" * 64], "provider": "local", "job_id": "job-1",
                    "raw_model_sha256": "r" * 64},
        preview_png=png(color, 64), provider="local", cost_usd=cost, category="prop", extra=extra)
    inp.version = version_for(inp)
    return inp


def by_name(files) -> dict:
    return {f.name: f for f in files}


# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built():
    inp = sample_input()
    out = {p: build_profile(inp, p) for p in PROFILES}
    out["web-plain"] = build_profile(inp, "web", ExportOptions(web_compression="none"))
    return inp, out


def test_every_glb_passes_the_khronos_validator(built, tmp_path):
    inp, out = built
    paths = []
    for profile, files in out.items():
        for f in files:
            if f.name.endswith(".glb"):
                paths.append(tmp_path / f"{profile}--{f.name}")
                paths[-1].write_bytes(f.data)
    # The validator cannot decode meshopt streams; the decoded (still quantized) file checks the data.
    paths.append(tmp_path / "web-decoded.glb")
    paths[-1].write_bytes(decompress_glb(by_name(out["web"])["crate.glb"].data))
    reports = khronos.validate_files(paths)
    assert len(reports) == len(paths) == 8  # web, unity, 3 unreal levels, godot, plain web, decoded web
    for path, report in reports.items():
        khronos.assert_valid(report, path)


def test_manifest_lists_every_file_and_the_lod_table(built):
    inp, out = built
    for profile in PROFILES:
        files = by_name(out[profile])
        manifest = json.loads(files["manifest.json"].data)
        assert manifest["asset_id"] == "crate" and manifest["version"] == inp.version
        assert manifest["profile"] == profile and manifest["provider"] == "local"
        assert manifest["cost_usd"] == 0.25
        listed = {f["name"]: f for f in manifest["files"]}
        assert set(listed) == set(files) - {"manifest.json"}
        assert "preview.png" in listed
        for name, entry in listed.items():
            assert entry["sha256"] == files[name].sha256 and entry["bytes"] == len(files[name].data)
            assert entry["content_type"] == files[name].content_type
        assert [row["triangles"] for row in manifest["lods"]] == [lv.model.triangle_count for lv in inp.levels]
        assert [row["screen_size"] for row in manifest["lods"]] == list(SCREEN_SIZES)
        assert manifest["lods"][2]["error_m"] == pytest.approx(0.004)
        assert manifest["bounds"]["size"] == pytest.approx([1.0, 1.0, 1.0], abs=1e-3)
        assert manifest["materials"][0]["name"] == "paint"
        assert manifest["textures"][0]["width"] == 32
        for f in files.values():  # provenance travels inside every GLB
            if f.name.endswith(".glb"):
                extras = read_asset_extras(f.data)
                assert extras["asset_id"] == "crate" and extras["version"] == inp.version
                assert extras["provenance"]["concept_sha256"] == ["c" * 64]
                assert extras["provenance"]["job_id"] == "job-1" and extras["kiln_version"]


def test_web_holds_every_level_through_msft_lod_compressed(built):
    inp, out = built
    data = by_name(out["web"])["crate.glb"].data
    doc, _ = parse_container(data)
    assert set(doc["extensionsRequired"]) == {"EXT_meshopt_compression", "KHR_mesh_quantization"}
    root = doc["nodes"][doc["scenes"][0]["nodes"][0]]
    ids = root["extensions"]["MSFT_lod"]["ids"]
    assert [doc["nodes"][i]["name"] for i in ids] == ["crate_LOD1", "crate_LOD2"]
    assert root["extras"]["MSFT_screencoverage"] == pytest.approx([0.35 ** 2, 0.08 ** 2, 0.0])
    assert all("EXT_meshopt_compression" in v["extensions"] for v in doc["bufferViews"] if v.get("target"))
    plain = by_name(out["web-plain"])["crate.glb"].data
    assert len(data) < 0.6 * len(plain)
    # Decoding gives back the geometry to within the quantization step.
    decoded = read_glb(decompress_glb(data))
    lod0 = inp.levels[0].model.primitives[0]
    assert decoded.triangle_count == lod0.triangle_count
    step = 1.0 / ((1 << 14) - 1)
    assert np.abs(decoded.primitives[0].positions - lod0.positions).max() <= step
    assert np.abs(decoded.primitives[0].uvs - lod0.uvs).max() <= 1e-4
    assert read_glb(plain).triangle_count == lod0.triangle_count


def test_compress_is_the_meshopt_codec_round_trip():
    """Every compressed stream decodes (package decoder) to exactly the quantized values."""
    inp = sample_input()
    plain = build_profile(inp, "web", ExportOptions(web_compression="none"))[0].data
    doc, binary = parse_container(decompress_glb(compress_glb(plain, position_bits=16)))
    acc = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["POSITION"]]
    view = doc["bufferViews"][acc["bufferView"]]
    rows = np.frombuffer(binary, np.uint16, view["byteLength"] // 2, view["byteOffset"]).reshape(-1, 4)[:, :3]
    node = doc["nodes"][0]
    world = rows * node["scale"][0] + np.asarray(node["translation"])
    assert np.abs(world - inp.levels[0].model.primitives[0].positions).max() <= node["scale"][0] / 2 + 1e-6
    assert acc["min"] == rows.min(axis=0).tolist() and acc["max"] == rows.max(axis=0).tolist()


def test_unity_names_levels_and_carries_transition_heights(built):
    _, out = built
    doc, _ = parse_container(by_name(out["unity"])["crate.glb"].data)
    root = doc["nodes"][doc["scenes"][0]["nodes"][0]]
    assert root["name"] == "crate"
    children = [doc["nodes"][i] for i in root["children"]]
    assert [c["name"] for c in children] == ["crate_LOD0", "crate_LOD1", "crate_LOD2"]
    heights = root["extras"]["lod_group"]["screen_relative_transition_heights"]
    assert heights == [0.35, 0.08, 0.01]
    assert [c["extras"]["screen_relative_transition_height"] for c in children] == heights
    manifest = json.loads(by_name(out["unity"])["manifest.json"].data)
    assert manifest["engine"]["lod_group"]["screen_relative_transition_heights"] == heights


def _convex_and_outward(model: Model) -> bool:
    prim = model.primitives[0]
    v, tri = prim.positions.astype(np.float64), prim.triangles
    normals = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    # Every vertex lies behind (or on) every face's plane: convex, and the normals face outward.
    side = np.einsum("fk,vfk->vf", normals, v[:, None, :] - v[tri[:, 0]][None, :, :])
    return bool(side.max() <= 1e-6 * np.abs(normals).max())


def test_unreal_files_per_level_with_ucx_collision(built):
    inp, out = built
    files = by_name(out["unreal"])
    assert {"crate_LOD0.glb", "crate_LOD1.glb", "crate_LOD2.glb"} <= set(files)
    doc, _ = parse_container(files["crate_LOD0.glb"].data)
    assert sorted(n["name"] for n in doc["nodes"]) == ["UCX_crate", "crate"]
    assert [n["name"] for n in parse_container(files["crate_LOD2.glb"].data)[0]["nodes"]] == ["crate"]
    manifest = json.loads(files["manifest.json"].data)
    assert manifest["engine"]["lod_screen_sizes"] == list(SCREEN_SIZES)
    # Unreal's bounding-sphere screen sizes are Kiln's scaled by diagonal / largest side (>= 1)
    size = sample_input().levels[0].model.size()
    scale = float(np.linalg.norm(size) / size.max())
    assert manifest["engine"]["unreal_screen_sizes"] == pytest.approx([min(1.0, s * scale) for s in SCREEN_SIZES],
                                                                      abs=1e-6)
    assert manifest["engine"]["collision"]["node"] == "UCX_crate"
    assert read_glb(files["crate_LOD1.glb"].data).triangle_count == inp.levels[1].model.triangle_count


def test_godot_lod0_and_col_suffixed_collision(built):
    inp, out = built
    files = by_name(out["godot"])
    doc, _ = parse_container(files["crate.glb"].data)
    names = [n["name"] for n in doc["nodes"]]
    assert names == ["crate", "crate-colonly"]
    manifest = json.loads(files["manifest.json"].data)
    assert "Godot generates LODs on import" in manifest["engine"]["lods"]
    full = read_glb(files["crate.glb"].data)
    assert full.triangle_count > inp.levels[0].model.triangle_count  # LOD0 plus the hull


def test_collision_hull_is_small_convex_and_close():
    lod0 = sample_input().levels[0].model
    hull = convex_collision(lod0, max_vertices=32)
    assert hull.vertex_count <= 32
    assert _convex_and_outward(hull)
    full = ConvexHull(lod0.primitives[0].positions).volume
    assert 0.6 * full < ConvexHull(hull.primitives[0].positions).volume <= full * (1 + 1e-6)
    flat = Model([Primitive(np.array([[0, 0, 0], [1, 0, 0], [0, 0, 1], [1, 0, 1]], np.float32),
                            np.array([0, 2, 1, 1, 2, 3], np.uint32))])
    slab = convex_collision(flat)  # a flat model still gets a closed hull with volume
    assert _convex_and_outward(slab) and np.ptp(slab.primitives[0].positions[:, 1]) > 0


def test_version_is_the_content_and_builds_are_deterministic():
    a, b = sample_input(), sample_input()
    assert a.version == b.version and len(a.version) == 16
    assert [f.data for f in build_profile(a, "web")] == [f.data for f in build_profile(b, "web")]
    assert version_for(a, ("web",)) != version_for(a, ("web", "unity"))
    assert sample_input(cost=0.5).version != a.version
    assert sample_input(levels=SPHERE_LEVELS[:2]).version != a.version
    assert version_for(a, options=ExportOptions(web_compression="none")) != a.version
    # Content hashes computed upstream work too (the LOD chain's sha256).
    assert version_for("f" * 64, ("web",)) == version_for(["f" * 64], ("web",)) != version_for("e" * 64, ("web",))
    levels = level_glbs(a)
    assert sorted(levels) == [0, 1, 2]
    assert read_asset_extras(levels[1])["level"] == 1


def test_bad_inputs_are_refused_with_a_reason():
    inp = sample_input()
    with pytest.raises(ValueError, match="unknown export profile"):
        build_profile(inp, "cryengine")
    inp.asset_id = "Bad Name"
    with pytest.raises(ValueError, match="asset_id"):
        build_profile(inp, "web")
    inp = sample_input()
    inp.levels = inp.levels[:1] + inp.levels[2:]
    with pytest.raises(ValueError, match="without gaps"):
        build_profile(inp, "web")


def test_a_real_textured_multi_material_model(testdata, tmp_path):
    """Kenney's alien (CC0): several materials, through every profile, validated in one call."""
    source = read_glb((testdata / "glb/textured/bevyengine__bevy/assets/models/AlienCake/alien.glb").read_bytes())
    assert len(source.materials) > 1
    levels = [ExportLevel(i, source, source.triangle_count, 0.0, s) for i, s in enumerate((1.0, 0.2))]
    inp = ExportInput("alien", "", levels, preview_png=png((0, 255, 0)), provider="import")
    inp.version = version_for(inp, PROFILES)
    paths: list[Path] = []
    for profile in PROFILES:
        for f in build_profile(inp, profile):
            if f.name.endswith(".glb"):
                paths.append(tmp_path / f"{profile}-{f.name}")
                paths[-1].write_bytes(decompress_glb(f.data) if profile == "web" else f.data)
    for path, report in khronos.validate_files(paths).items():
        khronos.assert_valid(report, path)
