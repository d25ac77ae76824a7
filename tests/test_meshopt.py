"""The meshoptimizer shim: every wrapped function against results known in advance.

Decoders from the PyPI package are the reference for our encoders (they are the package's own,
independent of our ctypes signatures).
"""

from __future__ import annotations

import meshoptimizer as package
import numpy as np
import pytest

from pipeline.geometry import meshopt


def grid(n: int, *, soup: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat n x n quad grid in the XZ plane (1 m square): positions, flat uint32 indices, UVs.
    `soup`: every triangle gets its own three vertices (what an unwelded export looks like)."""
    xs = np.linspace(0.0, 1.0, n + 1, dtype=np.float32)
    gx, gz = np.meshgrid(xs, xs)
    positions = np.stack([gx, np.zeros_like(gx), gz], -1).reshape(-1, 3)
    uvs = np.stack([gx, gz], -1).reshape(-1, 2)
    ids = np.arange((n + 1) ** 2).reshape(n + 1, n + 1)
    a, b, c, d = ids[:-1, :-1], ids[:-1, 1:], ids[1:, :-1], ids[1:, 1:]
    indices = np.concatenate([np.stack([a, c, b], -1).reshape(-1, 3), np.stack([b, c, d], -1).reshape(-1, 3)])
    indices = indices.reshape(-1).astype(np.uint32)
    if soup:
        return positions[indices], np.arange(len(indices), dtype=np.uint32), uvs[indices]
    return positions, indices, uvs


def wavy_grid(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A grid with height noise, triangles in random order (a poor vertex cache order)."""
    positions, indices, _ = grid(n)
    rng = np.random.default_rng(seed)
    positions = positions.copy()
    positions[:, 1] = 0.05 * np.sin(9 * positions[:, 0]) * np.cos(7 * positions[:, 2])
    tri = indices.reshape(-1, 3)[rng.permutation(len(indices) // 3)]
    return positions, tri.reshape(-1).copy()


def triangle_set(positions: np.ndarray, indices: np.ndarray) -> set:
    """Triangles as position triples, rotation-invariant (winding kept)."""
    out = set()
    for tri in positions[indices.reshape(-1, 3)]:
        corners = [tuple(np.round(v, 6)) for v in tri]
        k = corners.index(min(corners))
        out.add(tuple(corners[k:] + corners[:k]))
    return out


def acmr(indices: np.ndarray, cache_size: int = 16) -> float:
    """Average cache miss ratio (vertex transforms per triangle) of a FIFO post-transform cache."""
    cache: list[int] = []
    misses = 0
    for v in indices.tolist():
        if v not in cache:
            misses += 1
            cache.append(v)
            if len(cache) > cache_size:
                cache.pop(0)
    return misses / (len(indices) // 3)


# ----------------------------------------------------------------------------------------------
# Indexing


def test_vertex_remap_welds_a_triangle_soup_to_the_grid_vertices():
    positions, indices, _ = grid(8, soup=True)
    remap, unique = meshopt.generate_vertex_remap(positions, indices)
    assert unique == 9 * 9
    welded = meshopt.remap_vertex_buffer(positions, remap, unique)
    new_indices = meshopt.remap_index_buffer(indices, remap)
    assert welded.shape == (81, 3) and welded.dtype == np.float32
    assert new_indices.dtype == np.uint32 and new_indices.max() == 80
    assert triangle_set(welded, new_indices) == triangle_set(positions, indices)


def test_weld_keeps_a_uv_seam_split():
    positions, indices, uvs = grid(4, soup=True)
    uvs = uvs.copy()
    uvs[positions[:, 0] == 0.5, 0] += np.where(np.arange((positions[:, 0] == 0.5).sum()) % 2 == 0, 0.0, 0.25)
    # alternating UVs on the x = 0.5 column: those positions must stay split in two
    new_indices, (welded, welded_uvs) = meshopt.weld(indices, positions, uvs)
    assert len(welded) == 25 + 5  # 5 vertices on the seam column are duplicated
    assert welded_uvs.shape == (30, 2)
    assert triangle_set(welded, new_indices) == triangle_set(positions, indices)


# ----------------------------------------------------------------------------------------------
# Simplification


def test_simplify_collapses_a_flat_plane_with_zero_error():
    positions, indices, _ = grid(20)
    out, error = meshopt.simplify(indices, positions, target_index_count=0, target_error=0.01)
    assert 0 < len(out) // 3 <= 4  # a flat square needs 2 triangles
    assert error < 1e-5
    assert out.dtype == np.uint32 and out.max() < len(positions)


def test_simplify_with_attributes_uses_weights_lock_and_options():
    positions, indices, uvs = grid(20)
    normals = np.tile(np.float32([0, 1, 0]), (len(positions), 1))
    attributes = np.hstack([normals, uvs])
    # UVs linear over the plane, normals constant: the attribute error is zero too
    out, error = meshopt.simplify(indices, positions, target_index_count=0, target_error=0.01,
                                  attributes=attributes, attribute_weights=[0.5, 0.5, 0.5, 1, 1])
    assert 0 < len(out) // 3 <= 4 and error < 1e-3  # float rounding in the UV quadrics
    # a locked vertex in the middle stays in the result
    middle = int(np.argmin(np.linalg.norm(positions - [0.5, 0, 0.5], axis=1)))
    lock = np.zeros(len(positions), bool)
    lock[middle] = True
    out, _ = meshopt.simplify(indices, positions, target_index_count=0, target_error=0.01,
                              attributes=attributes, attribute_weights=[0.5, 0.5, 0.5, 1, 1], vertex_lock=lock)
    assert middle in set(out.tolist())
    # LOCK_BORDER: every border vertex of the square survives
    border = np.flatnonzero((positions[:, 0] % 1 == 0) | (positions[:, 2] % 1 == 0))
    out, _ = meshopt.simplify(indices, positions, target_index_count=0, target_error=0.01,
                              options=meshopt.SIMPLIFY_LOCK_BORDER)
    assert set(border.tolist()) <= set(out.tolist())


def test_simplify_absolute_error_is_in_model_units():
    positions, indices = wavy_grid(30)
    scale = meshopt.simplify_scale(positions)
    _, relative = meshopt.simplify(indices, positions, target_index_count=len(indices) // 8, target_error=1.0)
    _, absolute = meshopt.simplify(indices, positions, target_index_count=len(indices) // 8, target_error=1e9,
                                   options=meshopt.SIMPLIFY_ERROR_ABSOLUTE)
    assert relative > 0
    assert absolute == pytest.approx(relative * scale, rel=1e-3)


def test_simplify_sloppy_reaches_its_target():
    positions, indices = wavy_grid(40)
    target = 300 * 3
    out, error = meshopt.simplify_sloppy(indices, positions, target_index_count=target)
    assert 0.5 * target <= len(out) <= target
    assert 0 < error < 1


def test_simplify_scale_is_the_largest_extent():
    positions = np.float32([[0, 0, 0], [2, 0, 0], [0, 1, 0], [0, 0, 0.5]])
    assert meshopt.simplify_scale(positions) == pytest.approx(2.0)


def test_simplify_rejects_bad_arguments():
    positions, indices, _ = grid(2)
    with pytest.raises(ValueError, match="multiple of 3"):
        meshopt.simplify(indices[:-1], positions, target_index_count=0)
    with pytest.raises(ValueError, match="out of range"):
        meshopt.simplify(indices, positions[:3], target_index_count=0)
    with pytest.raises(ValueError, match="weights"):
        meshopt.simplify(indices, positions, target_index_count=0, attributes=positions, attribute_weights=[1, 1])


# ----------------------------------------------------------------------------------------------
# Reordering


def test_vertex_cache_optimization_improves_acmr_and_keeps_triangles():
    positions, indices = wavy_grid(30)
    out = meshopt.optimize_vertex_cache(indices, len(positions))
    before, after = acmr(indices), acmr(out)
    assert after < 0.8 and after < 0.6 * before  # a grid in random order is ~2.5; optimized < 0.8
    assert triangle_set(positions, out) == triangle_set(positions, indices)


def test_overdraw_optimization_keeps_triangles():
    positions, indices = wavy_grid(20)
    cached = meshopt.optimize_vertex_cache(indices, len(positions))
    out = meshopt.optimize_overdraw(cached, positions, threshold=1.05)
    assert len(out) == len(indices)
    assert triangle_set(positions, out) == triangle_set(positions, indices)
    assert acmr(out) <= 1.05 * acmr(cached) + 0.05


def test_vertex_fetch_compacts_every_stream_without_touching_inputs():
    positions, indices, uvs = grid(6)
    # use only half the triangles, in int64 (the package desyncs silently on non-uint32)
    used = indices.reshape(-1, 3)[::2].reshape(-1).astype(np.int64)
    snapshot = used.copy()
    new_indices, (new_positions, new_uvs) = meshopt.optimize_vertex_fetch(used, positions, uvs)
    np.testing.assert_array_equal(used, snapshot)  # the input is not rewritten
    assert new_indices.dtype == np.uint32
    assert len(new_positions) == len(np.unique(used)) < len(positions)
    # vertices are in first-use order
    first_use = [int(v) for v in dict.fromkeys(new_indices.tolist())]
    assert first_use == list(range(len(new_positions)))
    assert triangle_set(new_positions, new_indices) == triangle_set(positions, used)
    # the UVs moved with their positions
    lookup = {tuple(p): tuple(t) for p, t in zip(positions.tolist(), uvs.tolist())}
    assert all(lookup[tuple(p)] == tuple(t) for p, t in zip(new_positions.tolist(), new_uvs.tolist()))


def test_vertex_fetch_remap_marks_unused_vertices():
    remap, unique = meshopt.optimize_vertex_fetch_remap(np.uint32([2, 3, 4]), 6)
    assert unique == 3
    assert remap.tolist() == [0xFFFFFFFF, 0xFFFFFFFF, 0, 1, 2, 0xFFFFFFFF]


# ----------------------------------------------------------------------------------------------
# Encoding (round trips through the package's own decoders)


def test_vertex_buffer_round_trip_and_versions():
    rng = np.random.default_rng(1)
    vertices = rng.integers(0, 2**16, size=(500, 4), dtype=np.uint16)  # 8-byte vertices
    for version in (0, 1):
        encoded = meshopt.encode_vertex_buffer(vertices, version=version)
        assert package.decode_vertex_version(encoded) == version
        decoded = package.decode_vertex_buffer(500, 8, encoded)
        np.testing.assert_array_equal(decoded.view(np.uint16).reshape(500, 4), vertices)
    with pytest.raises(ValueError, match="multiple of 4"):
        meshopt.encode_vertex_buffer(np.zeros((4, 3), np.uint8))


def test_index_buffer_and_sequence_round_trip():
    positions, indices = wavy_grid(10)
    indices = meshopt.optimize_vertex_cache(indices, len(positions))
    encoded = meshopt.encode_index_buffer(indices, len(positions))
    assert len(encoded) < indices.nbytes / 2
    decoded = package.decode_index_buffer(len(indices), 4, encoded)
    assert triangle_set(positions, decoded) == triangle_set(positions, indices)  # rotations allowed
    sequence = np.uint32([5, 1, 9, 9, 2, 0, 7])
    decoded = package.decode_index_sequence(len(sequence), 4, meshopt.encode_index_sequence(sequence, 10))
    np.testing.assert_array_equal(decoded, sequence)


def test_index_version_setter():
    positions, indices = wavy_grid(4)
    try:
        meshopt.encode_index_version(0)
        assert package.decode_index_version(meshopt.encode_index_buffer(indices, len(positions))) == 0
    finally:
        meshopt.encode_index_version(1)
    assert package.decode_index_version(meshopt.encode_index_buffer(indices, len(positions))) == 1
    try:
        meshopt.encode_vertex_version(1)
        assert package.decode_vertex_version(package.encode_vertex_buffer(positions)) == 1
    finally:
        meshopt.encode_vertex_version(0)
    with pytest.raises(ValueError):
        meshopt.encode_index_version(2)


def test_filters_round_trip():
    rng = np.random.default_rng(2)
    normals = rng.normal(size=(100, 3)).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=1, keepdims=True)
    data = np.hstack([normals, np.ones((100, 1), np.float32)])
    for bits, dtype, scale in ((8, np.int8, 127.0), (12, np.int16, 32767.0)):
        encoded = meshopt.encode_filter_oct(data, bits=bits)
        assert encoded.dtype == dtype
        decoded = package.decode_filter_oct(encoded, 100, encoded.itemsize * 4).astype(np.float32) / scale
        assert np.abs(decoded[:, :3] - normals).max() < (0.02 if bits == 8 else 0.002)

    quats = rng.normal(size=(100, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    decoded = package.decode_filter_quat(meshopt.encode_filter_quat(quats, bits=12), 100, 8) / 32767.0
    same = np.minimum(np.abs(decoded - quats).max(axis=1), np.abs(decoded + quats).max(axis=1))  # q ~ -q
    assert same.max() < 0.005

    values = np.float32([[1.5, -2.25e-3, 1e6, 0.0], [3.0, 1e-9, -7.0, 1.0]])
    encoded = meshopt.encode_filter_exp(values, bits=24)
    decoded = package.decode_filter_exp(encoded, 2, 16).view(np.float32)
    np.testing.assert_allclose(decoded, values, rtol=1e-6)
    clamped = package.decode_filter_exp(meshopt.encode_filter_exp(values, bits=24, mode=meshopt.EXP_CLAMPED),
                                        2, 16).view(np.float32)
    assert clamped[1, 1] == 0.0 and clamped[0, 2] == pytest.approx(1e6)
