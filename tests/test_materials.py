"""The whole glTF material model and every vertex stream survive Kiln's GLB reader and writer."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from pipeline.geometry.glb import GlbError, parse_container, read_glb, write_glb
from pipeline.geometry.model import (CLAMP_TO_EDGE, LINEAR, MIRRORED_REPEAT, NEAREST, Material, Model, Primitive,
                                     Sampler, Texture, TextureRef, TextureTransform)
from tests import khronos


def png(w: int = 8, h: int = 8, colour=(200, 40, 40, 255), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGBA" if fmt == "PNG" else "RGB", (w, h), colour if fmt == "PNG" else colour[:3]).save(out, fmt)
    return out.getvalue()


def quad(material: int, colors: np.ndarray | None = None, **kw) -> Primitive:
    pos = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], np.float32)
    return Primitive(pos, [0, 1, 2, 0, 2, 3], normals=np.tile([0, 0, 1], (4, 1)), uvs=uv, uv1=uv * 0.5,
                     tangents=np.tile([1, 0, 0, 1], (4, 1)), colors=colors, material=material, **kw)


def full_model() -> Model:
    """Two materials sharing one base colour image, every core slot, a texture transform on
    TEXCOORD_1, samplers, pass-through extensions (one with a texture) and material variants."""
    shared, normal, orm, emissive = (Texture(png(colour=c)) for c in
                                     ((200, 40, 40, 255), (128, 128, 255, 255), (255, 128, 0, 255), (9, 9, 9, 255)))
    clamp = Sampler(LINEAR, NEAREST, CLAMP_TO_EDGE, MIRRORED_REPEAT)
    painted = Material(
        name="painted", base_color_factor=(0.9, 0.8, 0.7, 0.5), base_color_texture=TextureRef(0, sampler=0),
        metallic=0.25, roughness=0.6, metallic_roughness_texture=TextureRef(2),
        normal_texture=TextureRef(1, scale=0.7), occlusion_texture=TextureRef(2, scale=0.4),
        emissive_factor=(1.0, 0.5, 0.0), emissive_texture=TextureRef(3, tex_coord=1, transform=TextureTransform(
            offset=(0.5, 0.0), rotation=0.3, scale=(0.5, 0.5))),
        alpha_mode="MASK", alpha_cutoff=0.3, double_sided=True,
        extensions={"KHR_materials_emissive_strength": {"emissiveStrength": 4.0},
                    "KHR_materials_clearcoat": {"clearcoatFactor": 0.8, "clearcoatTexture": TextureRef(2),
                                                "clearcoatRoughnessFactor": 0.1},
                    "KHR_materials_sheen": {"sheenColorFactor": [0.2, 0.3, 0.4], "sheenRoughnessFactor": 0.5},
                    "KHR_materials_specular": {"specularFactor": 0.4},
                    "KHR_materials_ior": {"ior": 1.7},
                    "KHR_materials_transmission": {"transmissionFactor": 0.3},
                    "KHR_materials_volume": {"thicknessFactor": 0.2, "attenuationColor": [1.0, 0.9, 0.8]}},
        extras={"author": "test"})
    glass = Material(name="glass", base_color_texture=TextureRef(0), alpha_mode="BLEND",
                     extensions={"KHR_materials_unlit": {}})
    red = np.array([[255, 0, 0, 255]] * 4, np.uint8)
    return Model(
        primitives=[quad(0, colors=red, variants=((0, (0,)), (1, (1,)))),
                    quad(1, colors=np.full((4, 3), 0.5, np.float32)),
                    quad(1, colors=np.full((4, 4), 40000, np.uint16))],
        materials=[painted, glass], name="crate", textures=[shared, normal, orm, emissive], samplers=[clamp],
        variants=["red", "glass"])


def test_every_material_slot_and_vertex_stream_round_trips_and_validates():
    source = full_model()
    data = write_glb(source)
    document, _ = parse_container(data)
    assert len(document["images"]) == 4  # the shared base colour is one image
    assert document["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"] != \
        document["materials"][1]["pbrMetallicRoughness"]["baseColorTexture"]["index"]  # other sampler, same image
    khronos.assert_valid(data, "full material model")
    back = read_glb(data)
    assert resolved(back) == resolved(source)
    assert sorted(t.data for t in back.textures) == sorted(t.data for t in source.textures)
    assert back.samplers == source.samplers and back.variants == source.variants
    for a, b in zip(back.primitives, source.primitives):
        for name in ("positions", "normals", "uvs", "uv1", "tangents", "indices"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
        assert a.colors.dtype == b.colors.dtype and np.array_equal(a.colors, b.colors)
        assert a.variants == b.variants
    back.name = source.name  # (the name comes from asset.extras, which this file has none of)
    assert write_glb(back) == data  # reading and writing again changes nothing (deterministic)


def test_transformed_slot_uvs_follow_the_extensions_example():
    model = full_model()
    ref = model.materials[0].emissive_texture
    assert ref.uv_set == 1
    uv = model.slot_uvs(model.primitives[0], ref)
    m = ref.transform.matrix()
    expected = model.primitives[0].uv1.astype(np.float64) @ m[:2, :2].T + m[:2, 2]
    assert np.allclose(uv, expected, atol=1e-6) and not np.allclose(uv, model.primitives[0].uv1)


def resolved(model: Model) -> list[Material]:
    """Materials with each TextureRef's image index and sampler index replaced by what they point at,
    so models whose image lists are ordered differently compare by content."""
    out = []
    for material in model.materials:
        def swap(ref):
            if not isinstance(ref, TextureRef):
                return ref
            return (model.textures[ref.texture].data, None if ref.sampler is None else model.samplers[ref.sampler],
                    ref.tex_coord, ref.transform, ref.scale, ref.extensions)
        slots = {f"{s}_texture": swap(getattr(material, f"{s}_texture"))
                 for s in ("base_color", "metallic_roughness", "normal", "occlusion", "emissive")}
        ext = {n: {k: swap(v) for k, v in e.items()} for n, e in material.extensions.items()}
        out.append(Material(**{**material.__dict__, **slots, "extensions": ext}))
    return out


def _pack(document: dict, binary: bytes) -> bytes:
    import struct
    js = json.dumps(document).encode()
    js += b" " * (-len(js) % 4)
    binary = bytes(binary) + b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<III", 0x46546C67, 2, total) + struct.pack("<II", len(js), 0x4E4F534A) + js
            + struct.pack("<II", len(binary), 0x004E4942) + binary)


def test_bad_textures_fail_naming_the_material_and_texture():
    def garbage_image(document, binary):
        view = document["bufferViews"][document["images"][1]["bufferView"]]
        start = view["byteOffset"]
        binary[start:start + view["byteLength"]] = b"\x00" * view["byteLength"]

    def out_of_range(document, binary):
        document["materials"][1]["pbrMetallicRoughness"]["baseColorTexture"]["index"] = 42

    def missing_set(document, binary):
        for prim in document["meshes"][0]["primitives"]:
            prim["attributes"].pop("TEXCOORD_1")

    cases = [(garbage_image, r"materials\[0\] 'painted' metallicRoughnessTexture \(textures\[1\]\) -> images\[1\]: "
                              r"the texture's bytes .* not a decodable image"),
             (out_of_range, r"materials\[1\]\.pbrMetallicRoughness\.baseColorTexture\.index refers to textures\[42\]"),
             (missing_set, r"materials\[0\] 'painted' emissive texture samples TEXCOORD_1, which meshes\[0\]")]
    for mutate, message in cases:
        document, binary = parse_container(write_glb(full_model()))
        binary = bytearray(binary)
        mutate(document, binary)
        with pytest.raises(GlbError, match=message):
            read_glb(_pack(document, bytes(binary)))


# ----------------------------------------------------------------------------------------------
# Compressed and re-encoded input


DENSE_SPHERE = "glb/edge-cases/donmccurdy__glTF-Transform/packages/functions/test/in/DenseSphere.glb"


def test_draco_input_decodes_and_a_broken_draco_buffer_names_the_primitive(testdata):
    data = (testdata / DENSE_SPHERE).read_bytes()
    model = read_glb(data)
    positions = model.primitives[0].positions
    assert model.triangle_count == 30720
    # KHR_mesh_quantization normalized shorts: a unit sphere once dequantized, not +-32767
    radius = np.linalg.norm(positions - positions.mean(axis=0), axis=1)
    assert 0.9 < radius.min() and radius.max() < 1.1
    document, binary = parse_container(data)
    binary = bytearray(binary)
    view = document["bufferViews"][document["meshes"][0]["primitives"][0]["extensions"]
                                   ["KHR_draco_mesh_compression"]["bufferView"]]
    binary[view.get("byteOffset", 0):view.get("byteOffset", 0) + 64] = b"\xff" * 64
    with pytest.raises(GlbError, match=r"meshes\[0\]\.primitives\[0\]: the Draco buffer .* does not decode"):
        read_glb(_pack(document, bytes(binary)))


def test_meshopt_compressed_quantized_input_reads_as_the_uncompressed_model():
    from pipeline.export.meshopt_ext import compress_glb

    source = full_model()
    plain = read_glb(write_glb(source))
    packed = read_glb(compress_glb(write_glb(source)))
    assert resolved(packed) == resolved(plain)
    for a, b in zip(packed.primitives, plain.primitives):
        assert np.allclose(a.positions, b.positions, atol=1e-3)  # 14-bit position grid
        assert np.allclose(a.normals, b.normals, atol=1e-2)  # 8-bit normals
        assert np.allclose(a.uvs, b.uvs, atol=1e-4) and np.allclose(a.uv1, b.uv1, atol=1e-4)
        assert np.array_equal(a.colors, b.colors) and a.colors.dtype == b.colors.dtype
        assert np.array_equal(a.indices, b.indices)


def test_webp_textures_are_read_and_stored_as_png():
    model = full_model()
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(out, "WEBP", lossless=True)
    model.textures[0] = Texture(out.getvalue(), "image/webp")
    document, binary = parse_container(write_glb(model))
    # As a WebP-only file declares it: the texture's source is the extension's.
    for texture in document["textures"]:
        if document["images"][texture["source"]]["mimeType"] == "image/webp":
            texture["extensions"] = {"EXT_texture_webp": {"source": texture.pop("source")}}
    document["extensionsUsed"] = document.get("extensionsUsed", []) + ["EXT_texture_webp"]
    document["extensionsRequired"] = ["EXT_texture_webp"]
    back = read_glb(_pack(document, binary))
    image = back.image(back.materials[0].base_color_texture)
    assert image.mime_type == "image/png"
    assert Image.open(io.BytesIO(image.data)).convert("RGB").getpixel((3, 3)) == (10, 200, 30)
    assert any("WebP" in note for note in back.notes)
    khronos.assert_valid(write_glb(back), "WebP input written back")


def test_skinned_input_is_the_bind_pose_with_a_note_or_refused(testdata):
    data = (testdata / "glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models/Fox/glTF-Binary/Fox.glb").read_bytes()
    model = read_glb(data, allow_animation=True)
    assert model.triangle_count == 576 and any("bind pose" in n for n in model.notes)
    with pytest.raises(GlbError, match=r"skinned .*\[import\] skinned"):
        read_glb(data)


def test_asset_toml_skinned_policy_reaches_the_import(testdata, tmp_path):
    import dagster as dg

    from pipeline.assets.generation import _normalized
    from pipeline.storage import LocalBlobStore, sha256_bytes

    data = (testdata / "glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models/Fox/glTF-Binary/Fox.glb").read_bytes()
    store = LocalBlobStore(tmp_path)
    info = _normalized(store, "fox", "import", str(tmp_path / "concepts/fox"), data, sha256_bytes(data), 1.0, "bind_pose")
    assert info["triangles"] == 576 and any("bind pose" in n for n in info["notes"])
    with pytest.raises(dg.Failure, match=r"asset fox: concept folder .*: file model.glb cannot be used: the model is skinned"):
        _normalized(store, "fox", "import", str(tmp_path / "concepts/fox"), data, sha256_bytes(data), 1.0, "refuse")


# ----------------------------------------------------------------------------------------------
# Per-map texture downscaling in the LOD chain


def _encoded(pixels: np.ndarray) -> Texture:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, "PNG")
    return Texture(out.getvalue())


def test_each_map_is_downscaled_in_its_own_colour_space():
    from pipeline.geometry.lod import LodBudget, build_lod_chain

    checker = np.zeros((64, 64, 3), np.uint8)
    checker[(np.indices((64, 64)).sum(axis=0) % 2) == 1] = 255  # black/white texels
    tilted = np.zeros((64, 64, 3), np.float64)  # normals leaning +-45 degrees in x, alternating
    tilted[..., 0] = np.where(np.indices((64, 64)).sum(axis=0) % 2, 1, -1) * np.sqrt(0.5)
    tilted[..., 2] = np.sqrt(0.5)
    normal = np.rint((tilted + 1) * 127.5)
    model = full_model()
    model.textures = [_encoded(checker), _encoded(normal), _encoded(checker), _encoded(checker)]
    model.materials[0].extensions = {}
    chain = build_lod_chain(model, LodBudget(lod0_triangles=100, ratios=(0.5,), screen_sizes=(1.0, 0.5)),
                            texture_sizes=(32,), samples=2_000)
    lod0 = chain[0].model

    def mean(ref) -> np.ndarray:
        image = np.asarray(Image.open(io.BytesIO(lod0.image(ref).data)).convert("RGB"), np.float64)
        assert image.shape[:2] == (32, 32)
        return image.reshape(-1, 3).mean(axis=0)

    material = lod0.materials[0]
    # Half black, half white light is 0.5 linear = 188 in sRGB; as data it is the plain mean 128.
    assert np.allclose(mean(material.base_color_texture), 188, atol=2)
    assert np.allclose(mean(material.metallic_roughness_texture), 128, atol=2)
    # Two normals 90 degrees apart average to +Z once re-normalized (unnormalized it would be 0.71).
    image = np.asarray(Image.open(io.BytesIO(lod0.image(material.normal_texture).data)).convert("RGB"), np.float64)
    v = image / 127.5 - 1
    assert np.allclose(v[..., 2], 1.0, atol=0.02) and np.allclose(np.linalg.norm(v, axis=-1), 1.0, atol=0.02)
