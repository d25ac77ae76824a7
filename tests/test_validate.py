"""validate: every check passes on a sound input and fails, with its reason, on a crafted bad one."""

from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from PIL import Image

from pipeline.geometry import validate as v
from pipeline.geometry.glb import parse_container, write_glb
from pipeline.geometry.model import Material, Model, Primitive, Texture
from pipeline.geometry.normalize import normalize


def png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 100, 50)).save(out, fmt)
    return out.getvalue()


def box(texture: Texture | None = None) -> Model:
    """A clean textured 1 m box straight from normalize (normals, UVs, pivot at the bottom)."""
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)], float)
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    pos, uvs, tri = [], [], []
    for a, b, c, d in quads:
        k = len(pos)
        pos += [corners[a], corners[b], corners[c], corners[d]]
        uvs += [[0, 0], [1, 0], [1, 1], [0, 1]]
        tri += [k, k + 1, k + 2, k, k + 2, k + 3]
    material = Material("paint", base_color_texture=texture or Texture(png(64, 64)))
    model, _ = normalize(Model([Primitive(np.array(pos), np.array(tri), uvs=np.array(uvs))], [material]))
    return model


def repack(data: bytes, edit) -> bytes:
    """The GLB with its JSON edited by `edit(document)` (the BIN chunk kept)."""
    document, binary = parse_container(data)
    edit(document)
    js = json.dumps(document).encode()
    js += b" " * (-len(js) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body


def by_name(findings: list[v.Finding]) -> dict[str, v.Finding]:
    return {f.name: f for f in findings}


def test_kiln_output_passes_every_check():
    data = write_glb(box())
    findings = v.validate_glb(data, category="prop")
    assert [f.name for f in findings if not f.passed] == []
    assert {"glb_structure", "glb_readable", "has_triangles", "finite_positions", "pbr_metallic_roughness", "no_degenerate_triangles",
            "normals_unit_length", "uvs_present_finite", "textures_power_of_two", "bounding_box_plausible",
            "file_size_within_budget"} == {f.name for f in findings}
    for f in findings:
        json.dumps([f.measured, f.limit])  # plain JSON for the check's metadata
        assert f.severity in ("error", "warn") and f.message


def test_structure_catches_what_the_validator_would():
    data = write_glb(box())
    assert v.check_structure(data).passed
    bad_bounds = repack(data, lambda d: d["accessors"][0].update(max=[9.0, 9.0, 9.0]))
    f = v.check_structure(bad_bounds)
    assert not f.passed and "max" in f.message and f.severity == "error"
    no_bounds = repack(data, lambda d: [d["accessors"][0].pop(k) for k in ("min", "max")])
    assert "no min/max" in v.check_structure(no_bounds).message
    document, binary = parse_container(data)
    index_accessor = document["accessors"][document["meshes"][0]["primitives"][0]["indices"]]
    start = document["bufferViews"][index_accessor["bufferView"]]["byteOffset"]
    corrupt = bytearray(data)
    corrupt[len(data) - len(binary) + start : len(data) - len(binary) + start + 2] = struct.pack("<H", 999)
    assert "out of range" in v.check_structure(bytes(corrupt)).message
    moved = repack(data, lambda d: d["bufferViews"][0].update(byteOffset=10**6))
    assert "runs past the end" in v.check_structure(moved).message
    truncated = v.validate_glb(data[:-8])
    assert len(truncated) == 1 and not truncated[0].passed and "truncated" in truncated[0].message


def test_readable_and_has_triangles():
    data = write_glb(box())
    skinned = repack(data, lambda d: d.update(skins=[{"joints": [0]}]))
    found = by_name(v.validate_glb(skinned))
    assert not found["glb_readable"].passed and "skinned" in found["glb_readable"].message
    assert not v.check_has_triangles(Model([])).passed
    assert v.check_has_triangles(box()).passed


def test_pbr_materials():
    data = write_glb(box())
    document, _ = parse_container(data)
    assert v.check_pbr_materials(document).passed
    spec_gloss = {**document, "materials": [{"extensions": {"KHR_materials_pbrSpecularGlossiness": {}}}],
                  "extensionsUsed": ["KHR_materials_pbrSpecularGlossiness"]}
    f = v.check_pbr_materials(spec_gloss)
    assert not f.passed and f.severity == "error" and "specular-glossiness" in f.message
    bare = {**document, "materials": [{"name": "bare"}]}
    assert "no pbrMetallicRoughness" in v.check_pbr_materials(bare).message
    unassigned = json.loads(json.dumps(document))
    unassigned["meshes"][0]["primitives"][0].pop("material")
    f = v.check_pbr_materials(unassigned)
    assert not f.passed and f.severity == "warn"


def test_degenerate_triangles():
    model = box()
    assert v.check_no_degenerate_triangles(model).passed
    p = model.primitives[0]
    p.indices = np.concatenate([p.indices, [0, 0, 1], [0, 1, 2]])
    p.positions[2] = (p.positions[0] + p.positions[1]) / 2  # collinear: corner 2 on edge 0-1
    f = v.check_no_degenerate_triangles(model)
    assert not f.passed and f.measured["degenerate_triangles"] >= 2


def test_normals_unit_length():
    assert v.check_normals(box()).passed
    model = box()
    model.primitives[0].normals[0] *= 1.1
    f = v.check_normals(model)
    assert not f.passed and f.measured["not_unit"] == 1
    assert f.measured["max_length_error"] == pytest.approx(0.1, rel=1e-3)
    model.primitives[0].normals[1] = np.nan
    assert v.check_normals(model).measured["nonfinite"] == 1
    model.primitives[0].normals = None
    assert "no normals" in v.check_normals(model).message


def test_uvs_present_finite_and_sane():
    assert v.check_uvs(box()).passed
    model = box()
    model.primitives[0].uvs[0] = [np.inf, 0]
    f = v.check_uvs(model)
    assert not f.passed and f.severity == "error"
    model = box()
    model.primitives[0].uvs[0] = [500, 0]
    f = v.check_uvs(model)
    assert not f.passed and f.severity == "warn"
    model.primitives[0].uvs = None
    f = v.check_uvs(model)
    assert f.severity == "error" and "textured" in f.message
    model.materials[0].base_color_texture = None
    f = v.check_uvs(model)
    assert not f.passed and f.severity == "warn"
    assert v.check_uvs(model, require=False).passed


def test_textures_power_of_two_within_limit():
    assert v.check_textures(box(Texture(png(256, 128)))).passed
    assert "not a power of two" in v.check_textures(box(Texture(png(300, 256)))).message
    assert "over the 512 px limit" in v.check_textures(box(Texture(png(1024, 1024))), max_px=512).message
    assert "declared image/png" in v.check_textures(box(Texture(png(64, 64, "JPEG"), "image/png"))).message
    assert "not a readable image" in v.check_textures(box(Texture(b"not an image"))).message


def test_bounding_box_plausible_for_category():
    model = box()  # 1 m
    assert v.check_bounds(model, "prop").passed
    f = v.check_bounds(model, "small_prop")
    assert f.passed  # 1 m is still a plausible rifle
    centimetres, _ = normalize(model, target_height_m=100.0)
    f = v.check_bounds(centimetres, "prop")
    assert not f.passed and "wrong units" in f.message and f.limit["max_m"] == 5.0
    with pytest.raises(ValueError, match="unknown category"):
        v.check_bounds(model, "spaceship")
    for low, high in v.CATEGORY_SIZE_RANGES_M.values():
        assert 0 < low < high


def test_file_size_budget():
    assert v.check_file_size(1000, 2000).passed
    f = v.check_file_size(3 << 20, 2 << 20)
    assert not f.passed and "over the 2.00 MiB budget" in f.message
    found = by_name(v.validate_glb(write_glb(box()), limits=v.ValidationLimits(max_file_bytes=100)))
    assert not found["file_size_within_budget"].passed


def test_lod_chain_checks():
    assert v.check_triangles_fall([1000, 500, 250, 100]).passed
    f = v.check_triangles_fall([1000, 500, 500, 100])
    assert not f.passed and "LOD2" in f.message
    assert v.check_budgets([1000, 500], [1000, 600]).passed
    over = v.check_budgets([1000, 700], [1000, 600], [0.0004, 0.0008], [1.0, 0.5])
    # a budget deficit is a warning that shows it, and its advice lowers cost
    assert not over.passed and over.severity == "warn" and over.measured["over_ceiling"] == [0, 100]
    assert "LOD1 needs 700 triangles, 100 over its ceiling of 600" in over.message
    assert "lower `[lod] screen_sizes` for LOD1" in over.message
    assert v.check_lod_errors([0.0, 0.001, 0.004], [0.0004, 0.002, 0.005]).passed
    err = v.check_lod_errors([0.0, 0.003], [0.0004, 0.002], [1.0, 0.5])
    # an error over the bound is a blocking defect, and its advice raises quality
    assert not err.passed and err.severity == "error" and "LOD1 error 3 mm" in err.message
    assert "one pixel at switch screen size 0.5" in err.message and "to raise quality" in err.message
    assert not v.check_lod_errors([0.0, float("nan")], [0.0, 0.002]).passed
    assert v.check_screen_sizes_fall([1.0, 0.4, 0.2]).passed
    bad = v.check_screen_sizes_fall([1.0, 0.4, 0.4])
    assert not bad.passed and bad.severity == "error" and "LOD2" in bad.message
    assert v.check_chain_complete(4, 4).passed
    short = v.check_chain_complete(2, 4, ["LOD2 not made: seams"])
    assert not short.passed and short.severity == "warn" and "LOD2 not made" in short.message
    with pytest.raises(ValueError):
        v.check_budgets([1, 2], [1])


def test_finite_positions_and_repairs_are_reported():
    box = Model([Primitive(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [np.nan, 0, 0]], np.float32),
                           np.array([0, 1, 2, 0, 2, 3]))])
    finding = v.check_finite_positions(box)
    assert not finding.passed and finding.measured["nonfinite_vertices"] == 1
    assert v.check_finite_positions(Model([Primitive(box.primitives[0].positions[:3], np.array([0, 1, 2]))])).passed

    clean = v.check_repairs({"nonfinite_triangles": 0, "nonfinite_share": 0.0}, 0.05)
    assert clean.passed
    repaired = v.check_repairs({"nonfinite_triangles": 6, "nonfinite_share": 0.006, "nonfinite_uvs": 1}, 0.05)
    assert not repaired.passed and repaired.severity == "warn" and "dropped 6 triangles" in repaired.message
    over = v.check_repairs({"nonfinite_triangles": 60, "nonfinite_share": 0.06}, 0.05)
    assert not over.passed and over.severity == "error" and "5%" in over.message
