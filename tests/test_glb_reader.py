"""Kiln's GLB reader against third-party files (the Khronos validator's own test containers, with
their expected reports, and real models) and against small crafted files for each feature."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.geometry.glb import (GlbBuilder, GlbError, parse_container, read_asset_extras, read_glb,
                                   write_glb)
from pipeline.geometry.model import Material, Model, Primitive, TextureTransform, face_normals
from pipeline.geometry.normalize import normalize
from pipeline.geometry.validate import check_structure, validate_glb
from tests import khronos

KHRONOS = "glb/edge-cases/KhronosGroup__glTF-Validator/test/base/data"

# Each validator error code a Khronos test file reports, and words Kiln's message must use for it:
# the reader has to say *what* is wrong, not only that something is.
CODE_WORDS = {
    "GLB_UNEXPECTED_END_OF_HEADER": ["header"],
    "GLB_INVALID_MAGIC": ["magic"],
    "GLB_INVALID_VERSION": ["version"],
    "GLB_LENGTH_TOO_SMALL": ["too small"],
    "GLB_LENGTH_MISMATCH": ["length", "bytes"],
    "GLB_CHUNK_TOO_BIG": ["declares", "length"],
    "GLB_UNEXPECTED_END_OF_CHUNK_DATA": ["truncated"],
    "GLB_EMPTY_CHUNK": ["zero length", "empty"],
    "GLB_DUPLICATE_CHUNK": ["second"],
    "GLB_UNEXPECTED_FIRST_CHUNK": ["first chunk"],
    "INVALID_JSON": ["JSON"],
    "UNDEFINED_PROPERTY": ["asset"],
    "INVALID_URI": ["URI"],
    "BUFFER_MISSING_GLB_DATA": ["BIN chunk"],
    "BUFFER_BYTE_LENGTH_MISMATCH": ["declares"],
}

# Real models Kiln refuses, and the word its reason must name.
REFUSED = {"Fox.glb": "skinned", "CesiumMan.glb": "skinned", "CesiumMilkTruck.glb": "animated"}


def _manifest(testdata: Path) -> dict[str, dict]:
    return {e["local"]: e for e in json.loads((testdata / "manifest.json").read_text()) if "glb" in e}


def _model_files(testdata: Path) -> list[Path]:
    files = sorted((testdata / "glb").rglob("*.glb")) + sorted((testdata / "highpoly").rglob("*.glb"))
    return [f for f in files if "KhronosGroup__glTF-Validator" not in str(f)]


def _agreement(model: Model) -> list[float]:
    """Per primitive with normals: share of triangles whose winding agrees with their vertex normals."""
    out = []
    for p in model.primitives:
        if p.normals is None:
            continue
        fn = face_normals(p.positions, p.indices).astype(np.float64)
        vn = p.normals[p.triangles].sum(axis=1)
        keep = np.linalg.norm(fn, axis=1) > 1e-12
        out.append(float((np.einsum("ij,ij->i", fn[keep], vn[keep]) > 0).mean()))
    return out


def test_khronos_containers_agree_with_their_reports(testdata):
    files = sorted((testdata / KHRONOS).glob("*/*.glb"))
    assert len(files) >= 27
    # Every error in these reports is about the container, the JSON or the buffers, all of which a
    # reader must catch before trusting an offset: there is no report here whose only errors a
    # reader could skip. (The one such case in the test data, the cake's SCENE_NON_ROOT_NODE, is
    # covered by test_scene_root_that_is_a_child_is_read_once.)
    for path in files:
        report = json.loads(path.with_name(path.name + ".report.json").read_text())["issues"]
        codes = {m["code"] for m in report["messages"] if m["severity"] == 0}
        data = path.read_bytes()
        if report["numErrors"] == 0:
            model = read_glb(data)  # valid: must read (these hold no meshes)
            assert model.triangle_count == 0, path.name
            assert check_structure(data).passed, path.name
            continue
        with pytest.raises(GlbError) as caught:
            read_glb(data)
        message = str(caught.value)
        words = [w for code in codes for w in CODE_WORDS[code]]
        assert any(w.lower() in message.lower() for w in words), f"{path.name}: {codes} -> {message!r}"
        assert not check_structure(data).passed, path.name


def test_every_valid_model_reads_or_is_refused_with_its_reason(testdata):
    manifest = _manifest(testdata)
    files = _model_files(testdata)
    assert len(files) >= 14
    for path in files:
        entry = manifest[str(path.relative_to(testdata))]
        data = path.read_bytes()
        if path.name in REFUSED:
            with pytest.raises(GlbError, match=REFUSED[path.name]):
                read_glb(data)
            continue
        model = read_glb(data)
        # Every mesh instance of the scene is there, instancing and reused meshes included.
        assert model.triangle_count == entry["glb"]["tris_in_scene"], path.name
        for p in model.primitives:
            assert np.isfinite(p.positions).all(), path.name
            assert p.indices.max() < p.vertex_count, path.name


def test_animated_and_skinned_models_read_as_their_rest_pose_when_allowed(testdata):
    manifest = _manifest(testdata)
    for name in ("Fox", "CesiumMan", "CesiumMilkTruck"):
        rel = f"glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models/{name}/glTF-Binary/{name}.glb"
        model = read_glb((testdata / rel).read_bytes(), allow_animation=True)
        assert model.triangle_count == manifest[rel]["glb"]["tris_in_scene"]
        # A wrong joint matrix scrambles the mesh; a right one keeps windings and normals agreeing.
        agreement = _agreement(model)  # (the Fox has no normals: its size below is the check)
        assert all(a > 0.95 for a in agreement), (name, agreement)
        size = model.size()
        assert size.max() < 200 and size.min() > 0, (name, size)


def test_negative_scale_keeps_faces_pointing_outward(testdata):
    path = testdata / ("glb/edge-cases/DRx3D__glTF-Sample-Assets-OLD/Models/NegativeScaleTest/glTF-Binary/"
                       "NegativeScaleTest.glb")
    data = path.read_bytes()
    document, _ = parse_container(data)
    assert any(np.prod(n.get("scale", [1, 1, 1])) < 0 for n in document["nodes"])  # the file does mirror
    model = read_glb(data)
    assert min(_agreement(model)) > 0.99
    # The icospheres (materials 3-5, some mirrored once, some twice) are closed: positive volume.
    spheres = [p for p in model.primitives if p.material in (3, 4, 5)]
    assert len(spheres) == 6
    for p in spheres:
        tri = p.positions[p.triangles].astype(np.float64)
        tri -= tri.reshape(-1, 3).mean(axis=0)
        volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6
        assert volume > 0


def test_round_trip_and_normalized_output_pass_the_khronos_validator(testdata, tmp_path):
    paths = []
    for path in _model_files(testdata):
        if path.name in REFUSED or "highpoly" in str(path):
            continue
        model = read_glb(path.read_bytes())
        out = tmp_path / f"{path.stem}.glb"
        out.write_bytes(write_glb(model))
        normalized, _ = normalize(model, target_height_m=1.0)
        clean = write_glb(normalized)
        (tmp_path / f"{path.stem}.normalized.glb").write_bytes(clean)
        # Kiln's own output also passes Kiln's own checks.
        failed = [f for f in validate_glb(clean, category="prop") if not f.passed and f.severity == "error"]
        assert not failed, (path.name, failed)
        paths += [out, tmp_path / f"{path.stem}.normalized.glb"]
    assert len(paths) >= 20
    for file, report in khronos.validate_files(paths).items():
        khronos.assert_valid(report, Path(file).name)


# ----------------------------------------------------------------------------------------------
# Crafted files: one feature each


def _glb(document: dict, binary: bytes = b"") -> bytes:
    document = {"asset": {"version": "2.0"}, **document}
    if binary:
        binary += b"\0" * (-len(binary) % 4)
        document.setdefault("buffers", [{"byteLength": len(binary)}])
    js = json.dumps(document).encode()
    js += b" " * (-len(js) % 4)
    out = struct.pack("<II", len(js), 0x4E4F534A) + js
    if binary:
        out += struct.pack("<II", len(binary), 0x004E4942) + binary
    return struct.pack("<III", 0x46546C67, 2, 12 + len(out)) + out


def _triangle_doc(*, mode: int | None = None, positions=None, indices=None) -> tuple[dict, bytes]:
    """One primitive: positions (VEC3 float), optional indices (uint16)."""
    pos = np.asarray(positions if positions is not None else [[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    binary = pos.tobytes()
    views = [{"buffer": 0, "byteOffset": 0, "byteLength": len(binary)}]
    accessors = [{"bufferView": 0, "componentType": 5126, "count": len(pos), "type": "VEC3",
                  "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()}]
    prim: dict = {"attributes": {"POSITION": 0}}
    if indices is not None:
        idx = np.asarray(indices, np.uint16).tobytes()
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": len(idx)})
        accessors.append({"bufferView": 1, "componentType": 5123, "count": len(indices), "type": "SCALAR"})
        prim["indices"] = 1
        binary += idx
    if mode is not None:
        prim["mode"] = mode
    doc = {"scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
           "meshes": [{"primitives": [prim]}], "accessors": accessors, "bufferViews": views}
    return doc, binary


def test_mirrored_node_flips_winding_and_keeps_normals():
    model = Model([Primitive(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]), np.array([0, 1, 2]),
                             normals=np.array([[0, 0, 1]] * 3))])
    builder = GlbBuilder()
    mesh = builder.add_mesh(model)
    node = builder.add_node("mirror", mesh, root=False)
    builder.doc["nodes"][node]["scale"] = [-2, 1, 1]
    builder.add_node("root", children=[node])
    read = read_glb(builder.build())
    p = read.primitives[0]
    assert np.allclose(p.positions[:, 0].min(), -2)
    fn = face_normals(p.positions, p.indices)[0]
    assert fn[2] > 0  # winding flipped back so the face still faces +Z ...
    assert np.allclose(p.normals, [[0, 0, 1]] * 3)  # ... as its normals say


def test_strips_and_fans_become_triangle_lists():
    square = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]
    strip = read_glb(_glb(*_triangle_doc(mode=5, positions=square)))
    assert strip.primitives[0].triangles.tolist() == [[0, 1, 2], [2, 1, 3]]
    fan = read_glb(_glb(*_triangle_doc(mode=6, positions=square, indices=[0, 1, 3, 2])))
    assert fan.primitives[0].triangles.tolist() == [[0, 1, 3], [0, 3, 2]]
    assert np.all(face_normals(fan.primitives[0].positions, fan.primitives[0].indices)[:, 2] > 0)
    lines = read_glb(_glb(*_triangle_doc(mode=1, positions=square)))
    assert lines.triangle_count == 0


def test_sparse_accessor_morph_target_and_uv_set_with_texture_transform():
    pos = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32)
    uv0 = np.zeros((3, 2), np.float32)
    uv1 = np.array([[0, 0], [1, 0], [0, 1]], np.float32)
    delta = np.array([0, 0, 5], np.float32)  # sparse target: vertex 2 moves +5 in z
    sparse_index = np.array([2], np.uint16).tobytes() + b"\0\0"
    chunks = [pos.tobytes(), uv0.tobytes(), uv1.tobytes(), sparse_index, delta.tobytes()]
    offsets = np.cumsum([0] + [len(c) for c in chunks[:-1]]).tolist()
    views = [{"buffer": 0, "byteOffset": o, "byteLength": len(c)} for o, c in zip(offsets, chunks)]
    doc = {
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"weights": [0.5], "primitives": [{
            "attributes": {"POSITION": 0, "TEXCOORD_0": 1, "TEXCOORD_1": 2}, "material": 0,
            "targets": [{"POSITION": 3}]}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0, "texCoord": 1, "extensions": {
            "KHR_texture_transform": {"offset": [0.5, 0], "scale": [0.5, 0.5]}}}}}],
        "textures": [{}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3", "min": [0, 0, 0], "max": [1, 1, 0]},
            {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC2"},
            {"bufferView": 2, "componentType": 5126, "count": 3, "type": "VEC2"},
            {"componentType": 5126, "count": 3, "type": "VEC3",
             "sparse": {"count": 1, "indices": {"bufferView": 3, "componentType": 5123}, "values": {"bufferView": 4}}},
        ],
        "bufferViews": views,
        "extensionsUsed": ["KHR_texture_transform"],
    }
    p = read_glb(_glb(doc, b"".join(chunks))).primitives[0]
    assert np.allclose(p.positions[2], [0, 1, 2.5])  # half the sparse target's +5
    assert np.allclose(p.uv1, uv1) and np.allclose(p.uvs, uv0)  # UV sets as stored: transforms stay in the slot


def test_texture_transform_follows_the_extensions_worked_example():
    # "utilizes only the lower left quadrant of the source image, rotated clockwise 90 degrees"
    matrix = TextureTransform(offset=(0, 1), rotation=1.57079632679, scale=(0.5, 0.5)).matrix()
    corners = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float) @ matrix.T
    assert np.allclose(corners[:, :2], [[0, 1], [0, 0.5], [0.5, 0.5], [0.5, 1]], atol=1e-9)


def test_refusals_name_the_reason():
    doc, binary = _triangle_doc()
    cases = [
        ({**doc, "extensionsRequired": ["EXT_fancy"], "extensionsUsed": ["EXT_fancy"]}, "EXT_fancy"),
        ({**doc, "skins": [{"joints": [0]}]}, "skinned"),
        ({**doc, "animations": [{"name": "Wave", "channels": [], "samplers": []}]}, "Wave"),
    ]
    for document, word in cases:
        with pytest.raises(GlbError, match=word):
            read_glb(_glb(document, binary))
    external = {**doc, "buffers": [{"byteLength": len(binary), "uri": "model.bin"}]}
    with pytest.raises(GlbError, match="external file 'model.bin'"):
        read_glb(_glb(external))


def test_broken_references_and_ranges_are_caught_before_reading():
    doc, binary = _triangle_doc(indices=[0, 1, 2])
    broken = [
        (lambda d: d["accessors"][0].update(count=4), "needs 48 bytes"),
        (lambda d: d["bufferViews"][0].update(byteLength=400), "runs past the end of buffers"),
        (lambda d: d["meshes"][0]["primitives"][0].update(material=3), "materials"),
        (lambda d: d["nodes"][0].update(children=[0]), "more than one parent"),
        (lambda d: d["accessors"][1].update(componentType=5122), "indices must be"),
        (lambda d: d["accessors"][0].update(byteOffset=2), "aligned"),
    ]
    for mutate, words in broken:
        document = json.loads(json.dumps(doc))
        mutate(document)
        with pytest.raises(GlbError, match=words):
            read_glb(_glb(document, binary))
    out_of_range = _triangle_doc(indices=[0, 1, 7])
    with pytest.raises(GlbError, match="index 7 is out of range for 3 vertices"):
        read_glb(_glb(*out_of_range))


def test_scene_root_that_is_a_child_is_read_once(testdata):
    # cakeBirthday lists a child node as a scene root (the validator's one error, SCENE_NON_ROOT_NODE).
    # A reader can read it unambiguously, so Kiln does (each node once), while check_structure
    # reports it, agreeing with the validator.
    data = (testdata / "glb/textured/bevyengine__bevy/assets/models/AlienCake/cakeBirthday.glb").read_bytes()
    assert read_glb(data).triangle_count == 1332
    structure = check_structure(data)
    assert not structure.passed and "root" in structure.message


def test_asset_extras_and_name_round_trip():
    model = Model([Primitive(np.eye(3), np.array([0, 1, 2]))], [Material()], name="crate")
    data = write_glb(model, asset_extras={"asset_id": "crate_01", "lod": 0})
    assert read_asset_extras(data) == {"asset_id": "crate_01", "lod": 0}
    read = read_glb(data)
    assert read.name == "crate_01" and read.primitives[0].normals is None  # nothing invented
