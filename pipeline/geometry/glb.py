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
import hashlib
import io
import json
import math
import struct
import urllib.parse
from typing import Any

import numpy as np

from .model import (ALPHA_MODES, REPEAT, Material, Model, Primitive, Sampler, Texture, TextureRef,
                    TextureTransform, column_range)

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
            draco = (prim.get("extensions") or {}).get("KHR_draco_mesh_compression")
            if draco is not None and (not isinstance(draco, dict) or not isinstance(draco.get("attributes"), dict)
                                      or not ref(views, "bufferViews", draco.get("bufferView"),
                                                 f"{where}.extensions.KHR_draco_mesh_compression.bufferView")):
                problems.append(f"{where}.extensions.KHR_draco_mesh_compression needs a bufferView and attributes")
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
        for name, ext in (texture.get("extensions") or {}).items():
            if isinstance(ext, dict) and "source" in ext:
                ref(images, "images", ext["source"], f"textures[{ti}].extensions.{name}.source")
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
_MESHOPT = ("EXT_meshopt_compression", "KHR_meshopt_compression")
_REFUSED_EXTENSIONS = {
    "KHR_texture_basisu": "its textures are KTX2/Basis (KHR_texture_basisu) with no PNG or JPEG fallback; Kiln "
    "reads PNG, JPEG and WebP textures: re-export with one of those",
    "EXT_texture_avif": "its textures are AVIF only (EXT_texture_avif); re-export with PNG, JPEG or WebP textures",
}
# Material extensions carried through unchanged into every GLB Kiln writes (their textures follow
# the model's image list). Engines that do not read one ignore it, as glTF intends.
MATERIAL_EXTENSIONS = (
    "KHR_materials_emissive_strength", "KHR_materials_clearcoat", "KHR_materials_sheen",
    "KHR_materials_specular", "KHR_materials_ior", "KHR_materials_transmission", "KHR_materials_volume",
    "KHR_materials_unlit", "KHR_materials_iridescence", "KHR_materials_anisotropy",
    "KHR_materials_dispersion", "KHR_materials_diffuse_transmission",
)
# Extensions a file may *require* that the reader honours.
_HANDLED_EXTENSIONS = {
    "KHR_mesh_quantization",  # integer/normalized attributes: decoded to float32
    "KHR_texture_transform",  # kept per texture slot
    "EXT_mesh_gpu_instancing",  # expanded into one copy per instance
    "KHR_materials_pbrSpecularGlossiness",  # mapped to metallic-roughness (diffuse -> base colour)
    "KHR_materials_variants",
    _DRACO, *_MESHOPT, "EXT_texture_webp",  # decoded
    *MATERIAL_EXTENSIONS,
}
_MESHOPT_FILTERS = {"OCTAHEDRAL": "oct", "QUATERNION": "quat", "EXPONENTIAL": "exp"}


class _Reader:
    """Decodes the data a structurally sound document points at (run `structural_problems` first)."""

    def __init__(self, document: dict[str, Any], binary: bytes):
        self.doc = document
        self.bin = memoryview(binary)
        self._buffers: dict[int, memoryview] = {}
        self._decoded_views: dict[int, memoryview] = {}
        self.textures: list[Texture] = []  # the model's images, in order of first use
        self.samplers: list[Sampler] = []
        self._image_ids: dict[int, int] = {}  # glTF image index -> Model.textures index
        self._sampler_ids: dict[int, int] = {}
        self.notes: list[str] = []

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
        compressed = next((view["extensions"][e] for e in _MESHOPT if e in (view.get("extensions") or {})), None)
        if isinstance(compressed, dict):
            if index not in self._decoded_views:
                self._decoded_views[index] = self._meshopt_view(index, compressed)
            return self._decoded_views[index], view.get("byteStride")
        start = view.get("byteOffset", 0)
        data = self.buffer(view["buffer"])[start : start + view["byteLength"]]
        return data, view.get("byteStride")

    def _meshopt_view(self, index: int, ext: dict[str, Any]) -> memoryview:
        """EXT_meshopt_compression: decode the compressed bytes (and undo the filter) into the
        plain bufferView the accessors describe."""
        from . import meshopt

        where = f"bufferViews[{index}].extensions.EXT_meshopt_compression"
        try:
            buffer = self.buffer(ext["buffer"])
            start = ext.get("byteOffset", 0)
            source = bytes(buffer[start : start + ext["byteLength"]])
            count, stride, mode = int(ext["count"]), int(ext["byteStride"]), ext.get("mode", "ATTRIBUTES")
            if mode == "ATTRIBUTES":
                raw = meshopt.decode_vertex_buffer(source, count, stride)
                filter_ = _MESHOPT_FILTERS.get(ext.get("filter", "NONE"))
                if filter_:
                    raw = meshopt.decode_filter(filter_, raw, count, stride)
            elif mode in ("TRIANGLES", "INDICES"):
                raw = meshopt.decode_index_buffer(source, count, stride, sequence=mode == "INDICES")
            else:
                raise GlbError(f"unknown mode {mode!r}")
        except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
            raise GlbError(f"{where} does not decode: {exc}") from None
        return memoryview(raw.tobytes())

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
        return _dequantize(out, acc) if normalized else out

    def image(self, source: int, where: str) -> int:
        """The Model.textures index of glTF image `source`, decoded once and checked readable."""
        if source in self._image_ids:
            return self._image_ids[source]
        image = self._list("images")[source]
        if "bufferView" in image:
            data, _ = self.view(image["bufferView"])
            data, mime = bytes(data), image["mimeType"]
        else:
            uri = image["uri"]
            if not uri.startswith("data:"):
                raise GlbError(f"images[{source}] refers to the external file {uri!r}; only self-contained GLBs are "
                               "read (embed the textures, e.g. `npx gltf-transform copy in.gltf out.glb`)")
            mime = uri[5:].split(";", 1)[0].split(",", 1)[0] or "image/png"
            data = decode_data_uri(uri)
        label = f"images[{source}]" + (f" {image['name']!r}" if image.get("name") else "")
        data, mime = _readable_image(data, mime, f"{where} -> {label}")
        if mime == "image/webp":
            # EXT_texture_webp is read but not written: engines' glTF importers (Unity glTFast,
            # Unreal Interchange, Godot) do not all read WebP, so every profile gets lossless PNG.
            data, mime = _transcode_png(data), "image/png"
            self.notes.append(f"{label} was WebP (EXT_texture_webp); stored as lossless PNG")
        self._image_ids[source] = len(self.textures)
        self.textures.append(Texture(data, mime, str(image.get("name", ""))))
        return self._image_ids[source]

    def sampler(self, index: int | None) -> int | None:
        if index is None:
            return None
        if index not in self._sampler_ids:
            s = self._list("samplers")[index]
            self._sampler_ids[index] = len(self.samplers)
            self.samplers.append(Sampler(s.get("magFilter"), s.get("minFilter"), s.get("wrapS", REPEAT),
                                         s.get("wrapT", REPEAT)))
        return self._sampler_ids[index]

    def texture_ref(self, info: dict[str, Any], where: str, scale_key: str | None = None) -> TextureRef | None:
        """A textureInfo as a TextureRef (None when its texture has no image Kiln can read)."""
        texture = self._list("textures")[info["index"]]
        extensions = texture.get("extensions") or {}
        source = (extensions.get("EXT_texture_webp") or {}).get("source", texture.get("source"))
        if texture.get("source") is not None and "EXT_texture_webp" in extensions:
            source = texture["source"]  # a PNG/JPEG fallback is there: prefer it over transcoding
        if source is None:
            return None  # only an extension source Kiln cannot decode (e.g. KTX2 without required fallback)
        ext = dict(info.get("extensions") or {})
        transform = ext.pop("KHR_texture_transform", None)
        return TextureRef(
            texture=self.image(source, f"{where} (textures[{info['index']}])"),
            sampler=self.sampler(texture.get("sampler")),
            tex_coord=int(info.get("texCoord", 0)),
            transform=None if not isinstance(transform, dict) else TextureTransform(
                offset=tuple(float(v) for v in transform.get("offset", (0.0, 0.0))),
                rotation=float(transform.get("rotation", 0.0)),
                scale=tuple(float(v) for v in transform.get("scale", (1.0, 1.0))),
                tex_coord=transform.get("texCoord")),
            scale=float(info.get(scale_key, 1.0)) if scale_key else 1.0,
            extensions=ext,
        )


def _dequantize(out: np.ndarray, acc: dict[str, Any]) -> np.ndarray:
    """Normalized integers as float32 in [0, 1] or [-1, 1] (KHR_mesh_quantization, colours, weights)."""
    if not acc.get("normalized"):
        return out
    dtype = _COMPONENT_DTYPES[acc["componentType"]]
    if dtype not in _NORMALIZED_SCALE:
        return out
    out = out.astype(np.float32) / _NORMALIZED_SCALE[dtype]
    return np.maximum(out, -1.0) if np.dtype(dtype).kind == "i" else out


def _readable_image(data: bytes, mime: str, where: str) -> tuple[bytes, str]:
    """The bytes and their real MIME type, or GlbError when they are not an image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.verify()  # header and (for PNG) chunk checksums, without decoding all pixels
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise GlbError(f"{where}: the texture's bytes ({len(data)} bytes, declared {mime}) are not a "
                       f"decodable image: {exc}") from None
    real = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}.get(fmt or "")
    if real is None:
        raise GlbError(f"{where}: the texture is a {fmt} image; glTF textures are PNG, JPEG or WebP")
    return data, real


def _transcode_png(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.save(out, "PNG", optimize=False)
    return out.getvalue()


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


def _refuse_unsupported(document: dict[str, Any], allow_animation: bool) -> None:
    required = document.get("extensionsRequired") or []
    for ext in required:
        if ext in _REFUSED_EXTENSIONS:
            raise GlbError(f"the model cannot be read: {_REFUSED_EXTENSIONS[ext]}")
    unknown = sorted(set(required) - _HANDLED_EXTENSIONS)
    if unknown:
        raise GlbError(f"the model requires glTF extensions Kiln does not support: {', '.join(unknown)}")
    if allow_animation:
        return
    skins, animations = document.get("skins") or [], document.get("animations") or []
    if skins:
        raise GlbError(
            f"the model is skinned ({len(skins)} skin(s), {len(animations)} animation(s)); Kiln's LOD chain "
            "bakes meshes into static geometry and would lose the skeleton, so skinned models are refused "
            "(asset.toml `[import] skinned = \"refuse\"`). Import a static export of the mesh, or set "
            "`skinned = \"bind_pose\"` to take its bind pose as a static mesh (skin and animation dropped)"
        )
    if animations:
        names = ", ".join(repr(a.get("name") or f"#{i}") for i, a in enumerate(animations[:5]))
        raise GlbError(
            f"the model is animated ({len(animations)} animation(s): {names}); Kiln bakes node transforms into "
            "static geometry and would lose the animation, so animated models are refused (asset.toml "
            "`[import] skinned = \"refuse\"`). Export it without animation, or set `skinned = \"bind_pose\"` "
            "to take its rest pose as a static mesh"
        )


def _read_material(reader: _Reader, mat: dict[str, Any], i: int) -> Material:
    """One glTF material: every core slot and factor, extensions passed through with their
    textureInfos turned into TextureRefs."""
    label = f"materials[{i}]" + (f" {mat['name']!r}" if mat.get("name") else "")

    def ref(info: Any, slot: str, scale_key: str | None = None) -> TextureRef | None:
        return None if not isinstance(info, dict) else reader.texture_ref(info, f"{label} {slot}", scale_key)

    extensions = dict(mat.get("extensions") or {})
    spec_gloss = extensions.pop("KHR_materials_pbrSpecularGlossiness", None)
    pbr = mat.get("pbrMetallicRoughness")
    if pbr is None and isinstance(spec_gloss, dict):
        # The closest metallic-roughness reading: diffuse is the base colour of a dielectric.
        reader.notes.append(f"{label} used KHR_materials_pbrSpecularGlossiness (archived); read as "
                            "metallic-roughness from its diffuse colour and glossiness")
        pbr = {"baseColorFactor": spec_gloss.get("diffuseFactor", [1.0, 1.0, 1.0, 1.0]),
               "baseColorTexture": spec_gloss.get("diffuseTexture"),
               "metallicFactor": 0.0, "roughnessFactor": 1.0 - float(spec_gloss.get("glossinessFactor", 1.0))}
    pbr = pbr or {}
    # Slots are read in the order the writer writes them, so images keep their order on a round trip.
    slots = dict(
        base_color_texture=ref(pbr.get("baseColorTexture"), "baseColorTexture"),
        metallic_roughness_texture=ref(pbr.get("metallicRoughnessTexture"), "metallicRoughnessTexture"),
        normal_texture=ref(mat.get("normalTexture"), "normalTexture", "scale"),
        occlusion_texture=ref(mat.get("occlusionTexture"), "occlusionTexture", "strength"),
        emissive_texture=ref(mat.get("emissiveTexture"), "emissiveTexture"))
    for name, ext in sorted(extensions.items()):
        if isinstance(ext, dict):
            extensions[name] = {key: (ref(value, f"{name}.{key}") if key.endswith("Texture") else value)
                                for key, value in ext.items()}
    mode = mat.get("alphaMode", "OPAQUE")
    if mode not in ALPHA_MODES:
        raise GlbError(f"{label}: alphaMode {mode!r} is not one of {', '.join(ALPHA_MODES)}")
    return Material(
        name=str(mat.get("name", f"material_{i}")),
        base_color_factor=tuple(float(c) for c in pbr.get("baseColorFactor", [1.0, 1.0, 1.0, 1.0])),
        metallic=float(pbr.get("metallicFactor", 1.0)),
        roughness=float(pbr.get("roughnessFactor", 1.0)),
        emissive_factor=tuple(float(c) for c in mat.get("emissiveFactor", [0.0, 0.0, 0.0])),
        **slots,
        alpha_mode=mode,
        alpha_cutoff=float(mat.get("alphaCutoff", 0.5)),
        double_sided=bool(mat.get("doubleSided", False)),
        extensions=extensions,
        extras=mat.get("extras") if isinstance(mat.get("extras"), dict) else None,
    )


def read_glb(data: bytes, *, allow_animation: bool = False) -> Model:
    """Read a GLB into a flat `Model` with the default scene's node transforms baked in.

    - Every mesh node of the default scene (or, without scenes, every root node) becomes one
      `Primitive` per mesh primitive, in world space; a node with a negative-determinant transform
      (mirroring) gets its triangle winding flipped so faces still point outward; normals go
      through the inverse transpose, tangents turn with the node (handedness flipped by a mirror).
      EXT_mesh_gpu_instancing nodes become one copy per instance.
    - Triangle strips and fans become triangle lists; points and lines carry no surface and are
      skipped. Morph targets are applied at their default weights.
    - Vertex streams: NORMAL, TANGENT, TEXCOORD_0, TEXCOORD_1 and COLOR_0 (its component type
      kept). Materials carry every core slot with its texCoord and KHR_texture_transform, the
      samplers, and their extensions; images are read once and shared by index. Normals are those
      of the file, or None when it has none: nothing is welded, repaired or computed here;
      `normalize` does that, and `validate` sees the file's own data.
    - Compressed input is decoded: KHR_draco_mesh_compression (DracoPy), EXT_meshopt_compression
      (meshoptimizer's decoders), KHR_mesh_quantization, EXT_texture_webp (to PNG).
    - Skinned or animated models are refused unless `allow_animation=True`, in which case the bind
      pose is read as a static mesh (skinned vertices placed by their joints' rest transforms),
      the skin and animation are dropped and `Model.notes` says so.

    Raises `GlbError` with a readable reason (naming the material, texture or primitive) for a
    broken container, an undecodable image or Draco buffer, a texture slot whose UV set the mesh
    lacks, or anything else Kiln cannot carry through the pipeline without silently breaking it.
    """
    document, binary = parse_container(data)
    problems = structural_problems(document, binary)
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise GlbError(f"invalid glTF structure: {problems[0]}{more}")
    _refuse_unsupported(document, allow_animation)
    reader = _Reader(document, binary)
    materials = [_read_material(reader, mat, i) for i, mat in enumerate(reader._list("materials"))]
    variants_ext = (document.get("extensions") or {}).get("KHR_materials_variants") or {}
    variants = [str(v.get("name", f"variant_{k}")) for k, v in enumerate(variants_ext.get("variants") or [])]
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
            where = f"meshes[{mesh_index}].primitives[{p_index}]"
            if key not in cache:
                cache[key] = _decode_primitive(reader, prim, where, weights)
            local = cache[key]
            if local is None:
                continue
            material = prim.get("material")
            if material is None:
                if not default_material:
                    default_material.append(len(materials))
                    materials.append(Material(name="default", metallic=1.0, roughness=1.0))
                material = default_material[0]
            _check_uv_sets(materials[material], material, local["streams"], where)
            if skin is not None and "JOINTS_0" in prim["attributes"]:
                pos, streams, tri = _skin_rest_pose(reader, document["skins"][skin], prim, local, world)
            else:
                pos, streams, tri = _bake(local, instances)
            mappings = ((prim.get("extensions") or {}).get("KHR_materials_variants") or {}).get("mappings") or []
            primitives.append(Primitive(
                positions=pos, indices=tri.reshape(-1), material=material, **streams,
                variants=tuple((m["material"], tuple(m.get("variants", ()))) for m in mappings if "material" in m)))
    if not materials:
        materials.append(Material())
    skins, animations = document.get("skins") or [], document.get("animations") or []
    if skins or animations:
        reader.notes.append(f"skinned/animated source ({len(skins)} skin(s), {len(animations)} animation(s)): "
                            "imported as its static bind pose; skeleton and animation dropped")
    extras = document["asset"].get("extras")
    name = extras.get("asset_id") if isinstance(extras, dict) else None
    return Model(primitives=primitives, materials=materials, name=str(name or "model"), textures=reader.textures,
                 samplers=reader.samplers, variants=variants, notes=reader.notes)


def _check_uv_sets(material: Material, index: int, streams: dict[str, np.ndarray | None], where: str) -> None:
    for slot, ref in material.texture_slots():
        uv_set = ref.uv_set
        if uv_set > 1:
            raise GlbError(f"materials[{index}] {material.name!r} {slot} texture samples TEXCOORD_{uv_set}; "
                           "Kiln carries TEXCOORD_0 and TEXCOORD_1 only (move it to one of those)")
        if streams["uvs" if uv_set == 0 else "uv1"] is None:
            raise GlbError(f"materials[{index}] {material.name!r} {slot} texture samples TEXCOORD_{uv_set}, "
                           f"which {where} does not have")


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


def _draco_attributes(reader: _Reader, prim: dict[str, Any], where: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The attributes (stored values, by glTF name) and flat indices of a Draco-compressed primitive."""
    import DracoPy

    ext = prim["extensions"][_DRACO]
    try:
        raw, _ = reader.view(ext["bufferView"])
        mesh = DracoPy.decode(bytes(raw))
        out = {}
        for name, unique_id in ext["attributes"].items():
            attribute = mesh.get_attribute_by_unique_id(unique_id)
            if attribute is None:
                raise ValueError(f"it has no attribute with id {unique_id} ({name})")
            out[name] = np.asarray(attribute["data"]).reshape(len(attribute["data"]), -1)
        faces = np.asarray(mesh.faces, np.int64).reshape(-1)
    except GlbError:
        raise
    except Exception as exc:  # DracoPy raises its own exception types, and KeyError/ValueError on bad input
        raise GlbError(f"{where}: the Draco buffer (KHR_draco_mesh_compression, bufferViews"
                       f"[{ext.get('bufferView')}]) does not decode: {exc}") from None
    accessors = reader._list("accessors")
    for name, values in out.items():
        acc = accessors[prim["attributes"][name]] if name in prim["attributes"] else {}
        if acc:
            if len(values) != acc["count"]:
                raise GlbError(f"{where}: Draco decoded {len(values)} {name} values, the accessor declares {acc['count']}")
            values = values.astype(_COMPONENT_DTYPES[acc["componentType"]])  # DracoPy hands integers as floats
        out[name] = _dequantize(values, acc) if acc else values
    return out, faces


# glTF attribute -> Primitive field, and whether the stored component type is kept.
_STREAM_ATTRIBUTES = {"NORMAL": "normals", "TEXCOORD_0": "uvs", "TEXCOORD_1": "uv1", "COLOR_0": "colors",
                      "TANGENT": "tangents"}


def _decode_primitive(reader: _Reader, prim: dict[str, Any], where: str,
                      weights: tuple[float, ...]) -> dict[str, Any] | None:
    """Local-space positions (float64), vertex streams and an (m, 3) triangle list, or None."""
    mode = prim.get("mode", 4)
    if mode not in (4, 5, 6):
        return None  # points and lines carry no surface for a game mesh
    attrs = prim["attributes"]
    if "POSITION" not in attrs:
        raise GlbError(f"{where} has no POSITION attribute")
    accessors = reader._list("accessors")
    if _DRACO in (prim.get("extensions") or {}):
        decoded, draco_indices = _draco_attributes(reader, prim, where)
    else:
        decoded, draco_indices = {}, None

    def attribute(name: str, normalized: bool = True) -> np.ndarray | None:
        if name in decoded:
            value = decoded[name]
            if not normalized and name in attrs:  # colours: back to the stored component type
                acc = accessors[attrs[name]]
                dtype = _COMPONENT_DTYPES[acc["componentType"]]
                if np.dtype(dtype).kind == "u":
                    value = np.rint(value * _NORMALIZED_SCALE[dtype]).astype(dtype)
            return value
        return reader.accessor(attrs[name], normalized) if name in attrs else None

    pos = attribute("POSITION").astype(np.float64)
    if pos.shape[1] != 3:
        raise GlbError(f"{where}: POSITION is not VEC3")
    streams: dict[str, np.ndarray | None] = {}
    for name, field_name in _STREAM_ATTRIBUTES.items():
        value = attribute(name, normalized=name != "COLOR_0")
        if value is not None and name in ("TEXCOORD_0", "TEXCOORD_1"):
            value = value.astype(np.float32)[:, :2]
        if value is not None and name == "COLOR_0" and value.dtype.kind not in "fu":
            value = value.astype(np.float32)  # signed colours are invalid glTF; read them as floats
        streams[field_name] = value
    normals = None if streams["normals"] is None else streams["normals"].astype(np.float64)
    for target, w in zip(prim.get("targets", []), weights):
        if w:
            if "POSITION" in target:
                pos = pos + w * reader.accessor(target["POSITION"])
            if "NORMAL" in target and normals is not None:
                normals = normals + w * reader.accessor(target["NORMAL"])
    streams["normals"] = normals
    if draco_indices is not None:
        idx = draco_indices
    elif "indices" in prim:
        idx = reader.accessor(prim["indices"]).reshape(-1).astype(np.int64)
    else:
        idx = np.arange(len(pos), dtype=np.int64)
    if len(idx) and int(idx.max()) >= len(pos):
        raise GlbError(f"{where}: index {int(idx.max())} is out of range for {len(pos)} vertices")
    if mode == 4 and len(idx) % 3:
        raise GlbError(f"{where}: index count {len(idx)} is not a multiple of 3")
    return {"pos": pos, "streams": streams, "tri": _triangle_list(idx, mode)}


def _unit(v: np.ndarray) -> np.ndarray:
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(length > 1e-12, v / np.maximum(length, 1e-12), v)


def _turn_streams(streams: dict[str, np.ndarray | None], linear: np.ndarray, subscripts: str) -> dict[str, Any]:
    """Normals through the inverse transpose of `linear` (each keeping its stored length, so checks
    and `normalize` see the file's data), tangents through `linear` with the handedness flipped
    under a mirror. `subscripts` is "k" (one matrix per instance) or "n" (one per vertex)."""
    out = dict(streams)
    det = np.linalg.det(linear)
    safe = np.where(np.abs(det)[:, None, None] > 1e-30, linear, np.eye(3))
    normals = streams["normals"]
    if normals is not None:
        turned = np.einsum(f"{subscripts}ji,nj->{subscripts}ni" if subscripts == "k" else "nji,nj->ni",
                           np.linalg.inv(safe), normals)
        out["normals"] = (_unit(turned) * np.linalg.norm(normals, axis=1)[..., None]).reshape(-1, 3)
    tangents = streams["tangents"]
    if tangents is not None:
        xyz = np.einsum("kij,nj->kni" if subscripts == "k" else "nij,nj->ni", linear, tangents[:, :3])
        sign = np.sign(det)[:, None, None] if subscripts == "k" else np.sign(det)[:, None]
        w = np.broadcast_to(tangents[:, 3:4], xyz.shape[:-1] + (1,)) * np.where(sign == 0, 1, sign)
        out["tangents"] = np.concatenate([_unit(xyz), w], axis=-1).reshape(-1, 4)
    return out


def _bake(local: dict[str, Any], matrices: np.ndarray) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
    """Positions, vertex streams and triangles of a primitive under k world matrices, concatenated."""
    pos, streams, tri = local["pos"], local["streams"], local["tri"]
    linear, offset = matrices[:, :3, :3], matrices[:, :3, 3]
    det = np.linalg.det(linear)
    if len(matrices) == 1 and np.allclose(matrices[0], np.eye(4)):
        out_pos, out = pos, dict(streams)
    else:
        out_pos = (np.einsum("kij,nj->kni", linear, pos) + offset[:, None, :]).reshape(-1, 3)
        out = _turn_streams(streams, linear, "k")
        for name in ("uvs", "uv1", "colors"):
            if out[name] is not None and len(matrices) > 1:
                out[name] = np.tile(out[name], (len(matrices), 1))
    # A mirroring transform turns counter-clockwise triangles clockwise: swap two corners back.
    base = np.arange(len(matrices))[:, None, None] * len(pos)
    tris = np.where((det < 0)[:, None, None], tri[None][:, :, [0, 2, 1]], tri[None]) + base
    return out_pos, out, tris.reshape(-1, 3)


def _skin_rest_pose(reader: _Reader, skin: dict[str, Any], prim: dict[str, Any], local: dict[str, Any],
                    world: list[np.ndarray]) -> tuple[np.ndarray, dict[str, Any], np.ndarray]:
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
    streams = _turn_streams(local["streams"], linear, "n")
    tri = local["tri"]
    flip = np.linalg.det(linear[tri[:, 0]]) < 0
    tri = np.where(flip[:, None], tri[:, [0, 2, 1]], tri)
    return pos, streams, tri


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
    Identical images are stored once per file (by content), whatever model or slot they come from.
    """

    def __init__(self, generator: str = "Kiln") -> None:
        self.doc: dict[str, Any] = {
            "asset": {"version": "2.0", "generator": generator},
            "scene": 0,
            "scenes": [{"nodes": []}],
            "nodes": [],
            "meshes": [],
            "materials": [],
            "textures": [],
            "images": [],
            "samplers": [],
            "accessors": [],
            "bufferViews": [],
            "buffers": [],
        }
        self._bin = bytearray()
        self._material_ids: dict[tuple[int, int], int] = {}
        self._material_json: dict[str, int] = {}
        self._image_ids: dict[bytes, int] = {}
        self._texture_ids: dict[tuple[int, int | None], int] = {}
        self._sampler_ids: dict[Sampler, int] = {}
        self._variants: list[str] | None = None
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

    def add_accessor(self, array: np.ndarray, type_: str, target: int | None = None, with_bounds: bool = False,
                     normalized: bool = False) -> int:
        array = np.ascontiguousarray(array)
        component = {np.dtype(v): k for k, v in _COMPONENT_DTYPES.items()}[array.dtype]
        width = _TYPE_SIZES[type_]
        count = array.size // width
        view = self.add_buffer_view(array.tobytes(), target=target)
        acc: dict[str, Any] = {"bufferView": view, "componentType": component, "count": count, "type": type_}
        if normalized:
            acc["normalized"] = True
        if with_bounds and count:
            flat = array.reshape(count, width)
            cast = float if array.dtype.kind == "f" else int
            lo, hi = column_range(flat)
            acc["min"] = [cast(v) for v in lo]
            acc["max"] = [cast(v) for v in hi]
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def add_material(self, material: Material, model: Model | None = None) -> int:
        """The document index of `material` (added once per material and image list)."""
        key = (id(material), id(model.textures) if model is not None else 0)
        if key in self._material_ids:
            return self._material_ids[key]

        def info(ref: TextureRef, scale_key: str | None = None) -> dict[str, Any]:
            if model is None:
                raise ValueError(f"material {material.name!r} has textures: pass the model that holds them")
            return self._texture_info(ref, model, scale_key)

        pbr: dict[str, Any] = {
            "baseColorFactor": [float(c) for c in material.base_color_factor],
            "metallicFactor": float(material.metallic),
            "roughnessFactor": float(material.roughness),
        }
        if material.base_color_texture is not None:
            pbr["baseColorTexture"] = info(material.base_color_texture)
        if material.metallic_roughness_texture is not None:
            pbr["metallicRoughnessTexture"] = info(material.metallic_roughness_texture)
        entry: dict[str, Any] = {"name": material.name, "pbrMetallicRoughness": pbr}
        if material.normal_texture is not None:
            entry["normalTexture"] = info(material.normal_texture, "scale")
        if material.occlusion_texture is not None:
            entry["occlusionTexture"] = info(material.occlusion_texture, "strength")
        if material.emissive_texture is not None:
            entry["emissiveTexture"] = info(material.emissive_texture)
        if any(material.emissive_factor):
            entry["emissiveFactor"] = [float(c) for c in material.emissive_factor]
        if material.alpha_mode != "OPAQUE":
            entry["alphaMode"] = material.alpha_mode
        if material.alpha_mode == "MASK" and material.alpha_cutoff != 0.5:
            entry["alphaCutoff"] = float(material.alpha_cutoff)
        if material.double_sided:
            entry["doubleSided"] = True
        if material.extensions:
            entry["extensions"] = {
                name: ({k: (info(v) if isinstance(v, TextureRef) else v) for k, v in ext.items()}
                       if isinstance(ext, dict) else ext)
                for name, ext in sorted(material.extensions.items())}
            self.extensions_used.update(material.extensions)
        if material.extras:
            entry["extras"] = material.extras
        # Equal materials (e.g. the same material in several LOD levels of one file, whose images
        # are the same bytes) are stored once.
        signature = json.dumps(entry, sort_keys=True)
        if signature not in self._material_json:
            self.doc["materials"].append(entry)
            self._material_json[signature] = len(self.doc["materials"]) - 1
        self._material_ids[key] = self._material_json[signature]
        return self._material_ids[key]

    def _texture_info(self, ref: TextureRef, model: Model, scale_key: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self._add_texture(model.textures[ref.texture],
                                                          None if ref.sampler is None else model.samplers[ref.sampler])}
        if ref.tex_coord:
            out["texCoord"] = ref.tex_coord
        if scale_key and ref.scale != 1.0:
            out[scale_key] = float(ref.scale)
        extensions = dict(ref.extensions)
        if ref.transform is not None:
            t = ref.transform
            transform: dict[str, Any] = {"offset": [float(v) for v in t.offset], "rotation": float(t.rotation),
                                         "scale": [float(v) for v in t.scale]}
            if t.tex_coord is not None:
                transform["texCoord"] = int(t.tex_coord)
            extensions["KHR_texture_transform"] = transform
        if extensions:
            out["extensions"] = extensions
            self.extensions_used.update(extensions)
        return out

    def _add_texture(self, texture: Texture, sampler: Sampler | None) -> int:
        digest = hashlib.sha256(texture.data).digest()
        if digest not in self._image_ids:
            view = self.add_buffer_view(texture.data)
            image: dict[str, Any] = {"bufferView": view, "mimeType": texture.mime_type}
            if texture.name:
                image["name"] = texture.name
            self.doc["images"].append(image)
            self._image_ids[digest] = len(self.doc["images"]) - 1
        sampler_index = None
        if sampler is not None:
            if sampler not in self._sampler_ids:
                entry = {"magFilter": sampler.mag_filter, "minFilter": sampler.min_filter,
                         "wrapS": sampler.wrap_s, "wrapT": sampler.wrap_t}
                self.doc["samplers"].append({k: v for k, v in entry.items() if v is not None and v != REPEAT})
                self._sampler_ids[sampler] = len(self.doc["samplers"]) - 1
            sampler_index = self._sampler_ids[sampler]
        key = (self._image_ids[digest], sampler_index)
        if key not in self._texture_ids:
            entry = {"source": key[0]} if sampler_index is None else {"sampler": sampler_index, "source": key[0]}
            self.doc["textures"].append(entry)
            self._texture_ids[key] = len(self.doc["textures"]) - 1
        return self._texture_ids[key]

    def add_mesh(self, model: Model, name: str | None = None) -> int:
        primitives = []
        if model.variants:
            if self._variants is not None and self._variants != list(model.variants):
                raise ValueError("models written into one GLB must share their KHR_materials_variants names")
            self._variants = list(model.variants)
        for prim in model.primitives:
            if prim.triangle_count == 0:
                continue
            attributes = {"POSITION": self.add_accessor(prim.positions, "VEC3", 34962, with_bounds=True)}
            if prim.normals is not None:
                attributes["NORMAL"] = self.add_accessor(prim.normals, "VEC3", 34962)
            if prim.tangents is not None and prim.normals is not None:  # glTF: TANGENT needs NORMAL
                attributes["TANGENT"] = self.add_accessor(prim.tangents, "VEC4", 34962)
            if prim.uvs is not None:
                attributes["TEXCOORD_0"] = self.add_accessor(prim.uvs, "VEC2", 34962)
                if prim.uv1 is not None:  # TEXCOORD_1 without TEXCOORD_0 is not allowed
                    attributes["TEXCOORD_1"] = self.add_accessor(prim.uv1, "VEC2", 34962)
            if prim.colors is not None:
                attributes["COLOR_0"] = self.add_accessor(prim.colors, "VEC4" if prim.colors.shape[1] == 4 else "VEC3",
                                                          34962, normalized=prim.colors.dtype.kind == "u")
            indices = prim.indices
            if prim.vertex_count <= 65535:
                indices = indices.astype(np.uint16)
            entry: dict[str, Any] = {
                "attributes": attributes,
                "indices": self.add_accessor(indices, "SCALAR", 34963),
                "material": self.add_material(model.materials[prim.material], model),
                "mode": 4,
            }
            if prim.variants and model.variants:
                entry["extensions"] = {"KHR_materials_variants": {"mappings": [
                    {"material": self.add_material(model.materials[m], model), "variants": list(vs)}
                    for m, vs in prim.variants]}}
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
        if self._variants:
            doc["extensions"] = {"KHR_materials_variants": {"variants": [{"name": n} for n in self._variants]}}
            self.extensions_used.add("KHR_materials_variants")
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
