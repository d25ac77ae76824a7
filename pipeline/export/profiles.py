"""Engine export profiles: the files a game team imports, per engine, for one asset version.

Each profile lays the LOD chain out the way its engine's importer expects and writes a
`manifest.json` (files with sha256 and bytes, LOD table, bounds, materials, provider, cost) and the
preview PNG beside the GLBs. Every GLB's `asset.extras` carries the provenance chain, so a file
found inside an engine project can be traced back to its concept art.

- web: one GLB, all levels through MSFT_lod (screen coverage hints in the node's extras),
  meshopt-compressed and quantized (`web_compression="none"` writes plain float geometry).
- unity: one GLB, a root node `<asset>` holding `<asset>_LOD0..n` (Unity's LODGroup naming), the
  LOD group's relative transition heights in node extras and the manifest.
- unreal: one GLB per level (`<asset>_LOD<n>.glb`); LOD0's file also holds the convex collision
  node `UCX_<asset>`, named after the render node `<asset>` as Unreal's importer matches them.
- godot: LOD0 plus the convex collision mesh on a node with Godot's `-colonly` suffix
  (collision shape only; a plain `-col` would also render the hull); Godot makes its own LODs.

Screen sizes come in Kiln's one convention (`pipeline.geometry.lod.SCREEN_HEIGHT_PX`): level i
is drawn while the model's largest bounding-box side covers at most `screen_size[i]` of the screen
height (LOD0 is the largest). That is Unity's LODGroup convention (object size = the largest side of
the bounds), so Unity's transition heights are Kiln's sizes shifted by one level; MSFT_lod's
screen coverage is an area share (Babylon.js), so the heights are squared; Unreal's screen size
uses the bounding sphere's diameter, which the unreal manifest names as Kiln's height fraction for
the artist to enter. Each engine's numbers are derived in one place each (`_unity_heights`,
`_screen_coverage`) and labelled there.

Builds are deterministic (the same input gives the same bytes), which is what lets `version_for`
name a version before it is built and publishing never overwrite one.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pipeline import settings
from pipeline.concepts import ASSET_ID_RE
from pipeline.geometry.glb import GlbBuilder
from pipeline.geometry.model import Material, Model, TextureRef

from .collision import DEFAULT_MAX_VERTICES, convex_collision
from .meshopt_ext import compress_glb

PROFILES = ("web", "unity", "unreal", "godot")
# web: the gallery, reviewers' browsers and the three.js proof all read it, and meshopt makes it
# the smallest; unity: the most common engine for this kind of prop. The others are one config away
# and cost a file per level each, so they are not written for teams that do not use them.
DEFAULT_PROFILES = ("web", "unity")

MANIFEST_SCHEMA = 1
CONTENT_TYPES = {
    ".glb": "model/gltf-binary",
    ".json": "application/json",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}


def content_type_for(name: str) -> str:
    for suffix, kind in CONTENT_TYPES.items():
        if name.endswith(suffix):
            return kind
    return "application/octet-stream"


@dataclass
class ExportLevel:
    level: int
    model: Model
    triangles: int
    error_m: float
    screen_size: float


@dataclass
class ExportInput:
    asset_id: str
    version: str
    levels: list[ExportLevel]
    # concept image hashes, provider and job id, raw model hash, ... (into every GLB's asset.extras)
    provenance: dict[str, Any] = field(default_factory=dict)
    preview_png: bytes = b""
    # the normalized source beside every level, one camera (lod_chain's comparison); optional
    side_by_side_png: bytes = b""
    provider: str = ""
    cost_usd: float = 0.0
    category: str = ""
    source_sha256: str = ""  # the generated (raw) model the chain was built from
    extra: dict[str, Any] = field(default_factory=dict)  # more manifest fields, e.g. {"validation": {...}}


@dataclass(frozen=True)
class ExportOptions:
    web_compression: str = "meshopt"  # "meshopt" (EXT_meshopt_compression + KHR_mesh_quantization) or "none"
    position_bits: int = 14  # meshopt position grid; see meshopt_ext.compress_glb
    collision_max_vertices: int = DEFAULT_MAX_VERTICES
    godot_collision_suffix: str = "-colonly"
    cull_screen_size: float = 0.01  # Unity's last transition height: below 1% of the screen the asset is culled


@dataclass
class ExportFile:
    name: str  # path relative to the profile folder
    data: bytes
    content_type: str
    role: str = ""  # "glb", "manifest", "preview"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)


# ----------------------------------------------------------------------------------------------
# Helpers shared by the profiles


def _check(inp: ExportInput) -> list[ExportLevel]:
    if not ASSET_ID_RE.match(inp.asset_id):
        raise ValueError(f"asset_id {inp.asset_id!r} does not match {ASSET_ID_RE.pattern}")
    if not inp.levels:
        raise ValueError(f"asset {inp.asset_id}: no LOD levels to export")
    levels = sorted(inp.levels, key=lambda lv: lv.level)
    if [lv.level for lv in levels] != list(range(len(levels))):
        raise ValueError(f"asset {inp.asset_id}: LOD levels must be 0..n without gaps, got {[lv.level for lv in levels]}")
    for lv in levels:
        if lv.model.triangle_count == 0:
            raise ValueError(f"asset {inp.asset_id}: LOD{lv.level} has no triangles")
    for name in ("preview_png", "side_by_side_png"):
        data = getattr(inp, name)
        if data and not data.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError(f"asset {inp.asset_id}: {name} is not a PNG")
    return levels


def _source_sha256(inp: ExportInput) -> str:
    return inp.source_sha256 or inp.provenance.get("raw_model_sha256", "")


def _asset_extras(inp: ExportInput, profile: str, **more: Any) -> dict[str, Any]:
    provenance = dict(inp.provenance)
    return {
        "asset_id": inp.asset_id,
        "version": inp.version,
        "profile": profile,
        "source_sha256": _source_sha256(inp),
        "kiln_version": provenance.pop("kiln_version", settings.KILN_VERSION),
        "provenance": provenance,
        **more,
    }


def _num(value: float) -> float | None:
    """A float for JSON; an unmeasured (NaN) or infinite value becomes null."""
    value = float(value)
    return value if math.isfinite(value) else None


def _lod_name(asset_id: str, level: int) -> str:
    return f"{asset_id}_LOD{level}"


def _unity_heights(levels: list[ExportLevel], cull: float) -> list[float]:
    """Unity's LODGroup: level i is used while the screen-relative height is above heights[i],
    i.e. until the next level's screen size; the last level is culled below `cull`."""
    sizes = [float(lv.screen_size) for lv in levels]
    return sizes[1:] + [min(cull, sizes[-1] / 2)]


def _screen_coverage(levels: list[ExportLevel]) -> list[float]:
    """MSFT_screencoverage: the minimum screen coverage (a share of the screen's area, as
    Babylon.js, the extension's reference loader, measures it) at which each level is shown.
    Heights are squared into areas; the coarsest level is never culled (0)."""
    return [round(float(lv.screen_size) ** 2, 8) for lv in levels[1:]] + [0.0]


def _texture_info(data: bytes, mime_type: str) -> dict[str, Any]:
    info: dict[str, Any] = {"sha256": hashlib.sha256(data).hexdigest(), "mime_type": mime_type, "bytes": len(data)}
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as image:
            info["width"], info["height"] = image.size
    except Exception:  # noqa: BLE001 - the manifest just lacks the size of an undecodable image
        pass
    return info


def _materials_and_textures(levels: list[ExportLevel]) -> tuple[list[dict], list[dict]]:
    """Distinct materials (every slot, factor and extension) and textures with the levels and slots
    using them (lower levels often carry downscaled textures)."""
    materials: list[dict] = []
    textures: dict[str, dict] = {}
    for lv in levels:
        shas = [hashlib.sha256(t.data).hexdigest() for t in lv.model.textures]
        uses = lv.model.texture_uses()
        for index, sha in enumerate(shas):
            if index not in uses:
                continue
            if sha not in textures:
                texture = lv.model.textures[index]
                textures[sha] = {**_texture_info(texture.data, texture.mime_type), "usage": None, "slots": [],
                                 "levels": []}
            slots = textures[sha]["slots"]
            slots += [slot for _, slot in uses[index] if slot not in slots]
            textures[sha]["usage"] = slots[0]
            if lv.level not in textures[sha]["levels"]:
                textures[sha]["levels"].append(lv.level)
        for m in lv.model.materials:
            entry = material_record(m, shas)
            known = next((e for e in materials if {**e, "levels": None} == {**entry, "levels": None}), None)
            if known is None:
                materials.append({**entry, "levels": [lv.level]})
            elif lv.level not in known["levels"]:
                known["levels"].append(lv.level)
    return materials, list(textures.values())


def material_record(m: Material, texture_shas: list[str]) -> dict[str, Any]:
    """A material as plain JSON for manifests and fidelity tables: factors, every texture slot (the
    image's sha256, its UV set, scale/strength, transform) and the extensions by name."""
    def slot(ref: TextureRef | None) -> dict[str, Any] | None:
        if ref is None:
            return None
        out: dict[str, Any] = {"sha256": texture_shas[ref.texture], "tex_coord": ref.uv_set}
        if ref.scale != 1.0:
            out["scale"] = float(ref.scale)
        if ref.transform is not None:
            out["transform"] = asdict(ref.transform)
        return out

    def plain(value: Any) -> Any:
        return slot(value) if isinstance(value, TextureRef) else value

    return {
        "name": m.name, "base_color_factor": [float(c) for c in m.base_color_factor],
        "base_color_texture": (slot(m.base_color_texture) or {}).get("sha256"),
        "metallic": float(m.metallic), "roughness": float(m.roughness),
        "emissive_factor": [float(c) for c in m.emissive_factor],
        "alpha_mode": m.alpha_mode, "alpha_cutoff": float(m.alpha_cutoff), "double_sided": m.double_sided,
        "slots": {name: slot(ref) for name, ref in m.texture_slots()},
        "extensions": {name: ({k: plain(v) for k, v in ext.items()} if isinstance(ext, dict) else ext)
                       for name, ext in sorted(m.extensions.items())},
    }


# Every profile writes glTF binary through GlbBuilder, which carries material extensions verbatim, so
# no profile drops one; a profile that could not carry an extension would list it here, by name.
_NOT_CARRIED: dict[str, tuple[str, ...]] = {"web": (), "unity": (), "unreal": (), "godot": ()}
TANGENTS_SOURCE = "source tangents kept (the level's triangles are the source's)"
TANGENTS_OMITTED = ("omitted: the geometry was simplified, so the engine generates MikkTSpace tangents "
                    "(glTF's rule for normal-mapped meshes without TANGENT)")


def _fidelity(levels: list[ExportLevel], profile: str) -> dict[str, Any]:
    """What of the source's look each file carries: material extensions, vertex streams per level,
    and how tangents were handled where a normal map needs them."""
    used = sorted({name for lv in levels for m in lv.model.materials for name in m.extensions})
    dropped = [e for e in used if e in _NOT_CARRIED[profile]]
    rows = []
    for lv in levels:
        streams = sorted({k for p in lv.model.primitives for k in p.streams()})
        normal_mapped = [p for p in lv.model.primitives if lv.model.materials[p.material].normal_texture is not None]
        if not normal_mapped:
            tangents = "no normal map"
        elif all(p.tangents is not None for p in normal_mapped):
            tangents = TANGENTS_SOURCE
        else:
            tangents = TANGENTS_OMITTED
        rows.append({"level": lv.level, "vertex_streams": streams, "tangents": tangents,
                     "variants": list(lv.model.variants)})
    return {"material_extensions": {"carried": [e for e in used if e not in dropped], "not_carried": dropped},
            "levels": rows}


def _lod_rows(levels: list[ExportLevel]) -> list[dict[str, Any]]:
    return [{"level": lv.level, "triangles": lv.model.triangle_count, "vertices": lv.model.vertex_count,
             "error_m": _num(lv.error_m), "screen_size": float(lv.screen_size)} for lv in levels]


def _glb(name: str, data: bytes) -> ExportFile:
    return ExportFile(name, data, "model/gltf-binary", "glb")


# ----------------------------------------------------------------------------------------------
# Profiles: each returns (files, per-level manifest columns, engine notes)


def _web(inp: ExportInput, levels: list[ExportLevel], opts: ExportOptions):
    models = [lv.model for lv in levels]
    builder = GlbBuilder()
    meshes = [builder.add_mesh(m, _lod_name(inp.asset_id, lv.level)) for lv, m in zip(levels, models)]
    root = builder.add_node(_lod_name(inp.asset_id, 0), meshes[0])
    # Lower levels are nodes outside the scene, reached only through MSFT_lod (the spec's layout),
    # so a loader without the extension shows LOD0 alone.
    lower = [builder.add_node(_lod_name(inp.asset_id, lv.level), mesh, root=False)
             for lv, mesh in zip(levels[1:], meshes[1:])]
    coverage = _screen_coverage(levels)
    if lower:
        builder.doc["nodes"][root]["extensions"] = {"MSFT_lod": {"ids": lower}}
        builder.doc["nodes"][root]["extras"] = {"MSFT_screencoverage": coverage}
        builder.extensions_used.add("MSFT_lod")
    data = builder.build(_asset_extras(inp, "web"))
    if opts.web_compression == "meshopt":
        data = compress_glb(data, position_bits=opts.position_bits)
    elif opts.web_compression != "none":
        raise ValueError(f"web_compression must be 'meshopt' or 'none', not {opts.web_compression!r}")
    name = f"{inp.asset_id}.glb"
    columns = [{"node": _lod_name(inp.asset_id, lv.level), "screen_coverage": c} for lv, c in zip(levels, coverage)]
    engine = {
        "file": name,
        "lod_extension": "MSFT_lod" if lower else None,
        "screen_coverage": coverage,
        "compression": opts.web_compression,
        "extensions_required": ["EXT_meshopt_compression", "KHR_mesh_quantization"]
        if opts.web_compression == "meshopt" else [],
        "loading": "three.js: GLTFLoader.setMeshoptDecoder(MeshoptDecoder); lower levels are the nodes "
                   "listed in the LOD0 node's extensions.MSFT_lod.ids",
    }
    return [_glb(name, data)], columns, engine


def _unity(inp: ExportInput, levels: list[ExportLevel], opts: ExportOptions):
    models = [lv.model for lv in levels]
    heights = _unity_heights(levels, opts.cull_screen_size)
    builder = GlbBuilder()
    children = []
    for lv, model, height in zip(levels, models, heights):
        name = _lod_name(inp.asset_id, lv.level)
        children.append(builder.add_node(name, builder.add_mesh(model, name), root=False, extras={
            "lod": lv.level, "screen_relative_transition_height": height,
            "triangles": model.triangle_count, "error_m": _num(lv.error_m)}))
    builder.add_node(inp.asset_id, children=children, extras={
        "lod_group": {"screen_relative_transition_heights": heights, "fade_mode": "None"}})
    name = f"{inp.asset_id}.glb"
    columns = [{"node": _lod_name(inp.asset_id, lv.level), "screen_relative_transition_height": h}
               for lv, h in zip(levels, heights)]
    engine = {
        "file": name,
        "lod_group": {"node": inp.asset_id, "screen_relative_transition_heights": heights, "fade_mode": "None"},
        "import": "glTFast or UnityGLTF: add a LODGroup on the root and assign the _LOD<n> children "
                  "with these transition heights (they are also in each node's extras)",
    }
    return [_glb(name, builder.build(_asset_extras(inp, "unity")))], columns, engine


def _unreal(inp: ExportInput, levels: list[ExportLevel], opts: ExportOptions):
    collision_name = f"UCX_{inp.asset_id}"
    collision = convex_collision(levels[0].model, opts.collision_max_vertices, collision_name)
    files, columns = [], []
    for lv in levels:
        builder = GlbBuilder()
        builder.add_node(inp.asset_id, builder.add_mesh(lv.model, inp.asset_id))
        if lv.level == 0:
            builder.add_node(collision_name, builder.add_mesh(collision, collision_name))
        name = f"{_lod_name(inp.asset_id, lv.level)}.glb"
        files.append(_glb(name, builder.build(_asset_extras(inp, "unreal", level=lv.level))))
        columns.append({"file": name})
    # Unreal's Screen Size measures the bounding sphere (its diameter, the box diagonal) against the
    # screen height; Kiln's measures the box's largest side: scale by diagonal / largest side.
    size = levels[0].model.size().astype(float)
    sphere = float(np.linalg.norm(size) / max(float(size.max()), 1e-12))
    engine = {
        "lod_screen_sizes": [float(lv.screen_size) for lv in levels],  # Kiln's: largest side / screen height
        "unreal_screen_sizes": [round(min(1.0, float(lv.screen_size) * sphere), 6) for lv in levels],
        "collision": {"node": collision_name, "file": files[0].name, "render_node": inp.asset_id,
                      "vertices": collision.vertex_count, "triangles": collision.triangle_count, "convex": True},
        "import": f"import {files[0].name} as the static mesh (UCX_ becomes its simple collision), "
                  "add LOD1..n with LOD Import and set each LOD's Screen Size from unreal_screen_sizes "
                  "(bounding-sphere convention; lod_screen_sizes are Kiln's largest-side fractions)",
    }
    return files, columns, engine


def _godot(inp: ExportInput, levels: list[ExportLevel], opts: ExportOptions):
    collision_name = f"{inp.asset_id}{opts.godot_collision_suffix}"
    collision = convex_collision(levels[0].model, opts.collision_max_vertices, collision_name)
    builder = GlbBuilder()
    builder.add_node(inp.asset_id, builder.add_mesh(levels[0].model, inp.asset_id))
    builder.add_node(collision_name, builder.add_mesh(collision, collision_name))
    name = f"{inp.asset_id}.glb"
    columns = [{"node": inp.asset_id if lv.level == 0 else None, "shipped": lv.level == 0} for lv in levels]
    engine = {
        "file": name,
        "lods": "only LOD0 is shipped: Godot generates LODs on import (mesh import option "
                "'Generate LODs', on by default); Kiln's LOD table is kept here for reference",
        "collision": {"node": collision_name, "vertices": collision.vertex_count,
                      "triangles": collision.triangle_count, "convex": True,
                      "note": f"the {opts.godot_collision_suffix} suffix makes Godot import the node as "
                              "a StaticBody3D collision shape and drop its mesh"},
    }
    return [_glb(name, builder.build(_asset_extras(inp, "godot")))], columns, engine


_BUILDERS = {"web": _web, "unity": _unity, "unreal": _unreal, "godot": _godot}


def build_profile(inp: ExportInput, profile: str, options: ExportOptions | None = None) -> list[ExportFile]:
    """The files of one profile for one asset version: GLB(s), preview.png, manifest.json (last)."""
    if profile not in _BUILDERS:
        raise ValueError(f"unknown export profile {profile!r}; choose from {', '.join(PROFILES)}")
    opts = options or ExportOptions()
    levels = _check(inp)
    files, columns, engine = _BUILDERS[profile](inp, levels, opts)
    if inp.preview_png:
        files.append(ExportFile("preview.png", inp.preview_png, "image/png", "preview"))
    if inp.side_by_side_png:
        files.append(ExportFile("side_by_side.png", inp.side_by_side_png, "image/png", "preview"))
    lo, hi = levels[0].model.bounds()
    materials, textures = _materials_and_textures(levels)
    manifest = {
        **inp.extra,
        "kiln_manifest": MANIFEST_SCHEMA,
        "asset_id": inp.asset_id,
        "version": inp.version,
        "profile": profile,
        "category": inp.category,
        "provider": inp.provider,
        "cost_usd": float(inp.cost_usd),
        "source_sha256": _source_sha256(inp),
        "kiln_version": inp.provenance.get("kiln_version", settings.KILN_VERSION),
        "provenance": inp.provenance,
        "files": [{"name": f.name, "sha256": f.sha256, "bytes": f.size, "content_type": f.content_type,
                   "role": f.role} for f in files],
        "lods": [{**row, **col} for row, col in zip(_lod_rows(levels), columns)],
        "bounds": {"min": [float(v) for v in lo], "max": [float(v) for v in hi],
                   "size": [float(v) for v in hi - lo], "units": "meters", "up": "+Y"},
        "materials": materials,
        "textures": textures,
        "fidelity": _fidelity(levels, profile),
        "engine": engine,
        "preview": "preview.png" if inp.preview_png else None,
        "side_by_side": "side_by_side.png" if inp.side_by_side_png else None,
    }
    data = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False).encode("utf-8") + b"\n"
    files.append(ExportFile("manifest.json", data, "application/json", "manifest"))
    return files


def level_glbs(inp: ExportInput) -> dict[int, bytes]:
    """Each level alone as a plain GLB (catalog.json's `lods[].uri`), provenance in asset.extras."""
    out = {}
    for lv in _check(inp):
        name = _lod_name(inp.asset_id, lv.level)
        builder = GlbBuilder()
        builder.add_node(name, builder.add_mesh(lv.model, name))
        out[lv.level] = builder.build(_asset_extras(inp, "lod", level=lv.level))
    return out


def _model_digest(model: Model) -> str:
    h = hashlib.sha256(model.name.encode())
    for p in model.primitives:
        for array in (p.positions, p.indices, p.normals, p.uvs, p.uv1, p.colors, p.tangents):
            h.update(b"-" if array is None else np.ascontiguousarray(array).tobytes())
        h.update(str((p.material, p.variants)).encode())
    shas = [hashlib.sha256(t.data).hexdigest() for t in model.textures]
    for m in model.materials:
        h.update(json.dumps(material_record(m, shas), sort_keys=True, default=str).encode())
    h.update(json.dumps([[t.mime_type for t in model.textures], [asdict(s) for s in model.samplers],
                         model.variants]).encode())
    return h.hexdigest()


def _input_digest(inp: ExportInput) -> dict[str, Any]:
    return {
        "asset_id": inp.asset_id,
        "levels": [[lv.level, _model_digest(lv.model), float(lv.error_m), float(lv.screen_size)]
                   for lv in sorted(inp.levels, key=lambda lv: lv.level)],
        "preview": hashlib.sha256(inp.preview_png).hexdigest(),
        "provenance": inp.provenance,
        "fields": [inp.provider, float(inp.cost_usd), inp.category, inp.source_sha256, inp.extra],
        # only when there is one, so versions built without a comparison keep their names
        **({"side_by_side": hashlib.sha256(inp.side_by_side_png).hexdigest()} if inp.side_by_side_png else {}),
    }


def version_for(content: ExportInput | str | Sequence[str], profiles: Sequence[str] = DEFAULT_PROFILES,
                options: ExportOptions | None = None) -> str:
    """The version name of an export: 16 hex digits of a sha256 over its content, the profiles,
    their options and the Kiln version. Same content, same version; any change, a new version.

    `content` is either the ExportInput (everything that goes into the bytes is hashed: levels,
    preview, provenance, manifest fields; `inp.version` itself is ignored) or content hashes
    computed upstream (e.g. the LOD chain's sha256). With hashes, whatever else changes the bytes
    (preview, cost, provenance) must be covered by them: a rebuild differing only there counts as
    the same version, so the first publication of it stands.
    """
    if isinstance(content, ExportInput):
        source: Any = _input_digest(content)
    else:
        source = [content] if isinstance(content, str) else list(content)
    digest = {
        "content": source,
        "profiles": sorted(profiles),
        "options": asdict(options or ExportOptions()),
        "kiln_version": settings.KILN_VERSION,
        "manifest_schema": MANIFEST_SCHEMA,
    }
    blob = json.dumps(digest, sort_keys=True, default=str).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
