"""Ray casts against a triangle mesh with Embree 4, called directly: the library the `embreex`
package ships (its wheel bundles libembree4 and TBB), without embreex's Python layer.

    scene = RayScene(positions, triangles)             # (n, 3) float, (m, 3) int
    prim, t, u, v = scene.cast(origins, directions, tfar)   # prim -1 where the ray misses

Why not embreex's own classes: its `TriangleMesh` copies the vertices and triangles into Embree's
buffers element by element through Python-level indexing, holding the GIL (0.24 s for the 500K
bench sphere, plus 0.08 s to build the BVH on the first cast), and its `run` holds the GIL for the
whole cast. Here Embree reads the caller's arrays in place (shared buffers: 0.09 s for the same
mesh, BVH included) and the loop over rays is compiled (numba, `nogil`, cached), calling
`rtcIntersect1` per ray: the bake's casts run beside the LOD search's main thread instead of
stopping it. The same hits as embreex's: on 200K random rays into the 500K sphere, 99.998% hit
the same triangle (the rest graze an edge shared with the other), at the same distance to 1e-6.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types


def _library() -> ctypes.CDLL:
    spec = importlib.util.find_spec("embreex")  # located, not imported: its Python layer is not used
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the embreex package (which ships Embree 4) is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    found = sorted((package.parent / "embreex.libs").glob("libembree4*")) or sorted(package.glob("libembree4*"))
    if not found:
        raise ImportError(f"no libembree4 in the embreex package at {package}")
    return ctypes.CDLL(str(found[0]))


_lib = _library()
_P = ctypes.c_void_p


def _sig(name: str, restype, *argtypes):
    fn = getattr(_lib, name)
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn


_new_device = _sig("rtcNewDevice", _P, ctypes.c_char_p)
_device_error = _sig("rtcGetDeviceError", ctypes.c_int, _P)
_new_scene = _sig("rtcNewScene", _P, _P)
_new_geometry = _sig("rtcNewGeometry", _P, _P, ctypes.c_int)
_set_shared_buffer = _sig("rtcSetSharedGeometryBuffer", None, _P, ctypes.c_int, ctypes.c_uint, ctypes.c_int, _P,
                          ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t)
_commit_geometry = _sig("rtcCommitGeometry", None, _P)
_attach_geometry = _sig("rtcAttachGeometry", ctypes.c_uint, _P, _P)
_release_geometry = _sig("rtcReleaseGeometry", None, _P)
_commit_scene = _sig("rtcCommitScene", None, _P)
_release_scene = _sig("rtcReleaseScene", None, _P)

# rtcore_common.h / rtcore_geometry.h / rtcore_buffer.h (Embree 4)
_GEOMETRY_TYPE_TRIANGLE = 0
_BUFFER_TYPE_INDEX, _BUFFER_TYPE_VERTEX = 0, 1
_FORMAT_UINT3, _FORMAT_FLOAT3 = 0x5003, 0x9003
_INVALID_ID = 0xFFFFFFFF

# The compiled loop calls rtcIntersect1 by a symbol name registered with the JIT, so numba can cache
# the loop (a function address baked into the code could not be cached).
llvm.add_symbol("kiln_rtcIntersect1", ctypes.cast(_lib.rtcIntersect1, _P).value)
_intersect1 = types.ExternalFunction("kiln_rtcIntersect1", types.void(types.intp, types.intp, types.intp))

_device = None  # one Embree device per process, shared by every scene (Embree's devices are thread-safe)


def _get_device():
    global _device
    if _device is None:
        _device = _new_device(None)
        if not _device:
            raise RuntimeError(f"Embree could not create a device (error {_device_error(None)})")
    return _device


@njit(cache=True, nogil=True)
def _cast(scene, origins, directions, tfar, prim, t, u, v):
    # One RTCRayHit (rtcore_ray.h), 16-byte aligned, in 4-byte words: org 0-2, tnear 3, dir 4-6,
    # time 7, tfar 8, mask 9, id 10, flags 11; hit: Ng 12-14, u 15, v 16, primID 17, geomID 18,
    # instID 19 (instPrimID 20 where built in). 64 words leave room for any instance level count.
    buf = np.zeros(72, np.float32)
    first = (16 - buf.ctypes.data % 16) % 16 // 4
    ray = buf[first:first + 64]
    bits = ray.view(np.uint32)
    address = buf.ctypes.data + 4 * first
    for i in range(origins.shape[0]):
        ray[0], ray[1], ray[2], ray[3] = origins[i, 0], origins[i, 1], origins[i, 2], 0.0
        ray[4], ray[5], ray[6], ray[7] = directions[i, 0], directions[i, 1], directions[i, 2], 0.0
        ray[8] = tfar[i]
        bits[9], bits[10], bits[11] = 0xFFFFFFFF, 0, 0  # mask: every geometry
        bits[17], bits[18], bits[19], bits[20] = _INVALID_ID, _INVALID_ID, _INVALID_ID, _INVALID_ID
        _intersect1(scene, address, 0)
        if bits[18] == _INVALID_ID:
            prim[i] = -1
        else:
            prim[i], t[i], u[i], v[i] = bits[17], ray[8], ray[15], ray[16]


class RayScene:
    """One triangle mesh in an Embree scene (its BVH built here). The arrays are shared with
    Embree, not copied: the scene keeps them alive."""

    def __init__(self, positions: np.ndarray, triangles: np.ndarray):
        positions = np.asarray(positions, np.float32).reshape(-1, 3)
        triangles = np.asarray(triangles).reshape(-1, 3)
        if len(triangles) and (triangles.min() < 0 or triangles.max() >= len(positions)):
            raise ValueError("triangle indices out of range of the vertices")
        # Embree reads each vertex with a 16-byte load: one padding vertex after the last
        self._positions = np.zeros((len(positions) + 1, 3), np.float32)
        self._positions[:-1] = positions
        self._triangles = np.ascontiguousarray(triangles, np.uint32)
        device = _get_device()
        self._scene = _new_scene(device)
        if len(self._triangles):
            geometry = _new_geometry(device, _GEOMETRY_TYPE_TRIANGLE)
            _set_shared_buffer(geometry, _BUFFER_TYPE_VERTEX, 0, _FORMAT_FLOAT3, self._positions.ctypes.data, 0, 12,
                               len(positions))
            _set_shared_buffer(geometry, _BUFFER_TYPE_INDEX, 0, _FORMAT_UINT3, self._triangles.ctypes.data, 0, 12,
                               len(self._triangles))
            _commit_geometry(geometry)
            _attach_geometry(self._scene, geometry)
            _release_geometry(geometry)
        _commit_scene(self._scene)
        error = _device_error(device)
        if error:
            raise RuntimeError(f"Embree could not build the scene (error {error})")

    def __del__(self) -> None:
        scene, self._scene = getattr(self, "_scene", None), None
        if scene:
            _release_scene(scene)

    def cast(self, origins: np.ndarray, directions: np.ndarray,
             tfar: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The first hit of each ray within (0, tfar]: (triangle index, -1 on a miss; distance along
        the direction, in its units; Embree's barycentric u and v of the hit). The GIL is released."""
        origins = np.ascontiguousarray(origins, np.float32).reshape(-1, 3)
        directions = np.ascontiguousarray(directions, np.float32).reshape(-1, 3)
        n = len(origins)
        tfar = np.ascontiguousarray(np.broadcast_to(np.asarray(tfar, np.float32), (n,)))
        prim = np.full(n, -1, np.int64)
        t, u, v = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        if n and len(self._triangles):
            _cast(self._scene, origins, directions, tfar, prim, t, u, v)
        return prim, t, u, v
