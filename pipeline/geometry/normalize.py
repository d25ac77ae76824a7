"""Normalization: the clean-up every model gets before its LOD chain.

Generated meshes arrive with duplicated vertices, zero-area and doubled triangles, crumbs of
floating geometry, no normals and arbitrary units; imports arrive Z-up or off-centre. `normalize`
turns any `Model` into one the LOD chain and the engines can trust:

1. primitives that share a material (and the same attributes) are merged: one draw call each;
2. the up axis is rotated to +Y (glTF's convention);
3. vertices identical in position and every vertex stream (normal, UV sets, colour, tangent) are
   welded (exact equality, as meshoptimizer's vertex remap does: attribute seams stay seams);
4. triangles with a non-finite corner, two corners at one position or zero area are dropped, and
   so are exact duplicates (the same three positions in the same winding; the reverse winding is a
   deliberate back face and is kept);
5. floating pieces (connected by shared positions) whose bounding box diagonal is below
   `min_piece_fraction` of the model's are removed; the biggest piece always stays;
6. missing or invalid normals are computed (area-weighted, smooth across UV seams, since generated
   meshes are organic surfaces), all normals are made unit length; tangents turn with the up axis
   and keep their handedness (rotation and uniform scale leave MikkTSpace tangents valid);
7. the model is scaled to `target_height_m` (glTF units are meters, so without a target the scale
   stays 1) and moved so its pivot is at the bottom centre: min y = 0, x and z centred.

Everything is vectorized numpy; the report counts what each step did, for the asset's metadata.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .model import Model, Primitive, column_range

# Triangles with a NaN or infinite corner are dropped, out loud (`nonfinite_triangles`); when more
# than this share of the model is broken, the file itself is suspect (a bad export, a corrupt
# download) and normalization refuses it instead of shipping what is left.
DEFAULT_MAX_NONFINITE_SHARE = 0.05
DEFAULT_MIN_PIECE_FRACTION = 0.01  # 1% of the model's diagonal: crumbs, not eyes or buttons
# A triangle whose doubled area is below this fraction of the squared diagonal has collinear
# corners to float32 precision (about 1e-7 of the model's size per coordinate).
_ZERO_AREA = 1e-14

# Rotations taking each up axis to +Y (proper rotations, so triangle winding is unchanged).
UP_AXES: dict[str, np.ndarray] = {
    "+Y": np.eye(3),
    "-Y": np.array([[1, 0, 0], [0, -1, 0], [0, 0, -1]], np.float64),
    "+Z": np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], np.float64),  # Blender/3ds Max/Unreal style
    "-Z": np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float64),
    "+X": np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]], np.float64),
    "-X": np.array([[0, 1, 0], [-1, 0, 0], [0, 0, 1]], np.float64),
}


class NormalizeError(ValueError):
    """The model cannot be normalized (nothing left to keep); the message says why."""


@dataclass
class NormalizeReport:
    """What normalization changed, in plain JSON types (goes into the asset's metadata)."""

    triangles_in: int = 0
    vertices_in: int = 0
    primitives_in: int = 0
    triangles_out: int = 0
    vertices_out: int = 0
    primitives_out: int = 0
    welded_vertices: int = 0  # vertices merged into an identical one (or left unreferenced)
    nonfinite_triangles: int = 0  # a corner with NaN/inf coordinates
    nonfinite_share: float = 0.0  # nonfinite_triangles / triangles_in
    nonfinite_uvs: int = 0  # vertices whose NaN/inf UV was set to (0, 0)
    degenerate_triangles: int = 0  # two corners at one position, or zero area
    duplicate_triangles: int = 0  # same three positions, same winding, in one primitive
    pieces: int = 0  # connected pieces before removing floaters
    floating_pieces_removed: int = 0
    floating_triangles_removed: int = 0
    min_piece_size_m: float = 0.0  # bounding-box diagonal below which a piece counted as a floater
    normals_computed: int = 0  # vertices whose normal was missing or invalid
    up_axis: str = "+Y"
    scale: float = 1.0  # applied uniformly after cleaning; 1.0 when no target height was given
    scaled_by: str = "none"  # "height", "largest_dimension" (flat model) or "none"
    translation_m: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # applied after scaling
    source_size: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # x, y, z before scaling
    size_m: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # x, y, z after

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def normalize(
    model: Model,
    *,
    min_piece_fraction: float = DEFAULT_MIN_PIECE_FRACTION,
    target_height_m: float | None = None,
    up_axis: str = "+Y",
    max_nonfinite_share: float = DEFAULT_MAX_NONFINITE_SHARE,
) -> tuple[Model, NormalizeReport]:
    """A cleaned, +Y-up, bottom-centred copy of `model` in meters, and what was done to it.

    - `min_piece_fraction`: pieces whose bounding-box diagonal is below this fraction of the whole
      model's diagonal are removed (0 keeps everything).
    - `target_height_m`: scale so the height (Y extent) is this many meters; None keeps the units
      (glTF's are meters). A model with no height is scaled by its largest dimension instead.
    - `up_axis`: the axis that points up in the source ("+Y", "+Z", ...); rotated to +Y.
    - `max_nonfinite_share`: triangles with a NaN/infinite corner are dropped and counted; above this
      share of all triangles the model is refused instead.

    Raises `NormalizeError` when no triangle survives (or there was none), or too many were broken.
    """
    if up_axis not in UP_AXES:
        raise ValueError(f"up_axis {up_axis!r} is not one of {', '.join(UP_AXES)}")
    if target_height_m is not None and not target_height_m > 0:
        raise ValueError(f"target_height_m must be positive, got {target_height_m!r}")
    report = NormalizeReport(
        triangles_in=model.triangle_count, vertices_in=model.vertex_count,
        primitives_in=len(model.primitives), up_axis=up_axis,
    )
    prims = _merge_by_material(model.primitives)
    rotation = UP_AXES[up_axis]
    parts = []
    for p in prims:
        pos = p.positions.astype(np.float64)
        nrm = None if p.normals is None else p.normals.astype(np.float64)
        extra = {k: v for k, v in p.streams().items() if k != "normals"}
        if up_axis != "+Y":
            pos = pos @ rotation.T
            nrm = None if nrm is None else nrm @ rotation.T
            if "tangents" in extra:
                t = extra["tangents"]
                extra["tangents"] = np.concatenate([t[:, :3] @ rotation.T.astype(np.float32), t[:, 3:]], axis=1)
        parts.append(_Part(pos, p.triangles.astype(np.int64), nrm, extra, p))
    if not any(len(p.tri) for p in parts):
        raise NormalizeError("the model has no triangles to normalize")

    # Non-finite corners poison bounds, welding and normals: drop those triangles first.
    for p in parts:
        bad = ~np.isfinite(p.pos).all(axis=1)
        if bad.any():
            keep = ~bad[p.tri].any(axis=1)
            report.nonfinite_triangles += int((~keep).sum())
            p.tri = p.tri[keep]
        for name in ("uvs", "uv1"):
            uvs = p.extra.get(name)
            if uvs is None:
                continue
            bad_uv = ~np.isfinite(uvs).all(axis=1)
            if bad_uv.any():  # a texture lookup at NaN is undefined in every engine; (0, 0) is one texel
                p.extra[name] = np.where(bad_uv[:, None], 0.0, uvs).astype(np.float32)
                report.nonfinite_uvs += int(bad_uv.sum())
    report.nonfinite_share = report.nonfinite_triangles / max(report.triangles_in, 1)
    parts = [p for p in parts if len(p.tri)]
    if not parts:
        raise NormalizeError("no triangle is left after dropping those with NaN or infinite corners")
    if report.nonfinite_share > max_nonfinite_share:
        raise NormalizeError(
            f"{report.nonfinite_triangles} of {report.triangles_in} triangles ({report.nonfinite_share:.1%}) have "
            f"NaN or infinite corners, more than the {max_nonfinite_share:.0%} Kiln repairs by dropping them; "
            "export the model again")

    # glTF asks for flat normals where a mesh has none. A triangle soup (no vertex shared by two
    # triangles) can carry them, and its author kept every corner apart, so it gets them; an
    # indexed mesh shares vertices, whose one normal can only be smooth (see _fill_normals).
    for p in parts:
        if p.nrm is None and len(p.tri) and np.bincount(p.tri.reshape(-1)).max() == 1:
            p.nrm = np.zeros_like(p.pos)
            p.nrm[p.tri.reshape(-1)] = np.repeat(_unit_rows(_face_normals(p.pos, p.tri)), 3, axis=0)
            report.normals_computed += p.tri.size

    for p in parts:
        before = len(p.pos)
        p.weld()
        report.welded_vertices += before - len(p.pos)

    # One id per distinct position across the whole model: the topology that degenerate,
    # duplicate and connectivity tests and smooth normals share.
    all_pos = np.concatenate([p.pos for p in parts])
    unique_pos, pid = _unique_rows(all_pos.astype(np.float32))
    start = 0
    for p in parts:
        p.pid = pid[start : start + len(p.pos)]
        start += len(p.pos)
    lo, hi = (v.astype(np.float64) for v in column_range(unique_pos))
    diag = float(np.linalg.norm(hi - lo))

    for p in parts:
        t = p.pid[p.tri]
        degenerate = degenerate_mask(p.pos, p.tri, ids=p.pid, diagonal=diag)
        report.degenerate_triangles += int(degenerate.sum())
        p.tri, t = p.tri[~degenerate], t[~degenerate]
        # Rotate each triangle so its smallest id comes first: same winding, one spelling.
        first = np.argmin(t, axis=1)
        canonical = np.take_along_axis(t, (first[:, None] + np.arange(3)) % 3, axis=1)
        keep = _unique_triangles(canonical, len(unique_pos))
        report.duplicate_triangles += len(t) - len(keep)
        p.tri = p.tri[keep]

    if min_piece_fraction > 0:
        _remove_floaters(parts, unique_pos, diag * min_piece_fraction, report)

    parts = [p for p in parts if len(p.tri)]
    if not parts:
        raise NormalizeError("no triangle is left after dropping degenerate ones (zero area or repeated corners)")
    for p in parts:
        p.compact()
    report.normals_computed += _fill_normals(parts, len(unique_pos))

    lo, hi = column_range(*(p.pos for p in parts))
    size = hi - lo
    report.source_size = [float(v) for v in size]
    scale = 1.0
    if target_height_m is not None:
        if size[1] > 1e-9 * max(float(size.max()), 1e-30):
            scale, report.scaled_by = target_height_m / float(size[1]), "height"
        elif size.max() > 0:
            scale, report.scaled_by = target_height_m / float(size.max()), "largest_dimension"
    translation = -np.array([(lo[0] + hi[0]) / 2, lo[1], (lo[2] + hi[2]) / 2]) * scale
    report.scale = float(scale)
    report.min_piece_size_m = float(diag * min_piece_fraction * scale)
    report.translation_m = [float(v) + 0.0 for v in translation]  # + 0.0: no "-0.0" in metadata
    report.size_m = [float(v) for v in size * scale]

    out = []
    for p in parts:
        out.append(p.source.with_vertices(p.pos * scale + translation, p.tri.reshape(-1), normals=p.nrm,
                                          **p.extra))
    report.triangles_out = sum(q.triangle_count for q in out)
    report.vertices_out = sum(q.vertex_count for q in out)
    report.primitives_out = len(out)
    return replace(model, primitives=out, materials=list(model.materials)), report


class _Part:
    """One primitive while it is being cleaned (float64 positions, (m, 3) int64 triangles)."""

    def __init__(self, pos: np.ndarray, tri: np.ndarray, nrm: np.ndarray | None, extra: dict[str, np.ndarray],
                 source: Primitive):
        # extra: the other vertex streams (UV sets, colours, tangents), carried row for row.
        self.pos, self.tri, self.nrm, self.extra, self.source = pos, tri, nrm, extra, source
        self.pid = np.zeros(0, np.int64)

    def weld(self) -> None:
        """Merge vertices whose position and every stream are bit-identical; drop unreferenced ones."""
        self.compact()
        columns = [self.pos.astype(np.float32)]
        if self.nrm is not None:
            columns.append(self.nrm.astype(np.float32))
        columns += [v.astype(np.float32) for v in self.extra.values()]
        _, first, inverse = _unique_rows(np.concatenate(columns, axis=1), return_first=True)
        self._take(first)
        self.tri = inverse[self.tri]

    def compact(self) -> None:
        used = np.zeros(len(self.pos), bool)
        used[self.tri.reshape(-1)] = True
        remap = np.cumsum(used) - 1
        self._take(np.flatnonzero(used))
        self.tri = remap[self.tri]

    def _take(self, rows: np.ndarray) -> None:
        self.pos = self.pos[rows]
        self.nrm = None if self.nrm is None else self.nrm[rows]
        self.extra = {k: v[rows] for k, v in self.extra.items()}
        if len(self.pid):
            self.pid = self.pid[rows]


def _unique_rows(rows: np.ndarray, return_first: bool = False):
    """Unique rows by their exact bits (-0.0 counts as 0.0), numbered in order of first appearance
    (which keeps whatever vertex locality the source had): (unique[, first index], inverse)."""
    rows = np.ascontiguousarray(rows + rows.dtype.type(0))  # -0.0 + 0.0 == +0.0
    bits = rows.view(np.uint32 if rows.dtype.itemsize == 4 else np.uint64)
    order = np.lexsort(bits.T[::-1])  # a radix-friendly sort of integer columns, no row objects
    sorted_bits = bits[order]
    new_run = np.empty(len(rows), bool)
    new_run[:1] = True
    new_run[1:] = (sorted_bits[1:] != sorted_bits[:-1]).any(axis=1)
    run = np.cumsum(new_run) - 1
    # lexsort is stable, so the first row of each run is that value's first appearance.
    first = order[new_run]
    by_appearance = np.argsort(first, kind="stable")
    rank = np.empty_like(by_appearance)
    rank[by_appearance] = np.arange(len(by_appearance))
    inverse = np.empty(len(rows), np.int64)
    inverse[order] = rank[run]
    first = first[by_appearance]
    if return_first:
        return rows[first], first, inverse
    return rows[first], inverse


def _unique_triangles(t: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first occurrence of each distinct (m, 3) id triple, ascending."""
    if n < 2**21:  # three ids fit one int64 key: a plain 1-D unique
        keys = (t[:, 0] * n + t[:, 1]) * n + t[:, 2]
        _, keep = np.unique(keys, return_index=True)
    else:
        _, keep = np.unique(t, axis=0, return_index=True)
    return np.sort(keep)


def _merge_by_material(prims: list[Primitive]) -> list[Primitive]:
    """One primitive per (material, variant mappings, attribute layout): fewer draw calls, one
    welding pass each."""
    groups: dict[tuple[Any, ...], list[Primitive]] = {}
    for p in prims:
        if p.triangle_count:
            layout = tuple((k, v.shape[1], v.dtype.str) for k, v in p.streams().items())
            groups.setdefault((p.material, p.variants, layout), []).append(p)
    merged = []
    for group in groups.values():
        if len(group) == 1:
            merged.append(group[0])
            continue
        offsets = np.cumsum([0] + [p.vertex_count for p in group[:-1]])
        merged.append(group[0].with_vertices(
            np.concatenate([p.positions for p in group]),
            np.concatenate([p.indices.astype(np.int64) + o for p, o in zip(group, offsets)]),
            **{k: np.concatenate([getattr(p, k) for p in group]) for k in group[0].streams()}))
    return merged


def _remove_floaters(parts: list[_Part], unique_pos: np.ndarray, min_size: float, report: NormalizeReport) -> None:
    n = len(unique_pos)
    tris = np.concatenate([p.pid[p.tri] for p in parts])
    if not len(tris):
        return
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges), np.int8), (edges[:, 0], edges[:, 1])), shape=(n, n)).tocsr()
    count, label = connected_components(graph, directed=False)
    used = np.zeros(n, bool)
    used[tris.reshape(-1)] = True
    tri_label = label[tris[:, 0]]
    report.pieces = int(len(np.unique(tri_label)))
    if report.pieces < 2:
        return
    # Per-piece bounding boxes: sort the used positions by piece, reduce each run.
    ids = np.flatnonzero(used)
    order = ids[np.argsort(label[ids], kind="stable")]
    sorted_labels = label[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    pos = unique_pos[order].astype(np.float64)
    piece_diag = np.zeros(count)
    piece_diag[sorted_labels[starts]] = np.linalg.norm(
        np.maximum.reduceat(pos, starts, axis=0) - np.minimum.reduceat(pos, starts, axis=0), axis=1)
    tri_count = np.bincount(tri_label, minlength=count)
    remove = piece_diag < min_size
    remove[np.argmax(tri_count)] = False  # never remove the main body
    remove[tri_count == 0] = False
    report.floating_pieces_removed = int(remove.sum())
    report.floating_triangles_removed = int(tri_count[remove].sum())
    if not remove.any():
        return
    for p in parts:
        p.tri = p.tri[~remove[label[p.pid[p.tri[:, 0]]]]]


def degenerate_mask(positions: np.ndarray, triangles: np.ndarray, *, ids: np.ndarray | None = None,
                    diagonal: float | None = None) -> np.ndarray:
    """True for each (m, 3) triangle with two corners on one vertex (or one position id in `ids`)
    or zero area: its doubled area below 1e-14 of the squared `diagonal` (default: of its bounds),
    i.e. collinear corners to float32 precision."""
    triangles = np.asarray(triangles, np.int64).reshape(-1, 3)
    if not len(triangles):
        return np.zeros(0, bool)
    positions = np.asarray(positions, np.float64)
    if diagonal is None:
        used = positions[triangles.reshape(-1)]
        low, high = column_range(used)
        diagonal = float(np.linalg.norm(high - low))
    t = triangles if ids is None else ids[triangles]
    cross = _face_normals(positions, triangles)
    area2 = np.einsum("ij,ij->i", cross, cross)
    return (t[:, 0] == t[:, 1]) | (t[:, 1] == t[:, 2]) | (t[:, 0] == t[:, 2]) \
        | (area2 <= (_ZERO_AREA * diagonal * diagonal) ** 2)


def _face_normals(pos: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Unnormalized (length = 2 x area) face normals, float64."""
    return np.cross(pos[tri[:, 1]] - pos[tri[:, 0]], pos[tri[:, 2]] - pos[tri[:, 0]])


def _unit_rows(v: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; zero rows become +Y."""
    length = np.linalg.norm(v, axis=1, keepdims=True)
    return np.where(length > 0, v / np.where(length > 0, length, 1.0), [0.0, 1.0, 0.0])


def _fill_normals(parts: list[_Part], n_positions: int) -> int:
    """Compute smooth normals where missing or invalid; make all unit length. Returns how many were computed."""
    acc = np.zeros((n_positions, 3))
    for p in parts:
        face = _face_normals(p.pos, p.tri)
        corners = p.pid[p.tri].reshape(-1)
        for axis in range(3):  # bincount is far faster than np.add.at for scatter-adds
            acc[:, axis] += np.bincount(corners, np.repeat(face[:, axis], 3), minlength=n_positions)
    smooth = _unit_rows(acc)
    computed = 0
    for p in parts:
        if p.nrm is None:
            p.nrm = smooth[p.pid]
            computed += len(p.pos)
            continue
        length = np.linalg.norm(p.nrm, axis=1)
        bad = ~np.isfinite(length) | (length < 1e-6)
        p.nrm = np.where(bad[:, None], smooth[p.pid], p.nrm / np.where(bad, 1.0, length)[:, None])
        computed += int(bad.sum())
    return computed
