"""LOD chains: simplified, GPU-optimized levels with measured error and the screen size to show them at.

    build_lod_chain(model, budget) -> [LodLevel(level 0), LodLevel(level 1), ...]

Each level is simplified from the previous one (a cascade: each pass works on fewer triangles,
which keeps a 4-level chain on 500K triangles under a second, and measured on the bench meshes it
is as accurate as simplifying every level from LOD0, or more at the far levels) with
meshoptimizer's attribute-aware simplifier: normals and UVs weigh in the error metric, UV seams
and open borders are kept by its topology rules, and vertices shared between primitives
(material borders) are locked so neighbouring materials never open a crack. Only the farthest
levels may fall back to the sloppy (clustering) simplifier, when the attribute-aware one cannot
reach the triangle target; the level says so in `method` (sloppy ignores seams and, in
meshoptimizer 0.23, vertex locks). Every level then gets vertex cache, overdraw and vertex fetch
optimization (unused vertices dropped) and its textures downscaled to a power of two.

The error of each level is measured, not only estimated: a sampled symmetric surface distance
against LOD0 (point-to-triangle, deterministic samples), from which the screen size follows.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

from . import meshopt
from .model import Model, Primitive, Texture, color_to_float, slot_colour_space, vertex_normals
from .normalize import degenerate_mask

# ----------------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class LodBudget:
    """How many triangles each level may cost.

    lod0_triangles: ceiling for LOD0 (the source is simplified to it when above, kept when below).
    ratios: triangle count of levels 1..n-1 relative to LOD0's actual count, strictly falling.
    max_error: per level 0..n-1, the measured surface error (error_m) allowed, as a fraction of the
      model's size (largest bounding-box side); LOD0's is against the source when it had to be
      simplified. Missing trailing entries repeat the last one, so overriding `ratios` alone works.
      These are the limits the LOD checks enforce; the simplifier itself is driven by triangles.
    sloppy_from_level: the first level allowed to fall back to sloppy simplification.
    """

    lod0_triangles: int
    ratios: tuple[float, ...] = (0.5, 0.25, 0.1)
    max_error: tuple[float, ...] = (0.02, 0.02, 0.05, 0.1)
    sloppy_from_level: int = 2

    def __post_init__(self) -> None:
        # budgets come from TOML and launchpad config too: lists and floats are accepted
        object.__setattr__(self, "lod0_triangles", int(self.lod0_triangles))
        object.__setattr__(self, "ratios", tuple(float(r) for r in self.ratios))
        object.__setattr__(self, "max_error", tuple(float(e) for e in self.max_error))
        if self.lod0_triangles < 1:
            raise ValueError(f"lod0_triangles must be at least 1, got {self.lod0_triangles}")
        previous = 1.0
        for r in self.ratios:
            if not 0.0 < r < previous:
                raise ValueError(f"LOD ratios must fall strictly within (0, 1), got {list(self.ratios)}")
            previous = r
        if not self.max_error or any(e <= 0 for e in self.max_error):
            raise ValueError(f"max_error must hold positive fractions, got {list(self.max_error)}")
        if self.sloppy_from_level < 1:
            raise ValueError("sloppy_from_level must be at least 1: LOD0 is never simplified sloppily")

    @property
    def levels(self) -> int:
        return 1 + len(self.ratios)

    def error_limit(self, level: int) -> float:
        """Allowed error at `level` as a fraction of the model's size."""
        return self.max_error[min(level, len(self.max_error) - 1)]


# Game budgets per category, in triangles for LOD0 (current-generation PC/console figures, the
# range studios quote for each role), then 50% / 25% / 10% (environment pieces fall faster: they
# are mostly seen from afar). The error limits grow with distance: a level shown smaller may be off
# by more of its size and still be under a pixel (see screen_size_for_error).
CATEGORY_BUDGETS: dict[str, LodBudget] = {
    # characters and vehicles the camera gets close to
    "hero": LodBudget(lod0_triangles=100_000, ratios=(0.5, 0.25, 0.1)),
    # crates, barrels, furniture: many on screen at once
    "prop": LodBudget(lod0_triangles=20_000, ratios=(0.5, 0.25, 0.1)),
    # bottles, tools, pickups: small on screen, the far levels can be very coarse
    "small_prop": LodBudget(lod0_triangles=5_000, ratios=(0.5, 0.25, 0.1)),
    # rocks, trees, building pieces: large, but mostly at a distance
    "environment": LodBudget(lod0_triangles=50_000, ratios=(0.4, 0.15, 0.05)),
}

# Weights of the attributes in meshoptimizer's error metric, relative to positions normalized to
# the mesh extent (a UV change of 1.0, the whole texture, costs as much as moving a vertex by the
# whole model). They trade shading and texture fidelity against geometric error. Measured on the
# bench meshes (with normals): at 0.5, meshoptimizer's example value, the surface error matches
# gltfpack's; at 0.25 the mean is 10-36% lower at 50%..5% and the max lower too, while normals
# still steer collapses away from creases. UVs at 0.5 hardly move the geometric error.
NORMAL_WEIGHT = 0.25
UV_WEIGHT = 0.5
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


def screen_size_for_error(error_m: float, size_m: float, *, screen_height_px: int = 1080,
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
    """A model's triangles ready for distance queries: per-triangle frames and a KD-tree over
    anchor points. Build it once for a model measured against several others (LOD0 against each
    level).

    float32 throughout: at meter scale that resolves well under a micrometer, and it halves the
    memory traffic of the gathers that dominate the cost.
    """

    def __init__(self, model: Model):
        prims = [p for p in model.primitives if p.triangle_count]
        t = np.concatenate([p.positions[p.triangles] for p in prims]).astype(np.float32) if prims \
            else np.zeros((0, 3, 3), np.float32)
        used = [p.positions[np.unique(p.indices)] for p in prims]
        self.vertices = np.concatenate(used).astype(np.float32) if used else np.zeros((0, 3), np.float32)
        self.a = np.ascontiguousarray(t[:, 0])
        self.e1 = np.ascontiguousarray(t[:, 1] - t[:, 0])
        self.e2 = np.ascontiguousarray(t[:, 2] - t[:, 0])
        n = np.cross(self.e1, self.e2)
        length = np.linalg.norm(n, axis=1)
        self.areas = 0.5 * length.astype(np.float64)
        self.unit_normal = n / np.maximum(length, 1e-30)[:, None]
        d00 = np.einsum("ij,ij->i", self.e1, self.e1)
        d01 = np.einsum("ij,ij->i", self.e1, self.e2)
        d11 = np.einsum("ij,ij->i", self.e2, self.e2)
        # barycentric solve per triangle, precomputed: (v, w) = M @ (p-a).(e1, e2)
        denom = d00 * d11 - d01 * d01
        valid = denom > 1e-30 * np.maximum(d00 * d11, 1e-38)
        inv = np.where(valid, 1.0 / np.where(valid, denom, 1.0), 0.0)
        self.bary = np.stack([d11 * inv, -d01 * inv, d00 * inv], axis=1).astype(np.float32)
        self.valid = valid
        self._owners = np.zeros(0, np.int64)
        self._reach = 0.0
        self._tree: cKDTree | None = None

    def __len__(self) -> int:
        return len(self.a)

    def _build_tree(self) -> None:
        """Anchor points for the candidate search: the centroids of each triangle's s x s
        subdivision, with s chosen so no part of a triangle is farther than about 0.75 median
        edge lengths from one of its anchors. A large triangle beside small ones (a cap fan, a
        flat floor next to detail) then still has anchors near every point of it, which plain
        centroids would not give."""
        edges = np.stack([np.linalg.norm(self.e1, axis=1), np.linalg.norm(self.e2, axis=1),
                          np.linalg.norm(self.e2 - self.e1, axis=1)], axis=1).max(axis=1)
        spacing = max(1.5 * float(np.median(edges)), 1e-9)
        splits = np.clip(np.ceil(edges / spacing), 1, 64).astype(np.int64)
        points, owners = [], []
        for s in np.unique(splits):
            tris = np.flatnonzero(splits == s)
            i, j = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
            up = (i + j <= s - 1)
            down = (i + j <= s - 2)
            bary = np.concatenate([np.stack([i[up] + 1 / 3, j[up] + 1 / 3], 1),
                                   np.stack([i[down] + 2 / 3, j[down] + 2 / 3], 1)]).astype(np.float32) / s
            pts = (self.a[tris, None] + bary[None, :, 0, None] * self.e1[tris, None]
                   + bary[None, :, 1, None] * self.e2[tris, None])
            points.append(pts.reshape(-1, 3))
            owners.append(np.repeat(tris, len(bary)))
        self._owners = np.concatenate(owners)
        # how far a point of a triangle can be from the triangle's nearest anchor: a sub-triangle's
        # longest edge bounds it
        self._reach = float((edges / splits).max()) if len(edges) else 0.0
        self._tree = cKDTree(np.concatenate(points), balanced_tree=False, compact_nodes=False)

    @property
    def tree(self) -> cKDTree:
        if self._tree is None:
            self._build_tree()
        return self._tree

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

    def distance(self, points: np.ndarray, candidates: int = 8, refine: float = 0.01) -> np.ndarray:
        """Distance from each point to the surface (exact point-to-triangle distances).

        Each point is measured to the triangles owning its `candidates` nearest anchors; that can
        only err upwards, by less than an anchor's reach, when the nearest triangle is not among
        them. The largest results (batches of `refine` of the points, at least 64) are then made
        exact with a radius search covering every triangle closer than the first answer, until
        the largest of all is exact: the max is exact, the mean within a few percent.
        """
        points = np.asarray(points, np.float32)
        if not len(points) or not len(self):
            return np.full(len(points), np.inf if len(points) else 0.0)
        tree = self.tree
        k = min(candidates, tree.n)
        _, nearest = tree.query(points, k=k, workers=-1)
        owners = self._owners[nearest.reshape(len(points), k)]
        dist = self._pairs(np.repeat(points, k, axis=0), owners.reshape(-1)).reshape(-1, k).min(axis=1)
        exact = np.zeros(len(points), bool)
        batch = max(64, int(len(points) * refine))
        while not exact[np.argmax(dist)]:
            open_rows = np.flatnonzero(~exact)
            worst = open_rows[np.argsort(dist[open_rows])[-batch:]]
            balls = tree.query_ball_point(points[worst], dist[worst] + self._reach, workers=-1)
            rows = np.repeat(worst, [len(b) for b in balls])
            if len(rows):
                tris = self._owners[np.concatenate([np.asarray(b, np.int64) for b in balls])]
                np.minimum.at(dist, rows, self._pairs(points[rows], tris))
            exact[worst] = True
        return dist

    def _pairs(self, p: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Distance from p[i] to triangle t[i], row by row."""
        rel = p - self.a[t]
        e1, e2 = self.e1[t], self.e2[t]
        d20 = np.einsum("ij,ij->i", rel, e1)
        d21 = np.einsum("ij,ij->i", rel, e2)
        m = self.bary[t]
        v = m[:, 0] * d20 + m[:, 1] * d21
        w = m[:, 1] * d20 + m[:, 2] * d21
        inside = (v >= 0) & (w >= 0) & (v + w <= 1) & self.valid[t]
        dist = np.abs(np.einsum("ij,ij->i", rel, self.unit_normal[t]))
        out = ~inside
        if out.any():
            # outside the triangle: the nearest point is on one of its edges
            r, a1, a2 = rel[out], e1[out], e2[out]
            best = _segment_distance(r, np.zeros_like(a1), a1)
            best = np.minimum(best, _segment_distance(r, np.zeros_like(a2), a2))
            best = np.minimum(best, _segment_distance(r, a1, a2))
            dist[out] = best
        return dist


def _segment_distance(p: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Distance from points to segments uv, row by row."""
    d = v - u
    pu = p - u
    t = np.clip(np.einsum("ij,ij->i", pu, d) / np.maximum(np.einsum("ij,ij->i", d, d), 1e-30), 0.0, 1.0)
    return np.linalg.norm(pu - t[:, None] * d, axis=1)


def _point_triangle_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Brute-force reference: distance from points to triangles, row by row (float64)."""
    p, a, b, c = (np.asarray(x, np.float64) for x in (p, a, b, c))
    n = np.cross(b - a, c - a)
    nn = np.einsum("ij,ij->i", n, n)
    inside = nn > 1e-30
    for u, v in ((a, b), (b, c), (c, a)):
        inside &= np.einsum("ij,ij->i", np.cross(v - u, p - u), n) >= 0
    out = np.minimum(np.minimum(_segment_distance(p, a, b), _segment_distance(p, b, c)), _segment_distance(p, c, a))
    plane = np.abs(np.einsum("ij,ij->i", p - a, n)) / np.sqrt(np.maximum(nn, 1e-30))
    return np.where(inside, plane, out)


def _probes(surface: Surface, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-weighted surface samples (for the mean and max) and up to as many of the surface's
    vertices (for the max only: a detail simplification removed peaks at a vertex, which random
    samples would mostly miss)."""
    vertices = surface.vertices
    if len(vertices) > samples:
        vertices = vertices[np.sort(np.random.default_rng(seed + 7).choice(len(vertices), samples, replace=False))]
    return surface.sample(samples, seed), vertices


def _symmetric(a: Surface, b: Surface, samples: int, seed: int,
               a_probes: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[float, float]:
    pa, va = _probes(a, samples, seed) if a_probes is None else a_probes
    pb, vb = _probes(b, samples, seed + 1)
    area = np.concatenate([b.distance(pa), a.distance(pb)])
    if not len(area):
        return 0.0, 0.0
    worst = max(area.max(), b.distance(va).max(initial=0.0), a.distance(vb).max(initial=0.0))
    return float(area.mean()), float(worst)


def surface_distance(a: Model | Surface, b: Model | Surface, samples: int = 30_000,
                     seed: int = 0) -> tuple[float, float]:
    """Symmetric surface distance between two models in meters: (mean, max).

    `samples` points are drawn uniformly over each surface (area-weighted, fixed seed, so the
    result is reproducible) and each is measured exactly to the nearest triangle of the other
    model; the mean is over both directions. The max is the sampled Hausdorff distance: over those
    points and up to `samples` vertices of each model too (removed detail peaks at vertices). It
    can miss a spike between samples, never report more than the true Hausdorff distance.
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
    """One level of the chain. `screen_size` is the switch threshold: show this level while the
    model covers at most that fraction of the screen height (Unity's LODGroup transition height
    for the level before it; Unreal's screen size is the same idea on the bounding sphere)."""

    level: int
    model: Model
    triangles: int
    vertices: int
    error_m: float  # measured: max of the sampled symmetric surface distance vs LOD0 (vs the source for LOD0)
    error_mean_m: float  # measured: mean of the same distances
    error_estimate_m: float  # meshoptimizer's own estimate summed along the cascade (it includes the
    #                          weighted attribute error, so it is a heuristic, not meters of surface)
    screen_size: float  # largest on-screen height fraction to show it at (1080p, 60 deg): error < 1 px
    method: Method
    texture_size: int | None  # largest texture side at this level, None without textures
    error_limit_m: float = math.inf  # the budget's max error for this level, in meters


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
                     np.asarray(weights, np.float32) if parts else None, None, meshopt.simplify_scale(positions))
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
              allow_sloppy: bool) -> tuple[np.ndarray, float, bool]:
    """One cascade step. Returns (indices into the source vertices, error estimate m, used sloppy)."""
    target = max(1, target_triangles) * 3
    if len(indices) <= target:
        return indices, 0.0, False
    # ERROR_ABSOLUTE: errors in meters, comparable across primitives; the target error is
    # unbounded (triangles drive). SPARSE once the level indexes only part of the source vertices
    # (it saves per-vertex work; on the full mesh it only costs).
    options = meshopt.SIMPLIFY_ERROR_ABSOLUTE | (meshopt.SIMPLIFY_SPARSE if sparse else 0)
    out, error = meshopt.simplify(indices, src.positions, target_index_count=target, target_error=3.0e38,
                                  attributes=src.attributes, attribute_weights=src.weights,
                                  vertex_lock=src.lock, options=options)
    if allow_sloppy and len(out) > target * TARGET_TOLERANCE:
        # Stuck on topology (seams, many small parts): cluster the rest of the way, starting from
        # the attribute-aware result, the closest to the target that keeps the seams (measured:
        # about the error of the stuck result, at the target count).
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


def build_lod_chain(
    model: Model,
    budget: LodBudget,
    *,
    texture_sizes: tuple[int, ...] | None = (2048, 1024, 512, 256),
    measure: bool = True,
    samples: int = 30_000,
    seed: int = 0,
) -> list[LodLevel]:
    """The LOD chain of `model` under `budget` (see the module docstring).

    texture_sizes: largest texture side per level (the last repeats); None keeps textures as is.
    measure: measure each level's surface error (else error_m / error_mean_m are NaN and the
      screen sizes come from meshoptimizer's estimate); `samples` points per surface and direction.
    The chain has `budget.levels` levels, or fewer when a level cannot be made meaningfully
    cheaper than the one before (MIN_STEP; tiny, flat-shaded or heavily seamed models).
    Materials keep their order and indices in every level. Deterministic: the same input gives
    the same levels, whatever the thread scheduling.
    """
    prims = [p for p in model.primitives if p.triangle_count]
    if not prims:
        raise ValueError(f"model {model.name!r} has no triangles to build LODs from")
    if texture_sizes is not None and (not texture_sizes or any(s < 1 or s & (s - 1) for s in texture_sizes)):
        raise ValueError(f"texture sizes must be powers of two, got {texture_sizes}")
    prepared = [_prepare(p) for p in prims]
    sources = [s for s, _ in prepared]
    base = [i for _, i in prepared]
    _lock_shared_borders(sources, base)

    total = sum(len(i) // 3 for i in base)
    targets = [min(total, budget.lod0_triangles)]
    targets += [max(1, round(targets[0] * r)) for r in budget.ratios]

    lo, hi = model.bounds()
    diagonal = float(np.linalg.norm(hi.astype(np.float64) - lo))
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(workers) as pool:
        # Textures first, so they resize on the pool while the geometry runs; one job per texture
        # (decoded once), shared by the materials that use it.
        sides = [None if texture_sizes is None else texture_sizes[min(level, len(texture_sizes) - 1)]
                 for level in range(budget.levels)]
        texture_jobs: dict[int, Future] = {}
        for index, uses in sorted(model.texture_uses().items()):
            texture_jobs[index] = pool.submit(_texture_levels, model.textures[index], sides, _image_space(uses))

        # Geometry: the cascade runs here (each step needs the previous one); each finished level's
        # GPU optimization runs on the pool meanwhile (ctypes releases the GIL).
        current = base
        estimates = [0.0] * len(sources)  # per primitive, summed along the cascade
        levels_geometry = []
        previous = 0
        for level, target in enumerate(targets):
            method: Method = "source" if level == 0 else "attribute"
            level_total = sum(len(i) // 3 for i in current)
            if level_total > target:
                method = "attribute"
                nxt = []
                for k, (src, idx) in enumerate(zip(sources, current)):
                    share = round(target * (len(idx) // 3) / level_total)
                    out, error, sloppy = _simplify(src, idx, share, sparse=idx is not base[k],
                                                    allow_sloppy=level >= budget.sloppy_from_level)
                    estimates[k] += error
                    method = "sloppy" if sloppy else method
                    nxt.append(out)
                current = nxt
            reached = sum(len(i) // 3 for i in current)
            if level and not 0 < reached <= MIN_STEP * previous:
                break  # no cheaper than the level before (or nothing left): the chain ends here
            previous = reached
            jobs = [pool.submit(_finish, src, idx, diagonal, method == "source") for src, idx in zip(sources, current)]
            levels_geometry.append((method, max(estimates), jobs))

        chain: list[LodLevel] = []
        for level, (method, estimate, jobs) in enumerate(levels_geometry):
            # Every image at this level's size; materials keep pointing at the same indices.
            textures, texture_sides = list(model.textures), []
            for index, job in texture_jobs.items():
                textures[index], side = job.result()[sides[level]]
                texture_sides.append(side)
            # a primitive simplified away (a tiny part at a far level) leaves no empty primitive
            lod_model = dataclasses.replace(
                model, primitives=[p for p in (j.result() for j in jobs) if p.triangle_count],
                materials=list(model.materials), textures=textures, name=f"{model.name}_LOD{level}")
            chain.append(LodLevel(
                level=level, model=lod_model, triangles=lod_model.triangle_count,
                vertices=lod_model.vertex_count, error_m=math.nan, error_mean_m=math.nan,
                error_estimate_m=float(estimate), screen_size=1.0, method=method,
                texture_size=max(texture_sides) if texture_sides else None,
            ))
    _measure(chain, model, budget, samples=samples, seed=seed, measure=measure)
    return chain


def _measure(chain: list[LodLevel], source: Model, budget: LodBudget, *, samples: int, seed: int,
             measure: bool) -> None:
    """Fill in measured errors, error limits and screen sizes (screen sizes never grow with level,
    as LOD switching needs)."""
    size = model_size(chain[0].model)
    if measure:
        lod0 = Surface(chain[0].model)
        if chain[0].method != "source":
            chain[0].error_mean_m, chain[0].error_m = _symmetric(Surface(source), lod0, samples, seed)
        else:
            chain[0].error_mean_m, chain[0].error_m = 0.0, 0.0
        probes = _probes(lod0, samples, seed)
        for lod in chain[1:]:
            lod.error_mean_m, lod.error_m = _symmetric(lod0, Surface(lod.model), samples, seed, a_probes=probes)
    screen = 1.0
    for lod in chain:
        lod.error_limit_m = budget.error_limit(lod.level) * size
        if lod.level == 0:
            lod.screen_size = 1.0
            continue
        error = lod.error_m if measure else lod.error_estimate_m
        screen = min(screen, screen_size_for_error(error, size))
        lod.screen_size = screen
