"""The offline generator: closed, consistently wound, textured, framed and faithful to the views.

Most tests run at a low voxel resolution and a small texture: what they check (topology, framing,
conventions) does not depend on resolution, and the suite must stay fast on a 2-core CI box.
"""

from __future__ import annotations

import dataclasses
import io
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pipeline.geometry.glb import read_glb, write_glb
from pipeline.geometry.lod import Surface, surface_distance
from pipeline.geometry.reconstruct import (
    ReconstructionConfig,
    ReconstructionError,
    colour_difference,
    model_parts,
    reconstruct,
    resolve_angles,
    silhouette_iou,
    silhouette_parts,
)
from pipeline.geometry.foreground import foreground
from pipeline.asset_settings import parse_settings
from pipeline.geometry.render import contact_sheet, preview_png, render, render_mask
from pipeline.providers import ImageInput, make_provider
from pipeline.providers.base import ProviderError
from tests import khronos

ROOT = Path(__file__).resolve().parents[1]
CONCEPTS = ROOT / "data" / "concepts"
FAST = dict(resolution=72, texture_size=256)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def figure(width: int = 160, height: int = 200, nose: str | None = None, colour=(220, 60, 40)) -> bytes:
    """A snowman-like figure on a transparent background; `nose` adds a bump on that image side."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    cx = width // 2
    draw.ellipse((cx - 50, 80, cx + 50, 190), fill=(*colour, 255))
    draw.ellipse((cx - 32, 20, cx + 32, 90), fill=(240, 220, 180, 255))
    draw.rectangle((cx - 70, 110, cx + 70, 122), fill=(60, 60, 200, 255))  # arms
    if nose == "left":
        draw.rectangle((cx - 60, 45, cx - 20, 60), fill=(250, 150, 0, 255))
    elif nose == "right":
        draw.rectangle((cx + 20, 45, cx + 60, 60), fill=(250, 150, 0, 255))
    return png(image)


def l_shape() -> bytes:
    """An L: the upright on the image's left, the foot pointing right (a mirror image cannot pass)."""
    image = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 20, 80, 180), fill=(30, 200, 30, 255))
    draw.rectangle((40, 130, 170, 180), fill=(200, 30, 200, 255))
    return png(image)


# ----------------------------------------------------------------------------------------------
# Invariants every output must satisfy


def welded_edges(model) -> tuple[np.ndarray, np.ndarray]:
    prim = model.primitives[0]
    # UV seams split vertices; the surface is closed when positions are welded.
    _, weld = np.unique(prim.positions, axis=0, return_inverse=True)
    tri = weld.reshape(-1)[prim.triangles]
    directed = np.concatenate([tri[:, [0, 1]], tri[:, [1, 2]], tri[:, [2, 0]]])
    return tri, directed


def assert_valid_model(model, config: ReconstructionConfig) -> None:
    assert len(model.primitives) == 1 and len(model.materials) == 1
    prim = model.primitives[0]
    tri, directed = welded_edges(model)
    assert (tri[:, 0] != tri[:, 1]).all() and (tri[:, 1] != tri[:, 2]).all() and (tri[:, 0] != tri[:, 2]).all()
    # watertight: every undirected edge is shared by exactly two triangles
    undirected = np.sort(directed, axis=1)
    _, counts = np.unique(undirected, axis=0, return_counts=True)
    assert (counts == 2).all(), f"{(counts != 2).sum()} edges are not shared by exactly two triangles"
    # consistent winding: each directed edge once, so its twin runs the opposite way
    _, directed_counts = np.unique(directed, axis=0, return_counts=True)
    assert (directed_counts == 1).all(), "some edge appears twice in the same direction (flipped triangles)"
    p = prim.positions.astype(np.float64)
    t = prim.triangles
    volume = np.einsum("ij,ij->i", p[t[:, 0]], np.cross(p[t[:, 1]], p[t[:, 2]])).sum() / 6
    assert volume > 0, "outward winding gives a positive signed volume"
    # unit normals that point outward (agree with the winding)
    assert np.allclose(np.linalg.norm(prim.normals, axis=1), 1.0, atol=1e-3)
    face_n = np.cross(p[t[:, 1]] - p[t[:, 0]], p[t[:, 2]] - p[t[:, 0]])
    agree = np.einsum("ij,ij->i", face_n, prim.normals[t].mean(axis=1))
    assert (agree > 0).mean() > 0.99
    assert prim.uvs is not None and prim.uvs.min() >= 0.0 and prim.uvs.max() <= 1.0
    # material
    material = model.materials[0]
    assert material.metallic == 0.0 and material.roughness == pytest.approx(config.roughness)
    texture = model.image(material.base_color_texture)
    assert texture is not None and texture.mime_type == "image/png" and texture.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert Image.open(io.BytesIO(texture.data)).size == (config.texture_size, config.texture_size)
    # scale and pivot: +Y up, bottom centre at the origin, height_m tall
    lo, hi = model.bounds()
    assert lo[1] == pytest.approx(0.0, abs=1e-6)
    assert hi[1] - lo[1] == pytest.approx(config.height_m, rel=1e-5)
    assert (lo[0] + hi[0]) / 2 == pytest.approx(0.0, abs=1e-5 * config.height_m)
    assert (lo[2] + hi[2]) / 2 == pytest.approx(0.0, abs=1e-5 * config.height_m)


@pytest.fixture(scope="module")
def single_model():
    config = ReconstructionConfig(height_m=1.8, roughness=0.6, **FAST)
    return config, reconstruct([("front.png", figure())], config)


def test_single_view_is_a_valid_closed_textured_model(single_model):
    config, model = single_model
    assert_valid_model(model, config)
    assert silhouette_iou(model, figure(), "front") >= 0.95


@pytest.mark.parametrize("profile", ["lathe", "inflate"])
def test_single_view_has_depth_from_thickness(profile):
    for thickness in (0.2, 0.6):
        config = ReconstructionConfig(thickness=thickness, depth_profile=profile, **FAST)
        model = reconstruct([("front.png", figure())], config)
        depth = model.size()[2]
        # the depth reaches the thickness only where the body is wide; never beyond it
        assert 0.5 * thickness < depth <= thickness * 1.02
    assert_valid_model(model, config)
    assert silhouette_iou(model, figure(), "front") >= 0.95


def test_front_faces_the_camera_and_is_not_mirrored():
    model = reconstruct([("l.png", l_shape())], ReconstructionConfig(**FAST))
    positions = model.primitives[0].positions
    top = positions[positions[:, 1] > 0.8 * model.size()[1]]
    assert top[:, 0].max() < 0, "the L's upright, on the image's left, must be at -X"
    mask = render_mask(model, yaw_deg=0, size=128)
    rows = np.flatnonzero(mask.any(axis=1))
    upper = mask[rows[0]:rows[0] + 20]
    assert upper[:, :64].sum() > 0 and upper[:, 64:].sum() == 0
    assert silhouette_iou(model, l_shape(), "front") >= 0.95
    # yaw 180 shows the back: the silhouette is mirrored
    back = render_mask(model, yaw_deg=180, size=128)
    upper = back[rows[0]:rows[0] + 20]
    assert upper[:, 64:].sum() > 0 and upper[:, :64].sum() == 0


def test_front_is_textured_from_the_image_and_back_is_darker(single_model):
    _, model = single_model
    assert colour_difference(model, figure(), "front") < 12
    front = render(model, yaw_deg=0, size=96, lighting=False)
    back = render(model, yaw_deg=180, size=96, lighting=False)
    body_front = front[60:85, 40:56, :3].astype(float).mean(axis=(0, 1))
    body_back = back[60:85, 40:56, :3].astype(float).mean(axis=(0, 1))
    assert body_front[0] > 180 and body_front[0] > 2 * body_front[2]  # the red body
    assert body_back.sum() < 0.85 * body_front.sum()


def test_output_is_deterministic():
    config = ReconstructionConfig(**FAST)
    views = [("a.png", figure()), ("b.png", figure(nose="left")), ("c.png", figure())]
    first = write_glb(reconstruct(views, config))
    second = write_glb(reconstruct(views, config))
    assert first == second
    assert write_glb(reconstruct(views[:1], config)) == write_glb(reconstruct(views[:1], config))


def test_glb_round_trip_and_khronos_validator(single_model):
    config, model = single_model
    data = write_glb(model)
    khronos.assert_valid(data, "single-view reconstruction")
    again = read_glb(data)
    assert again.triangle_count == model.triangle_count
    assert again.materials[0].base_color_texture is not None


def test_resolution_knob_controls_triangle_count():
    def count(resolution: int, simplify: float) -> int:
        config = ReconstructionConfig(resolution=resolution, texture_size=128, simplify_voxels=simplify)
        return reconstruct([("f.png", figure())], config).triangle_count

    # marching cubes' own count grows with the square of the resolution ...
    assert 3.0 < count(80, 0.0) / count(40, 0.0) < 5.0
    # ... and the simplified surface still holds more where the grid holds more detail
    assert count(80, 0.05) > 1.5 * count(40, 0.05)


def test_surface_is_simplified_within_a_fraction_of_a_voxel():
    """The default surface keeps the shape of marching cubes' full output (within a twentieth of a
    voxel by meshoptimizer's measure; sampled here) with a fraction of its triangles."""
    config = ReconstructionConfig(resolution=120, texture_size=256)
    full = reconstruct([("f.png", figure())], dataclasses.replace(config, simplify_voxels=0.0))
    simple = reconstruct([("f.png", figure())], config)
    assert simple.triangle_count < 0.4 * full.triangle_count
    voxel = float(np.max(full.size())) / config.resolution
    mean, worst = surface_distance(full, simple, samples=20_000)
    assert mean < 0.03 * voxel and worst < 0.3 * voxel, (mean / voxel, worst / voxel)
    assert abs(silhouette_iou(simple, figure()) - silhouette_iou(full, figure())) < 0.002
    assert model_parts(simple) == model_parts(full)


def test_default_resolution_is_in_the_lod_range():
    model = reconstruct([("f.png", figure())], ReconstructionConfig(texture_size=256))
    assert 5_000 <= model.triangle_count <= 100_000


# ----------------------------------------------------------------------------------------------
# Turnarounds


def test_turnaround_side_view_sets_depth_and_direction():
    # front, left (camera on +X: the model's front points to the image's left), back
    views = [("1.png", figure()), ("2.png", figure(width=120, nose="left")), ("3.png", figure())]
    config = ReconstructionConfig(**FAST)
    model = reconstruct(views, config)
    assert_valid_model(model, config)
    positions = model.primitives[0].positions
    nose = positions[(positions[:, 1] > 0.77) & (positions[:, 1] < 0.84)]  # the nose's rows
    assert nose[:, 2].max() > -nose[:, 2].min() + 0.05, "the nose seen on the left of a 'left' view points +Z"
    for (name, data), angle in zip(views, ["front", "left", "back"]):
        assert silhouette_iou(model, data, angle, name) >= 0.95
    # render yaw 90 puts the camera on +X too: the nose shows on the image's left
    side = render_mask(model, yaw_deg=90, size=100, frame=(-0.5, 0.5, 0.0, 1.0))
    nose_rows = side[16:23]
    assert nose_rows[:, :50].sum() > 1.5 * nose_rows[:, 50:].sum()
    # the same views declared as front, right, back put the nose at -Z
    mirrored = reconstruct(views, config, angles=["front", "right", "back"])
    p = mirrored.primitives[0].positions
    nose = p[(p[:, 1] > 0.77) & (p[:, 1] < 0.84)]
    assert -nose[:, 2].min() > nose[:, 2].max() + 0.05


def test_khronos_validator_on_a_turnaround():
    views = [("1.png", figure()), ("2.png", figure(width=120, nose="left")), ("3.png", figure())]
    model = reconstruct(views, ReconstructionConfig(**FAST), angles=["front", 90, "back"])
    khronos.assert_valid(write_glb(model), "turnaround reconstruction")


def test_top_view_and_yaw_degrees():
    top = Image.new("RGBA", (200, 200), (0, 0, 0, 0))
    ImageDraw.Draw(top).ellipse((50, 70, 150, 130), fill=(200, 200, 0, 255))  # wide in x, shallow in z
    views = [("front.png", figure()), ("side.png", figure(width=120)), ("top.png", png(top))]
    config = ReconstructionConfig(**FAST)
    model = reconstruct(views, config, angles=["front", "90", "top"])
    assert_valid_model(model, config)
    size = model.size()
    assert size[2] < 0.75 * size[0], "the top view's shallow ellipse limits the depth"


def test_first_view_at_any_yaw():
    config = ReconstructionConfig(**FAST)
    model = reconstruct([("l.png", l_shape())], config, angles=[90])
    assert_valid_model(model, config)
    assert silhouette_iou(model, l_shape(), 90) >= 0.95
    assert model.size()[0] < 0.7 * model.size()[2], "seen from +X, the L's width runs along Z"
    views = [("a.png", figure()), ("b.png", figure(width=120, nose="left")), ("c.png", figure())]
    turned = reconstruct(views, config, angles=[30, 120, 210])
    for (name, data), yaw in zip(views, [30, 120, 210]):
        assert silhouette_iou(turned, data, yaw, name) >= 0.95


def test_angles_resolution_and_errors():
    fg = [foreground(figure()), foreground(figure(nose="left"))]
    names = ["a.png", "b.png"]
    assert resolve_angles(fg[:1], None, names[:1]) == [0.0]
    assert resolve_angles(fg, ["front", "-90"], names) == [0.0, 270.0]
    # two views: the second is the back when it is the mirrored first, else a side
    assert resolve_angles([fg[0], fg[0]], None, names) == [0.0, 180.0]
    narrow = foreground(figure(width=100, nose="left"))
    wide_image = Image.new("RGBA", (300, 120), (0, 0, 0, 0))
    ImageDraw.Draw(wide_image).ellipse((10, 10, 290, 110), fill=(9, 9, 9, 255))
    wide = foreground(png(wide_image))
    assert resolve_angles([wide, narrow], None, names) == [0.0, 90.0]
    with pytest.raises(ReconstructionError, match="unknown angle"):
        resolve_angles(fg, ["front", "sideways"], names)
    with pytest.raises(ReconstructionError, match="one angle per view"):
        resolve_angles(fg, ["front"], names)
    with pytest.raises(ReconstructionError, match="same angle"):
        resolve_angles(fg, ["front", 0], names)


def test_bad_inputs_fail_clearly():
    config = ReconstructionConfig(**FAST)
    with pytest.raises(ReconstructionError, match="no concept views"):
        reconstruct([], config)
    with pytest.raises(ReconstructionError, match="at most 5"):
        reconstruct([("v.png", figure())] * 6, config)
    with pytest.raises(ReconstructionError, match="b.png.*fully transparent"):
        reconstruct([("a.png", figure()), ("b.png", png(Image.new("RGBA", (50, 50))))], config)
    with pytest.raises(ValueError, match="power of two"):
        ReconstructionConfig(texture_size=1000)
    with pytest.raises(ValueError, match="height_m"):
        ReconstructionConfig(height_m=0)


# ----------------------------------------------------------------------------------------------
# Sample art and third-party concept images


def concept_folders() -> list[Path]:
    return sorted(p for p in CONCEPTS.iterdir() if p.is_dir() and any(p.glob("*.png"))) if CONCEPTS.is_dir() else []


def sample_config(folder: Path, **overrides) -> tuple[ReconstructionConfig, list[str] | None]:
    """The config the local provider runs this sample folder with (asset.toml included)."""
    raw = tomllib.loads((folder / "asset.toml").read_text()) if (folder / "asset.toml").is_file() else {}
    images = sorted(folder.glob("*.png"))
    settings = parse_settings(raw, image_count=len(images))
    request = settings.generation_request(folder.name, tuple(ImageInput(p.name, b"", "", "image/png", True)
                                                             for p in images), None)
    config = make_provider("local").reconstruction_config(request)
    for key, value in overrides.items():
        setattr(config, key, value)
    return config, [str(a) for a in settings.views or ()] or None


@pytest.mark.parametrize("folder", concept_folders(), ids=lambda p: p.name)
def test_sample_concepts_match_every_view(folder: Path):
    config, angles = sample_config(folder, resolution=96, texture_size=512)
    views = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.png"))]
    model = reconstruct(views, config, angles=angles)
    assert_valid_model(model, config)
    yaws = resolve_angles([foreground(d) for _, d in views], angles, [n for n, _ in views])
    for (name, data), yaw in zip(views, yaws):
        # 0.95 at this coarse test resolution; the benchmark holds every single view to 0.97 at the default
        assert silhouette_iou(model, data, "top" if yaw is None else yaw, name) >= 0.95, name
    if len(views) == 1:  # every part of the art is its own closed piece of the model
        _, parts = silhouette_parts(foreground(views[0][1]).mask, config.depth)
        assert model_parts(model) == len(parts)


SHARED_SINGLE = [
    "single/VAST-AI-Research__TripoSR/examples/chair.png",
    "single/VAST-AI-Research__TripoSR/examples/hamburger.png",
    "single/VAST-AI-Research__TripoSR/examples/robot.png",
    "single/VAST-AI-Research__TripoSR/examples/teapot.png",
    "single/microsoft__TRELLIS/assets/example_image/typical_misc_crate.png",
    "single/microsoft__TRELLIS/assets/example_image/typical_misc_lantern.png",
    "single/microsoft__TRELLIS/assets/example_image/typical_misc_magicbook.png",
    "single/microsoft__TRELLIS/assets/example_image/typical_misc_monster_chest.png",
    "single/TencentARC__InstantMesh/examples/extinguisher.png",
    "single/TencentARC__InstantMesh/examples/sorting_board.png",
    "single/stepfun-ai__Step1X-3D/examples/images/027.png",
]


@pytest.mark.parametrize("relative", SHARED_SINGLE, ids=lambda p: Path(p).stem)
def test_shared_concept_images_single_view(testdata, relative):
    data = (testdata / "images" / relative).read_bytes()
    config = ReconstructionConfig(resolution=80, texture_size=256)
    model = reconstruct([(Path(relative).name, data)], config)
    assert_valid_model(model, config)
    assert silhouette_iou(model, data, "front") >= 0.95


@pytest.mark.parametrize("name", ["orangeguy", "mushroom"])
def test_shared_turnarounds(testdata, name):
    folder = testdata / "images" / "multiview" / "microsoft__TRELLIS" / "assets" / "example_multi_image"
    views = [(p.name, p.read_bytes()) for p in sorted(folder.glob(f"{name}_*.png"))]
    assert len(views) == 3
    config = ReconstructionConfig(resolution=80, texture_size=256)
    model = reconstruct(views, config)
    assert_valid_model(model, config)
    ious = [silhouette_iou(model, data, angle, n) for (n, data), angle in zip(views, ["front", "left", "back"])]
    # These sets were drawn in perspective with the pose drifting between views: the front and the
    # mirrored back silhouettes agree only to IoU ~0.85-0.9, while any solid's orthographic front
    # and back silhouettes are exact mirror images. So ~0.93 is the ceiling for both at once; the
    # side view, which nothing contradicts, must still match.
    assert min(ious) >= 0.88, ious
    assert ious[1] >= 0.95, ious


# ----------------------------------------------------------------------------------------------
# Rendering


def test_preview_png_is_a_transparent_three_quarter_view(single_model):
    _, model = single_model
    data = preview_png(model, size=128)
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG" and image.size == (128, 128) and image.mode == "RGBA"
    alpha = np.asarray(image)[..., 3]
    assert alpha[0, 0] == 0 and alpha[64, 64] == 255
    assert 0.1 < (alpha > 0).mean() < 0.9


def test_render_conventions():
    model = reconstruct([("l.png", l_shape())], ReconstructionConfig(**FAST))
    image = render(model, yaw_deg=0, size=64, background=(1, 2, 3, 4))
    assert image.shape == (64, 64, 4) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (1, 2, 3, 4)
    assert image[..., 3].max() == 255
    # seen from above (pitch 90), +X stays on the right and the front (+Z) is at the bottom
    top = render_mask(model, pitch_deg=90, size=64, frame=(-0.5, 0.5, -0.5, 0.5))
    front = render_mask(model, size=64, frame=(-0.5, 0.5, 0.0, 1.0))
    assert np.array_equal(top.any(axis=0), front.any(axis=0))


def test_contact_sheet_shows_views_and_four_renders(single_model):
    _, model = single_model
    sheet = contact_sheet(model, [figure()], size=64)
    assert sheet.size[0] == 8 + 5 * (64 + 8)


# ----------------------------------------------------------------------------------------------
# Parts of the art and the depth each gets


def depth_at(model, x_range: tuple[float, float], y_range: tuple[float, float]) -> float:
    """The model's depth (z extent) over a window of the front view (meters), from points spread over
    its surface (a simplified flat part has few vertices in any window)."""
    p = Surface(model).sample(100_000, seed=0)
    sel = (p[:, 0] > x_range[0]) & (p[:, 0] < x_range[1]) & (p[:, 1] > y_range[0]) & (p[:, 1] < y_range[1])
    return float(p[sel, 2].max() - p[sel, 2].min())


def test_simplified_surface_stays_closed_where_thin_parts_pinch():
    """The sample lantern at the default resolution: plain edge collapse within the tolerance folds
    slivers, pinches its thin bars into four-triangle edges (measured: five) and closes a sliver
    off as a 4-triangle crumb; the repair locks the vertices around them and the surface stays one
    closed 2-manifold at a tenth of marching cubes' 207K triangles, instead of falling back to all
    of them."""
    folder = CONCEPTS / "lantern"
    config, angles = sample_config(folder, texture_size=256)
    views = [(p.name, p.read_bytes()) for p in sorted(folder.glob("*.png"))]
    model = reconstruct(views, config, angles)
    assert_valid_model(model, config)
    assert model_parts(model) == 1
    assert model.triangle_count < 30_000


def test_simplify_option_reaches_the_generator():
    folder = CONCEPTS / "shield"
    raw = tomllib.loads((folder / "asset.toml").read_text())
    raw.setdefault("options", {})["simplify_voxels"] = 0
    settings = parse_settings(raw, image_count=1)
    request = settings.generation_request("shield", (ImageInput("front.png", b"", "", "image/png", True),), None)
    local = make_provider("local")
    assert local.reconstruction_config(request).simplify_voxels == 0
    raw["options"]["simplify_voxels"] = 2
    bad = parse_settings(raw, image_count=1).generation_request("shield", request.images, None)
    with pytest.raises(ProviderError, match=r"local: simplify_voxels .*\(0-1\), got 2"):
        local.params(bad)


def test_rune_sword_keeps_its_floating_ornaments_and_a_flat_blade():
    folder = CONCEPTS / "rune_sword"
    data = (folder / "front.png").read_bytes()
    config, _ = sample_config(folder, resolution=120, texture_size=256)
    _, parts = silhouette_parts(foreground(data).mask)
    assert len(parts) == 6  # the sword, two crystal shards, a ring and two orbs
    assert [p.flat for p in parts].count(True) == 1  # the sword; the ornaments are round
    model = reconstruct([("front.png", data)], config)
    assert_valid_model(model, config)
    assert model_parts(model) == 6
    assert silhouette_iou(model, data, "front") >= 0.97
    h = config.height_m
    blade_width = 46 / 454 * h  # drawn 46 px wide on a 454 px tall object
    blade = ((-0.3 * blade_width, 0.3 * blade_width), (0.45 * h, 0.75 * h))
    assert depth_at(model, *blade) < 0.35 * blade_width, "a blade is thin"
    # the same art lathed round, as before: the blade as deep as it is wide
    config.depth = "round"
    assert depth_at(reconstruct([("front.png", data)], config), *blade) > 0.7 * blade_width
    # the floating ring keeps its hole
    mask = render_mask(model, size=(256, 256), frame=(-0.5 * h, 0.5 * h, 0.0, h))
    ring_centre = (round((1 - (489 - 96) / 454) * 256), round(128 + (356 - 261.5) / 454 * 256))
    assert not mask[ring_centre] and mask[ring_centre[0], ring_centre[1] + round(26 / 454 * 256)]


def test_shield_is_flat_because_its_asset_toml_says_so():
    folder = CONCEPTS / "shield"
    data = (folder / "front.png").read_bytes()
    config, _ = sample_config(folder, resolution=96, texture_size=256)
    assert config.depth == "flat"
    model = reconstruct([("front.png", data)], config)
    assert_valid_model(model, config)
    width, height, depth = model.size()
    assert depth <= 0.06 * height and silhouette_iou(model, data, "front") >= 0.97
    # by its silhouette alone a shield reads round (a plate, a crate's face)
    config.depth = "auto"
    assert reconstruct([("front.png", data)], config).size()[2] > 0.5 * width


def test_round_parts_stay_round():
    config, _ = sample_config(CONCEPTS / "potion_bottle", resolution=80, texture_size=256)
    data = (CONCEPTS / "potion_bottle" / "front.png").read_bytes()
    _, parts = silhouette_parts(foreground(data).mask)
    assert [p.flat for p in parts] == [False]
    width, _, depth = reconstruct([("front.png", data)], config).size()
    assert depth > 0.85 * width


def shapes(*draws) -> bytes:
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    for kind, box, width in draws:
        if kind == "line":
            draw.line(box, fill=(200, 200, 210, 255), width=width)
        else:
            getattr(draw, kind)(box, fill=(200, 120, 60, 255))
    return png(image)


def test_flat_or_round_is_chosen_per_part_from_the_silhouette():
    image = shapes(("rectangle", (60, 20, 100, 380), 0),  # a 40 x 360 bar: a blade
                   ("ellipse", (160, 150, 260, 250), 0),  # a disc: round
                   ("line", (330, 20, 330, 380), 3))  # a 3 px rope: long but thin, round
    _, parts = silhouette_parts(foreground(image).mask)
    bar, rope, disc = parts  # labelled in reading order of their top rows
    assert (bar.flat, rope.flat, disc.flat) == (True, False, False)
    assert bar.elongation > 8 and disc.elongation < 2 and rope.elongation > 8 and rope.half_width < 0.025
    _, forced = silhouette_parts(foreground(image).mask, "flat")
    assert all(p.flat for p in forced)
    with pytest.raises(ValueError, match="depth"):
        ReconstructionConfig(depth="thin")
    with pytest.raises(ValueError, match="min_part_area"):
        ReconstructionConfig(min_part_area=0.0)


def test_thin_features_survive_the_voxel_grid():
    # a 2 px antenna on a body, 130 px long: at 64 voxels a voxel is ~5 px, the antenna under half one
    image = shapes(("ellipse", (100, 150, 300, 380), 0), ("line", (200, 160, 260, 30), 2))
    config = ReconstructionConfig(resolution=64, texture_size=128)
    model = reconstruct([("bot.png", image)], config)
    assert_valid_model(model, config)
    assert model_parts(model) == 1, "the antenna stays attached, in one piece"
    # and the model is as tall as the art (without the antenna's top it would be 2/3 as tall: IoU ~0.5);
    # the antenna widened to a voxel and a half costs a few percent at this coarse grid
    assert silhouette_iou(model, image, "front") >= 0.93
    p = model.primitives[0].positions
    assert p[:, 1].max() == pytest.approx(config.height_m) and p[p[:, 1] > 0.9, 0].min() > 0.05
