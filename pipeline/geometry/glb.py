"""GLB (binary glTF 2.0) reading and writing.

The reader is strict about the container (it is the first line of defence against a truncated
download or a corrupt import) and bakes the node hierarchy of the default scene into a flat
`Model`. The writer is deterministic: the same model and extras give the same bytes, which is what
lets content hashes drive caching and lineage.

Reading goes in three steps, each with its own kind of error:
1. `parse_container`: the GLB header and chunks (lengths, order, JSON syntax, asset.version).
2. `structural_problems`: every reference and byte range in the JSON (buffers against the BIN
   chunk, bufferViews against buffers, accessors against bufferViews, all indices into arrays),
   checked before any data is touched, so a corrupt file fails with a reason instead of garbage.
3. `read_glb`: decodes the scene and refuses, with a reason, what it cannot carry through the
   pipeline without silently breaking it (Draco/meshopt compression, skins and animation unless the
   caller accepts a static snapshot, unknown required extensions, external files).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import urllib.parse
from typing import Any

import numpy as np

from .model import Material, Model, Primitive, Texture

GLB_MAGIC = 0x46546C67  # b"glTF"
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942

_COMPONENT_DTYPES = {
    5120: np.int8,
    5121: np.uint8,
    5122: np.int16,
    5123: np.uint16,
    5125: np.uint32,
    5126: np.float32,
}
_TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT2": 4, "MAT3": 9, "MAT4": 16}
_NORMALIZED_SCALE = {np.int8: 127.0, np.uint8: 255.0, np.int16: 32767.0, np.uint16: 65535.0}
_INDEX_COMPONENTS = (5121, 5123, 5125)
# Matrix columns start on 4-byte boundaries, so small-component matrices carry padding.
_PADDED_ELEMENT = {("MAT2", 1): 8, ("MAT3", 1): 12, ("MAT3", 2): 24}


class GlbError(ValueError):
    """The bytes are not a GLB Kiln can read; the message says what is wrong and where."""


# ----------------------------------------------------------------------------------------------
# Container


def parse_container(data: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a GLB into its JSON document and BIN chunk, checking every length on the way.

    Returns the BIN chunk's bytes (b"" when there is none). Chunks of unknown type after the JSON
    chunk are skipped, as the glTF spec asks of readers.
    """
    if len(data) < 12:
        raise GlbError(f"file is {len(data)} bytes, shorter than the 12-byte GLB header")
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC:
        raise GlbError(f"not a GLB: magic is {bytes(data[:4])!r}, expected b'glTF'")
    if version != 2:
        raise GlbError(f"GLB version {version} is not supported (only glTF 2.0)")
    if length < 20:
        raise GlbError(f"header declares a total length of {length} bytes, too small to hold the JSON chunk")
    if length != len(data):
        raise GlbError(f"header says {length} bytes but the file has {len(data)} (truncated or padded)")
    offset = 12
    chunks: list[tuple[int, int, bytes]] = []  # (offset, type, data)
    while offset < length:
        if offset + 8 > length:
            raise GlbError(f"chunk header at byte {offset} runs past the end of the file")
        chunk_length, chunk_type = struct.unpack_from("<II", data, offset)
        if offset + 8 + chunk_length > length:
            raise GlbError(
                f"chunk at byte {offset} declares {chunk_length} bytes but only "
                f"{length - offset - 8} remain (truncated chunk data)"
            )
        if chunk_length % 4:
            raise GlbError(f"chunk at byte {offset} has length {chunk_length}, not a multiple of 4")
        chunks.append((offset, chunk_type, bytes(data[offset + 8 : offset + 8 + chunk_length])))
        offset += 8 + chunk_length
    first_offset, first_type, json_bytes = chunks[0]
    if first_type != CHUNK_JSON:
        raise GlbError(f"the first chunk must be the JSON chunk, found chunk type 0x{first_type:08x}")
    for chunk_offset, chunk_type, _ in chunks[1:]:
        if chunk_type == CHUNK_JSON:
            raise GlbError(f"a second JSON chunk at byte {chunk_offset} (a GLB has exactly one)")
    bins = [(o, c) for o, t, c in chunks[1:] if t == CHUNK_BIN]
    if len(bins) > 1:
        raise GlbError(f"a second BIN chunk at byte {bins[1][0]} (a GLB has at most one)")
    if bins and chunks[1][1] != CHUNK_BIN:
        raise GlbError("the BIN chunk must directly follow the JSON chunk")
    if not json_bytes:
        raise GlbError(f"the JSON chunk at byte {first_offset} has zero length")
    try:
        document = json.loads(json_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GlbError(f"the JSON chunk is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise GlbError("the JSON chunk is not a JSON object")
    asset = document.get("asset")
    if not isinstance(asset, dict) or not isinstance(asset.get("version"), str):
        raise GlbError("the glTF document has no asset.version (every glTF must declare `asset: {version: \"2.0\"}`)")
    if not asset["version"].startswith("2."):
        raise GlbError(f"glTF asset.version {asset['version']!r} is not 2.x")
    return document, bins[0][1] if bins else b""


# ----------------------------------------------------------------------------------------------
# Structure


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_numbers(value: Any, n: int) -> bool:
    return (isinstance(value, list) and len(value) == n
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))


def decode_data_uri(uri: str) -> bytes:
    """The bytes of a `data:` URI (base64 or percent-encoded), or GlbError."""
    head, comma, payload = uri.partition(",")
    if not head.startswith("data:") or not comma:
        raise GlbError(f"invalid data URI {uri[:40]!r}: expected `data:[<media type>][;base64],<data>`")
    if head.endswith(";base64"):
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise GlbError(f"invalid base64 in data URI {uri[:40]!r}: {exc}") from None
    return urllib.parse.unquote_to_bytes(payload)


def _element_size(component_type: int, type_: str) -> int:
    itemsize = np.dtype(_COMPONENT_DTYPES[component_type]).itemsize
    return _PADDED_ELEMENT.get((type_, itemsize), itemsize * _TYPE_SIZES[type_])


def structural_problems(document: dict[str, Any], binary: bytes) -> list[str]:
    """Every broken reference or byte range in a parsed glTF document; empty when all is sound.

    This is what a reader must check before trusting any offset: it covers buffers (declared length
    against the BIN chunk or data URI), bufferViews (inside their buffer, valid stride), accessors
    (types, alignment, inside their bufferView, sparse parts too), mesh primitives (attribute counts
    agree, index accessors are unsigned scalars, morph targets), the node graph (one parent each, no
    cycles), scenes, materials, textures, images, skins and animations. It does not decode data, so
    index values and min/max are checked elsewhere (the reader and `validate.check_structure`).
    """
    problems: list[str] = []

    def items(name: str) -> list[dict[str, Any]]:
        value = document.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            problems.append(f"`{name}` must be an array of objects")
            return []
        return value

    buffers, views, accessors = items("buffers"), items("bufferViews"), items("accessors")
    meshes, nodes, scenes, materials = items("meshes"), items("nodes"), items("scenes"), items("materials")
    textures, images, samplers = items("textures"), items("images"), items("samplers")
    skins, animations, cameras = items("skins"), items("animations"), items("cameras")

    def ref(array: list[Any], name: str, value: Any, where: str) -> bool:
        if _is_int(value) and 0 <= value < len(array):
            return True
        problems.append(f"{where} refers to {name}[{value}], which does not exist (there are {len(array)})")
        return False

    for i, buffer in enumerate(buffers):
        declared = buffer.get("byteLength")
        if not _is_int(declared) or declared < 1:
            problems.append(f"buffers[{i}].byteLength must be a positive integer, got {declared!r}")
            continue
        uri = buffer.get("uri")
        if uri is not None:
            if not isinstance(uri, str):
                problems.append(f"buffers[{i}].uri must be a string")
            elif uri.startswith("data:"):
                try:
                    got = len(decode_data_uri(uri))
                except GlbError as exc:
                    problems.append(f"buffers[{i}].uri: {exc}")
                    continue
                if got < declared:
                    problems.append(f"buffers[{i}] declares {declared} bytes but its data URI holds {got}")
        elif i == 0:
            if not binary:
                problems.append(f"buffers[0] has no uri, so its {declared} bytes should be the GLB's BIN chunk, "
                                "but the file has no BIN chunk (or an empty one)")
            elif len(binary) < declared:
                problems.append(f"buffers[0] declares {declared} bytes but the BIN chunk holds only {len(binary)}")
        # buffers[i > 0] without uri are placeholders (e.g. EXT_meshopt_compression's fallback):
        # valid as long as nothing reads them, which the reader checks when it resolves a view.

    for i, view in enumerate(views):
        where = f"bufferViews[{i}]"
        if not ref(buffers, "buffers", view.get("buffer"), where):
            continue
        start, length = view.get("byteOffset", 0), view.get("byteLength")
        if not _is_int(start) or start < 0:
            problems.append(f"{where}.byteOffset must be a non-negative integer, got {start!r}")
            continue
        if not _is_int(length) or length < 1:
            problems.append(f"{where}.byteLength must be a positive integer, got {length!r}")
            continue
        declared = buffers[view["buffer"]].get("byteLength")
        if _is_int(declared) and start + length > declared:
            problems.append(f"{where} (offset {start}, length {length}) runs past the end of "
                            f"buffers[{view['buffer']}] ({declared} bytes)")
        stride = view.get("byteStride")
        if stride is not None and (not _is_int(stride) or not 4 <= stride <= 252 or stride % 4):
            problems.append(f"{where}.byteStride {stride!r} must be a multiple of 4 between 4 and 252")

    def range_problem(where: str, view_index: Any, offset: Any, component: int, type_: str, count: int) -> None:
        if not ref(views, "bufferViews", view_index, f"{where}.bufferView"):
            return
        view = views[view_index]
        itemsize = np.dtype(_COMPONENT_DTYPES[component]).itemsize
        element = _element_size(component, type_)
        if not _is_int(offset) or offset < 0:
            problems.append(f"{where}.byteOffset must be a non-negative integer, got {offset!r}")
            return
        view_offset = view.get("byteOffset", 0)
        if offset % itemsize or (_is_int(view_offset) and (view_offset + offset) % itemsize):
            problems.append(f"{where} starts at byte {view_offset}+{offset}, not aligned to its "
                            f"{itemsize}-byte components")
        stride = view.get("byteStride") if _is_int(view.get("byteStride")) else element
        if stride < element:
            problems.append(f"{where}: bufferViews[{view_index}].byteStride {stride} is smaller than "
                            f"one {type_} element ({element} bytes)")
            return
        needed = offset + stride * (count - 1) + element
        length = view.get("byteLength")
        if _is_int(length) and needed > length:
            problems.append(f"{where} needs {needed} bytes of bufferViews[{view_index}] but it has {length}")

    for i, acc in enumerate(accessors):
        where = f"accessors[{i}]"
        component, type_, count = acc.get("componentType"), acc.get("type"), acc.get("count")
        if component not in _COMPONENT_DTYPES or type_ not in _TYPE_SIZES:
            problems.append(f"{where} has an invalid componentType {component!r} or type {type_!r}")
            continue
        if not _is_int(count) or count < 1:
            problems.append(f"{where}.count must be a positive integer, got {count!r}")
            continue
        if acc.get("normalized") and component in (5125, 5126):
            problems.append(f"{where} is normalized, which only 8- and 16-bit integer components can be")
        if "bufferView" in acc:
            range_problem(where, acc["bufferView"], acc.get("byteOffset", 0), component, type_, count)
        sparse = acc.get("sparse")
        if sparse is not None:
            s_count = sparse.get("count") if isinstance(sparse, dict) else None
            s_idx = sparse.get("indices") if isinstance(sparse, dict) else None
            s_val = sparse.get("values") if isinstance(sparse, dict) else None
            if not _is_int(s_count) or not 1 <= s_count <= count or not isinstance(s_idx, dict) \
                    or not isinstance(s_val, dict):
                problems.append(f"{where}.sparse needs count (1..{count}), indices and values")
                continue
            if s_idx.get("componentType") not in _INDEX_COMPONENTS:
                problems.append(f"{where}.sparse.indices.componentType must be an unsigned integer type")
            else:
                range_problem(f"{where}.sparse.indices", s_idx.get("bufferView"), s_idx.get("byteOffset", 0),
                              s_idx["componentType"], "SCALAR", s_count)
            range_problem(f"{where}.sparse.values", s_val.get("bufferView"), s_val.get("byteOffset", 0),
                          component, type_, s_count)

    def accessor_count(index: Any) -> int | None:
        return accessors[index].get("count") if _is_int(index) and 0 <= index < len(accessors) else None

    for mi, mesh in enumerate(meshes):
        primitives = mesh.get("primitives")
        if not isinstance(primitives, list) or not primitives or not all(isinstance(p, dict) for p in primitives):
            problems.append(f"meshes[{mi}].primitives must be a non-empty array of objects")
            continue
        for pi, prim in enumerate(primitives):
            where = f"meshes[{mi}].primitives[{pi}]"
            attributes = prim.get("attributes")
            if not isinstance(attributes, dict):
                problems.append(f"{where}.attributes must be an object")
                continue
            counts = {name: accessor_count(a) for name, a in attributes.items()
                      if ref(accessors, "accessors", a, f"{where}.attributes.{name}")}
            if len(set(counts.values())) > 1:
                problems.append(f"{where}: its attributes have different vertex counts ({counts})")
            if "indices" in prim and ref(accessors, "accessors", prim["indices"], f"{where}.indices"):
                index_acc = accessors[prim["indices"]]
                if index_acc.get("type") != "SCALAR" or index_acc.get("componentType") not in _INDEX_COMPONENTS:
                    problems.append(f"{where}.indices must be a SCALAR accessor of unsigned bytes, shorts or ints")
            if "material" in prim:
                ref(materials, "materials", prim["material"], f"{where}.material")
            if prim.get("mode", 4) not in range(7):
                problems.append(f"{where}.mode {prim.get('mode')!r} is not a glTF primitive mode (0-6)")
            targets = prim.get("targets", [])
            if not isinstance(targets, list) or not all(isinstance(t, dict) for t in targets):
                problems.append(f"{where}.targets must be an array of objects")
                continue
            vertex_count = next(iter(counts.values()), None)
            for ti, target in enumerate(targets):
                for name, a in target.items():
                    if ref(accessors, "accessors", a, f"{where}.targets[{ti}].{name}") \
                            and vertex_count is not None and accessor_count(a) != vertex_count:
                        problems.append(f"{where}.targets[{ti}].{name} has {accessor_count(a)} elements "
                                        f"for {vertex_count} vertices")

    parent: dict[int, int] = {}
    for ni, node in enumerate(nodes):
        where = f"nodes[{ni}]"
        for key, array in (("mesh", meshes), ("skin", skins), ("camera", cameras)):
            if key in node:
                ref(array, key + ("es" if key == "mesh" else "s"), node[key], f"{where}.{key}")
        children = node.get("children", [])
        if not isinstance(children, list):
            problems.append(f"{where}.children must be an array")
            children = []
        for child in children:
            if ref(nodes, "nodes", child, f"{where}.children"):
                if child in parent or child == ni:
                    problems.append(f"nodes[{child}] has more than one parent (or is its own child); "
                                    "the node hierarchy must be a tree")
                else:
                    parent[child] = ni
        for key, n in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
            if key in node and not _is_numbers(node[key], n):
                problems.append(f"{where}.{key} must be {n} finite numbers")
        instancing = (node.get("extensions") or {}).get("EXT_mesh_gpu_instancing")
        if isinstance(instancing, dict):
            attrs = instancing.get("attributes")
            if not isinstance(attrs, dict) or not attrs:
                problems.append(f"{where}.extensions.EXT_mesh_gpu_instancing needs attributes")
            else:
                counts = {name: accessor_count(a) for name, a in attrs.items()
                          if ref(accessors, "accessors", a, f"{where} EXT_mesh_gpu_instancing {name}")}
                if len(set(counts.values())) > 1:
                    problems.append(f"{where}: EXT_mesh_gpu_instancing attributes have different counts ({counts})")
    for start in range(len(nodes)):
        seen, k = set(), start
        while k in parent:
            if k in seen:
                problems.append(f"the node hierarchy has a cycle through nodes[{k}]")
                break
            seen.add(k)
            k = parent[k]
        else:
            continue
        break

    if "scene" in document:
        ref(scenes, "scenes", document["scene"], "`scene`")
    for si, scene in enumerate(scenes):
        roots = scene.get("nodes", [])
        if not isinstance(roots, list):
            problems.append(f"scenes[{si}].nodes must be an array")
            continue
        for root in roots:
            ref(nodes, "nodes", root, f"scenes[{si}].nodes")

    for mi, material in enumerate(materials):
        for where, info in _texture_infos(material, f"materials[{mi}]"):
            if not isinstance(info, dict):
                problems.append(f"{where} must be an object")
            else:
                ref(textures, "textures", info.get("index"), f"{where}.index")
    for ti, texture in enumerate(textures):
        if "source" in texture:
            ref(images, "images", texture["source"], f"textures[{ti}].source")
        if "sampler" in texture:
            ref(samplers, "samplers", texture["sampler"], f"textures[{ti}].sampler")
    for ii, image in enumerate(images):
        if "bufferView" in image:
            ref(views, "bufferViews", image["bufferView"], f"images[{ii}].bufferView")
            if not isinstance(image.get("mimeType"), str):
                problems.append(f"images[{ii}] is stored in a bufferView but has no mimeType")
        elif not isinstance(image.get("uri"), str):
            problems.append(f"images[{ii}] has neither a bufferView nor a uri")

    for si, skin in enumerate(skins):
        joints = skin.get("joints")
        if not isinstance(joints, list) or not joints:
            problems.append(f"skins[{si}].joints must be a non-empty array")
            continue
        for joint in joints:
            ref(nodes, "nodes", joint, f"skins[{si}].joints")
        if "inverseBindMatrices" in skin and ref(accessors, "accessors", skin["inverseBindMatrices"],
                                                 f"skins[{si}].inverseBindMatrices"):
            ibm = accessors[skin["inverseBindMatrices"]]
            if ibm.get("type") != "MAT4" or ibm.get("componentType") != 5126 or (ibm.get("count") or 0) < len(joints):
                problems.append(f"skins[{si}].inverseBindMatrices must be float MAT4, one per joint")
    for ai, animation in enumerate(animations):
        anim_samplers = animation.get("samplers", [])
        for k, sampler in enumerate(anim_samplers if isinstance(anim_samplers, list) else []):
            for key in ("input", "output"):
                ref(accessors, "accessors", (sampler or {}).get(key), f"animations[{ai}].samplers[{k}].{key}")
        channels = animation.get("channels", [])
        for k, channel in enumerate(channels if isinstance(channels, list) else []):
            channel = channel if isinstance(channel, dict) else {}
            ref(anim_samplers if isinstance(anim_samplers, list) else [], "samplers", channel.get("sampler"),
                f"animations[{ai}].channels[{k}].sampler")
            target = channel.get("target") or {}
            if "node" in target:
                ref(nodes, "nodes", target["node"], f"animations[{ai}].channels[{k}].target.node")
    return problems


def _texture_infos(material: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    """(location, textureInfo) for every texture a material points at, core and common extensions."""
    out = []
    for owner_where, owner in ((where, material),
                               (f"{where}.pbrMetallicRoughness", material.get("pbrMetallicRoughness")),
                               *((f"{where}.extensions.{name}", ext) for name, ext in
                                 (material.get("extensions") or {}).items())):
        if isinstance(owner, dict):
            out += [(f"{owner_where}.{key}", value) for key, value in owner.items() if key.endswith("Texture")]
    return out


# ----------------------------------------------------------------------------------------------
# Reading

_DRACO = "KHR_draco_mesh_compression"
_REFUSED_EXTENSIONS = {
    _DRACO: "it is Draco-compressed (KHR_draco_mesh_compression) and Kiln has no Draco decoder; "
    "re-export it without Draco (e.g. `npx gltf-transform copy in.glb out.glb` decodes it)",
    "EXT_meshopt_compression": "its geometry is meshopt-compressed (EXT_meshopt_compression); decompress "
    "it first (e.g. `gltfpack -i in.glb -o out.glb -noq`)",
    "KHR_texture_basisu": "its textures are KTX2/Basis (KHR_texture_basisu); Kiln reads PNG and JPEG "
    "textures only: re-export with PNG or JPEG textures",
    "EXT_texture_webp": "its textures are WebP only (EXT_texture_webp); re-export with PNG or JPEG textures",
    "EXT_texture_avif": "its textures are AVIF only (EXT_texture_avif); re-export with PNG or JPEG textures",
}
# Extensions a file may *require* that the reader honours (or, for appearance-only material
# extensions, may drop: the model keeps its base colour and PBR factors).
_HANDLED_EXTENSIONS = {
    "KHR_mesh_quantization",  # integer/normalized attributes: decoded to float32
    "KHR_texture_transform",  # baked into the base colour UVs
    "EXT_mesh_gpu_instancing",  # expanded into one copy per instance
    "KHR_materials_pbrSpecularGlossiness",  # mapped to metallic-roughness (diffuse -> base colour)
    "KHR_materials_unlit",
    "KHR_materials_emissive_strength",
}


class _Reader:
    """Decodes the data a structurally sound document points at (run `structural_problems` first)."""

    def __init__(self, document: dict[str, Any], binary: bytes):
        self.doc = document
        self.bin = memoryview(binary)
        self._buffers: dict[int, memoryview] = {}

    def _list(self, name: str) -> list[Any]:
        value = self.doc.get(name, [])
        return value if isinstance(value, list) else []

    def buffer(self, index: int) -> memoryview:
        if index not in self._buffers:
            buffer = self._list("buffers")[index]
            uri = buffer.get("uri")
            if uri is None and index == 0:
                data = self.bin
            elif uri is None:
                raise GlbError(f"buffers[{index}] has no data (a placeholder without uri), yet the model reads it; "
                               "it probably relies on a compression extension Kiln does not decode")
            elif uri.startswith("data:"):
                data = memoryview(decode_data_uri(uri))
            else:
                raise GlbError(f"buffers[{index}] refers to the external file {uri!r}; only self-contained "
                               "GLBs are read (embed the buffer, e.g. `npx gltf-transform copy in.gltf out.glb`)")
            self._buffers[index] = data
        return self._buffers[index]

    def view(self, index: int) -> tuple[memoryview, int | None]:
        view = self._list("bufferViews")[index]
        start = view.get("byteOffset", 0)
        try:
            buffer = self.buffer(view["buffer"])
        except GlbError:
            if "EXT_meshopt_compression" in (view.get("extensions") or {}):
                raise GlbError(f"bufferViews[{index}]: {_REFUSED_EXTENSIONS['EXT_meshopt_compression']}") from None
            raise
        data = buffer[start : start + view["byteLength"]]
        return data, view.get("byteStride")

    def _strided(self, view_index: int, offset: int, dtype: Any, width: int, count: int) -> np.ndarray:
        raw, stride = self.view(view_index)
        itemsize = np.dtype(dtype).itemsize
        if not stride or stride == itemsize * width:
            return np.frombuffer(raw, dtype, count * width, offset).reshape(count, width)
        # Interleaved: a strided view straight onto the buffer, then one compact copy.
        return np.ndarray((count, width), dtype, buffer=raw, offset=offset, strides=(stride, itemsize)).copy()

    def accessor(self, index: int, normalized: bool = True) -> np.ndarray:
        """(count, width) array; normalized integers become float32 in [0, 1] or [-1, 1] (unless
        `normalized=False`: the stored values, which is what accessor min/max describe)."""
        acc = self._list("accessors")[index]
        dtype = _COMPONENT_DTYPES[acc["componentType"]]
        width, count = _TYPE_SIZES[acc["type"]], acc["count"]
        if "bufferView" in acc:
            out = self._strided(acc["bufferView"], acc.get("byteOffset", 0), dtype, width, count)
        else:
            out = np.zeros((count, width), dtype)
        sparse = acc.get("sparse")
        if sparse:
            idx_info, val_info = sparse["indices"], sparse["values"]
            where = self._strided(idx_info["bufferView"], idx_info.get("byteOffset", 0),
                                  _COMPONENT_DTYPES[idx_info["componentType"]], 1, sparse["count"]).reshape(-1)
            if where.size and int(where.max()) >= count:
                raise GlbError(f"accessors[{index}].sparse points at element {int(where.max())} of {count}")
            out = out.copy()
            out[where.astype(np.int64)] = self._strided(val_info["bufferView"], val_info.get("byteOffset", 0),
                                                        dtype, width, sparse["count"])
        if acc.get("normalized") and normalized:
            out = out.astype(np.float32) / _NORMALIZED_SCALE[dtype]
            if np.dtype(dtype).kind == "i":
                out = np.maximum(out, -1.0)
        return out

    def texture(self, index: int) -> Texture | None:
        texture = self._list("textures")[index]
        source = texture.get("source")
        if source is None:
            return None  # only an extension source (e.g. KTX2 without required fallback): no readable image
        image = self._list("images")[source]
        if "bufferView" in image:
            data, _ = self.view(image["bufferView"])
            return Texture(bytes(data), image["mimeType"])
        uri = image["uri"]
        if uri.startswith("data:"):
            mime = uri[5:].split(";", 1)[0].split(",", 1)[0] or "image/png"
            return Texture(decode_data_uri(uri), mime)
        raise GlbError(f"images[{source}] refers to the external file {uri!r}; only self-contained GLBs are "
                       "read (embed the textures, e.g. `npx gltf-transform copy in.gltf out.glb`)")


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.asarray(node["matrix"], np.float64).reshape(4, 4).T  # glTF is column-major
    m = np.eye(4)
    m[:3, :3] = _rotation_matrices(np.asarray([node.get("rotation", [0, 0, 0, 1])], np.float64))[0]
    m[:3, :3] *= np.asarray(node.get("scale", [1, 1, 1]), np.float64)
    m[:3, 3] = node.get("translation", [0, 0, 0])
    return m


def _rotation_matrices(q: np.ndarray) -> np.ndarray:
    """(k, 4) unit quaternions (x, y, z, w) to (k, 3, 3) rotation matrices."""
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    x, y, z, w = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], axis=1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], axis=1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], axis=1),
    ], axis=1)


def _triangle_list(idx: np.ndarray, mode: int) -> np.ndarray:
    """Indices of a TRIANGLES / TRIANGLE_STRIP / TRIANGLE_FAN primitive as an (m, 3) list."""
    if mode == 4:
        return idx[: len(idx) - len(idx) % 3].reshape(-1, 3)
    n = len(idx) - 2
    if n <= 0:
        return np.zeros((0, 3), idx.dtype)
    k = np.arange(n)
    if mode == 5:  # strips alternate winding; every odd triangle is written (1, 0, 2) to keep it
        first = np.where(k % 2 == 0, idx[k], idx[k + 1])
        second = np.where(k % 2 == 0, idx[k + 1], idx[k])
        return np.stack([first, second, idx[k + 2]], axis=1)
    return np.stack([np.full(n, idx[0]), idx[k + 1], idx[k + 2]], axis=1)  # fan


def _uv_transform(info: dict[str, Any]) -> tuple[int, np.ndarray | None]:
    """(texCoord set, 3x3 KHR_texture_transform matrix or None) of a textureInfo."""
    tex_coord = info.get("texCoord", 0)
    transform = (info.get("extensions") or {}).get("KHR_texture_transform")
    if not isinstance(transform, dict):
        return tex_coord, None
    tex_coord = transform.get("texCoord", tex_coord)
    ox, oy = transform.get("offset", [0.0, 0.0])
    sx, sy = transform.get("scale", [1.0, 1.0])
    r = float(transform.get("rotation", 0.0))
    c, s = math.cos(r), math.sin(r)
    # offset * rotation * scale. The rotation's sign follows the extension's worked example (offset
    # [0, 1], rotation pi/2, scale 0.5 selects the lower-left quadrant) and three.js; the GLSL
    # snippet in the extension's README writes the same matrix transposed.
    matrix = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]]) @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) \
        @ np.diag([sx, sy, 1.0])
    return tex_coord, matrix


def _refuse_unsupported(document: dict[str, Any], allow_animation: bool) -> None:
    required = document.get("extensionsRequired") or []
    for ext in required:
        if ext in _REFUSED_EXTENSIONS:
            raise GlbError(f"the model cannot be read: {_REFUSED_EXTENSIONS[ext]}")
    unknown = sorted(set(required) - _HANDLED_EXTENSIONS)
    if unknown:
        raise GlbError(f"the model requires glTF extensions Kiln does not support: {', '.join(unknown)}")
    # Draco listed but not required: the primitives carry uncompressed fallbacks, unless they do not.
    for mi, mesh in enumerate(document.get("meshes", [])):
        for pi, prim in enumerate(mesh["primitives"]):
            if _DRACO in (prim.get("extensions") or {}) and any(
                    "bufferView" not in document["accessors"][a] for a in prim["attributes"].values()):
                raise GlbError(f"the model cannot be read: meshes[{mi}].primitives[{pi}] {_REFUSED_EXTENSIONS[_DRACO]}")
    if allow_animation:
        return
    skins, animations = document.get("skins") or [], document.get("animations") or []
    if skins:
        raise GlbError(
            f"the model is skinned ({len(skins)} skin(s), {len(animations)} animation(s)); Kiln's LOD chain "
            "bakes meshes into static geometry and would lose the skeleton, so skinned models are refused. "
            "Import a static export of the mesh, or read it with allow_animation=True to take its rest pose "
            "as a static mesh (skin and animation dropped)"
        )
    if animations:
        names = ", ".join(repr(a.get("name") or f"#{i}") for i, a in enumerate(animations[:5]))
        raise GlbError(
            f"the model is animated ({len(animations)} animation(s): {names}); Kiln bakes node transforms into "
            "static geometry and would lose the animation, so animated models are refused. Export it "
            "without animation, or read it with allow_animation=True to take its rest pose as a static mesh"
        )


def read_glb(data: bytes, *, allow_animation: bool = False) -> Model:
    """Read a GLB into a flat `Model` with the default scene's node transforms baked in.

    - Every mesh node of the default scene (or, without scenes, every root node) becomes one
      `Primitive` per mesh primitive, in world space; a node with a negative-determinant transform
      (mirroring) gets its triangle winding flipped so faces still point outward; normals go
      through the inverse transpose. EXT_mesh_gpu_instancing nodes become one copy per instance.
    - Triangle strips and fans become triangle lists; points and lines carry no surface and are
      skipped. Morph targets are applied at their default weights.
    - UVs are the set the base colour texture uses (TEXCOORD_0 otherwise), with
      KHR_texture_transform baked in. Normals are those of the file (turned with their node, each
      keeping its stored length), or None when it has none: nothing is welded, repaired or
      computed here; `normalize` does that, and `validate` sees the file's own data.
    - Skinned or animated models are refused unless `allow_animation=True`, in which case the rest
      pose is read as a static mesh (skinned vertices placed by their joints' rest transforms) and
      the skin and animation are dropped.

    Raises `GlbError` with a readable reason for a broken container or anything Kiln cannot carry
    through the pipeline without silently breaking it.
    """
    document, binary = parse_container(data)
    problems = structural_problems(document, binary)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise GlbError(f"invalid glTF structure: {problems[0]}{more}")
    _refuse_unsupported(document, allow_animation)
    reader = _Reader(document, binary)

    materials: list[Material] = []
    uv_sets: list[tuple[int, np.ndarray | None]] = []  # per material: base colour texCoord and transform
    textures: dict[int, Texture | None] = {}
    for i, mat in enumerate(reader._list("materials")):
        spec_gloss = (mat.get("extensions") or {}).get("KHR_materials_pbrSpecularGlossiness")
        if "pbrMetallicRoughness" not in mat and isinstance(spec_gloss, dict):
            # The closest metallic-roughness reading: diffuse is the base colour of a dielectric.
            factor = spec_gloss.get("diffuseFactor", [1.0, 1.0, 1.0, 1.0])
            info = spec_gloss.get("diffuseTexture")
            metallic, roughness = 0.0, 1.0 - float(spec_gloss.get("glossinessFactor", 1.0))
        else:
            pbr = mat.get("pbrMetallicRoughness") or {}
            factor = pbr.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])
            info = pbr.get("baseColorTexture")
            metallic, roughness = float(pbr.get("metallicFactor", 1.0)), float(pbr.get("roughnessFactor", 1.0))
        texture = None
        if info is not None:
            if info["index"] not in textures:
                textures[info["index"]] = reader.texture(info["index"])
            texture = textures[info["index"]]
        uv_sets.append(_uv_transform(info) if info is not None else (0, None))
        materials.append(Material(
            name=mat.get("name", f"material_{i}"),
            base_color_factor=tuple(float(c) for c in factor),
            base_color_texture=texture,
            metallic=metallic,
            roughness=roughness,
            double_sided=bool(mat.get("doubleSided", False)),
            alpha_mode=mat.get("alphaMode", "OPAQUE"),
        ))
    default_material: list[int] = []  # glTF's default material, appended once when needed

    nodes = reader._list("nodes")
    parents = {c: p for p, n in enumerate(nodes) for c in n.get("children", [])}
    scenes = reader._list("scenes")
    if scenes:
        listed = list(dict.fromkeys(scenes[document.get("scene", 0)].get("nodes", [])))
        # A scene root that also hangs below another root (SCENE_NON_ROOT_NODE, seen in some Unity
        # exports) would otherwise be read twice; it is read once, through its ancestor.
        group = set(listed)
        roots = [r for r in listed if not _has_ancestor_in(r, parents, group)]
    else:
        roots = [i for i in range(len(nodes)) if i not in parents]
    world = _world_matrices(nodes)  # also for skin joints that sit outside the scene
    in_scene: list[int] = []
    stack = [(r, np.eye(4)) for r in reversed(roots)]
    while stack:
        index, parent = stack.pop()
        world[index] = parent @ _node_matrix(nodes[index])
        in_scene.append(index)
        stack.extend((c, world[index]) for c in reversed(nodes[index].get("children", [])))

    cache: dict[tuple[Any, ...], dict[str, Any] | None] = {}
    primitives: list[Primitive] = []
    for node_index in in_scene:
        node = nodes[node_index]
        if "mesh" not in node:
            continue
        mesh_index = node["mesh"]
        mesh = reader._list("meshes")[mesh_index]
        weights = tuple(node.get("weights", mesh.get("weights", ())))
        skin = node.get("skin") if allow_animation else None
        instances = _instance_matrices(reader, node, world[node_index])
        for p_index, prim in enumerate(mesh["primitives"]):
            key = (mesh_index, p_index, weights)
            if key not in cache:
                cache[key] = _decode_primitive(reader, prim, f"meshes[{mesh_index}].primitives[{p_index}]",
                                               weights, uv_sets)
            local = cache[key]
            if local is None:
                continue
            if skin is not None and "JOINTS_0" in prim["attributes"]:
                pos, nrm, uvs, tri = _skin_rest_pose(reader, document["skins"][skin], prim, local, world)
            else:
                pos, nrm, uvs, tri = _bake(local, instances)
            material = prim.get("material")
            if material is None:
                if not default_material:
                    default_material.append(len(materials))
                    materials.append(Material(name="default", metallic=1.0, roughness=1.0))
                material = default_material[0]
            primitives.append(Primitive(positions=pos, indices=tri.reshape(-1), normals=nrm, uvs=uvs,
                                        material=material))
    if not materials:
        materials.append(Material())
    extras = document["asset"].get("extras")
    name = extras.get("asset_id") if isinstance(extras, dict) else None
    return Model(primitives=primitives, materials=materials, name=str(name or "model"))


def _has_ancestor_in(node: int, parents: dict[int, int], group: set[int]) -> bool:
    while node in parents:
        node = parents[node]
        if node in group:
            return True
    return False


def _world_matrices(nodes: list[dict[str, Any]]) -> list[np.ndarray]:
    """World transform of every node (structure checks guarantee a forest)."""
    world = [np.eye(4) for _ in nodes]
    children = {c for n in nodes for c in n.get("children", [])}
    stack = [(i, np.eye(4)) for i in range(len(nodes)) if i not in children]
    while stack:
        index, parent = stack.pop()
        world[index] = parent @ _node_matrix(nodes[index])
        stack.extend((c, world[index]) for c in nodes[index].get("children", []))
    return world


def _instance_matrices(reader: _Reader, node: dict[str, Any], world: np.ndarray) -> np.ndarray:
    """(k, 4, 4) world matrices: the node's own, or one per EXT_mesh_gpu_instancing instance."""
    instancing = (node.get("extensions") or {}).get("EXT_mesh_gpu_instancing")
    if not isinstance(instancing, dict):
        return world[None]
    attrs = instancing["attributes"]
    count = reader._list("accessors")[next(iter(attrs.values()))]["count"]
    local = np.tile(np.eye(4), (count, 1, 1))
    if "ROTATION" in attrs:
        local[:, :3, :3] = _rotation_matrices(reader.accessor(attrs["ROTATION"]).astype(np.float64))
    if "SCALE" in attrs:
        local[:, :3, :3] *= reader.accessor(attrs["SCALE"]).astype(np.float64)[:, None, :]
    if "TRANSLATION" in attrs:
        local[:, :3, 3] = reader.accessor(attrs["TRANSLATION"]).astype(np.float64)
    return world[None] @ local


def _decode_primitive(reader: _Reader, prim: dict[str, Any], where: str, weights: tuple[float, ...],
                      uv_sets: list[tuple[int, np.ndarray | None]]) -> dict[str, Any] | None:
    """Local-space positions (float64), normals, chosen UVs and an (m, 3) triangle list, or None."""
    mode = prim.get("mode", 4)
    if mode not in (4, 5, 6):
        return None  # points and lines carry no surface for a game mesh
    attrs = prim["attributes"]
    if "POSITION" not in attrs:
        raise GlbError(f"{where} has no POSITION attribute")
    pos = reader.accessor(attrs["POSITION"]).astype(np.float64)
    if pos.shape[1] != 3:
        raise GlbError(f"{where}: POSITION is not VEC3")
    normals = reader.accessor(attrs["NORMAL"]).astype(np.float64) if "NORMAL" in attrs else None
    for target, w in zip(prim.get("targets", []), weights):
        if w:
            if "POSITION" in target:
                pos = pos + w * reader.accessor(target["POSITION"])
            if "NORMAL" in target and normals is not None:
                normals = normals + w * reader.accessor(target["NORMAL"])
    if "indices" in prim:
        idx = reader.accessor(prim["indices"]).reshape(-1).astype(np.int64)
        if len(idx) and int(idx.max()) >= len(pos):
            raise GlbError(f"{where}: index {int(idx.max())} is out of range for {len(pos)} vertices")
    else:
        idx = np.arange(len(pos), dtype=np.int64)
    if mode == 4 and len(idx) % 3:
        raise GlbError(f"{where}: index count {len(idx)} is not a multiple of 3")
    tex_coord, transform = uv_sets[prim["material"]] if "material" in prim else (0, None)
    uvs = None
    if f"TEXCOORD_{tex_coord}" in attrs:
        uvs = reader.accessor(attrs[f"TEXCOORD_{tex_coord}"]).astype(np.float64)[:, :2]
        if transform is not None:
            uvs = uvs @ transform[:2, :2].T + transform[:2, 2]
    elif "TEXCOORD_0" in attrs:
        uvs = reader.accessor(attrs["TEXCOORD_0"]).astype(np.float64)[:, :2]
    return {"pos": pos, "normals": normals, "uvs": None if uvs is None else uvs.astype(np.float32),
            "tri": _triangle_list(idx, mode)}


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(length > 1e-12, v / np.maximum(length, 1e-12), v)


def _bake(local: dict[str, Any], matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                                                 np.ndarray]:
    """Positions, normals, UVs and triangles of a primitive under k world matrices, concatenated."""
    pos, normals, tri = local["pos"], local["normals"], local["tri"]
    linear, offset = matrices[:, :3, :3], matrices[:, :3, 3]
    det = np.linalg.det(linear)
    if len(matrices) == 1 and np.allclose(matrices[0], np.eye(4)):
        out_pos, out_nrm = pos, normals
    else:
        out_pos = (np.einsum("kij,nj->kni", linear, pos) + offset[:, None, :]).reshape(-1, 3)
        out_nrm = None
        if normals is not None:
            # Normals follow the inverse transpose, so non-uniform and mirrored scales keep them
            # normal; each keeps its stored length, so checks and `normalize` see the file's data.
            safe = np.where(np.abs(det)[:, None, None] > 1e-30, linear, np.eye(3))
            turned = np.einsum("kji,nj->kni", np.linalg.inv(safe), normals)
            out_nrm = (_unit(turned) * np.linalg.norm(normals, axis=1)[None, :, None]).reshape(-1, 3)
    # A mirroring transform turns counter-clockwise triangles clockwise: swap two corners back.
    base = np.arange(len(matrices))[:, None, None] * len(pos)
    tris = np.where((det < 0)[:, None, None], tri[None][:, :, [0, 2, 1]], tri[None]) + base
    uvs = local["uvs"] if local["uvs"] is None or len(matrices) == 1 else np.tile(local["uvs"], (len(matrices), 1))
    return out_pos, out_nrm, uvs, tris.reshape(-1, 3)


def _skin_rest_pose(reader: _Reader, skin: dict[str, Any], prim: dict[str, Any], local: dict[str, Any],
                    world: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None,
                                                      np.ndarray]:
    """Linear-blend skinning at the nodes' rest transforms (the skinned node's own transform is ignored)."""
    joints = skin["joints"]
    if "inverseBindMatrices" in skin:
        inverse_bind = reader.accessor(skin["inverseBindMatrices"]).astype(np.float64)[: len(joints)]
        inverse_bind = inverse_bind.reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
    else:
        inverse_bind = np.tile(np.eye(4), (len(joints), 1, 1))
    joint_matrices = np.stack([world[j] for j in joints]) @ inverse_bind
    attrs = prim["attributes"]
    blended = np.zeros((len(local["pos"]), 4, 4))
    total = np.zeros(len(local["pos"]))
    for s in range(8):
        if f"JOINTS_{s}" not in attrs or f"WEIGHTS_{s}" not in attrs:
            break
        j = reader.accessor(attrs[f"JOINTS_{s}"]).astype(np.int64)
        w = reader.accessor(attrs[f"WEIGHTS_{s}"]).astype(np.float64)
        if j.size and int(j.max()) >= len(joints):
            raise GlbError(f"a JOINTS_{s} value {int(j.max())} is out of range for {len(joints)} joints")
        blended += np.einsum("nk,nkij->nij", w, joint_matrices[j])
        total += w.sum(axis=1)
    blended /= np.where(total > 1e-12, total, 1.0)[:, None, None]
    linear = blended[:, :3, :3]
    pos = np.einsum("nij,nj->ni", linear, local["pos"]) + blended[:, :3, 3]
    normals = local["normals"]
    if normals is not None:  # the inverse transpose of the blended matrix, stored lengths kept
        safe = np.where(np.abs(np.linalg.det(linear))[:, None, None] > 1e-30, linear, np.eye(3))
        normals = _unit(np.einsum("nji,nj->ni", np.linalg.inv(safe), normals)) * np.linalg.norm(
            normals, axis=1, keepdims=True)
    tri = local["tri"]
    flip = np.linalg.det(linear[tri[:, 0]]) < 0
    tri = np.where(flip[:, None], tri[:, [0, 2, 1]], tri)
    return pos, normals, local["uvs"], tri


def read_asset_extras(data: bytes) -> dict[str, Any]:
    """The `asset.extras` object of a GLB (Kiln stores provenance there); {} when absent."""
    document, _ = parse_container(data)
    extras = document["asset"].get("extras")
    return dict(extras) if isinstance(extras, dict) else {}


# ----------------------------------------------------------------------------------------------
# Writing


class GlbBuilder:
    """Assembles a glTF document and its binary buffer; `build()` returns GLB bytes.

    Meshes, nodes and materials are added explicitly so export profiles can lay out several
    levels or a collision mesh in one file; `write_glb` covers the common one-model case.
    """

    def __init__(self, generator: str = "Kiln") -> None:
        self.doc: dict[str, Any] = {
            "asset": {"version": "2.0", "generator": generator},
            "scene": 0,
            "scenes": [{"nodes": []}],
            "nodes": [],
            "meshes": [],
            "materials": [],
            "accessors": [],
            "bufferViews": [],
            "buffers": [],
        }
        self._bin = bytearray()
        self._material_ids: dict[int, int] = {}
        self.extensions_used: set[str] = set()
        self.extensions_required: set[str] = set()

    def add_buffer_view(self, data: bytes, target: int | None = None, stride: int | None = None) -> int:
        while len(self._bin) % 4:
            self._bin.append(0)
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self._bin), "byteLength": len(data)}
        if stride:
            view["byteStride"] = stride
        if target:
            view["target"] = target
        self._bin.extend(data)
        self.doc["bufferViews"].append(view)
        return len(self.doc["bufferViews"]) - 1

    def add_accessor(self, array: np.ndarray, type_: str, target: int | None = None, with_bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(v): k for k, v in _COMPONENT_DTYPES.items()}[array.dtype]
        width = _TYPE_SIZES[type_]
        count = array.size // width
        view = self.add_buffer_view(array.tobytes(), target=target)
        acc: dict[str, Any] = {"bufferView": view, "componentType": component, "count": count, "type": type_}
        if with_bounds and count:
            flat = array.reshape(count, width)
            cast = float if array.dtype.kind == "f" else int
            acc["min"] = [cast(v) for v in flat.min(axis=0)]
            acc["max"] = [cast(v) for v in flat.max(axis=0)]
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def add_material(self, material: Material) -> int:
        key = id(material)
        if key in self._material_ids:
            return self._material_ids[key]
        pbr: dict[str, Any] = {
            "baseColorFactor": [float(c) for c in material.base_color_factor],
            "metallicFactor": float(material.metallic),
            "roughnessFactor": float(material.roughness),
        }
        if material.base_color_texture is not None:
            pbr["baseColorTexture"] = {"index": self._add_texture(material.base_color_texture)}
        entry: dict[str, Any] = {"name": material.name, "pbrMetallicRoughness": pbr}
        if material.double_sided:
            entry["doubleSided"] = True
        if material.alpha_mode != "OPAQUE":
            entry["alphaMode"] = material.alpha_mode
        self.doc["materials"].append(entry)
        self._material_ids[key] = len(self.doc["materials"]) - 1
        return self._material_ids[key]

    def _add_texture(self, texture: Texture) -> int:
        self.doc.setdefault("images", [])
        self.doc.setdefault("textures", [])
        self.doc.setdefault("samplers", [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}])
        view = self.add_buffer_view(texture.data)
        self.doc["images"].append({"bufferView": view, "mimeType": texture.mime_type})
        self.doc["textures"].append({"sampler": 0, "source": len(self.doc["images"]) - 1})
        return len(self.doc["textures"]) - 1

    def add_mesh(self, model: Model, name: str | None = None) -> int:
        primitives = []
        for prim in model.primitives:
            if prim.triangle_count == 0:
                continue
            attributes = {"POSITION": self.add_accessor(prim.positions, "VEC3", 34962, with_bounds=True)}
            if prim.normals is not None:
                attributes["NORMAL"] = self.add_accessor(prim.normals, "VEC3", 34962)
            if prim.uvs is not None:
                attributes["TEXCOORD_0"] = self.add_accessor(prim.uvs, "VEC2", 34962)
            indices = prim.indices
            if prim.vertex_count <= 65535:
                indices = indices.astype(np.uint16)
            entry = {
                "attributes": attributes,
                "indices": self.add_accessor(indices, "SCALAR", 34963),
                "material": self.add_material(model.materials[prim.material]),
                "mode": 4,
            }
            primitives.append(entry)
        if not primitives:
            raise ValueError(f"model {model.name!r} has no triangles to write")
        self.doc["meshes"].append({"name": name or model.name, "primitives": primitives})
        return len(self.doc["meshes"]) - 1

    def add_node(self, name: str, mesh: int | None = None, extras: dict[str, Any] | None = None,
                 children: list[int] | None = None, root: bool = True) -> int:
        node: dict[str, Any] = {"name": name}
        if mesh is not None:
            node["mesh"] = mesh
        if children:
            node["children"] = children
        if extras:
            node["extras"] = extras
        self.doc["nodes"].append(node)
        index = len(self.doc["nodes"]) - 1
        if root:
            self.doc["scenes"][0]["nodes"].append(index)
        return index

    def build(self, asset_extras: dict[str, Any] | None = None) -> bytes:
        doc = {k: v for k, v in self.doc.items() if v != [] or k in ("scenes", "nodes")}
        if asset_extras:
            doc["asset"] = {**doc["asset"], "extras": asset_extras}
        if self.extensions_used:
            doc["extensionsUsed"] = sorted(self.extensions_used)
        if self.extensions_required:
            doc["extensionsRequired"] = sorted(self.extensions_required)
        while len(self._bin) % 4:
            self._bin.append(0)
        if self._bin:
            doc["buffers"] = [{"byteLength": len(self._bin)}]
        else:
            doc.pop("buffers", None)
        json_bytes = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        json_bytes += b" " * (-len(json_bytes) % 4)
        total = 12 + 8 + len(json_bytes) + (8 + len(self._bin) if self._bin else 0)
        out = bytearray(struct.pack("<III", GLB_MAGIC, 2, total))
        out += struct.pack("<II", len(json_bytes), CHUNK_JSON) + json_bytes
        if self._bin:
            out += struct.pack("<II", len(self._bin), CHUNK_BIN) + self._bin
        return bytes(out)


def write_glb(model: Model, asset_extras: dict[str, Any] | None = None, node_name: str | None = None) -> bytes:
    """One model as one mesh on one root node."""
    builder = GlbBuilder()
    builder.add_node(node_name or model.name, builder.add_mesh(model))
    return builder.build(asset_extras)
