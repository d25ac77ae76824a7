"""A simplified convex collision mesh for engines (Unreal `UCX_`, Godot `-colonly`).

The convex hull of a level's vertices, reduced to at most `max_vertices` hull points by farthest
point sampling (seeded with the six axis extremes, so the bounds survive) and re-hulled, so the
result is convex by construction and never pokes outside the model. Faces wind outward (counter-
clockwise seen from outside), as glTF and the engines' physics cookers expect.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull, QhullError

from pipeline.geometry.model import Material, Model, Primitive

DEFAULT_MAX_VERTICES = 32  # a physics-friendly budget (PhysX caps hulls at 255; Unreal's decomposition defaults to 16)
MIN_THICKNESS_M = 0.001  # a flat model (a sign, a leaf) still gets a hull with volume


def _farthest_points(points: np.ndarray, count: int) -> np.ndarray:
    """Indices of `count` points spread over the set, starting from the axis extremes."""
    seeds = list(dict.fromkeys(int(i) for i in np.concatenate([points.argmin(axis=0), points.argmax(axis=0)])))
    chosen = seeds[:count]
    distance = np.min(np.linalg.norm(points[:, None, :] - points[chosen][None, :, :], axis=2), axis=1)
    while len(chosen) < count:
        nxt = int(distance.argmax())
        if distance[nxt] <= 0:
            break
        chosen.append(nxt)
        distance = np.minimum(distance, np.linalg.norm(points - points[nxt], axis=1))
    return np.asarray(chosen)


def _box(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])


def _hull(points: np.ndarray) -> ConvexHull | None:
    try:
        return ConvexHull(points)
    except (QhullError, ValueError):
        return None


def convex_collision(model: Model, max_vertices: int = DEFAULT_MAX_VERTICES, name: str | None = None) -> Model:
    """A closed convex triangle mesh around `model` with at most `max_vertices` vertices."""
    if max_vertices < 8:
        raise ValueError(f"max_vertices must be at least 8 (a box), not {max_vertices}")
    points = np.concatenate([p.positions for p in model.primitives if p.vertex_count]).astype(np.float64)
    if len(points) == 0:
        raise ValueError(f"model {model.name!r} has no vertices to wrap in a collision hull")
    hull = _hull(points)
    if hull is None:  # coplanar or degenerate: thicken its bounds into a box
        lo, hi = points.min(axis=0), points.max(axis=0)
        pad = np.maximum(MIN_THICKNESS_M - (hi - lo), 0) / 2
        points = _box(lo - pad, hi + pad)
        hull = ConvexHull(points)
    vertices = points[hull.vertices]
    if len(vertices) > max_vertices:
        reduced = _hull(vertices[_farthest_points(vertices, max_vertices)])
        if reduced is not None:
            vertices, hull = reduced.points, reduced
    tri = hull.simplices.copy()
    # Qhull's simplices have arbitrary winding: flip those whose normal disagrees with the facet's outward plane normal.
    v = hull.points
    normals = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    flip = np.einsum("ij,ij->i", normals, hull.equations[:, :3]) < 0
    tri[flip] = tri[flip][:, [0, 2, 1]]
    used, remap = np.unique(tri, return_inverse=True)
    return Model(
        primitives=[Primitive(positions=v[used], indices=remap.reshape(-1).astype(np.uint32))],
        materials=[Material(name="collision", base_color_factor=(0.2, 0.8, 0.3, 1.0))],
        name=name or f"{model.name}_collision",
    )
