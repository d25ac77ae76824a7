"""How LOD levels look at their switch size: the silhouette metric reads pixels, the renderer shades
tangent-space normal maps the way the bake writes them, and on a real asset every level stays within
a pixel of the source's outline while a shipped bake lowers the shading difference."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from pipeline.categories import CATEGORIES
from pipeline.geometry.bake import bake_normal_map
from pipeline.geometry.glb import read_glb, write_glb
from pipeline.geometry.lod import build_lod_chain
from pipeline.geometry.lod_look import (RenderedDifference, bake_and_judge, look_strip, render_at,
                                         rendered_difference, switch_view)
from pipeline.geometry.model import Material, Model, Primitive, Texture, TextureRef, vertex_normals
from pipeline.geometry.normalize import normalize
from pipeline.geometry.render import render
from tests import khronos
from tests.test_bake import grid
from tests.test_lod import sphere_grid

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


def test_real_asset_levels_stay_within_a_pixel_and_bakes_ship_only_where_they_help(testdata, tmp_path):
    raw = read_glb((testdata / STEP1X).read_bytes())
    model, _ = normalize(raw, target_height_m=CATEGORIES["prop"].height_m)
    chain = build_lod_chain(model, CATEGORIES["prop"].lod, samples=10_000)
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
    if khronos.available():
        files = []
        for lod in chain:
            files.append(tmp_path / f"LOD{lod.level}.glb")
            files[-1].write_bytes(write_glb(lod.model))
        reports = khronos.validate_files(files)
        assert all(r["issues"]["numErrors"] == 0 for r in reports.values()), [khronos.errors(r)[:3] for r in reports.values()]
