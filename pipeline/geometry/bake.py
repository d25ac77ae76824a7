"""Normal-map baking: the detail a simplified level lost, put back as a tangent-space normal map.

    frames = tangent_frames(positions, indices, normals, uvs)             # (n, 4) glTF TANGENT
    result = bake_normal_map(high, low, size=512, max_distance_m=...)   # BakeResult

numpy, the compiled texel passes in rasterizer.py (numba), Embree (ray casting, `raycast`) and xatlas (fresh UV
layouts); no Dagster, no category.

Conventions (glTF 2.0, and so Unity, Unreal, Godot and three.js when they read the tangents Kiln
writes, or derive MikkTSpace tangents themselves):
- Tangent space is MikkTSpace-style: per-corner tangents from the UV derivatives, weighted by
  the corner's angle, summed per vertex, made orthogonal to the vertex normal (Gram-Schmidt);
  the bitangent is `w * cross(normal, tangent)` with `w` = +-1 the handedness. Differences from
  the reference implementation (mikktspace.c): it splits a vertex whose corners disagree in
  handedness (mirrored UVs meeting at a vertex) and groups corners by smoothing group; here such
  a vertex gets the majority sign. On meshes whose UV islands are not mirrored within a vertex
  (every xatlas layout, most generator layouts) the frames agree up to float rounding; the test
  checks them against analytic frames. Ship the tangents with the map (glTF TANGENT) so no engine
  has to re-derive them.
- The map is OpenGL-style (glTF's): +X along +U, +Y (green) up in the image, which is the
  direction of decreasing glTF V (glTF's V runs down the image). Encoded as RGB = n * 0.5 + 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .model import Model, interpolate, vertex_normals

# ----------------------------------------------------------------------------------------------
# Tangent frames


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(length, 1e-20)


def tangent_frames(positions: np.ndarray, indices: np.ndarray, normals: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Per-vertex glTF tangents (n, 4): xyz unit, orthogonal to the normal, w = +-1 handedness.

    The bitangent a shader builds, w * cross(normal, tangent), points up the image (decreasing V).
    """
    from . import rasterizer  # numba

    tangent, handed = rasterizer.vertex_tangents(np.ascontiguousarray(positions, np.float64),
                                                 np.ascontiguousarray(indices.reshape(-1, 3), np.int64),
                                                 np.ascontiguousarray(uvs, np.float64),
                                                 np.ascontiguousarray(normals, np.float64))
    return np.concatenate([tangent, handed[:, None]], axis=1).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Normal maps already on a model


@dataclass
class NormalMapStreams:
    """Per vertex of a model's primitives with triangles, in order: glTF tangents (n, 4) and the
    UVs each primitive's normal map samples (n, 2, KHR_texture_transform applied). A primitive
    without TANGENT gets Kiln's MikkTSpace-style frames (what glTF asks engines to derive); one
    without a normal map or its UVs gets zero tangents, which leave its normals unperturbed."""

    tangents: np.ndarray
    uvs: np.ndarray

    @classmethod
    def of(cls, model: Model) -> "NormalMapStreams":
        tangents, uvs = [], []
        for prim in model.primitives:
            if prim.triangle_count == 0:
                continue
            material = model.materials[prim.material] if prim.material < len(model.materials) else None
            ref = material.normal_texture if material is not None else None
            uv = model.slot_uvs(prim, ref) if ref is not None else None
            if uv is None:
                tangents.append(np.zeros((prim.vertex_count, 4), np.float32))
                uvs.append(np.zeros((prim.vertex_count, 2), np.float32))
                continue
            if prim.tangents is not None:
                tangents.append(prim.tangents.astype(np.float32))
            else:
                normals = prim.normals if prim.normals is not None else vertex_normals(prim.positions, prim.indices)
                tangents.append(tangent_frames(prim.positions, prim.indices, normals, uv))
            uvs.append(uv.astype(np.float32))
        if not tangents:
            return cls(np.zeros((0, 4), np.float32), np.zeros((0, 2), np.float32))
        return cls(np.concatenate(tangents), np.concatenate(uvs))


def perturb_normals(normal: np.ndarray, tangent: np.ndarray, texel: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Shading normals from a tangent-space normal map, glTF 2.0's frame: normalize(x T + y B + z N)
    with N the unit surface normal (k, 3), T the interpolated tangent (k, 4: xyz, w) made orthogonal
    to N, B = w * cross(N, T), and (x, y, z) the texel (k, 3, in 0..1 as stored) mapped to [-1, 1]
    with x, y times normalTexture.scale (OpenGL-style map: +Y up the image). In the normals' float
    type (the bake's float64, the renderer's float32 per pixel)."""
    m = np.asarray(texel, normal.dtype) * 2.0 - 1.0
    m[:, :2] *= scale
    t = tangent[:, :3] - normal * np.einsum("ij,ij->i", normal, tangent[:, :3])[:, None]
    t = _unit(t)
    bitangent = np.cross(normal, t) * np.where(tangent[:, 3:] < 0, -1.0, 1.0).astype(normal.dtype)
    return _unit(m[:, :1] * t + m[:, 1:2] * bitangent + m[:, 2:] * normal)


# ----------------------------------------------------------------------------------------------
# UV layouts


def uv_layout_problem(uvs: np.ndarray | None, indices: np.ndarray, size: int = 256) -> str | None:
    """Why these UVs cannot carry a baked map (None when they can): missing, outside [0, 1]
    (tiling), or overlapping (mirrored or stacked islands: two surfaces would share texels)."""
    if uvs is None:
        return "no UVs"
    tri = indices.reshape(-1, 3)
    t = uvs[tri].astype(np.float64)
    if not np.isfinite(t).all() or t.min() < -1e-3 or t.max() > 1.0 + 1e-3:
        return "UVs outside [0, 1] (tiling)"
    area = 0.5 * np.abs((t[:, 1, 0] - t[:, 0, 0]) * (t[:, 2, 1] - t[:, 0, 1])
                        - (t[:, 2, 0] - t[:, 0, 0]) * (t[:, 1, 1] - t[:, 0, 1]))
    if area.sum() < 1e-6:
        return "UVs with no area"
    owner, _ = _rasterize(t, size)
    claimed = np.count_nonzero(owner >= 0)
    # the raster keeps one triangle per texel, so overlap shows as total UV area above the
    # texels covered (a few percent for the texels islands' edges share)
    covered = claimed / float(size * size)
    if area.sum() > 1.15 * covered + 4.0 / size:
        return f"overlapping UVs ({area.sum():.2f} of UV area on {covered:.2f} of the texture)"
    return None


def fresh_uvs(positions: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A new non-overlapping UV layout (xatlas): (vertex mapping into the input vertices,
    new indices, new UVs in [0, 1]). Vertices on the new seams are duplicated."""
    import xatlas

    vmapping, new_indices, uvs = xatlas.parametrize(positions.astype(np.float32), indices.reshape(-1, 3).astype(np.uint32))
    return vmapping.astype(np.int64), new_indices.reshape(-1).astype(np.uint32), uvs.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Rasterizing in UV space


def _rasterize(t: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Texel centres covered by each UV triangle (t: (m, 3, 2) in [0, 1], glTF v down the image):
    (owner triangle per texel, -1 where none; barycentrics (size, size, 3)). A texel covered twice
    goes to the higher-numbered triangle. Compiled (`rasterizer.uv_raster`, numba): the per-texel
    loop over each triangle's bounding box, 4-10x faster than the vectorized numpy pass it replaced
    (texels gathered in chunks by box), with the same float64 arithmetic and the same owners."""
    from .rasterizer import uv_raster

    owner = np.full(size * size, -1, np.int64)
    bary = np.zeros((size * size, 3), np.float32)
    uv_raster(np.ascontiguousarray(t * size - 0.5, np.float64), size, owner, bary)  # texel centres at integers
    return owner.reshape(size, size), bary.reshape(size, size, 3)


# ----------------------------------------------------------------------------------------------
# Baking


@dataclass
class BakeResult:
    image: np.ndarray  # (size, size, 3) uint8, OpenGL-style tangent-space normals
    tangents: np.ndarray  # (n, 4) glTF TANGENT for the low mesh's vertices
    coverage: float  # share of the texels the low mesh covers that found the high surface
    angle_plain_deg: float  # mean angle between the high surface's normal and the low's own, per texel
    angle_baked_deg: float  # the same with the baked map applied (quantized to 8 bits)

    @property
    def improves(self) -> bool:
        """Worth shipping: the map brings the shading normals at least 1 degree closer on average
        and halves the difference (a level that is already as smooth as its source keeps plain maps)."""
        return self.angle_plain_deg - self.angle_baked_deg >= 1.0 and self.angle_baked_deg <= 0.5 * self.angle_plain_deg


@dataclass
class SurfaceDetail:
    """A model's own normal maps: per triangle its material, per vertex the maps' tangents and UVs,
    per material with a map its decoded texels. Triangles and vertices are numbered over the
    primitives with triangles, in order (as `HighSurface` and the renderer number them)."""

    tri_material: np.ndarray
    streams: NormalMapStreams
    maps: dict[int, tuple[np.ndarray, float]]  # material -> ((h, w, 4) uint8 texels, normalTexture.scale)

    @classmethod
    def of(cls, model: Model, max_side: int) -> "SurfaceDetail | None":
        """The model's normal maps (decoded at most `max_side` on a side), or None without any."""
        from .render import texture_bytes

        prims = [p for p in model.primitives if p.triangle_count]
        maps = {}
        for index, material in enumerate(model.materials):
            if material.normal_texture is not None and any(p.material == index for p in prims):
                try:
                    maps[index] = (texture_bytes(model.image(material.normal_texture).data, max_side),
                                   float(material.normal_texture.scale))
                except (OSError, ValueError):
                    pass  # an undecodable map adds no detail (and shades as if absent)
        if not maps:
            return None
        return cls(np.concatenate([np.full(p.triangle_count, p.material, np.int64) for p in prims]),
                   NormalMapStreams.of(model), maps)

    def apply(self, triangles: np.ndarray, tri: np.ndarray, bary: np.ndarray, normals: np.ndarray) -> np.ndarray:
        """Shading normals at surface points (triangle ids `tri` into the (m, 3) `triangles`,
        barycentrics `bary`): the interpolated unit `normals` perturbed by each material's map,
        in object space (glTF 2.0's shading frame, `perturb_normals`)."""
        from .render import sample_bilinear

        out = normals.copy()
        materials = self.tri_material[tri]
        for material, (texels, scale) in self.maps.items():
            sel = np.flatnonzero(materials == material)
            if not len(sel):
                continue
            corners, w = triangles[tri[sel]], bary[sel]
            uv = interpolate(self.streams.uvs, corners, w)
            frame = interpolate(self.streams.tangents, corners, w)
            out[sel] = perturb_normals(out[sel], frame, sample_bilinear(texels, uv)[:, :3], scale)
        return out


class HighSurface:
    """The detailed surface rays look for: positions, triangles, normals (and the normal maps that
    perturb them, `detail`) and the embree scene, built once for every level baked from it."""

    def __init__(self, positions: np.ndarray, indices: np.ndarray, normals: np.ndarray,
                 detail: SurfaceDetail | None = None):
        from .raycast import RayScene  # Embree: loaded by the processes that bake

        self.tri = indices.reshape(-1, 3).astype(np.int64)
        self.normals = normals.astype(np.float64)
        self.detail = detail
        self.scene = RayScene(positions, self.tri)

    @classmethod
    def of(cls, model: Model, *, normal_map_px: int = 2048) -> "HighSurface":
        """The model's surface; where its materials have normal maps (decoded at most
        `normal_map_px` on a side), their detail is part of the surface's shading normals."""
        prims = [p for p in model.primitives if p.triangle_count]
        offsets = np.cumsum([0] + [p.vertex_count for p in prims])[:-1]
        return cls(np.concatenate([p.positions for p in prims]),
                   np.concatenate([p.indices.astype(np.int64) + o for p, o in zip(prims, offsets)]),
                   np.concatenate([p.normals if p.normals is not None else vertex_normals(p.positions, p.indices)
                                   for p in prims]), SurfaceDetail.of(model, normal_map_px))


def bake_normal_map(high: tuple[np.ndarray, np.ndarray, np.ndarray] | HighSurface,
                    low: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], *, size: int = 512,
                    max_distance_m: float) -> BakeResult:
    """Bake the high surface's shading normals onto the low mesh's UV layout.

    high: (positions, indices, normals) of the detailed surface (LOD0 or the normalized source), or
      a HighSurface; with `HighSurface.of` a source's own normal maps are part of those normals
      (sampled at the hit point, taken to object space through the high surface's tangent frame),
      so the baked map carries the source map's detail and the geometry's at once.
    low: (positions, indices, normals, uvs) of the simplified level; its UVs must be usable
      (`uv_layout_problem` is None; else lay out `fresh_uvs` first).
    max_distance_m: how far from the low surface to look for the high one, along the low normal,
      both ways (the level's measured error bounds it).
    Texels no triangle covers stay flat (128, 128, 255), as do texels whose rays miss.
    """
    from . import rasterizer  # numba, as in `_rasterize`

    if not isinstance(high, HighSurface):
        high = HighSurface(*high)
    lp, li, ln, luv = low
    tri = li.reshape(-1, 3)
    tangents = tangent_frames(lp, li, ln, luv)
    owner, bary = _rasterize(luv[tri].astype(np.float64), size)
    covered = owner >= 0
    point, normal, tangent, bitangent = rasterizer.texel_frames(
        lp, ln, tangents, np.ascontiguousarray(tri[owner[covered]], np.int64), bary[covered].astype(np.float64))

    best_t = np.full(len(point), np.inf, np.float32)
    best_prim = np.full(len(point), -1, np.int64)
    best_u, best_v = np.zeros(len(point), np.float32), np.zeros(len(point), np.float32)
    origins = point.astype(np.float32)
    for sign in (1.0, -1.0):  # outward and inward: the high surface can be on either side
        prim, t, u, v = high.scene.cast(origins, (normal * sign).astype(np.float32), max_distance_m)
        better = np.flatnonzero((prim >= 0) & (t < best_t))
        best_t[better], best_prim[better], best_u[better], best_v[better] = t[better], prim[better], u[better], v[better]
    found = best_prim >= 0
    high_normal = normal.copy()
    hit_normal = rasterizer.hit_normals(high.normals, high.tri, best_prim[found], best_u[found], best_v[found])
    if high.detail is not None:  # the source's own normal map at the hit, through the high TBN
        hb = np.stack([1.0 - (best_u[found].astype(np.float64) + best_v[found]), best_u[found], best_v[found]], 1)
        hit_normal = high.detail.apply(high.tri, best_prim[found], hb, hit_normal)
    high_normal[found] = hit_normal

    encoded, plain, baked = rasterizer.encode_texels(high_normal, normal, tangent, bitangent)
    image = np.empty((size, size, 3), np.uint8)
    image[:] = (128, 128, 255)
    image[covered] = encoded
    plain, baked = plain[found], baked[found]
    return BakeResult(image=_dilate(image, covered, 4), tangents=tangents,
                      coverage=float(found.mean()) if len(found) else 0.0,
                      angle_plain_deg=float(plain.mean()) if len(plain) else 0.0,
                      angle_baked_deg=float(baked.mean()) if len(baked) else 0.0)


def _dilate(image: np.ndarray, covered: np.ndarray, passes: int) -> np.ndarray:
    """Grow the islands by `passes` texels (edge padding) so mipmaps and bilinear filtering at
    UV seams do not blend in the flat background."""
    img = image.copy()
    filled = covered.copy()
    for _ in range(passes):
        grown = filled.copy()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            src = np.roll(filled, (dy, dx), axis=(0, 1))
            take = src & ~grown
            img[take] = np.roll(img, (dy, dx), axis=(0, 1))[take]
            grown |= take
        filled = grown
    return img


def mean_angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Mean angle between rows of two unit-vector arrays, in degrees (for tests and reports)."""
    return float(np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", _unit(a), _unit(b)), -1, 1))).mean()) \
        if len(a) else math.nan


# ----------------------------------------------------------------------------------------------
# A chain's levels


@dataclass
class LevelBake:
    """The bake of one LOD level: per material, the map (None where plain maps are kept) and why."""

    level: int
    maps: dict[int, np.ndarray]  # material index -> (size, size, 3) uint8, only where the bake helps
    tangents: dict[int, np.ndarray]  # primitive index -> (n, 4) glTF TANGENT, for the primitives mapped
    notes: list[str]
    angle_plain_deg: float = math.nan  # area-weighted over the level's baked materials
    angle_baked_deg: float = math.nan

    @property
    def used(self) -> bool:
        return bool(self.maps)


def bake_level(high: HighSurface, low: Model, level: int, *, size: int, max_distance_m: float) -> LevelBake:
    """Bake one simplified level from the high surface, material by material, on the level's own
    UVs. Whether the maps ship is decided by how the level looks with them
    (`lod_look.judge_level`: the rendered shading difference at the level's switch size).
    Materials whose UVs cannot carry a map (missing, tiling, overlapping) keep plain maps and
    say why: a fresh xatlas layout (`fresh_uvs`) would also need the base colour re-baked onto it,
    which Kiln does not do yet, so it is only used by callers for untextured materials."""
    out = LevelBake(level, {}, {}, [])
    plain, baked, weights = [], [], []
    for material in sorted({p.material for p in low.primitives}):
        prims = [(i, p) for i, p in enumerate(low.primitives) if p.material == material and p.triangle_count]
        if any(p.uvs is None or p.normals is None for _, p in prims):
            out.notes.append(f"material {material}: no UVs or normals to bake onto; plain maps")
            continue
        offsets = np.cumsum([0] + [p.vertex_count for _, p in prims])[:-1]
        pos = np.concatenate([p.positions for _, p in prims])
        idx = np.concatenate([p.indices.astype(np.int64) + o for (_, p), o in zip(prims, offsets)]).astype(np.uint32)
        nrm = np.concatenate([p.normals for _, p in prims])
        uvs = np.concatenate([p.uvs for _, p in prims])
        problem = uv_layout_problem(uvs, idx, size=min(size, 256))
        if problem:
            out.notes.append(f"material {material}: {problem}; plain maps")
            continue
        result = bake_normal_map(high, (pos, idx, nrm, uvs), size=size, max_distance_m=max_distance_m)
        if result.coverage == 0.0:
            out.notes.append(f"material {material}: no ray found the source surface; plain maps")
            continue
        out.maps[material] = result.image
        for (i, p), o in zip(prims, offsets):
            out.tangents[i] = result.tangents[o:o + p.vertex_count]
        w = float(len(idx))
        plain.append(result.angle_plain_deg * w)
        baked.append(result.angle_baked_deg * w)
        weights.append(w)
    if weights:
        out.angle_plain_deg = sum(plain) / sum(weights)
        out.angle_baked_deg = sum(baked) / sum(weights)
    return out


def with_baked_normals(low: Model, bake: LevelBake) -> tuple[Model, list[int]]:
    """`low` with each baked map as its material's normal texture (TEXCOORD_0, PNG) and the bake's
    tangents on the mapped primitives; returns (model, material indices written).

    A material with its own normal map gets the baked map in its place: the bake combines that
    map's detail with the geometry's (`HighSurface.of`), so the source map, drawn for the source's
    surface, is not needed. Its image is replaced where no other slot uses it, so the level carries
    no unused image. Other levels are untouched: the level gets its own copies of the materials."""
    import dataclasses
    import io

    from PIL import Image

    from .model import Texture, TextureRef

    materials, textures, written = list(low.materials), list(low.textures), []
    uses = low.texture_uses()
    for index, pixels in sorted(bake.maps.items()):
        out = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(out, format="PNG", compress_level=4)
        image = Texture(out.getvalue(), "image/png", name=f"{materials[index].name}_LOD{bake.level}_normal")
        own = materials[index].normal_texture
        if own is not None and uses.get(own.texture) == [(index, "normal")]:
            textures[own.texture] = image
            ref = TextureRef(texture=own.texture, sampler=own.sampler)
        else:
            textures.append(image)
            ref = TextureRef(texture=len(textures) - 1)
        materials[index] = dataclasses.replace(materials[index], normal_texture=ref)
        written.append(index)
    primitives = [dataclasses.replace(p, tangents=bake.tangents[i]) if p.material in written and i in bake.tangents
                  else p for i, p in enumerate(low.primitives)]
    return dataclasses.replace(low, primitives=primitives, materials=materials, textures=textures), written
