"""EXT_meshopt_compression + KHR_mesh_quantization for GLBs written by `GlbBuilder`.

`compress_glb` is a pure GLB -> GLB transform (the gltfpack recipe, in a few lines): positions
become 16-bit integers on a grid shared by the whole file (the mesh nodes carry the dequantizing
translation and uniform scale), normals 8-bit, UVs 16-bit when they lie in [0, 1]; then every vertex
and index stream is encoded with meshoptimizer's codecs. Images are copied as they are.

Working on finished GLB bytes keeps one place for the scene layout (the profiles) and lets callers
validate the uncompressed file first, as the Khronos validator cannot decode meshopt streams.
`decompress_glb` is the inverse of the encoding step (not of quantization): it yields a plain
KHR_mesh_quantization GLB, so the compressed file's decoded data can be validated too.

Spec: https://github.com/KhronosGroup/glTF/tree/main/extensions/2.0/Vendor/EXT_meshopt_compression
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from pipeline.geometry.glb import CHUNK_BIN, CHUNK_JSON, GLB_MAGIC, GlbError, parse_container

from pipeline.geometry.meshopt import encode_index_buffer, encode_vertex_buffer
from pipeline.geometry.model import column_range

MESHOPT = "EXT_meshopt_compression"
QUANTIZATION = "KHR_mesh_quantization"

_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963
_BYTE, _UNSIGNED_SHORT, _FLOAT = 5120, 5123, 5126
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}


def _view(doc: dict[str, Any], binary: bytes, index: int) -> tuple[bytes, int | None]:
    view = doc["bufferViews"][index]
    if view.get("buffer", 0) != 0:
        raise GlbError(f"bufferViews[{index}] is not in the GLB's own buffer")
    start = view.get("byteOffset", 0)
    return binary[start : start + view["byteLength"]], view.get("byteStride")


def _accessor(doc: dict[str, Any], binary: bytes, index: int) -> np.ndarray:
    """(count, width) stored values of a plain (non-sparse) accessor, as GlbBuilder writes them."""
    acc = doc["accessors"][index]
    if "sparse" in acc or "bufferView" not in acc:
        raise GlbError(f"accessors[{index}] is sparse or empty; compress_glb expects plain data")
    dtype, width, count = np.dtype(_DTYPES[acc["componentType"]]), _WIDTH[acc["type"]], acc["count"]
    raw, stride = _view(doc, binary, acc["bufferView"])
    stride = stride or dtype.itemsize * width
    return np.ndarray((count, width), dtype, buffer=raw, offset=acc.get("byteOffset", 0),
                      strides=(stride, dtype.itemsize)).copy()


def _padded(values: np.ndarray, stride: int) -> np.ndarray:
    """Rows of `values` padded with zero bytes to `stride` (meshopt needs strides that are multiples of 4)."""
    rows = np.ascontiguousarray(values).view(np.uint8).reshape(len(values), -1)
    out = np.zeros((len(values), stride), np.uint8)
    out[:, : rows.shape[1]] = rows
    return out


def _pack_glb(doc: dict[str, Any], binary: bytes) -> bytes:
    json_bytes = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    json_bytes += b" " * (-len(json_bytes) % 4)
    binary = binary + b"\x00" * (-len(binary) % 4)
    total = 12 + 8 + len(json_bytes) + (8 + len(binary) if binary else 0)
    out = bytearray(struct.pack("<III", GLB_MAGIC, 2, total))
    out += struct.pack("<II", len(json_bytes), CHUNK_JSON) + json_bytes
    if binary:
        out += struct.pack("<II", len(binary), CHUNK_BIN) + binary
    return bytes(out)


class _Layout:
    """Appends the compressed streams (buffer 0, the BIN chunk) and reserves their decoded space
    in the fallback buffer (buffer 1, which holds no data)."""

    def __init__(self) -> None:
        self.bin = bytearray()
        self.fallback_length = 0
        self.views: list[dict[str, Any]] = []

    def _append(self, data: bytes) -> int:
        self.bin.extend(b"\x00" * (-len(self.bin) % 4))
        offset = len(self.bin)
        self.bin.extend(data)
        return offset

    def raw(self, data: bytes) -> int:
        """An uncompressed view in buffer 0 (images)."""
        offset = self._append(data)
        self.views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data)})
        return len(self.views) - 1

    def compressed(self, encoded: bytes, count: int, stride: int, mode: str, target: int) -> int:
        offset = self._append(encoded)
        self.fallback_length += -self.fallback_length % 4
        view: dict[str, Any] = {
            "buffer": 1,
            "byteOffset": self.fallback_length,
            "byteLength": count * stride,
            "target": target,
            "extensions": {MESHOPT: {"buffer": 0, "byteOffset": offset, "byteLength": len(encoded),
                                     "byteStride": stride, "count": count, "mode": mode}},
        }
        if mode == "ATTRIBUTES":
            view["byteStride"] = stride  # indices must not declare a stride on the view itself
        self.fallback_length += count * stride
        self.views.append(view)
        return len(self.views) - 1


def compress_glb(data: bytes, *, position_bits: int = 14) -> bytes:
    """Quantize and meshopt-encode every mesh in a GLB written by `GlbBuilder`.

    position_bits (<= 16): grid resolution over the largest extent of the file's bounds;
    14 bits (gltfpack's default) is 0.12 mm on a 2 m prop and compresses better than 16.
    Normals are stored as normalized signed bytes (gltfpack's default precision).
    Mesh nodes must have no transform or children of their own, as the profiles write them
    (they receive the dequantizing transform).
    """
    if not 8 <= position_bits <= 16:
        raise ValueError(f"position_bits must be in 8..16, not {position_bits}")
    doc, binary = parse_container(data)
    if MESHOPT in doc.get("extensionsUsed", []):
        raise GlbError("the GLB is already meshopt-compressed")
    accessors = doc.get("accessors", [])
    primitives = [p for mesh in doc.get("meshes", []) for p in mesh.get("primitives", [])]
    if not primitives:
        raise GlbError("the GLB has no meshes to compress")

    # One grid for the whole file, so every level of an MSFT_lod chain shares a transform.
    position_ids = sorted({p["attributes"]["POSITION"] for p in primitives})
    positions = {i: _accessor(doc, binary, i).astype(np.float64) for i in position_ids}
    lo, hi = column_range(*(v for v in positions.values() if len(v)))
    steps = (1 << position_bits) - 1
    scale = float(max(hi - lo)) / steps or 1.0

    layout = _Layout()
    new_accessors: list[dict[str, Any]] = []
    done: dict[int, int] = {}

    def add_accessor(index: int, semantic: str | None) -> int:
        if index in done:
            return done[index]
        acc = accessors[index]
        values = _accessor(doc, binary, index)
        count = len(values)
        out: dict[str, Any] = {"componentType": acc["componentType"], "count": count, "type": acc["type"]}
        if semantic is None:  # indices
            index_size = 2 if acc["componentType"] == _UNSIGNED_SHORT else 4
            flat = values.reshape(-1).astype(np.uint32)
            encoded = encode_index_buffer(flat, int(flat.max()) + 1 if len(flat) else 0)
            out["bufferView"] = layout.compressed(encoded, count, index_size, "TRIANGLES", _ELEMENT_ARRAY_BUFFER)
        else:
            if semantic == "POSITION":
                q = np.clip(np.rint((values - lo) / scale), 0, steps).astype(np.uint16)
                q_lo, q_hi = column_range(q)
                out.update(componentType=_UNSIGNED_SHORT, min=q_lo.tolist(), max=q_hi.tolist())
            elif semantic == "NORMAL":
                q = np.clip(np.rint(values * 127.0), -127, 127).astype(np.int8)
                out.update(componentType=_BYTE, normalized=True)
            elif acc.get("normalized"):  # vertex colours as normalized integers: already compact, kept
                q = values
                out["normalized"] = True
            elif semantic.startswith("TEXCOORD") and count and values.min() >= 0.0 and values.max() <= 1.0:
                q = np.rint(values * 65535.0).astype(np.uint16)
                out.update(componentType=_UNSIGNED_SHORT, normalized=True)
            else:  # UVs outside [0, 1] and anything else stay float (KHR_mesh_quantization allows it)
                q = values.astype(np.float32)
                out["componentType"] = _FLOAT
            stride = -(-q.dtype.itemsize * q.shape[1] // 4) * 4
            rows = _padded(q, stride)
            # Vertex codec version 0: the only one EXT_meshopt_compression defines (1 is KHR_meshopt_compression's).
            encoded = encode_vertex_buffer(rows, version=0)
            out["bufferView"] = layout.compressed(encoded, count, stride, "ATTRIBUTES", _ARRAY_BUFFER)
        new_accessors.append(out)
        done[index] = len(new_accessors) - 1
        return done[index]

    for mesh in doc.get("meshes", []):
        for prim in mesh["primitives"]:
            prim["attributes"] = {k: add_accessor(v, k) for k, v in prim["attributes"].items()}
            if "indices" in prim:
                prim["indices"] = add_accessor(prim["indices"], None)
    for image in doc.get("images", []):
        if "bufferView" in image:
            raw, _ = _view(doc, binary, image["bufferView"])
            image["bufferView"] = layout.raw(bytes(raw))

    for i, node in enumerate(doc.get("nodes", [])):
        if "mesh" not in node:
            continue
        if node.get("children") or any(k in node for k in ("matrix", "translation", "rotation", "scale")):
            raise GlbError(f"node {i} ({node.get('name')!r}) has a transform or children; "
                           "compress_glb puts the dequantizing transform on mesh nodes")
        node["translation"] = [float(v) for v in lo]
        node["scale"] = [scale, scale, scale]

    doc["accessors"] = new_accessors
    doc["bufferViews"] = layout.views
    layout.bin.extend(b"\x00" * (-len(layout.bin) % 4))
    doc["buffers"] = [
        {"byteLength": len(layout.bin)},
        {"byteLength": layout.fallback_length, "extensions": {MESHOPT: {"fallback": True}}},
    ]
    # The fallback buffer holds no data, so a loader without the decoder cannot show the file.
    doc["extensionsUsed"] = sorted(set(doc.get("extensionsUsed", [])) | {MESHOPT, QUANTIZATION})
    doc["extensionsRequired"] = sorted(set(doc.get("extensionsRequired", [])) | {MESHOPT, QUANTIZATION})
    return _pack_glb(doc, bytes(layout.bin))


def decompress_glb(data: bytes) -> bytes:
    """Decode every meshopt stream into a plain (still quantized) GLB, e.g. to validate its data."""
    import meshoptimizer

    doc, binary = parse_container(data)
    out = bytearray()
    views = []
    for view in doc.get("bufferViews", []):
        ext = (view.get("extensions") or {}).get(MESHOPT)
        if ext is None:
            chunk = binary[view.get("byteOffset", 0): view.get("byteOffset", 0) + view["byteLength"]]
        else:
            encoded = binary[ext.get("byteOffset", 0): ext.get("byteOffset", 0) + ext["byteLength"]]
            if ext.get("filter", "NONE") != "NONE":
                raise GlbError(f"meshopt filter {ext['filter']!r} is not supported by decompress_glb")
            # The package's decoders (not the shim's encoders) keep the round trip an independent check.
            # Its raw-dtype mode allocates count elements rather than count x stride bytes, and its
            # index decoder always allocates uint32: decode to bytes / 4-byte indices, then narrow.
            if ext["mode"] == "ATTRIBUTES":
                decoded = meshoptimizer.decode_vertex_buffer(ext["count"], ext["byteStride"], encoded)
            else:
                decoded = meshoptimizer.decode_index_buffer(ext["count"], 4, encoded)
                decoded = decoded.astype(np.uint16 if ext["byteStride"] == 2 else np.uint32)
            chunk = np.ascontiguousarray(decoded).tobytes()
        out.extend(b"\x00" * (-len(out) % 4))
        plain = {k: v for k, v in view.items() if k != "extensions"}
        plain.update(buffer=0, byteOffset=len(out), byteLength=len(chunk))
        views.append(plain)
        out.extend(chunk)
    out.extend(b"\x00" * (-len(out) % 4))
    doc["bufferViews"] = views
    doc["buffers"] = [{"byteLength": len(out)}]
    for key in ("extensionsUsed", "extensionsRequired"):
        remaining = [e for e in doc.get(key, []) if e != MESHOPT]
        if remaining:
            doc[key] = remaining
        else:
            doc.pop(key, None)
    return _pack_glb(doc, bytes(out))
