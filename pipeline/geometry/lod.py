"""LOD chains driven by screen size: each level the cheapest mesh that looks right where it is shown.

    build_lod_chain(model, budget) -> LodChain [LodLevel(level 0), LodLevel(level 1), ...]

Each level has a switch screen size (Kiln's convention: the model's largest bounding-box side as a
fraction of the screen height, at and below which the level is shown) and a triangle ceiling. Its
error bound is one pixel of a 1080p screen at that size, and Kiln searches for the cheapest mesh
whose error, measured against the normalized source (the model given here, the one reference for
every level), stays within it (`_search_level`: a few meshoptimizer reductions, each measured with
`surface_distance`). Where the cheapest such mesh is over the ceiling the level keeps it and says so
(`over_ceiling`); where no mesh within the bound is meaningfully cheaper than the level before
(alpha cards, thin strands, heavy seams) the chain ends there and `notes` says why. A hard model
gets the LODs it can have instead of a failure.

Reductions cascade (each level from the one before: fewer triangles to process) with
meshoptimizer's attribute-aware simplifier: normals and UVs weigh in the error metric, UV seams and
open borders are kept by its topology rules, and vertices shared between primitives (material
borders) are locked so neighbouring materials never open a crack. Only the farthest levels may
fall back to the sloppy (clustering) simplifier, and only when the measured result is within the
bound; the level says so in `method`. Every level then gets vertex cache, overdraw and vertex
fetch optimization (unused vertices dropped) and its textures downscaled to a power of two.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Literal

import numpy as np
from PIL import Image
from threadpoolctl import threadpool_limits

from . import meshopt
from .model import Model, Primitive, Texture, color_to_float, slot_colour_space, vertex_normals
from .normalize import degenerate_mask

if TYPE_CHECKING:
    from .lod_look import LevelLook
    from .nearest import TriangleGrid

# ----------------------------------------------------------------------------------------------
# Budgets

# Kiln's one screen-size convention: a level's `screen_size` is the on-screen height fraction of
# the model's largest bounding-box side (1.0: that side spans the viewport's height) at and below
# which the level is shown. It is Unity's LODGroup transition-height convention; other engines'
# numbers are derived from it only in their export profiles (`pipeline.export.profiles`).
SCREEN_HEIGHT_PX = 1080  # the error bound is one pixel of a 1080-pixel-high viewport


@dataclass(frozen=True)
class LodBudget:
    """What each level is for, and the most it should cost (glTF-Transform-style options: no
    category is named here; `pipeline.categories` holds the per-category values).

    screen_sizes: per level 0..n-1, the switch screen size (see SCREEN_HEIGHT_PX's comment),
      strictly falling, in (0, 1]. It fixes the level's error bound: at that size one pixel spans
      size_m / (screen_size * screen_height_px) meters, and the level's measured error against
      the normalized source must stay under it (`error_limit_m`).
    lod0_triangles: triangle ceiling for LOD0.
    ratios: triangle ceilings of levels 1..n-1 as fractions of `lod0_triangles`, strictly falling.
      Ceilings are what the level should cost; the error bound is what it must look like. Kiln
      takes the cheapest mesh within the bound; where that is over the ceiling the level keeps the
      triangles it needs and the budget check warns with the deficit (never a failure).
    sloppy_from_level: the first level allowed to fall back to sloppy (clustering) simplification.
    screen_height_px: the viewport height the one-pixel bound is taken at.
    """

    lod0_triangles: int
    ratios: tuple[float, ...] = (0.5, 0.25, 0.1)
    screen_sizes: tuple[float, ...] = (1.0, 0.5, 0.25, 0.1)
    sloppy_from_level: int = 2
    screen_height_px: int = SCREEN_HEIGHT_PX

    def __post_init__(self) -> None:
        # budgets come from TOML and launchpad config too: lists and floats are accepted
        object.__setattr__(self, "lod0_triangles", int(self.lod0_triangles))
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        object.__setattr__(self, "screen_sizes", tuple(float(r) for r in self.screen_sizes))
        object.__setattr__(self, "screen_height_px", int(self.screen_height_px))
        if self.lod0_triangles < 1:
            raise ValueError(f"lod0_triangles must be at least 1, got {self.lod0_triangles}")
        previous = 1.0
        for r in self.ratios:
            if not 0.0 < r < previous:
                raise ValueError(f"LOD ratios must fall strictly within (0, 1), got {list(self.ratios)}")
            previous = r
        if len(self.screen_sizes) != self.levels:
            raise ValueError(f"screen_sizes needs one entry per level ({self.levels}: LOD0 and one per ratio), "
                             f"got {list(self.screen_sizes)}")
        previous = math.inf
        for s in self.screen_sizes:
            if not 0.0 < s <= 1.0 or not s < previous:
                raise ValueError(f"screen_sizes must fall strictly within (0, 1], got {list(self.screen_sizes)}")
            previous = s
        if self.sloppy_from_level < 1:
            raise ValueError("sloppy_from_level must be at least 1: LOD0 is never simplified sloppily")
        if self.screen_height_px < 1:
            raise ValueError(f"screen_height_px must be positive, got {self.screen_height_px}")

    @property
    def levels(self) -> int:
        return 1 + len(self.ratios)

    def ceiling(self, level: int) -> int:
        """Triangle ceiling of `level`."""
        return self.lod0_triangles if level == 0 else max(1, round(self.lod0_triangles * self.ratios[level - 1]))

    def error_limit_m(self, level: int, size_m: float) -> float:
        """The largest error (m) `level` may have: one pixel at its switch screen size."""
        return pixel_m(self.screen_sizes[level], size_m, screen_height_px=self.screen_height_px)


# Weights of the attributes in meshoptimizer's error metric, relative to positions normalized to
# the mesh extent (a UV change of 1.0, the whole texture, costs as much as moving a vertex by the
# whole model). They trade shading and texture fidelity against geometric error. Measured on the
# bench meshes (with normals): at 0.5, meshoptimizer's example value, the surface error matches
# gltfpack's; at 0.25 the mean is 10-36% lower at 50%..5% and the max lower too, while normals
# still steer collapses away from creases. UVs at 0.5 hardly move the geometric error.
NORMAL_WEIGHT = 0.25
UV_WEIGHT = 0.5
# Far levels weigh normals less: normals weigh fully down to this switch screen size and in
# proportion to it below. A far level is a few dozen pixels tall, its shading detail comes back
# with the baked normal map, and its silhouette is what shows. Measured on the 500K bench sphere as
# an environment piece (LOD3 at 0.05, 8,894 triangles, simplified from the source): the max error
# was 55.8 mm at weight 0.25 and 43.1 mm at 0.05 (gltfpack, positions only: 50.1 mm); mean 8.5 -> 6.1 mm.
NORMAL_WEIGHT_FULL_FROM = 0.25
# A primitive without normals will be shaded with normals the engine derives from the geometry:
# those steer the metric too, weighted lower as they only approximate the engine's. Measured on
# the raw 200K bench mesh against positions alone: worst error 5-30% lower, mean 0-1% lower.
DERIVED_NORMAL_WEIGHT = 0.05
# The second UV set (lightmaps, detail maps) weighs like the first; vertex colours (RGBA in 0..1)
# like a UV, so painted colour borders steer collapses as texture seams do.
COLOR_WEIGHT = 0.5

# Attribute-aware simplification "reaches" its target when within this factor of it; below that the
# farthest levels fall back to sloppy simplification.
TARGET_TOLERANCE = 1.05

# A level must cost at most this fraction of the level before it, else the chain ends there: a
# level barely cheaper than its predecessor only adds a switch (tiny, flat-shaded or heavily
# seamed models, where topology stops the simplifier and sloppy would break the error limit).
MIN_STEP = 0.9

# ----------------------------------------------------------------------------------------------
# Screen size


def pixel_m(screen_size: float, size_m: float, *, screen_height_px: int = SCREEN_HEIGHT_PX) -> float:
    """How many meters one pixel spans on a model of `size_m` shown at `screen_size`."""
    return size_m / (max(screen_size, 1e-9) * screen_height_px)


def screen_size_for_error(error_m: float, size_m: float, *, screen_height_px: int = SCREEN_HEIGHT_PX,
                          vfov_deg: float = 60.0) -> float:
    """The largest on-screen height fraction at which a level whose error is `error_m` still
    looks right: its error projects to at most one pixel. Capped at 1.0 (whole screen height).

    Derivation: at distance D with vertical field of view F the screen spans 2 D tan(F/2) meters
    vertically, so one pixel is p = 2 D tan(F/2) / H_px meters and an object of size S covers
    s = S / (2 D tan(F/2)) of the screen height. The error stays under a pixel while e <= p, i.e.
    D >= e H_px / (2 tan(F/2)); there s = S / (e H_px). The field of view cancels out: screen size
    as a height fraction depends only on error, size and resolution (the FOV matters only when
    converting to a switch distance, `switch_distance_m`).
    """
    if error_m <= 0.0 or size_m <= 0.0:
        return 1.0
    half = math.tan(math.radians(vfov_deg) / 2.0)
    distance = error_m * screen_height_px / (2.0 * half)
    return min(1.0, size_m / (2.0 * distance * half))


def switch_distance_m(screen_size: float, size_m: float, *, vfov_deg: float = 60.0) -> float:
    """The camera distance at which an object of `size_m` covers `screen_size` of the screen height."""
    return size_m / (2.0 * math.tan(math.radians(vfov_deg) / 2.0) * max(screen_size, 1e-9))


def model_size(model: Model) -> float:
    """The size used for screen sizes and error limits: the largest bounding-box side (meters),
    the convention of Unity's LODGroup."""
    return float(np.max(model.size())) if model.primitives else 0.0


# ----------------------------------------------------------------------------------------------
# Surface distance


class Surface:
    """A model's triangles ready for distance queries (`nearest.TriangleGrid`, built on first use)
    and area-weighted sampling. Build it once for a model measured against several others (the
    source against each candidate level)."""

    def __init__(self, model: Model):
        from .nearest import triangle_parts  # numba: imported by the processes that measure, not by every step

        prims = [p for p in model.primitives if p.triangle_count]
        n = sum(p.triangle_count for p in prims)
        self.a, self._b, self._c, self.e1, self.e2 = (np.empty((n, 3), np.float32) for _ in range(5))
        self.areas = np.empty(n, np.float64)
        start = 0
        for p in prims:
            end = start + p.triangle_count
            triangle_parts(np.ascontiguousarray(p.positions, np.float32), np.ascontiguousarray(p.triangles),
                           self.a[start:end], self._b[start:end], self._c[start:end], self.e1[start:end],
                           self.e2[start:end], self.areas[start:end])
            start = end
        self._grid: TriangleGrid | None = None

    def __len__(self) -> int:
        return len(self.a)

    @property
    def grid(self) -> TriangleGrid:
        if self._grid is None:
            from .nearest import TriangleGrid  # numba: imported by the processes that measure, not by every step

            self._grid = TriangleGrid(self.a, self._b, self._c)
        return self._grid

    def sample(self, count: int, seed: int) -> np.ndarray:
        """`count` points spread uniformly over the surface (area-weighted), deterministic."""
        if not len(self) or self.areas.sum() <= 0:
            return np.zeros((0, 3), np.float32)
        rng = np.random.default_rng(seed)
        cdf = np.cumsum(self.areas)
        which = np.minimum(np.searchsorted(cdf, rng.random(count) * cdf[-1], side="right"), len(cdf) - 1)
        r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
        u, v = (r1 * (1 - r2)).astype(np.float32), (r1 * r2).astype(np.float32)
        return self.a[which] + u[:, None] * self.e1[which] + v[:, None] * self.e2[which]

    def distance(self, points: np.ndarray, limit: float = math.inf) -> np.ndarray:
        """Exact distance from each point to the surface (to its nearest triangle); distances
        over `limit` come back as `limit`."""
        points = np.asarray(points, np.float32)
        if not len(points):
            return np.zeros(0)
        return self.grid.distance(points, limit)


def _symmetric(a: Surface, b: Surface, samples: int, seed: int,
               a_samples: np.ndarray | None = None) -> tuple[float, float]:
    pa = a.sample(samples, seed) if a_samples is None else a_samples
    area = np.concatenate([b.distance(pa), a.distance(b.sample(samples, seed + 1))])
    if not len(area):
        return 0.0, 0.0
    return float(area.mean()), float(area.max())


def surface_distance(a: Model | Surface, b: Model | Surface, samples: int = 30_000,
                     seed: int = 0) -> tuple[float, float]:
    """Symmetric surface distance between two models in meters: (mean, max).

    `samples` points are drawn uniformly over each surface (area-weighted, fixed seed, so the
    result is reproducible) and each is measured exactly to the nearest triangle of the other
    model; mean and max are over both directions. The max is the sampled Hausdorff distance.

    Only area samples count, not vertices: a feature is weighed by the surface it shows. The
    sample lantern showed why (issue 15): its reconstruction has a 15 mm needle of three sliver
    triangles about 0.3 mm wide at a corner (~2 mm^2, under a pixel wide even with the lantern
    filling a 1080p screen). meshoptimizer's quadrics are area-weighted, so the needle costs nothing
    to collapse and goes at any triangle count; a max taken over vertices reported its 13.2 mm
    for every LOD1 from 4,000 to 6,000 triangles (and LOD1 was measured against LOD0, LOD0 against
    the source, so the numbers were not comparable either).
    """
    return _symmetric(a if isinstance(a, Surface) else Surface(a), b if isinstance(b, Surface) else Surface(b),
                      samples, seed)


# ----------------------------------------------------------------------------------------------
# Textures


def _pow2(x: float) -> int:
    """The nearest power of two (in log scale), at least 1."""
    return 1 << max(0, round(math.log2(max(x, 1.0))))


def _fit(size: tuple[int, int], max_side: int) -> tuple[int, int]:
    """Power-of-two sides no larger than `max_side`, keeping the aspect ratio (up to rounding)."""
    if max_side < 1 or max_side & (max_side - 1):
        raise ValueError(f"texture size limit must be a power of two, got {max_side}")
    w, h = size
    scale = min(1.0, max_side / max(w, h))
    return min(_pow2(w * scale), max_side), min(_pow2(h * scale), max_side)


def _srgb_to_linear(c: np.ndarray) -> np.ndarray:
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


# sRGB-encoded byte -> linear light, as a table: 40x faster than the formula over every texel.
_SRGB_TO_LINEAR = _srgb_to_linear(np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


def _texels_as_float(pixels: np.ndarray, space: str) -> np.ndarray:
    """(h, w, 3|4) bytes as float32: linear light (srgb) or unit-range vectors (normal); alpha in 0..1."""
    out = np.empty(pixels.shape, np.float32)
    if space == "srgb":
        np.take(_SRGB_TO_LINEAR, pixels[..., :3], out=out[..., :3])
    else:
        np.multiply(pixels[..., :3], np.float32(1 / 127.5), out=out[..., :3])
        out[..., :3] -= 1.0
    np.multiply(pixels[..., 3:], np.float32(1 / 255), out=out[..., 3:])
    return out


def _resample_channels(values: np.ndarray, size: tuple[int, int], exact: bool) -> np.ndarray:
    """(h, w, c) float32 resampled to `size` (w, h) in float (no 8-bit rounding between steps):
    a box average for exact integer steps (a reshape and a mean), else Lanczos per channel."""
    if exact and (values.shape[1] // size[0]) & (values.shape[1] // size[0] - 1) == 0:
        # power-of-two step: halve by 2x2 means, as mipmaps are built (4x faster than one reshape-mean)
        while values.shape[1] > size[0]:
            values = (values[0::2, 0::2] + values[1::2, 0::2] + values[0::2, 1::2] + values[1::2, 1::2]) * 0.25
        return values
    if exact:
        f = values.shape[1] // size[0]
        return values.reshape(size[1], f, size[0], f, -1).mean(axis=(1, 3), dtype=np.float32)
    return np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(values[..., k]), "F").resize(
        size, Image.Resampling.LANCZOS)) for k in range(values.shape[2])], axis=-1)


def _resized(texture: Texture, image: Image.Image, max_side: int, space: str = "linear",
             cache: dict[str, Any] | None = None) -> tuple[Texture, int]:
    """Resample in the space the texels live in (model.slot_colour_space): sRGB colour maps are
    averaged as light (decoded to linear, re-encoded after), data maps (metallic-roughness,
    occlusion, ...) as stored, normal maps as vectors re-normalized to unit length afterwards.
    `cache` keeps the last float level, so a chain of power-of-two sizes decodes the image once
    and halves from the level before (a box of boxes is the box)."""
    w, h = _fit(image.size, max_side)
    if (w, h) == image.size:
        return texture, max(w, h)
    if image.mode not in ("RGB", "RGBA", "L", "LA"):
        image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
    factor = image.size[0] // w
    exact = image.size == (w * factor, h * factor)
    if space == "linear" or image.mode in ("L", "LA"):
        if exact:
            small = image.reduce(factor)  # an exact power-of-two step: the box average mipmaps use
        else:
            small = image.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=2.0)
    else:
        cache = {} if cache is None else cache
        level = cache.get("level")
        if exact and level is not None and level.shape[1] % w == 0 and ((level.shape[1] // w) & (level.shape[1] // w - 1)) == 0:
            values = _resample_channels(level, (w, h), True)
        else:
            pixels = np.asarray(image)
            if exact:
                # Band by band (the box is local), so no float copy of the whole image is ever held:
                # four 2K maps resampling on the pool would otherwise cost ~250 MB at once.
                band = max(factor, 256 // factor * factor)
                values = np.empty((h, w, pixels.shape[2]), np.float32)
                for top in range(0, pixels.shape[0], band):
                    block = _texels_as_float(pixels[top:top + band], space)
                    values[top // factor:(top + len(block)) // factor] = _resample_channels(
                        block, (w, len(block) // factor), True)
            else:
                values = _resample_channels(_texels_as_float(pixels, space), (w, h), False)
        if exact:
            cache["level"] = values
        rgb, alpha = values[..., :3], values[..., 3:]
        if space == "srgb":
            rgb = _linear_to_srgb(rgb)
        else:  # normal: tangent-space vectors in [-1, 1], averaged, then made unit length again
            rgb = (rgb / np.maximum(np.linalg.norm(rgb, axis=-1, keepdims=True), 1e-6) + 1.0) * 0.5
        if alpha.shape[-1]:
            rgb = np.concatenate([rgb, np.clip(alpha, 0.0, 1.0)], axis=-1)
        small = Image.fromarray(np.rint(np.clip(rgb, 0.0, 1.0) * 255.0).astype(np.uint8))  # RGB or RGBA by shape
    out = io.BytesIO()
    if texture.mime_type == "image/jpeg" and small.mode in ("RGB", "L"):
        small.save(out, format="JPEG", quality=90)
        return Texture(out.getvalue(), "image/jpeg", texture.name), max(w, h)
    # zlib level 4: measured 2.5x faster than the default 6 on a 1024 px albedo, files 2.5% larger
    small.save(out, format="PNG", compress_level=4)
    return Texture(out.getvalue(), "image/png", texture.name), max(w, h)


def _image_space(uses: list[tuple[int, str]]) -> str:
    """How to resample an image from the slots that use it: a normal map as vectors, else a colour
    map as light, else as data (an image used as both colour and data, which glTF allows but no
    authoring tool writes, is treated as colour)."""
    spaces = {slot_colour_space(slot) for _, slot in uses}
    return "normal" if "normal" in spaces else "srgb" if "srgb" in spaces else "linear"


def downscale_texture(texture: Texture, max_side: int, space: str = "linear") -> tuple[Texture, int]:
    """The texture with power-of-two sides no larger than `max_side`, and its largest side.

    Aspect ratio is kept (up to the power-of-two rounding). A texture that already conforms is
    returned as is (same bytes); otherwise it is resized (a box average for exact integer steps,
    as mipmaps are made, else Lanczos) and re-encoded in its own format, PNG or JPEG: re-encoding a photographic JPEG as PNG would
    multiply its size for nothing. Pillow's encoders are deterministic for the same input.
    """
    return _texture_levels(texture, [max_side], space)[max_side]


def _texture_levels(texture: Texture, sides: list[int | None],
                    space: str = "linear") -> dict[int | None, tuple[Texture, int]]:
    """One texture at several size limits (None: as is), decoded once, resampled in `space`."""
    image = Image.open(io.BytesIO(texture.data))
    out: dict[int | None, tuple[Texture, int]] = {}
    cache: dict[str, Any] = {}
    for side in sorted(set(sides), key=lambda s: -(s or 1 << 30)):  # largest first: each halves the last
        if side is None:
            out[side] = (texture, max(image.size))
        else:
            image.load()
            out[side] = _resized(texture, image, side, space, cache)
    return out


# ----------------------------------------------------------------------------------------------
# The chain


Method = Literal["attribute", "sloppy", "source"]


@dataclass
class LodLevel:
    """One level of the chain. Every error is measured against the normalized source (the model
    `build_lod_chain` was given), in meters."""

    level: int
    model: Model
    triangles: int
    vertices: int
    error_m: float  # measured: max of the sampled symmetric surface distance to the normalized source
    error_mean_m: float  # measured: mean of the same distances
    error_estimate_m: float  # meshoptimizer's own estimate summed along the cascade (it includes the
    #                          weighted attribute error, so it is a heuristic, not meters of surface)
    screen_size: float  # switch screen size: shown at and below this on-screen height fraction
    method: Method
    texture_size: int | None  # largest texture side at this level, None without textures
    error_limit_m: float = math.inf  # one pixel at `screen_size` (the bound the search held it to)
    triangle_ceiling: int = 0  # the budget's ceiling for this level
    # (triangles, error_m) tried; an error at MEASURE_LIMIT x error_limit_m means at least that
    searched: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    # how the level looks at its switch size beside the source (`lod_look.bake_and_judge` sets it)
    look: "LevelLook | None" = None

    @property
    def over_ceiling(self) -> int:
        """Triangles above the ceiling the error bound needed (0 when within budget)."""
        return max(0, self.triangles - self.triangle_ceiling) if self.triangle_ceiling else 0


class LodChain(list):
    """The levels (a list of LodLevel) and why the chain is shorter than the budget asked, if it is."""

    def __init__(self, levels: list[LodLevel], requested_levels: int, notes: list[str],
                 seconds: dict[str, float] | None = None):
        super().__init__(levels)
        self.requested_levels = requested_levels
        self.notes = notes
        self.seconds = seconds or {}  # wall time: search (simplify + measure on the main thread), total


@dataclass
class _Source:
    """One primitive's vertex streams, shared by every level (levels index into them)."""

    positions: np.ndarray
    streams: dict[str, np.ndarray]  # the primitive's optional vertex streams (Primitive.streams())
    template: Primitive  # material, variants and colour type carried to every level
    attributes: np.ndarray | None
    weights: np.ndarray | None
    lock: np.ndarray | None
    scale: float
    normal_slots: int = 0  # how many leading attribute columns are the normal (weighted by NORMAL_WEIGHT)

    def weights_at(self, normal_scale: float) -> np.ndarray | None:
        """The attribute weights with the normal's scaled by `normal_scale` (see NORMAL_WEIGHT_FULL_FROM)."""
        if self.weights is None or normal_scale == 1.0 or not self.normal_slots:
            return self.weights
        w = self.weights.copy()
        w[: self.normal_slots] *= normal_scale
        return w


def _prepare(prim: Primitive) -> tuple[_Source, np.ndarray]:
    """Weld binary-identical vertices (so the simplifier sees the connectivity), drop unused ones."""
    names = list(prim.streams())
    indices, welded = meshopt.weld(prim.indices, prim.positions, *prim.streams().values())
    positions, streams = welded[0], dict(zip(names, welded[1:]))
    parts, weights = [], []
    if "normals" in streams:
        parts.append(streams["normals"])
        weights += [NORMAL_WEIGHT] * 3
    elif len(indices):
        parts.append(vertex_normals(positions, indices))
        weights += [DERIVED_NORMAL_WEIGHT] * 3
    for name, weight in (("uvs", UV_WEIGHT), ("uv1", UV_WEIGHT), ("colors", COLOR_WEIGHT)):
        if name in streams:
            value = streams[name]
            parts.append(color_to_float(value) if name == "colors" else value)
            weights += [weight] * value.shape[1]
    attributes = np.ascontiguousarray(np.hstack(parts), dtype=np.float32) if parts else None
    source = _Source(positions, streams, prim, attributes,
                     np.asarray(weights, np.float32) if parts else None, None, meshopt.simplify_scale(positions),
                     normal_slots=3 if len(indices) or "normals" in streams else 0)
    return source, indices


def _lock_shared_borders(sources: list[_Source], indices: list[np.ndarray]) -> None:
    """Lock vertices whose position also occurs in another primitive: the borders between
    materials, which must not move or the primitives would crack apart."""
    if len(sources) < 2:
        return
    keys = [np.unique(s.positions[idx].view(np.dtype((np.void, 12))).reshape(-1)) for s, idx in zip(sources, indices)]
    all_keys, counts = np.unique(np.concatenate(keys), return_counts=True)
    shared = all_keys[counts > 1]
    if not len(shared):
        return
    for s in sources:
        lock = np.isin(s.positions.view(np.dtype((np.void, 12))).reshape(-1), shared)
        s.lock = lock.astype(np.uint8) if lock.any() else None


def _simplify(src: _Source, indices: np.ndarray, target_triangles: int, *, sparse: bool,
              allow_sloppy: bool, normal_scale: float = 1.0) -> tuple[np.ndarray, float, bool]:
    """One reduction of one primitive to a triangle count. Returns (indices into the source
    vertices, error estimate m, used sloppy).

    Driven by the count, not by meshoptimizer's target_error: measured on the 500K bench mesh,
    an error-bounded call that stops on its error (target count below what the error allows)
    costs 5-7 s instead of 0.5 s in C meshoptimizer 0.23 (each pass then collapses only a few
    edges). The search (`_search_level`) turns the error bound into counts with measurements.
    """
    target = max(1, target_triangles) * 3
    if len(indices) <= target:
        return indices, 0.0, False
    # ERROR_ABSOLUTE: errors in meters, comparable across primitives. SPARSE once the level indexes
    # only part of the source vertices (it saves per-vertex work; on the full mesh it only costs).
    options = meshopt.SIMPLIFY_ERROR_ABSOLUTE | (meshopt.SIMPLIFY_SPARSE if sparse else 0)
    out, error = meshopt.simplify(indices, src.positions, target_index_count=target, target_error=3.0e38,
                                  attributes=src.attributes, attribute_weights=src.weights_at(normal_scale),
                                  vertex_lock=src.lock, options=options)
    if allow_sloppy and len(out) > target * TARGET_TOLERANCE:
        # Stuck on topology (seams, many small parts): cluster the rest of the way, starting from
        # the attribute-aware result, the closest to the target that keeps the seams. The search
        # measures the result like any other, so a sloppy level that breaks its bound is refused.
        sloppy, relative = meshopt.simplify_sloppy(out, src.positions, target_index_count=target)
        if len(sloppy):
            return sloppy, error + relative * src.scale, True
    return out, error, False


def _finish(src: _Source, indices: np.ndarray, diagonal: float, keep_tangents: bool) -> Primitive:
    """GPU-ready primitive: zero-area triangles dropped, vertex cache, overdraw and fetch order.

    Source tangents are kept only where the triangles are the source's (`keep_tangents`): on a
    simplified level the surviving vertices' tangents no longer match the MikkTSpace tangents of
    the new triangles, so they are left out and engines generate MikkTSpace tangents (glTF's rule).
    """
    tri = indices.reshape(-1, 3)
    p = src.positions
    # The same test the `no_degenerate_triangles` check applies, so no level fails it.
    indices = tri[~degenerate_mask(p, tri, diagonal=diagonal)].reshape(-1)
    indices = meshopt.optimize_vertex_cache(indices, len(p))
    indices = meshopt.optimize_overdraw(indices, p, threshold=1.05)
    names = [n for n in src.streams if keep_tangents or n != "tangents"]
    indices, streams = meshopt.optimize_vertex_fetch(indices, src.positions, *(src.streams[n] for n in names))
    out = dict.fromkeys(("normals", "uvs", "uv1", "colors", "tangents"))
    out.update(zip(names, streams[1:]))
    return src.template.with_vertices(streams[0], indices, **out)


@dataclass
class _Candidate:
    indices: list[np.ndarray]  # per primitive, into its source's vertices
    triangles: int
    estimate: float
    method: Method
    error_m: float = 0.0
    error_mean_m: float = 0.0


# The search's tuning, each measured on the bench meshes and the shared test models:
# - error ~ 1 / triangles is the model used to pick the next count (smooth surfaces simplified by
#   edge collapse: error grows with the square of the edge length, and edges with 1/sqrt(count)),
#   until two measurements of the level give the mesh's own exponent (`_next_count`): fine detail
#   near the source's density falls slower (0.8 on the 500K bench sphere as a small prop, where
#   1 / count aimed at 132K triangles for a bound that needed 297K). Only the level's own
#   measurements: with the level before's, the exponent mixes two regimes (a far level's sloppy
#   fallback, a near level's detail) and aimed worse than 1 / count on the bench chains;
# - aim under the bound (AIM), since the sampled max is noisy by a few percent between counts;
# - stop when a candidate lands in [GOOD_ENOUGH, 1] x bound: a few percent fewer triangles are
#   not worth another simplify + measure;
# - where a failure and a success bracket the bound, bisect (error can jump where a part collapses);
# - at most MAX_TRIES candidates per level (each costs a simplification and a measurement);
# - LOD0 starts blind, nothing measured yet (`_first_count`: LOD0_FIRST of the source). That guess
#   is kept only from AIM x bound; under it, LOD0 goes on at half the count or less, reduced from
#   the guess (a cascade, cheap). Its next counts assume error ~ count^-LOD0_EXPONENT until two
#   measurements give the mesh's own: near the source's density the max error falls slowly
#   (exponents 0.2-0.95 between a quarter and half of the source, measured on the 500K and 1M
#   bench spheres and the 200K Step1X mesh), so 1 / count aimed too close after a failure.
AIM = 0.85
GOOD_ENOUGH = 0.6
LOD0_FIRST = 0.4  # LOD0's first try, as a fraction of the source's triangles (at least; `_first_count`)
LOD0_EXPONENT = 0.5
MAX_TRIES = 4
# A candidate's distances are measured exactly up to this many times its bound; farther ones are
# recorded at that limit. The search needs no more (such a candidate is far off, the next count is
# aimed from the level's other measurements), and a point far from a dense surface is costly to
# settle exactly: an over-tessellated cube's LOD3 candidates collapsed to 4-8 triangles, ~240 mm
# inside the source, took 5-16 s each to measure without a limit.
MEASURE_LIMIT = 4.0
BRACKET = 1.25  # stop bisecting once the cheapest success is within 25% of the richest failure


def _next_count(points: list[tuple[int, float]], bound: float, k: float = 1.0) -> float:
    """The count whose error should be AIM * bound, from the last measured (count, error): error
    ~ count^-k, with k from the last two measurements of different counts (clamped to [0.5, 2],
    as the sampled max is noisy), else the `k` given. A measurement at MEASURE_LIMIT is a lower
    bound, kept out of the fit."""
    n, e = points[-1]
    for m, f in reversed(points[:-1]):
        if m != n and 0 < e < MEASURE_LIMIT * bound and 0 < f < MEASURE_LIMIT * bound:
            k = min(max(math.log(f / e) / math.log(n / m), 0.5), 2.0)
            break
    return n * (max(e, 1e-12) / (AIM * bound)) ** (1.0 / k)


def _first_count(previous: _Candidate, bound: float, ceiling: int) -> float:
    """A level's first try. After LOD0, from the level before: it tells how this mesh's error
    falls with its count (the ceiling would be a wasted try when the mesh is harder than the
    budget assumed). LOD0 (or LOD1 after a LOD0 kept as the source), where nothing is known yet:
    the ceiling, but at least LOD0_FIRST of the source (only LOD0 treats it as a guess: see the
    search's tuning). One pixel with the model filling the screen is a strict bound: the dense meshes
    measured kept 25-60% of their triangles at LOD0 (the 200K Step1X mesh, the 500K and 1M bench
    spheres, every category), so a try at a 20K ceiling failed at 8-22x the bound and cost the most
    of any simplification (0.45-0.6 s for 500K triangles: the more a reduction removes, the longer
    it takes). A try near the answer is cheaper and aims the next one better: over those 12
    chains the search's time fell from 24.5 to 15.9 s, with the same LOD0 triangles in sum. At a
    quarter of the source, the first try failed on 7 of those 12 chains, each failure costing the
    500K sphere 0.35-0.42 s of reduction; at 0.4 it is kept on 6 (the others go on from it or from
    the source), and the 12 LOD0s hold 2.32M triangles instead of 2.42M."""
    if previous.error_m > 0:
        return max(previous.triangles * previous.error_m / (AIM * bound), previous.triangles / 8)
    return max(ceiling, LOD0_FIRST * previous.triangles)


def _mm(error_m: float, bound: float) -> str:
    """A measured error for a note: millimetres, or "over" the measuring limit."""
    if error_m >= MEASURE_LIMIT * bound:
        return f"over {MEASURE_LIMIT * bound * 1000:.3g} mm"
    return f"{error_m * 1000:.3g} mm"


def _reduce(sources: list[_Source], base: list[np.ndarray], start: list[np.ndarray], target: int, *,
            allow_sloppy: bool, estimate: float, normal_scale: float = 1.0) -> _Candidate:
    total = sum(len(i) // 3 for i in start)
    out, error, method = [], 0.0, "attribute"
    for src, idx, first in zip(sources, start, base):
        share = round(target * (len(idx) // 3) / max(total, 1))
        reduced, err, sloppy = _simplify(src, idx, share, sparse=idx is not first, allow_sloppy=allow_sloppy,
                                         normal_scale=normal_scale)
        error = max(error, err)
        method = "sloppy" if sloppy else method
        out.append(reduced)
    return _Candidate(out, sum(len(i) // 3 for i in out), estimate + error, method)  # type: ignore[arg-type]


class _Meter:
    """Measures candidates against the normalized source: one Surface (its grid built once) and one
    sample set for all. The two directions run on two threads (the distance kernel releases the
    GIL); both are exact (`nearest`)."""

    def __init__(self, source: Model, samples: int, seed: int):
        self.surface = Surface(source)
        self.surface.grid  # noqa: B018 -- built here, on the pool, while LOD0's first reduction runs
        self.samples, self.seed = samples, seed
        self.points = self.surface.sample(samples, seed)
        self._pool = ThreadPoolExecutor(1)

    def close(self) -> None:
        self._pool.shutdown()

    def measure(self, sources: list[_Source], cand: _Candidate, limit: float = math.inf) -> None:
        """Sets the candidate's measured error (max and mean, distances capped at `limit`)."""
        prims = [Primitive(src.positions, idx) for src, idx in zip(sources, cand.indices) if len(idx)]
        if not prims:
            cand.error_mean_m = cand.error_m = math.inf
            return
        other = Surface(Model(prims))
        there = self._pool.submit(self.surface.distance, other.sample(self.samples, self.seed + 1), limit)
        here = other.distance(self.points, limit)
        both = np.concatenate([here, there.result()])
        cand.error_mean_m, cand.error_m = float(both.mean()), float(both.max())


def _search_level(sources: list[_Source], base: list[np.ndarray], previous: _Candidate, *, level: int,
                  bound: float, ceiling: int, most: int, allow_sloppy: bool, meter: Future,
                  seconds: dict[str, float], normal_scale: float = 1.0) -> tuple[
                      _Candidate | None, list[tuple[int, float]]]:
    """The cheapest candidate found within `bound` (m, measured) and at most `most` triangles,
    or None. `previous` is the level before (LOD0: the source itself, error 0)."""
    target = int(min(_first_count(previous, bound, ceiling), most))
    best: _Candidate | None = None
    failed, failed_error = 0, 0.0  # the largest count that measured over the bound, and its error
    tried: list[tuple[int, float]] = []
    # LOD0's first try is a guess (`_first_count`). LOD1 after a LOD0 kept as the source (small
    # reconstructions) is as uninformed, but keeps the ordinary rules: with LOD0's, the 25-input
    # sweep (tests/test_lod_sweep.py) took 177 tries instead of 159, for 1% fewer triangles.
    blind = level == 0
    prior = LOD0_EXPONENT if blind else 1.0
    for _ in range(MAX_TRIES):
        # going cheaper than an accepted candidate continues from it (the cascade, fewer triangles
        # to process); going richer starts over from the level before
        start = best.indices if best is not None and target < best.triangles else previous.indices
        clock = time.perf_counter()
        cand = _reduce(sources, base, start, target, allow_sloppy=allow_sloppy, normal_scale=normal_scale,
                       estimate=best.estimate if start is not previous.indices else previous.estimate)
        seconds["simplify"] += time.perf_counter() - clock
        if not cand.triangles or cand.triangles > most:
            break  # nothing left, or topology stopped it above what this level may cost
        if cand.triangles == previous.triangles:
            cand.error_m, cand.error_mean_m = previous.error_m, previous.error_mean_m
        else:
            clock = time.perf_counter()
            # the first call waits for the source's Surface
            meter.result().measure(sources, cand, MEASURE_LIMIT * bound)
            seconds["measure"] += time.perf_counter() - clock
        tried.append((cand.triangles, cand.error_m))
        if cand.error_m <= bound:
            if best is None or cand.triangles < best.triangles:
                best = cand
            if cand.error_m >= (AIM if blind and len(tried) == 1 else GOOD_ENOUGH) * bound:
                break
        elif cand.triangles > failed:
            failed, failed_error = cand.triangles, cand.error_m
        if best is not None and failed:
            # bracketed: bisect (in log scale) between the failure and the success; error is not
            # smooth in the count where a thin part (a ring, a strand) collapses at once
            if best.triangles < BRACKET * failed:
                break
            if best.triangles == previous.triangles and (failed_error * failed / best.triangles > bound
                                                         or failed_error >= MEASURE_LIMIT * bound):
                # LOD0 kept as the source, and the error model (error ~ 1 / count) puts even the
                # source's count over the bound from that failure (or the failure is past the
                # measuring limit, farther still): bisecting towards the failure would cost
                # measurements for a few percent fewer triangles at best. Seen on small
                # reconstructions (9K triangles, a 5K ceiling): two failed tries per asset saved.
                break
            nxt = math.sqrt(best.triangles * failed)
        elif best is not None:
            nxt = max(_next_count(tried, bound, prior), best.triangles / 4, 4)
            if blind and len(tried) == 1:
                nxt = min(nxt, best.triangles / 2)
        else:
            if cand.triangles >= most:
                break
            nxt = min(_next_count(tried, bound, prior), most)
        nxt = int(nxt)
        if any(abs(nxt - t) <= 0.05 * t for t, _ in tried):
            break
        target = nxt
    return best, tried


# Work beside the search (textures, levels' assembly, their bakes and renders) runs on threads niced
# this much: it yields the cores to the search, the chain's critical path, when both want them.
BESIDE_SEARCH_NICE = 5


def behind_the_search() -> None:
    """Thread initializer: nice this thread by BESIDE_SEARCH_NICE (Linux schedules threads apart;
    a thread may lower its own priority without privileges)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BESIDE_SEARCH_NICE)
    except (AttributeError, OSError):
        pass  # no per-thread priorities here: the threads share the cores evenly


def one_blas_thread() -> threadpool_limits:
    """A context in which numpy's and scipy's BLAS (OpenBLAS) run on the calling thread only. The
    chain runs its own threads on every core; OpenBLAS's workers, woken by each large-enough matrix
    product (projections of a 500K-vertex mesh: render, switch views), spin after it waiting for
    more and took ~1 s of CPU per 500K chain from the search and the looks on 2 cores (measured
    per thread in /proc: 0.7-1.0 s against ~4.5 s for the whole chain)."""
    return threadpool_limits(1, user_api="blas")


def build_lod_chain(
    model: Model,
    budget: LodBudget,
    *,
    texture_sizes: tuple[int, ...] | None = (2048, 1024, 512, 256),
    samples: int = 20_000,
    seed: int = 0,
    on_start: Callable[[], None] | None = None,
    on_level: Callable[[Future], None] | None = None,
) -> LodChain:
    """The LOD chain of `model` (the normalized source) under `budget`.

    Each level is the cheapest mesh Kiln finds whose measured error against the source stays
    within one pixel at the level's switch screen size (`LodBudget.error_limit_m`): a few
    candidates per level, each reduced by meshoptimizer from the level before (a cascade) and
    measured (`surface_distance`, `samples` points per surface and direction). A level needs
    MIN_STEP fewer triangles than the one before; when no candidate within the bound is that much
    cheaper, the chain ends there and `notes` says why. The triangle ceilings are not enforced:
    the error bound wins and `LodLevel.over_ceiling` shows the deficit.

    texture_sizes: largest texture side per level (the last repeats); None keeps textures as is.
    on_start: called once the search has what it needs first (the source's measuring surface, on
      the thread that built it): the moment for a caller to start its own work on the source
      without delaying the search's first measurement.
    on_level: called on this thread with a Future of each LodLevel as soon as the search accepts
      it (the level is assembled on the pool), so a caller can bake and judge a level while the
      next one is searched (`lod_look.build_and_judge`).
    Materials keep their order and indices in every level. Deterministic: the same input gives
    the same levels, whatever the thread scheduling.
    """
    with one_blas_thread():
        return _build_lod_chain(model, budget, texture_sizes=texture_sizes, samples=samples, seed=seed,
                                on_start=on_start, on_level=on_level)


def _build_lod_chain(model: Model, budget: LodBudget, *, texture_sizes: tuple[int, ...] | None, samples: int,
                     seed: int, on_start: Callable[[], None] | None,
                     on_level: Callable[[Future], None] | None) -> LodChain:
    prims = [p for p in model.primitives if p.triangle_count]
    if not prims:
        raise ValueError(f"model {model.name!r} has no triangles to build LODs from")
    if texture_sizes is not None and (not texture_sizes or any(s < 1 or s & (s - 1) for s in texture_sizes)):
        raise ValueError(f"texture sizes must be powers of two, got {texture_sizes}")
    prepared = [_prepare(p) for p in prims]
    sources = [s for s, _ in prepared]
    base = [i for _, i in prepared]
    _lock_shared_borders(sources, base)
    size = model_size(model)
    total = sum(len(i) // 3 for i in base)

    lo, hi = model.bounds()
    diagonal = float(np.linalg.norm(hi.astype(np.float64) - lo))
    workers = max(1, min(4, os.cpu_count() or 1))
    notes: list[str] = []
    seconds = {"simplify": 0.0, "measure": 0.0}  # where the search's wall time goes (main thread)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers, initializer=behind_the_search) as pool:
        # The measuring surface first (the search's first measurement waits for it), then the
        # textures, which resize on the pool while the geometry runs; one job per texture (decoded
        # once), shared by the materials that use it.
        sides = [None if texture_sizes is None else texture_sizes[min(level, len(texture_sizes) - 1)]
                 for level in range(budget.levels)]
        meter_job = pool.submit(_Meter, model, samples, seed)
        if on_start is not None:
            meter_job.add_done_callback(lambda _: on_start())
        texture_jobs: dict[int, Future] = {}
        for index, uses in sorted(model.texture_uses().items()):
            texture_jobs[index] = pool.submit(_texture_levels, model.textures[index], sides, _image_space(uses))

        def assemble(level: int, cand: _Candidate, tried: list[tuple[int, float]], jobs: list[Future]) -> LodLevel:
            # Every image at this level's size; materials keep pointing at the same indices.
            textures, texture_sides = list(model.textures), []
            for index, job in texture_jobs.items():
                textures[index], side = job.result()[sides[level]]
                texture_sides.append(side)
            # a primitive simplified away (a tiny part at a far level) leaves no empty primitive
            lod_model = dataclasses.replace(
                model, primitives=[p for p in (j.result() for j in jobs) if p.triangle_count],
                materials=list(model.materials), textures=textures, name=f"{model.name}_LOD{level}")
            return LodLevel(
                level=level, model=lod_model, triangles=lod_model.triangle_count,
                vertices=lod_model.vertex_count, error_m=cand.error_m, error_mean_m=cand.error_mean_m,
                error_estimate_m=float(cand.estimate), screen_size=budget.screen_sizes[level],
                method=cand.method, texture_size=max(texture_sides) if texture_sides else None,
                error_limit_m=budget.error_limit_m(level, size), triangle_ceiling=budget.ceiling(level),
                searched=tried,
            )

        # Geometry: the search runs here (each level needs the one before); each accepted level's
        # GPU optimization and assembly run on the pool meanwhile (ctypes releases the GIL). The
        # pool's jobs only wait for jobs submitted before them, so they cannot deadlock.
        previous = _Candidate(base, total, 0.0, "source")
        assembled: list[Future] = []
        for level in range(budget.levels):
            bound = budget.error_limit_m(level, size)
            most = total if level == 0 else int(MIN_STEP * previous.triangles)
            if most < 1:
                break
            best, tried = _search_level(sources, base, previous, level=level, bound=bound,
                                        ceiling=budget.ceiling(level), most=most,
                                        allow_sloppy=level >= budget.sloppy_from_level, meter=meter_job,
                                        seconds=seconds,
                                        normal_scale=min(1.0, budget.screen_sizes[level] / NORMAL_WEIGHT_FULL_FROM))
            if best is None:
                if level == 0:
                    best = previous  # the source itself: exact, however many triangles it has
                else:
                    lowest = min(tried, key=lambda t: t[0]) if tried else None
                    notes.append(
                        f"LOD{level} not made: no mesh with at most {most} triangles ({MIN_STEP:.0%} of "
                        f"LOD{level - 1}) stays within its {bound * 1000:.3g} mm bound (one pixel at screen size "
                        f"{budget.screen_sizes[level]:g})" + (
                            f"; tried {', '.join(f'{t} tris: {_mm(e, bound)}' for t, e in tried)}" if lowest else
                            "; the simplifier could not reduce it that far (seams, separate parts)"))
                    break
            if best.triangles == total:
                best.method = "source"
            # source tangents stay valid only where the geometry is unchanged
            jobs = [pool.submit(_finish, src, idx, diagonal, best.method == "source")
                    for src, idx in zip(sources, best.indices)]
            assembled.append(pool.submit(assemble, level, best, tried, jobs))
            if on_level is not None:
                on_level(assembled[-1])
            previous = best

        seconds["search"] = time.perf_counter() - started
        chain = [job.result() for job in assembled]
    meter_job.result().close()
    seconds["total"] = time.perf_counter() - started
    return LodChain(chain, budget.levels, notes, seconds)
