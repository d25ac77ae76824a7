"""Normal-map baking: MikkTSpace-style tangent frames against analytic ones, a baked bump map
against the analytic normals, flat results where nothing was lost, and UV layout checks."""

from __future__ import annotations

import numpy as np

from pipeline.geometry.bake import bake_normal_map, fresh_uvs, tangent_frames, uv_layout_problem
from pipeline.geometry.model import vertex_normals


def grid(n: int, height=None):
    """A unit square in the XY plane (normal +Z), n x n quads; UVs with glTF's v down the image
    (world +Y is image up). `height(x, y)` displaces along Z."""
    x, y = np.meshgrid(np.linspace(0, 1, n + 1), np.linspace(0, 1, n + 1))
    z = np.zeros_like(x) if height is None else height(x, y)
    pos = np.stack([x, y, z], -1).reshape(-1, 3).astype(np.float32)
    ids = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    idx = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)]).reshape(-1)
    uvs = np.stack([x, 1 - y], -1).reshape(-1, 2).astype(np.float32)
    return pos, idx.astype(np.uint32), uvs


def test_tangent_frames_follow_u_and_flip_handedness_for_mirrored_uvs():
    pos, idx, uvs = grid(4)
    normals = vertex_normals(pos, idx)
    assert np.allclose(normals, [0, 0, 1], atol=1e-6)
    frames = tangent_frames(pos, idx, normals, uvs)
    assert np.allclose(frames[:, :3], [1, 0, 0], atol=1e-5) and np.all(frames[:, 3] == 1)
    mirrored = uvs.copy()
    mirrored[:, 0] = 1 - mirrored[:, 0]
    frames = tangent_frames(pos, idx, normals, mirrored)
    assert np.allclose(frames[:, :3], [-1, 0, 0], atol=1e-5) and np.all(frames[:, 3] == -1)
    # the shader's bitangent, w * cross(n, t), points up the image (world +Y here) either way
    assert np.allclose(frames[:, 3:] * np.cross(normals, frames[:, :3]), [0, 1, 0], atol=1e-5)


def test_baked_bumps_match_the_analytic_normals():
    amp, k = 0.01, 2 * np.pi * 3
    high = grid(150, lambda x, y: amp * np.sin(k * x))
    hn = vertex_normals(high[0], high[1])
    low_pos, low_idx, low_uv = grid(1)
    low_n = vertex_normals(low_pos, low_idx)
    size = 128
    result = bake_normal_map((high[0], high[1], hn), (low_pos, low_idx, low_n, low_uv), size=size,
                             max_distance_m=0.05)
    assert result.coverage > 0.99
    decoded = result.image.astype(np.float64) / 255 * 2 - 1
    # texel (row, col) centre: u = (col + .5) / size = x; v = (row + .5) / size = 1 - y
    cols = (np.arange(size) + 0.5) / size
    slope = amp * k * np.cos(k * cols)
    expected = np.stack([-slope, np.zeros(size), np.ones(size)], 1) / np.sqrt(1 + slope ** 2)[:, None]
    got = decoded[size // 2]  # one row; the bumps do not vary with y
    angles = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", got / np.linalg.norm(got, axis=1, keepdims=True),
                                                    expected), -1, 1)))
    assert angles[2:-2].mean() < 1.5, angles.mean()
    assert result.angle_plain_deg > 5 and result.angle_baked_deg < 1.5 and result.improves


def test_nothing_lost_bakes_flat_and_is_not_worth_shipping():
    pos, idx, uvs = grid(8)
    n = vertex_normals(pos, idx)
    result = bake_normal_map((pos, idx, n), (pos, idx, n, uvs), size=32, max_distance_m=0.01)
    assert np.abs(result.image.astype(int) - [128, 128, 255]).max() <= 1
    assert not result.improves


def test_uv_layouts_that_cannot_carry_a_bake_are_named():
    pos, idx, uvs = grid(4)
    assert uv_layout_problem(uvs, idx) is None
    assert uv_layout_problem(None, idx) == "no UVs"
    assert "outside" in uv_layout_problem(uvs * 3, idx)
    stacked = uvs.copy()
    stacked[:] = np.where(stacked > 0.5, stacked - 0.5, stacked) * 2  # four quadrants on one
    assert "overlapping" in uv_layout_problem(stacked, idx)
    # a fresh xatlas layout of a closed box is usable
    box = np.float32([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)])
    faces = np.uint32([0, 1, 3, 0, 3, 2, 4, 6, 7, 4, 7, 5, 0, 4, 5, 0, 5, 1, 2, 3, 7, 2, 7, 6, 0, 2, 6, 0, 6, 4,
                       1, 5, 7, 1, 7, 3])
    mapping, new_idx, new_uv = fresh_uvs(box, faces)
    assert len(mapping) == len(new_uv) and np.array_equal(box[mapping][new_idx], box[faces])
    assert uv_layout_problem(new_uv, new_idx) is None


def test_bake_level_maps_what_helps_and_says_why_elsewhere():
    from pipeline.geometry.bake import HighSurface, bake_level
    from pipeline.geometry.lod import LodBudget, build_lod_chain
    from pipeline.geometry.model import Material, Model, Primitive

    amp, k = 0.01, 2 * np.pi * 4
    pos, idx, uvs = grid(120, lambda x, y: amp * np.sin(k * x) * np.sin(k * y))
    bumpy = Primitive(pos, idx, vertex_normals(pos, idx), uvs, material=0)
    # a second material with tiled UVs (beyond [0, 1]): it cannot carry a map
    tiled_pos = pos + [2, 0, 0]
    tiled = Primitive(tiled_pos, idx, vertex_normals(tiled_pos, idx), uvs * 4, material=1)
    model = Model([bumpy, tiled], [Material(name="bumps"), Material(name="tiles")])
    chain = build_lod_chain(model, LodBudget(60_000, ratios=(0.1, 0.02, 0.005), screen_sizes=(1.0, 0.2, 0.05, 0.02)),
                            samples=5_000)
    far = chain[-1]
    assert far.level >= 1
    bake = bake_level(HighSurface.of(model), far.model, far.level, size=128,
                      max_distance_m=max(2 * far.error_m, 1e-4))
    assert bake.used and set(bake.maps) == {0}, bake.notes
    assert bake.angle_baked_deg < bake.angle_plain_deg
    assert any(n.startswith("material 1: UVs outside [0, 1]") for n in bake.notes), bake.notes
    mapped = [i for i, p in enumerate(far.model.primitives) if p.material == 0]
    assert set(bake.tangents) == set(mapped)

    # written into the level's GLB: the baked map is material 0's normalTexture, with tangents on its
    # primitives; material 1 stays plain; the file is valid glTF and reads back the same
    from pipeline.geometry.bake import with_baked_normals
    from pipeline.geometry.glb import read_glb, write_glb
    from tests import khronos

    level, written = with_baked_normals(far.model, bake)
    assert written == [0]
    assert level.materials[0].normal_texture is not None and level.materials[1].normal_texture is None
    assert far.model.materials[0].normal_texture is None  # the chain's own model is not changed
    glb = write_glb(level)
    back = read_glb(glb)
    assert back.materials[0].normal_texture is not None
    assert all((p.tangents is not None) == (p.material == 0) for p in back.primitives)
    if khronos.available():
        khronos.assert_valid(glb, "LOD with a baked normal map")


def test_the_renderers_compiled_passes_match_the_numpy_ones_bit_for_bit():
    """rasterizer.base_colour and detail_normals are the renderer's compiled twins of sample_bilinear
    over interpolated UVs and of SurfaceDetail.apply's perturb_normals (the bake's numpy passes)."""
    from pipeline.geometry import rasterizer
    from pipeline.geometry.bake import perturb_normals
    from pipeline.geometry.model import interpolate
    from pipeline.geometry.render import sample_bilinear

    rng = np.random.default_rng(7)
    h, w, n, m = 40, 50, 60, 30
    tri = np.where(rng.random((h, w)) < 0.8, rng.integers(0, m, (h, w)), -1).astype(np.int32)
    bary = rng.random((h, w, 3)).astype(np.float32)
    bary /= bary.sum(axis=2, keepdims=True)
    triangles = rng.integers(0, n, (m, 3)).astype(np.int64)
    materials = rng.integers(0, 2, m).astype(np.int64)
    uvs = (rng.random((n, 2)) * 1.2 - 0.1).astype(np.float32)  # some outside [0, 1]: clamped
    tangents = np.concatenate([rng.normal(size=(n, 3)), np.sign(rng.normal(size=(n, 1)))], 1).astype(np.float32)
    texels = rng.integers(0, 256, (17, 23, 4)).astype(np.uint8)  # textures are decoded to 8 bits
    covered = tri >= 0
    t, b = tri[covered], bary[covered]
    mine = materials[t] == 1

    colour, alpha = np.ones((h, w, 3), np.float32), np.ones((h, w), np.float32)
    factor = np.array([0.9, 0.5, 0.25, 0.7], np.float32)
    rasterizer.base_colour(tri, bary, triangles, materials, 1, factor, False, uvs, texels, colour, alpha)
    at = interpolate(uvs, triangles[t[mine]], b[mine])
    # an 8-bit texture reads as its float32 values / 255, converted texel by texel or all at once
    np.testing.assert_array_equal(sample_bilinear(texels, at), sample_bilinear(texels.astype(np.float32) / 255.0, at))
    expected = factor * sample_bilinear(texels, at)
    np.testing.assert_array_equal(colour[covered][mine], expected[:, :3])
    np.testing.assert_array_equal(alpha[covered][mine], expected[:, 3])
    assert (colour[covered][~mine] == 1).all()

    normals = rng.normal(size=(n, 3)).astype(np.float32)
    given = rasterizer.unit_normals(tri, bary, triangles, normals)
    unit = interpolate(normals, triangles[t], b)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), np.float32(1e-12))
    np.testing.assert_array_equal(given, unit)
    rasterizer.detail_normals(tri, bary, triangles, materials, 1, uvs, tangents, texels, np.float32(0.8), given)
    corners = triangles[t[mine]]
    expected = perturb_normals(unit[mine], interpolate(tangents, corners, b[mine]),
                               sample_bilinear(texels, interpolate(uvs, corners, b[mine]))[:, :3], 0.8)
    np.testing.assert_array_equal(given[mine], expected)
    np.testing.assert_array_equal(given[~mine], unit[~mine])


def test_the_bakes_compiled_texel_passes_match_their_numpy_formulation():
    """rasterizer.texel_frames, hit_normals and encode_texels against the same formulas in numpy.
    The dot products differ in the last bit (numpy's einsum sums in its own order), so the frames
    are compared to 1e-12 and the 8-bit encoding exactly (a flip needs a value within ~1e-15 of a
    rounding boundary: the shared test models show a handful per million texels)."""
    from pipeline.geometry import rasterizer
    from pipeline.geometry.model import interpolate

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-20)

    rng = np.random.default_rng(3)
    n, k = 50, 4000
    positions, normals = rng.normal(size=(n, 3)).astype(np.float32), rng.normal(size=(n, 3)).astype(np.float32)
    tangents = np.concatenate([rng.normal(size=(n, 3)), np.sign(rng.normal(size=(n, 1)))], 1).astype(np.float32)
    corners = rng.integers(0, n, (k, 3)).astype(np.int64)
    bary = rng.random((k, 3))
    bary /= bary.sum(axis=1, keepdims=True)

    point, normal, tangent, bitangent = rasterizer.texel_frames(positions, normals, tangents, corners, bary)
    np.testing.assert_array_equal(point, interpolate(positions, corners, bary))
    expected_normal = unit(interpolate(normals, corners, bary))
    np.testing.assert_array_equal(normal, expected_normal)
    t = interpolate(tangents[:, :3], corners, bary)
    expected_tangent = unit(t - expected_normal * np.einsum("ij,ij->i", expected_normal, t)[:, None])
    handed = np.where(interpolate(tangents[:, 3:], corners, bary)[:, 0] < 0, -1.0, 1.0)
    np.testing.assert_allclose(tangent, expected_tangent, rtol=0, atol=1e-12)
    np.testing.assert_allclose(bitangent, np.cross(expected_normal, expected_tangent) * handed[:, None],
                               rtol=0, atol=1e-12)

    high_normals = unit(rng.normal(size=(n, 3)))
    high_tri = rng.integers(0, n, (30, 3)).astype(np.int64)
    prim = rng.integers(0, 30, k).astype(np.int64)
    u, v = (rng.random(k) * 0.5).astype(np.float32), (rng.random(k) * 0.5).astype(np.float32)
    hit = rasterizer.hit_normals(high_normals, high_tri, prim, u, v)
    hb = np.stack([1.0 - (u.astype(np.float64) + v), u, v], 1)
    np.testing.assert_allclose(hit, unit(np.einsum("kc,kcd->kd", hb, high_normals[high_tri[prim]])), rtol=0, atol=1e-12)

    encoded, plain, baked = rasterizer.encode_texels(hit, normal, tangent, bitangent)
    local = np.stack([np.einsum("ij,ij->i", hit, tangent), np.einsum("ij,ij->i", hit, bitangent),
                      np.einsum("ij,ij->i", hit, normal)], 1)
    local[:, 2] = np.maximum(local[:, 2], 1e-3)  # never into the surface
    expected = np.clip(np.round((unit(local) * 0.5 + 0.5) * 255.0), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(encoded, expected)
    decoded = unit(expected / 255.0 * 2.0 - 1.0)
    shaded = unit(decoded[:, :1] * tangent + decoded[:, 1:2] * bitangent + decoded[:, 2:] * normal)
    angle = lambda a, b: np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", a, b), -1, 1)))  # noqa: E731
    np.testing.assert_allclose(plain, angle(hit, normal), rtol=0, atol=1e-6)
    np.testing.assert_allclose(baked, angle(hit, shaded), rtol=0, atol=1e-6)
    assert (expected[:, 2] >= 128).all()  # z >= 0: the map never points into the surface
