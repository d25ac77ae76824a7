"""Embree called directly (`geometry.raycast`): hits checked against the geometry itself."""

import numpy as np
import pytest

from pipeline.geometry.raycast import RayScene
from tests.test_lod import sphere_grid


def test_rays_hit_the_nearest_triangle_with_its_distance_and_barycentrics():
    pos, idx, _ = sphere_grid(48, 32)  # a closed sphere, radius 0.5 around (0, 0.5, 0)
    tri = idx.reshape(-1, 3).astype(np.int64)
    scene = RayScene(pos, tri)
    rng = np.random.default_rng(4)
    n = 3000
    origins = (rng.normal(size=(n, 3)) * 0.1 + [0, 0.5, 0]).astype(np.float32)  # inside
    directions = rng.normal(size=(n, 3)).astype(np.float32)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    prim, t, u, v = scene.cast(origins, directions, 10.0)
    assert (prim >= 0).all()  # from inside a closed surface every ray hits
    corners = pos[tri[prim]].astype(np.float64)
    on_triangle = (1 - u - v)[:, None] * corners[:, 0] + u[:, None] * corners[:, 1] + v[:, None] * corners[:, 2]
    along_ray = origins + t[:, None] * directions
    np.testing.assert_allclose(on_triangle, along_ray, atol=1e-5)  # the hit point, two ways
    assert ((u >= -1e-6) & (v >= -1e-6) & (u + v <= 1 + 1e-6)).all()
    # the first hit: the nearest crossing of all triangles, by brute force (Moller-Trumbore)
    for k in range(0, n, 10):
        e1, e2 = (pos[tri[:, 1]] - pos[tri[:, 0]]).astype(np.float64), (pos[tri[:, 2]] - pos[tri[:, 0]]).astype(np.float64)
        p = np.cross(directions[k].astype(np.float64), e2)
        det = np.einsum("ij,ij->i", e1, p)
        s = origins[k] - pos[tri[:, 0]].astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            bu = np.einsum("ij,ij->i", s, p) / det
            q = np.cross(s, e1)
            bv = (q @ directions[k].astype(np.float64)) / det
            bt = np.einsum("ij,ij->i", e2, q) / det
        crossed = (np.abs(det) > 1e-12) & (bu >= 0) & (bv >= 0) & (bu + bv <= 1) & (bt > 0)
        assert t[k] == pytest.approx(bt[crossed].min(), abs=1e-5)

    # tfar bounds the search; rays pointing away from an outside surface miss
    short = scene.cast(origins, directions, 0.05)[0]
    assert (short == -1).all()
    outside = np.float32([[0, 0.5, 3.0]])
    assert scene.cast(outside, np.float32([[0, 0, 1]]), 100.0)[0][0] == -1
    hit = scene.cast(outside, np.float32([[0, 0, -1]]), 100.0)
    assert hit[0][0] >= 0 and hit[1][0] == pytest.approx(2.5, abs=2e-3)  # the near side, not the far one
    # per-ray limits
    prim, _, _, _ = scene.cast(np.repeat(outside, 2, 0), np.float32([[0, 0, -1]] * 2), np.float32([2.0, 3.0]))
    assert prim[0] == -1 and prim[1] >= 0


def test_an_empty_scene_misses_and_bad_indices_are_refused():
    prim, t, _, _ = RayScene(np.zeros((0, 3)), np.zeros((0, 3), np.int64)).cast(
        np.zeros((2, 3)), np.float32([[0, 0, 1]] * 2), 1.0)
    assert (prim == -1).all()
    with pytest.raises(ValueError, match="out of range"):
        RayScene(np.zeros((3, 3)), np.int64([[0, 1, 3]]))
