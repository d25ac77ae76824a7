"""How LOD levels look at their switch size: the silhouette metric reads pixels, the renderer shades
tangent-space normal maps the way the bake writes them, and on a real asset every level stays within
a pixel of the source's outline while a shipped bake lowers the shading difference."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from pipeline.categories import CATEGORIES
from pipeline.geometry.bake import bake_normal_map
from pipeline.geometry.glb import read_glb
from pipeline.geometry.lod import build_lod_chain
from pipeline.geometry.lod_look import (RenderedDifference, bake_and_judge, look_strip, render_at,
                                         rendered_difference, switch_view)
from pipeline.geometry.model import Material, Model, Primitive, Texture, TextureRef, vertex_normals
from pipeline.geometry.normalize import normalize
from pipeline.geometry.render import render
from tests.conftest import TESTDATA
from tests.test_bake import grid
from tests.test_lod import assert_khronos_valid, sphere_grid

STEP1X = "glb/textured/stepfun-ai__Step1X-3D/assets/step/a4663eb7f901e81cf758c6baf788de14.glb"


def test_silhouette_displacement_reads_pixels():
    pos, idx, _ = sphere_grid(96, 64)
    sphere = Model([Primitive(pos, idx, vertex_normals(pos, idx))])
    view = switch_view(sphere, 0.2)  # the sphere's ~1 m spans 216 px
    pixel = float(np.max(sphere.size())) / 216
    assert view.height_px == 216 and abs((view.frame[1] - view.frame[0]) / view.width - pixel) < 1e-9 * pixel
    reference = render_at(sphere, view)
    assert rendered_difference(reference, reference) == RenderedDifference(0.0, 0.0, 0.0)
    for grow_px in (0.5, 1.5, 3.0):
        centre = np.float32([0, 0.5, 0])
        bigger = Model([Primitive((pos - centre) * (1 + grow_px * pixel / 0.5) + centre, idx,
                                  vertex_normals(pos, idx))])
        diff = rendered_difference(reference, render_at(bigger, view))
        assert abs(diff.silhouette_px - grow_px) < 0.2 * grow_px + 0.1, (grow_px, diff)
        assert diff.silhouette_max_px <= np.ceil(grow_px) + 1


def _png(pixels: np.ndarray) -> Texture:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return Texture(out.getvalue())


def test_normal_map_shades_like_the_geometry_it_was_baked_from():
    # bumps in x on a unit square, baked onto one flat quad: rendered with the map, the quad must
    # shade like the bumpy surface (tangent frame, handedness and green-up convention agree)
    amp, k = 0.01, 2 * np.pi * 3
    high = grid(150, lambda x, y: amp * np.sin(k * x))
    high_model = Model([Primitive(high[0], high[1], vertex_normals(high[0], high[1]), high[2])])
    low_pos, low_idx, low_uv = grid(1)
    low_n = vertex_normals(low_pos, low_idx)
    baked = bake_normal_map((high[0], high[1], high_model.primitives[0].normals), (low_pos, low_idx, low_n, low_uv),
                            size=128, max_distance_m=0.05)
    flat = Model([Primitive(low_pos, low_idx, low_n, low_uv, tangents=baked.tangents)],
                 [Material(normal_texture=_png(baked.image))])
    frame = (-0.05, 1.05, -0.05, 1.05)
    # the front view, a little from the side (the light is upper left: bumps in x shade visibly)
    truth = render(high_model, yaw_deg=0, pitch_deg=0, size=128, frame=frame)
    mapped = render(flat, yaw_deg=0, pitch_deg=0, size=128, frame=frame)
    plain = render(flat, yaw_deg=0, pitch_deg=0, size=128, frame=frame, normal_maps=False)
    with_map, without = rendered_difference(truth, mapped).shading, rendered_difference(truth, plain).shading
    assert without > 5.0 and with_map < 0.25 * without, (with_map, without)
    # mirrored UVs (w = -1 tangents) must give the same shading
    mirrored_uv = low_uv.copy()
    mirrored_uv[:, 0] = 1 - mirrored_uv[:, 0]
    mirrored = bake_normal_map((high[0], high[1], high_model.primitives[0].normals),
                               (low_pos, low_idx, low_n, mirrored_uv), size=128, max_distance_m=0.05)
    assert np.all(mirrored.tangents[:, 3] == -1)
    flipped = Model([Primitive(low_pos, low_idx, low_n, mirrored_uv, tangents=mirrored.tangents)],
                    [Material(normal_texture=_png(mirrored.image))])
    assert rendered_difference(truth, render(flipped, yaw_deg=0, pitch_deg=0, size=128, frame=frame)).shading \
        < 0.25 * without


@pytest.fixture(scope="module")
def step1x():
    """A real generated model (40K triangles, 2048 px texture) and its prop chain, built once."""
    if not (TESTDATA / STEP1X).is_file():
        pytest.skip(f"third-party test data not found at {TESTDATA} (expected ../shared/testdata beside the checkout)")
    raw = read_glb((TESTDATA / STEP1X).read_bytes())
    model, _ = normalize(raw, target_height_m=CATEGORIES["prop"].height_m)
    return model, build_lod_chain(model, CATEGORIES["prop"].lod, samples=10_000)


def test_real_asset_levels_stay_within_a_pixel_and_bakes_ship_only_where_they_help(step1x, tmp_path):
    model, built = step1x
    chain = [dataclasses.replace(lod) for lod in built]
    assert len(chain) >= 3
    bakes = bake_and_judge(model, chain, normal_map_px=256)
    used = 0
    for lod, bake in zip(chain, bakes):
        look = lod.look
        assert look is not None and look.view.height_px == lod.screen_size * 1080
        assert look.shipped.silhouette_px < 1.0, (lod.level, look.shipped)
        if look.bake_used:
            used += 1
            assert look.baked is not None and look.shipped == look.baked
            assert look.baked.shading < look.plain.shading, (lod.level, look.plain, look.baked)
            assert look.written and all(lod.model.materials[m].normal_texture is not None for m in look.written)
        else:
            assert look.shipped == look.plain
            assert all(m.normal_texture is None for m in lod.model.materials)
        if bake is not None and bake.used and not look.bake_used:
            assert "would not lower" in look.reason
    assert used >= 1, [lod.look.reason for lod in chain]
    strip = look_strip(chain)
    assert strip.size[0] > 2 * 128 * (len(chain) - 1)  # LOD0 is the source itself here: not rendered
    # a chain of the source alone says so instead of an empty sliver
    alone = look_strip(chain[:1])
    assert alone.size[0] >= 4 * 128 and np.asarray(alone.convert("L")).max() > 200  # its line of text
    assert_khronos_valid(tmp_path, {"step1x": chain})


# ----------------------------------------------------------------------------------------------
# Combined bakes: a source with its own normal map


def ripple_map(side: int, cycles: float, slope: float, axis: int) -> np.ndarray:
    """An OpenGL-style tangent-space normal map (uint8 RGB) of ripples along image x (axis 0)
    or image y (axis 1)."""
    t = (np.arange(side) + 0.5) / side
    s = slope * np.cos(2 * np.pi * cycles * t)
    n = np.zeros((side, side, 3))
    n[..., 2] = 1.0
    if axis == 0:
        n[..., 0] = -s[None, :]
    else:
        n[..., 1] = -s[:, None]
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    return np.round((n * 0.5 + 0.5) * 255).astype(np.uint8)


def test_combined_bake_carries_the_source_map_and_the_lost_geometry():
    from pipeline.geometry.bake import HighSurface, LevelBake, with_baked_normals

    # the source: bumps along x in its geometry, ripples along y in its own normal map
    amp, k = 0.01, 2 * np.pi * 3
    pos, idx, uvs = grid(150, lambda x, y: amp * np.sin(k * x))
    source = Model([Primitive(pos, idx, vertex_normals(pos, idx), uvs)],
                   [Material(name="rippled", normal_texture=_png(ripple_map(256, 5, 0.4, axis=1)))])
    low_pos, low_idx, low_uv = grid(1)
    low_n = vertex_normals(low_pos, low_idx)
    level = Model([Primitive(low_pos, low_idx, low_n, low_uv)], [source.materials[0]], textures=list(source.textures))
    frame = (-0.05, 1.05, -0.05, 1.05)

    def shading(model):
        return rendered_difference(render(source, size=160, frame=frame), render(model, size=160, frame=frame)).shading

    kept = shading(level)  # the source map unchanged on the flat level: the bumps along x are lost
    geometry_only = HighSurface(pos, idx, source.primitives[0].normals)
    combined = {}
    for name, high in (("geometry", geometry_only), ("combined", HighSurface.of(source))):
        result = bake_normal_map(high, (low_pos, low_idx, low_n, low_uv), size=256, max_distance_m=0.05)
        bake = LevelBake(1, {0: result.image}, {0: result.tangents}, [])
        combined[name], written = with_baked_normals(level, bake)
        assert written == [0]
    assert len(combined["combined"].textures) == len(level.textures)  # the source map's image replaced
    assert shading(combined["combined"]) < 0.4 * min(kept, shading(combined["geometry"])), (
        shading(combined["combined"]), kept, shading(combined["geometry"]))


def test_real_mesh_with_a_normal_map_ships_the_combined_bake(step1x, tmp_path):
    # the Step1X-3D mesh and its real UV layout, with ripples added as its own normal map: a level
    # that keeps the source map on the simplified surface must look worse than its combined bake
    # (the chain does not depend on the normal map: it is the one built for the plain model)
    ripples = _png(ripple_map(256, 12, 0.5, axis=0))

    def rippled(m: Model) -> Model:
        material = dataclasses.replace(m.materials[0], normal_texture=TextureRef(len(m.textures)))
        return dataclasses.replace(m, materials=[material, *m.materials[1:]], textures=[*m.textures, ripples])

    plain, built = step1x
    model = rippled(plain)
    chain = [dataclasses.replace(lod, model=rippled(lod.model)) for lod in built]
    bakes = bake_and_judge(model, chain, normal_map_px=256)
    combined = [lod for lod in chain if lod.look.bake_used]
    assert combined, [lod.look.reason for lod in chain]
    for lod in combined:
        # look.plain: the level with the source map kept (downscaled with the level); baked: combined
        assert lod.look.baked.shading < lod.look.plain.shading, (lod.level, lod.look.plain, lod.look.baked)
        material = lod.model.materials[0]
        assert lod.model.image(material.normal_texture).name.endswith(f"LOD{lod.level}_normal")
    assert all(b is None or not b.notes for b in bakes[1:]), [b.notes for b in bakes[1:]]
    # the source map's image replaced in place: no unused or dangling image
    assert_khronos_valid(tmp_path, {"rippled": combined})


def test_a_normal_map_on_overlapping_uvs_is_kept_and_said(testdata):
    # GlassVaseFlowers: the flowers' normal-mapped petals share UV space, so no bake can go there
    path = testdata / "glb/textured/DRx3D__glTF-Sample-Assets-OLD/Models/GlassVaseFlowers/glTF-Binary/GlassVaseFlowers.glb"
    model, _ = normalize(read_glb(path.read_bytes()), target_height_m=1.0)
    chain = build_lod_chain(model, CATEGORIES["prop"].lod, samples=5_000)
    bakes = bake_and_judge(model, chain, normal_map_px=128)
    for lod, bake in zip(chain[1:], bakes[1:]):
        assert any(n.startswith("material 0: overlapping UVs") for n in bake.notes), bake.notes
        assert lod.model.materials[0].normal_texture is not None  # its own (downscaled) map
        assert lod.look.shipped.silhouette_px < 1.0
