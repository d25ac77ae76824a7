"""A small typed shim over meshoptimizer (PyPI `meshoptimizer` 0.2.30a0, C meshoptimizer 0.23).

Why not call the package directly: as shipped, `simplify_with_attributes` has no ctypes argtypes
(it fails with "ArgumentError: argument 13: Don't know how to convert parameter 13", the float
target error), `optimize_vertex_fetch` rewrites the caller's index array
in place (and silently desyncs it unless it was already uint32), and every function assumes flat,
contiguous arrays of the right dtype without checking. Here every function takes and returns numpy
arrays with explicit dtypes and shapes, never mutates its inputs, and calls the C library through
our own ctypes handle with full signatures (so nothing we set leaks into the package's globals).

Only the C library bundled with the package is used; the package's own decoders stay the
reference for our encoders' round-trip tests.

ctypes releases the GIL for the duration of each C call, so callers may run independent
simplifications on threads.
"""

from __future__ import annotations

import ctypes
import threading
from ctypes import c_float, c_int, c_size_t, c_uint, c_void_p

import numpy as np
from meshoptimizer._loader import find_library

# Our own handle on the same shared object: function objects (and their argtypes) are per handle.
_lib = ctypes.CDLL(find_library())

_P = c_void_p  # every pointer argument is passed as the array's address


def _sig(name: str, restype, *argtypes) -> None:
    fn = getattr(_lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_sig("meshopt_generateVertexRemap", c_size_t, _P, _P, c_size_t, _P, c_size_t, c_size_t)
_sig("meshopt_remapVertexBuffer", None, _P, _P, c_size_t, c_size_t, _P)
_sig("meshopt_remapIndexBuffer", None, _P, _P, c_size_t, _P)
_sig("meshopt_optimizeVertexCache", None, _P, _P, c_size_t, c_size_t)
_sig("meshopt_optimizeOverdraw", None, _P, _P, c_size_t, _P, c_size_t, c_size_t, c_float)
_sig("meshopt_optimizeVertexFetchRemap", c_size_t, _P, _P, c_size_t, c_size_t)
_sig("meshopt_simplify", c_size_t, _P, _P, c_size_t, _P, c_size_t, c_size_t, c_size_t, c_float, c_uint, _P)
_sig(
    "meshopt_simplifyWithAttributes", c_size_t,
    _P, _P, c_size_t,  # destination, indices, index_count
    _P, c_size_t, c_size_t,  # positions, vertex_count, positions stride
    _P, c_size_t, _P, c_size_t,  # attributes, attributes stride, weights, attribute_count
    _P,  # vertex_lock (uint8 per vertex) or NULL
    c_size_t, c_float, c_uint, _P,  # target_index_count, target_error, options, result_error
)
# 0.23 signature: no vertex_lock (that argument arrived in 0.24).
_sig("meshopt_simplifySloppy", c_size_t, _P, _P, c_size_t, _P, c_size_t, c_size_t, c_size_t, c_float, _P)
_sig("meshopt_simplifyScale", c_float, _P, c_size_t, c_size_t)
_sig("meshopt_encodeVertexBufferBound", c_size_t, c_size_t, c_size_t)
# 0.23 signature: the level only; the format version is the library-global one (0.24 added it here).
_sig("meshopt_encodeVertexBufferLevel", c_size_t, _P, c_size_t, _P, c_size_t, c_size_t, c_int)
_sig("meshopt_encodeIndexBufferBound", c_size_t, c_size_t, c_size_t)
_sig("meshopt_encodeIndexBuffer", c_size_t, _P, c_size_t, _P, c_size_t)
_sig("meshopt_encodeIndexSequenceBound", c_size_t, c_size_t, c_size_t)
_sig("meshopt_encodeIndexSequence", c_size_t, _P, c_size_t, _P, c_size_t)
_sig("meshopt_encodeVertexVersion", None, c_int)
_sig("meshopt_encodeIndexVersion", None, c_int)
_sig("meshopt_encodeFilterOct", None, _P, c_size_t, c_size_t, c_int, _P)
_sig("meshopt_encodeFilterQuat", None, _P, c_size_t, c_size_t, c_int, _P)
_sig("meshopt_encodeFilterExp", None, _P, c_size_t, c_size_t, c_int, _P, c_int)

# Simplification option bits (meshopt_Simplify*).
SIMPLIFY_LOCK_BORDER = 1 << 0  # keep vertices on open borders where they are
SIMPLIFY_SPARSE = 1 << 1  # the indices are a small subset of the vertex buffer
SIMPLIFY_ERROR_ABSOLUTE = 1 << 2  # target and result error in model units instead of relative to extents
SIMPLIFY_PRUNE = 1 << 3  # allow removing small disconnected pieces

# meshopt_EncodeExpMode for encode_filter_exp.
EXP_SEPARATE, EXP_SHARED_VECTOR, EXP_SHARED_COMPONENT, EXP_CLAMPED = 0, 1, 2, 3


# ----------------------------------------------------------------------------------------------
# Argument normalization: one place that decides dtype, shape and contiguity.


def _indices(indices: np.ndarray, vertex_count: int | None = None, triangles: bool = True) -> np.ndarray:
    out = np.ascontiguousarray(indices, dtype=np.uint32).reshape(-1)
    if triangles and len(out) % 3:
        raise ValueError(f"index count {len(out)} is not a multiple of 3 (expected a triangle list)")
    if vertex_count is not None and len(out) and int(out.max()) >= vertex_count:
        raise ValueError(f"index {int(out.max())} is out of range for {vertex_count} vertices")
    return out


def _positions(positions: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(positions, dtype=np.float32)
    if out.ndim != 2 or out.shape[1] != 3:
        raise ValueError(f"positions must have shape (n, 3), got {out.shape}")
    return out


def _rows(vertices: np.ndarray) -> np.ndarray:
    """Any (n, ...) array as contiguous rows; the row's bytes are the vertex."""
    out = np.ascontiguousarray(vertices)
    if out.ndim == 1:
        out = out.reshape(-1, 1)
    return out


def _row_size(rows: np.ndarray) -> int:
    return rows.itemsize * int(np.prod(rows.shape[1:]))


def _addr(array: np.ndarray) -> int:
    return array.ctypes.data


# ----------------------------------------------------------------------------------------------
# Indexing: weld binary-identical vertices, remap buffers.


def generate_vertex_remap(vertices: np.ndarray, indices: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Remap table (old vertex -> new vertex, uint32) merging binary-identical vertices, and the
    number of unique vertices. Vertices unreferenced by `indices` map to 0xFFFFFFFF.

    `vertices` is one row per vertex (e.g. positions, or positions+normals+uvs side by side); every
    byte of the row counts, so build it from the attributes that must match.
    """
    rows = _rows(vertices)
    n = len(rows)
    remap = np.empty(n, np.uint32)
    if indices is None:
        unique = _lib.meshopt_generateVertexRemap(_addr(remap), None, n, _addr(rows), n, _row_size(rows))
    else:
        idx = _indices(indices, n, triangles=False)
        unique = _lib.meshopt_generateVertexRemap(_addr(remap), _addr(idx), len(idx), _addr(rows), n, _row_size(rows))
    return remap, int(unique)


def remap_vertex_buffer(vertices: np.ndarray, remap: np.ndarray, unique_count: int) -> np.ndarray:
    """New vertex array (unique_count rows, same dtype and row shape) laid out by `remap`."""
    rows = _rows(vertices)
    table = np.ascontiguousarray(remap, dtype=np.uint32).reshape(-1)
    if len(table) != len(rows):
        raise ValueError(f"remap has {len(table)} entries for {len(rows)} vertices")
    out = np.empty((unique_count, *rows.shape[1:]), rows.dtype)
    _lib.meshopt_remapVertexBuffer(_addr(out), _addr(rows), len(rows), _row_size(rows), _addr(table))
    return out if np.ndim(vertices) > 1 else out.reshape(-1)


def remap_index_buffer(indices: np.ndarray, remap: np.ndarray) -> np.ndarray:
    """Indices rewritten through `remap` (flat uint32)."""
    table = np.ascontiguousarray(remap, dtype=np.uint32).reshape(-1)
    idx = _indices(indices, len(table), triangles=False)
    out = np.empty_like(idx)
    _lib.meshopt_remapIndexBuffer(_addr(out), _addr(idx), len(idx), _addr(table))
    return out


def weld(indices: np.ndarray, *streams: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Merge vertices that are identical in every stream and drop unreferenced ones.

    Returns the new indices and the new streams (same dtypes and row shapes).
    """
    if not streams:
        raise ValueError("weld needs at least one vertex stream")
    n = len(streams[0])
    key = np.concatenate([_rows(s).reshape(n, -1).view(np.uint8).reshape(n, -1) for s in streams], axis=1)
    remap, unique = generate_vertex_remap(np.ascontiguousarray(key), indices)
    return remap_index_buffer(indices, remap), [remap_vertex_buffer(s, remap, unique) for s in streams]


# ----------------------------------------------------------------------------------------------
# Simplification


def simplify_scale(positions: np.ndarray) -> float:
    """The factor from meshoptimizer's relative error to model units (the largest extent)."""
    pos = _positions(positions)
    return float(_lib.meshopt_simplifyScale(_addr(pos), len(pos), 12))


def simplify(
    indices: np.ndarray,
    positions: np.ndarray,
    *,
    target_index_count: int,
    target_error: float = 1e-2,
    attributes: np.ndarray | None = None,
    attribute_weights: np.ndarray | None = None,
    vertex_lock: np.ndarray | None = None,
    options: int = 0,
) -> tuple[np.ndarray, float]:
    """Topology-preserving edge-collapse simplification (meshopt_simplify / WithAttributes).

    `attributes` (n, k) float32 with `attribute_weights` (k,) makes the error metric
    attribute-aware (k <= 32); `vertex_lock` (n,) bool marks vertices that must not move.
    Errors are relative to the mesh extents unless `options` has SIMPLIFY_ERROR_ABSOLUTE.
    Returns (indices, result_error). Vertices keep their numbering (compact with
    `optimize_vertex_fetch`).
    """
    pos = _positions(positions)
    n = len(pos)
    idx = _indices(indices, n)
    out = np.empty(len(idx), np.uint32)  # worst case is the input size, not the target
    error = c_float(0.0)
    target = int(max(0, min(target_index_count, len(idx))))
    if attributes is None and vertex_lock is None:
        count = _lib.meshopt_simplify(
            _addr(out), _addr(idx), len(idx), _addr(pos), n, 12, target, float(target_error), options,
            ctypes.addressof(error),
        )
    else:
        if attributes is None:
            attrs, weights = np.zeros((n, 0), np.float32), np.zeros(0, np.float32)
        else:
            attrs = np.ascontiguousarray(attributes, dtype=np.float32).reshape(n, -1)
            weights = np.ascontiguousarray(attribute_weights, dtype=np.float32).reshape(-1)
            if len(weights) != attrs.shape[1]:
                raise ValueError(f"{attrs.shape[1]} attributes per vertex but {len(weights)} weights")
            if attrs.shape[1] > 32:
                raise ValueError("meshoptimizer supports at most 32 attribute floats per vertex")
        lock = None
        if vertex_lock is not None:
            lock = np.ascontiguousarray(vertex_lock, dtype=np.uint8).reshape(-1)
            if len(lock) != n:
                raise ValueError(f"vertex_lock has {len(lock)} entries for {n} vertices")
        count = _lib.meshopt_simplifyWithAttributes(
            _addr(out), _addr(idx), len(idx), _addr(pos), n, 12,
            _addr(attrs) if attrs.size else None, attrs.shape[1] * 4, _addr(weights) if weights.size else None,
            attrs.shape[1], None if lock is None else _addr(lock),
            target, float(target_error), options, ctypes.addressof(error),
        )
    return out[:count].copy(), float(error.value)


def simplify_sloppy(
    indices: np.ndarray, positions: np.ndarray, *, target_index_count: int, target_error: float = 1.0
) -> tuple[np.ndarray, float]:
    """Topology-ignoring clustering simplification: reaches any target, but merges across seams
    and closes holes. Errors are relative to the mesh extents. Returns (indices, result_error)."""
    pos = _positions(positions)
    idx = _indices(indices, len(pos))
    out = np.empty(len(idx), np.uint32)
    error = c_float(0.0)
    target = int(max(0, min(target_index_count, len(idx))))
    count = _lib.meshopt_simplifySloppy(
        _addr(out), _addr(idx), len(idx), _addr(pos), len(pos), 12, target, float(target_error),
        ctypes.addressof(error),
    )
    return out[:count].copy(), float(error.value)


# ----------------------------------------------------------------------------------------------
# Reordering for the GPU


def optimize_vertex_cache(indices: np.ndarray, vertex_count: int) -> np.ndarray:
    """Triangles reordered for the post-transform vertex cache (same triangles, new order)."""
    idx = _indices(indices, vertex_count)
    out = np.empty_like(idx)
    _lib.meshopt_optimizeVertexCache(_addr(out), _addr(idx), len(idx), vertex_count)
    return out


def optimize_overdraw(indices: np.ndarray, positions: np.ndarray, threshold: float = 1.05) -> np.ndarray:
    """Triangles reordered to reduce overdraw, costing at most `threshold` x vertex cache
    efficiency. Run it on the output of `optimize_vertex_cache`."""
    pos = _positions(positions)
    idx = _indices(indices, len(pos))
    out = np.empty_like(idx)
    _lib.meshopt_optimizeOverdraw(_addr(out), _addr(idx), len(idx), _addr(pos), len(pos), 12, float(threshold))
    return out


def optimize_vertex_fetch_remap(indices: np.ndarray, vertex_count: int) -> tuple[np.ndarray, int]:
    """Remap table ordering vertices by first use (unused ones map to 0xFFFFFFFF) and the
    number of used vertices."""
    idx = _indices(indices, vertex_count, triangles=False)
    remap = np.empty(vertex_count, np.uint32)
    unique = _lib.meshopt_optimizeVertexFetchRemap(_addr(remap), _addr(idx), len(idx), vertex_count)
    return remap, int(unique)


def optimize_vertex_fetch(indices: np.ndarray, *streams: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Vertices reordered by first use and unused ones dropped, for every stream alike.

    Returns new indices and new streams; nothing is modified in place (unlike the package's
    `optimize_vertex_fetch`, which rewrites its index argument).
    """
    if not streams:
        raise ValueError("optimize_vertex_fetch needs at least one vertex stream")
    n = len(streams[0])
    if any(len(s) != n for s in streams):
        raise ValueError(f"vertex streams differ in length: {[len(s) for s in streams]}")
    remap, unique = optimize_vertex_fetch_remap(indices, n)
    return remap_index_buffer(indices, remap), [remap_vertex_buffer(s, remap, unique) for s in streams]


# ----------------------------------------------------------------------------------------------
# Encoding (EXT_meshopt_compression)


# The C library keeps the vertex codec version in a global; we track it (0 is 0.23's default) and
# switch it under a lock for the duration of an encode that asks for another one.
_vertex_version = 0
_version_lock = threading.Lock()


def encode_vertex_buffer(vertices: np.ndarray, *, version: int = 0, level: int = 2) -> bytes:
    """Encode one vertex stream (rows of 4..256 bytes, a multiple of 4).

    `version` 0 is what EXT_meshopt_compression decoders accept; 1 needs meshoptimizer 0.23+
    decoders (KHR_meshopt_compression). `level` 0..3 trades speed for size (version 1 only).
    """
    rows = _rows(vertices)
    size = _row_size(rows)
    if size % 4 or not 4 <= size <= 256:
        raise ValueError(f"vertex size {size} bytes must be a multiple of 4 between 4 and 256")
    if version not in (0, 1) or not 0 <= level <= 3:
        raise ValueError(f"unsupported vertex codec version {version} / level {level}")
    bound = _lib.meshopt_encodeVertexBufferBound(len(rows), size)
    buffer = np.empty(bound, np.uint8)
    with _version_lock:
        _lib.meshopt_encodeVertexVersion(version)
        try:
            written = _lib.meshopt_encodeVertexBufferLevel(_addr(buffer), bound, _addr(rows), len(rows), size, level)
        finally:
            _lib.meshopt_encodeVertexVersion(_vertex_version)
    if written == 0:
        raise RuntimeError("meshopt_encodeVertexBuffer failed (buffer bound too small)")
    return buffer[:written].tobytes()


def encode_index_buffer(indices: np.ndarray, vertex_count: int) -> bytes:
    """Encode a triangle list (EXT_meshopt_compression mode TRIANGLES)."""
    idx = _indices(indices, vertex_count)
    bound = _lib.meshopt_encodeIndexBufferBound(len(idx), vertex_count)
    buffer = np.empty(bound, np.uint8)
    written = _lib.meshopt_encodeIndexBuffer(_addr(buffer), bound, _addr(idx), len(idx))
    if written == 0:
        raise RuntimeError("meshopt_encodeIndexBuffer failed (buffer bound too small)")
    return buffer[:written].tobytes()


def encode_index_sequence(indices: np.ndarray, vertex_count: int) -> bytes:
    """Encode an arbitrary index sequence (EXT_meshopt_compression mode INDICES)."""
    idx = _indices(indices, vertex_count, triangles=False)
    bound = _lib.meshopt_encodeIndexSequenceBound(len(idx), vertex_count)
    buffer = np.empty(bound, np.uint8)
    written = _lib.meshopt_encodeIndexSequence(_addr(buffer), bound, _addr(idx), len(idx))
    if written == 0:
        raise RuntimeError("meshopt_encodeIndexSequence failed (buffer bound too small)")
    return buffer[:written].tobytes()


def encode_vertex_version(version: int) -> None:
    """The library-global vertex codec version (0 or 1), for encoders called outside this shim
    (ours take `version=` per call)."""
    global _vertex_version
    if version not in (0, 1):
        raise ValueError(f"vertex codec version must be 0 or 1, got {version}")
    with _version_lock:
        _vertex_version = version
        _lib.meshopt_encodeVertexVersion(version)


def encode_index_version(version: int) -> None:
    """Process-global index codec version (0 or 1; 1 is the default and what glTF loaders decode)."""
    if version not in (0, 1):
        raise ValueError(f"index codec version must be 0 or 1, got {version}")
    _lib.meshopt_encodeIndexVersion(version)


def _vec4(data: np.ndarray) -> np.ndarray:
    out = np.ascontiguousarray(data, dtype=np.float32)
    if out.ndim != 2 or out.shape[1] != 4:
        raise ValueError(f"filter input must have shape (n, 4), got {out.shape}")
    return out


def encode_filter_oct(unit_vectors: np.ndarray, *, bits: int = 8) -> np.ndarray:
    """Octahedral filter (EXT_meshopt_compression OCTAHEDRAL) for unit vectors given as (n, 4)
    floats (xyz, w kept as is, e.g. tangent sign). Returns (n, 4) int8 for bits <= 8, else int16."""
    data = _vec4(unit_vectors)
    if not 1 <= bits <= 16:
        raise ValueError(f"bits must be in 1..16, got {bits}")
    dtype = np.int8 if bits <= 8 else np.int16
    out = np.empty((len(data), 4), dtype)
    _lib.meshopt_encodeFilterOct(_addr(out), len(data), out.itemsize * 4, bits, _addr(data))
    return out


def encode_filter_quat(quaternions: np.ndarray, *, bits: int = 12) -> np.ndarray:
    """Quaternion filter (QUATERNION) for unit quaternions (n, 4) xyzw. Returns (n, 4) int16."""
    data = _vec4(quaternions)
    if not 4 <= bits <= 16:
        raise ValueError(f"bits must be in 4..16, got {bits}")
    out = np.empty((len(data), 4), np.int16)
    _lib.meshopt_encodeFilterQuat(_addr(out), len(data), 8, bits, _addr(data))
    return out


def encode_filter_exp(values: np.ndarray, *, bits: int = 16, mode: int = EXP_SEPARATE) -> np.ndarray:
    """Exponential filter (EXPONENTIAL) for finite floats (n, k). Returns (n, k) uint32 words."""
    data = np.ascontiguousarray(values, dtype=np.float32)
    if data.ndim != 2:
        raise ValueError(f"filter input must have shape (n, k), got {data.shape}")
    if not 1 <= bits <= 24:
        raise ValueError(f"bits must be in 1..24, got {bits}")
    if mode not in (EXP_SEPARATE, EXP_SHARED_VECTOR, EXP_SHARED_COMPONENT, EXP_CLAMPED):
        raise ValueError(f"unknown exponent mode {mode}")
    out = np.empty(data.shape, np.uint32)
    _lib.meshopt_encodeFilterExp(_addr(out), len(data), data.shape[1] * 4, bits, _addr(data), mode)
    return out


# Decoders (EXT_meshopt_compression / KHR_meshopt_compression input). Every call checks the C
# return code: a corrupt stream fails with a reason instead of leaving garbage in the output.
_sig("meshopt_decodeVertexBuffer", c_int, _P, c_size_t, c_size_t, _P, c_size_t)
_sig("meshopt_decodeIndexBuffer", c_int, _P, c_size_t, c_size_t, _P, c_size_t)
_sig("meshopt_decodeIndexSequence", c_int, _P, c_size_t, c_size_t, _P, c_size_t)
for _name in ("meshopt_decodeFilterOct", "meshopt_decodeFilterQuat", "meshopt_decodeFilterExp"):
    _sig(_name, None, _P, c_size_t, c_size_t)


def decode_vertex_buffer(data: bytes, count: int, stride: int) -> np.ndarray:
    """Decode `count` rows of `stride` bytes; returns a (count, stride) uint8 array."""
    if stride % 4 or not 4 <= stride <= 256:
        raise ValueError(f"vertex stride {stride} must be a multiple of 4 between 4 and 256")
    source = np.frombuffer(data, np.uint8)
    out = np.empty((count, stride), np.uint8)
    if _lib.meshopt_decodeVertexBuffer(_addr(out), count, stride, _addr(source), len(source)) != 0:
        raise ValueError(f"the meshopt vertex stream ({len(source)} bytes, {count} x {stride}) is corrupt")
    return out


def decode_index_buffer(data: bytes, count: int, index_size: int, *, sequence: bool = False) -> np.ndarray:
    """Decode `count` indices of `index_size` (2 or 4) bytes: a triangle list, or with `sequence`
    an arbitrary index sequence. Returns uint16 or uint32."""
    if index_size not in (2, 4):
        raise ValueError(f"index size must be 2 or 4 bytes, got {index_size}")
    source = np.frombuffer(data, np.uint8)
    out = np.empty(count, np.uint16 if index_size == 2 else np.uint32)
    fn = _lib.meshopt_decodeIndexSequence if sequence else _lib.meshopt_decodeIndexBuffer
    if fn(_addr(out), count, index_size, _addr(source), len(source)) != 0:
        raise ValueError(f"the meshopt index stream ({len(source)} bytes, {count} indices) is corrupt")
    return out


def decode_filter(kind: str, rows: np.ndarray, count: int, stride: int) -> np.ndarray:
    """Undo an EXT_meshopt_compression filter ("oct", "quat" or "exp") on decoded rows, in a copy."""
    fn = {"oct": _lib.meshopt_decodeFilterOct, "quat": _lib.meshopt_decodeFilterQuat,
          "exp": _lib.meshopt_decodeFilterExp}[kind]
    out = np.ascontiguousarray(rows, np.uint8).copy()
    if out.size != count * stride:
        raise ValueError(f"filter input holds {out.size} bytes, expected {count} x {stride}")
    fn(_addr(out), count, stride)
    return out
