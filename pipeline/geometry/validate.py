"""Validation: pure measurements the asset checks report, one function per rule.

Each check returns a `Finding`: its name, whether it passed, how bad a failure is ("error" blocks
shipping, "warn" is shown but does not), what was measured and the limit it was held to (both plain
JSON dicts for the check's metadata) and a message a technical artist can act on. No Dagster here:
`pipeline/checks.py` turns findings into check results.

`validate_glb` runs every check that applies to one GLB file; the LOD-chain checks
(`check_triangles_fall`, `check_screen_sizes_fall`, `check_lod_errors`: defects, blocking;
`check_budgets`, `check_chain_complete`: cost, warnings) take the chain's numbers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from PIL import Image

from .glb import GlbError, _Reader, parse_container, read_glb, structural_problems
from .model import Model, column_range
from .normalize import degenerate_mask

Severity = Literal["error", "warn"]

# Plausible largest dimension (m) per category. Wide on purpose: the check is there to catch unit
# mistakes (a model in centimetres is 100x too big, one in kilometres 1000x too small) and collapsed
# geometry, not to judge art direction. The defaults heights in `pipeline.categories` sit inside.
CATEGORY_SIZE_RANGES_M: dict[str, tuple[float, float]] = {
    "small_prop": (0.02, 1.5),  # coins to rifles
    "prop": (0.1, 5.0),  # boxes to cars' worth of furniture
    "hero": (0.3, 20.0),  # small creatures to vehicles and giants
    "environment": (0.5, 200.0),  # rocks to buildings
}
# File size budget per category, for one GLB (LOD0 with its textures; lower levels are smaller).
CATEGORY_FILE_BUDGETS_BYTES: dict[str, int] = {
    "small_prop": 8 << 20,
    "prop": 16 << 20,
    "hero": 32 << 20,
    "environment": 32 << 20,
}


@dataclass
class Finding:
    """One check's outcome. `measured` and `limit` are plain JSON for the check's metadata."""

    name: str
    passed: bool
    severity: Severity
    measured: dict[str, Any]
    limit: dict[str, Any]
    message: str


@dataclass(frozen=True)
class ValidationLimits:
    """The limits `validate_glb` holds a file to; every field is a documented default."""

    max_texture_px: int = 2048  # LOD0's texture size; lower levels are smaller
    normal_length_tolerance: float = 1e-3  # |length - 1| (float32 normals are good to ~1e-7)
    uv_abs_max: float = 64.0  # beyond this, UVs are likely garbage rather than tiling (warn)
    max_file_bytes: int | None = None  # None: the category's budget, or unchecked without a category
    require_uvs: bool = True  # an untextured primitive without UVs is a warning when set


def _finding(name: str, errors: list[str], warnings: list[str], measured: dict[str, Any], limit: dict[str, Any],
             ok: str) -> Finding:
    problems = errors or warnings
    message = "; ".join(problems[:3]) if problems else ok
    if len(problems) > 3:
        message += f" (and {len(problems) - 3} more)"
    return Finding(name, not problems, "error" if errors or not warnings else "warn", measured, limit, message)


# ----------------------------------------------------------------------------------------------
# The file


def check_structure(data: bytes) -> Finding:
    """The GLB container and glTF JSON are sound: chunks, every reference and byte range, index
    ranges, POSITION min/max present and correct (all declared min/max), scene roots are roots.

    Agrees with the Khronos glTF-Validator's errors for these rules (its messages are finer
    grained); everything here is also what `read_glb` needs, except min/max and scene roots, which
    the reader can live without but an engine may not (culling uses POSITION bounds).
    """
    name = "glb_structure"
    try:
        document, binary = parse_container(data)
    except GlbError as exc:
        return Finding(name, False, "error", {"problems": 1}, {"problems": 0}, f"container: {exc}")
    problems = structural_problems(document, binary)
    if not problems:
        problems = _data_problems(document, binary)
    return _finding(name, problems, [], {"problems": len(problems), "first": problems[:5]}, {"problems": 0},
                    "container, JSON, buffers, accessors, indices and bounds are valid")


def _data_problems(document: dict[str, Any], binary: bytes) -> list[str]:
    """Rules that need the data decoded (run after `structural_problems` came back empty)."""
    reader = _Reader(document, binary)
    problems: list[str] = []
    accessors = document.get("accessors", [])
    decoded: dict[int, np.ndarray] = {}

    def get(index: int) -> np.ndarray | None:
        if index not in decoded:
            try:
                decoded[index] = reader.accessor(index, normalized=False)
            except GlbError as exc:
                problems.append(f"accessors[{index}]: {exc}")
                decoded[index] = None  # type: ignore[assignment]
        return decoded[index]

    for mi, mesh in enumerate(document.get("meshes", [])):
        for pi, prim in enumerate(mesh["primitives"]):
            where = f"meshes[{mi}].primitives[{pi}]"
            attrs = prim["attributes"]
            if "POSITION" not in attrs:
                problems.append(f"{where} has no POSITION")
                continue
            position = accessors[attrs["POSITION"]]
            if "min" not in position or "max" not in position:
                problems.append(f"{where}: POSITION accessors[{attrs['POSITION']}] has no min/max "
                                "(glTF requires them; engines cull with them)")
            if "indices" not in prim:
                continue
            index_acc = accessors[prim["indices"]]
            values = get(prim["indices"])
            if values is None:
                continue
            count = position["count"]
            restart = {5121: 255, 5123: 65535, 5125: 4294967295}[index_acc["componentType"]]
            if values.size and int(values.max()) >= count:
                problems.append(f"{where}: index {int(values.max())} is out of range for {count} vertices")
            if values.size and int(values.max()) == restart:
                problems.append(f"{where}: index {restart} is the primitive-restart value, not allowed in glTF")
            if prim.get("mode", 4) == 4 and values.size % 3:
                problems.append(f"{where}: {values.size} indices is not a whole number of triangles")

    for i, acc in enumerate(accessors):
        if ("min" not in acc and "max" not in acc) or ("bufferView" not in acc and "sparse" not in acc):
            continue  # nothing stored to compare with (e.g. Draco-compressed data lives in an extension)
        width = len(acc.get("min", acc.get("max", [])))
        values = get(i)
        if values is None or width != values.shape[1]:
            if values is not None:
                problems.append(f"accessors[{i}] min/max has {width} components for a {acc['type']}")
            continue
        for key, actual in zip(("min", "max"), column_range(values)):
            if key not in acc:
                continue
            declared = np.asarray(acc[key], np.float64)
            actual = actual.astype(np.float64)
            # float32 data against JSON decimals: equal to float32 precision
            if not np.allclose(declared, actual, rtol=1e-6, atol=1e-7):
                problems.append(f"accessors[{i}].{key} is {acc[key]} but the data's {key} is "
                                f"{[round(float(v), 7) for v in actual]}")

    nodes = document.get("nodes", [])
    children = {c for n in nodes for c in n.get("children", [])}
    for si, scene in enumerate(document.get("scenes", [])):
        for root in scene.get("nodes", []):
            if root in children:
                problems.append(f"scenes[{si}] lists nodes[{root}] as a root, but it is another node's child")
    return problems


def check_readable(data: bytes) -> tuple[Finding, Model | None]:
    """Kiln's reader accepts the file (refusals for Draco, skins, animation, external files
    included); returns the model for the checks that need one."""
    try:
        model = read_glb(data)
    except GlbError as exc:
        return Finding("glb_readable", False, "error", {"readable": False}, {"readable": True}, str(exc)), None
    return Finding("glb_readable", True, "error", {"readable": True, "triangles": model.triangle_count},
                   {"readable": True}, "Kiln's reader reads it"), model


def check_has_triangles(model: Model) -> Finding:
    """The model holds at least one triangle (a valid glTF may hold none, a game asset may not)."""
    count = model.triangle_count
    return Finding("has_triangles", count > 0, "error", {"triangles": count}, {"min_triangles": 1},
                   f"{count} triangles" if count else "the file holds no triangles (empty, or only points/lines)")


def check_finite_positions(model: Model) -> Finding:
    """No vertex position is NaN or infinite (one such corner spoils bounds, LODs and every renderer)."""
    bad = sum(int((~np.isfinite(p.positions).all(axis=1)).sum()) for p in model.primitives)
    return Finding("finite_positions", bad == 0, "error", {"nonfinite_vertices": bad}, {"max_nonfinite_vertices": 0},
                   "every position is finite" if not bad else f"{bad} vertices have NaN or infinite positions")


def check_repairs(repairs: dict[str, Any] | None, max_nonfinite_share: float) -> Finding:
    """What normalization dropped or repaired in the source model: said out loud (a warning), and an
    error above the share Kiln repairs (normalization refuses such a model before this is read)."""
    repairs = dict(repairs or {})
    dropped = int(repairs.get("nonfinite_triangles", 0))
    share = float(repairs.get("nonfinite_share", 0.0))
    uvs = int(repairs.get("nonfinite_uvs", 0))
    measured = {"nonfinite_triangles_dropped": dropped, "nonfinite_share": round(share, 6), "nonfinite_uvs_zeroed": uvs}
    limit = {"max_nonfinite_share": max_nonfinite_share}
    if share > max_nonfinite_share:
        return Finding("source_repairs", False, "error", measured, limit,
                       f"{dropped} triangles ({share:.1%}) of the source had NaN/infinite corners, over the "
                       f"{max_nonfinite_share:.0%} limit")
    if dropped or uvs:
        return Finding("source_repairs", False, "warn", measured, limit,
                       f"repaired the source model: dropped {dropped} triangles with NaN/infinite corners "
                       f"({share:.2%}), set {uvs} NaN/infinite UVs to (0, 0)")
    return Finding("source_repairs", True, "error", measured, limit, "nothing in the source needed repair")


def check_file_size(n_bytes: int, budget_bytes: int) -> Finding:
    passed = n_bytes <= budget_bytes
    return Finding("file_size_within_budget", passed, "error", {"bytes": int(n_bytes)},
                   {"max_bytes": int(budget_bytes)},
                   f"{n_bytes / 2**20:.2f} MiB of {budget_bytes / 2**20:.2f} MiB" if passed else
                   f"the file is {n_bytes / 2**20:.2f} MiB, over the {budget_bytes / 2**20:.2f} MiB budget: "
                   "lower the triangle budget or the texture size")


def check_pbr_materials(document: dict[str, Any]) -> Finding:
    """Every material is PBR metallic-roughness (the engines' common ground): it has
    pbrMetallicRoughness and does not use KHR_materials_pbrSpecularGlossiness; primitives without
    a material (glTF's default: metal) are a warning."""
    errors: list[str] = []
    warnings: list[str] = []
    if "KHR_materials_pbrSpecularGlossiness" in (document.get("extensionsUsed") or []):
        errors.append("the file uses KHR_materials_pbrSpecularGlossiness (specular-glossiness)")
    materials = document.get("materials", [])
    for i, material in enumerate(materials):
        label = f"materials[{i}]" + (f" {material['name']!r}" if material.get("name") else "")
        if "KHR_materials_pbrSpecularGlossiness" in (material.get("extensions") or {}):
            errors.append(f"{label} is specular-glossiness, not metallic-roughness")
        elif not isinstance(material.get("pbrMetallicRoughness"), dict):
            errors.append(f"{label} has no pbrMetallicRoughness block")
    missing = sum(1 for m in document.get("meshes", []) for p in m.get("primitives", []) if "material" not in p)
    if missing:
        warnings.append(f"{missing} primitive(s) have no material and render with glTF's default (white metal)")
    return _finding("pbr_metallic_roughness", errors, warnings,
                    {"materials": len(materials), "non_pbr": len(errors), "primitives_without_material": missing},
                    {"workflow": "metallic-roughness", "non_pbr": 0},
                    f"{len(materials)} metallic-roughness material(s)")


# ----------------------------------------------------------------------------------------------
# The model


def check_no_degenerate_triangles(model: Model) -> Finding:
    """No triangle repeats a vertex or has zero area (to float32 precision of the model's size)."""
    lo, hi = model.bounds()
    diagonal = float(np.linalg.norm(hi.astype(np.float64) - lo))
    count = sum(int(degenerate_mask(p.positions, p.triangles, diagonal=diagonal).sum()) for p in model.primitives)
    total = model.triangle_count
    return _finding("no_degenerate_triangles", [f"{count} of {total} triangles are degenerate (zero area or a "
                                                "repeated corner)"] if count else [], [],
                    {"degenerate_triangles": count, "triangles": total}, {"degenerate_triangles": 0},
                    f"none of {total} triangles is degenerate")


def check_normals(model: Model, tolerance: float = ValidationLimits.normal_length_tolerance) -> Finding:
    """Every primitive has normals, all finite and unit length within `tolerance`."""
    missing = sum(1 for p in model.primitives if p.normals is None)
    lengths = [np.linalg.norm(p.normals.astype(np.float64), axis=1) for p in model.primitives
               if p.normals is not None and len(p.normals)]
    lengths_all = np.concatenate(lengths) if lengths else np.ones(0)
    finite = np.isfinite(lengths_all)
    nonfinite = int((~finite).sum())
    deviation = np.abs(lengths_all[finite] - 1.0)
    off = int((deviation > tolerance).sum())
    worst = float(deviation.max()) if deviation.size else 0.0
    errors = []
    if missing:
        errors.append(f"{missing} primitive(s) have no normals")
    if nonfinite:
        errors.append(f"{nonfinite} normal(s) are NaN or infinite")
    if off:
        errors.append(f"{off} normal(s) are not unit length (worst off by {worst:.3g})")
    return _finding("normals_unit_length", errors, [],
                    {"primitives_without_normals": missing, "nonfinite": nonfinite, "not_unit": off,
                     "max_length_error": worst},
                    {"max_length_error": tolerance}, f"{lengths_all.size} unit-length normals")


def check_uvs(model: Model, *, uv_abs_max: float = ValidationLimits.uv_abs_max, require: bool = True) -> Finding:
    """UVs present where a texture needs them (error: every UV set a material slot samples) and
    elsewhere when `require` (warning: engines want them for lightmaps and detail maps), finite
    (error) and within +-`uv_abs_max` (warning)."""
    errors: list[str] = []
    warnings: list[str] = []
    textured_without = untextured_without = nonfinite = outside = 0
    lo, hi = np.inf, -np.inf
    for p in model.primitives:
        needed = {ref.uv_set for _, ref in model.materials[p.material].texture_slots()}
        if any(p.uv_set(k) is None for k in needed):
            textured_without += 1
            continue
        if p.uvs is None:
            untextured_without += 1
            continue
        uvs = np.concatenate([p.uvs] + ([p.uv1] if p.uv1 is not None else []))
        bad = ~np.isfinite(uvs).all(axis=1)
        nonfinite += int(bad.sum())
        good = uvs[~bad]
        if len(good):
            lo, hi = min(lo, float(good.min())), max(hi, float(good.max()))
            outside += int((np.abs(good) > uv_abs_max).any(axis=1).sum())
    if textured_without:
        errors.append(f"{textured_without} textured primitive(s) have no UVs")
    if nonfinite:
        errors.append(f"{nonfinite} UV(s) are NaN or infinite")
    if untextured_without and require:
        warnings.append(f"{untextured_without} primitive(s) have no UVs (engines need them for lightmaps)")
    if outside:
        warnings.append(f"{outside} UV(s) lie beyond +-{uv_abs_max:g}, more likely garbage than tiling")
    return _finding("uvs_present_finite", errors, warnings,
                    {"textured_without_uvs": textured_without, "untextured_without_uvs": untextured_without,
                     "nonfinite": nonfinite, "beyond_range": outside,
                     "range": [lo, hi] if np.isfinite(lo) else None},
                    {"nonfinite": 0, "abs_max": uv_abs_max}, "UVs present and finite")


def texture_size(data: bytes) -> tuple[int, int, str]:
    """(width, height, format) from an encoded image's header, without decoding the pixels."""
    with Image.open(io.BytesIO(data)) as image:
        return image.width, image.height, str(image.format)


_MIME_FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG"}


def check_textures(model: Model, max_px: int = ValidationLimits.max_texture_px) -> Finding:
    """Every texture any material slot uses decodes as the PNG/JPEG its mime type says, is a power
    of two on each side (mipmaps, block compression) and no bigger than `max_px`."""
    errors: list[str] = []
    sizes: list[list[int]] = []
    for index, uses in sorted(model.texture_uses().items()):
        texture = model.textures[index]
        mi, slot = uses[0]
        label = f"material {model.materials[mi].name!r} {slot} texture"
        try:
            width, height, fmt = texture_size(texture.data)
        except Exception as exc:  # Pillow raises several types for undecodable data
            errors.append(f"{label} is not a readable image ({type(exc).__name__})")
            continue
        sizes.append([width, height])
        if _MIME_FORMATS.get(texture.mime_type) != fmt:
            errors.append(f"{label} is {fmt} but declared {texture.mime_type}")
        if width & (width - 1) or height & (height - 1) or not width or not height:
            errors.append(f"{label} is {width}x{height}, not a power of two")
        if max(width, height) > max_px:
            errors.append(f"{label} is {width}x{height}, over the {max_px} px limit")
    return _finding("textures_power_of_two", errors, [], {"textures": len(sizes), "sizes": sizes},
                    {"max_px": max_px, "power_of_two": True},
                    f"{len(sizes)} power-of-two texture(s) within {max_px} px" if sizes else "no textures")


def check_bounds(model: Model, category: str) -> Finding:
    """The largest dimension is plausible for the category (see CATEGORY_SIZE_RANGES_M)."""
    if category not in CATEGORY_SIZE_RANGES_M:
        raise ValueError(f"unknown category {category!r}; known: {', '.join(CATEGORY_SIZE_RANGES_M)}")
    low, high = CATEGORY_SIZE_RANGES_M[category]
    size = [float(v) for v in model.size()]
    largest = max(size)
    errors = [] if low <= largest <= high else [
        f"the model is {size[0]:.3g} x {size[1]:.3g} x {size[2]:.3g} m; a {category} should measure "
        f"{low:g}-{high:g} m at its largest (wrong units, or the wrong category?)"]
    return _finding("bounding_box_plausible", errors, [], {"size_m": size, "largest_m": largest},
                    {"category": category, "min_m": low, "max_m": high},
                    f"{largest:.3g} m at its largest, plausible for a {category}")


# ----------------------------------------------------------------------------------------------
# The LOD chain


def check_triangles_fall(counts: Sequence[int]) -> Finding:
    """Each level has strictly fewer triangles than the one before."""
    counts = [int(c) for c in counts]
    bad = [i for i in range(1, len(counts)) if counts[i] >= counts[i - 1]]
    return _finding("lod_triangles_fall",
                    [f"LOD{i} has {counts[i]} triangles, not fewer than LOD{i - 1}'s {counts[i - 1]}" for i in bad], [],
                    {"triangles": counts}, {"rule": "strictly fewer triangles each level"},
                    " > ".join(map(str, counts)))


def check_screen_sizes_fall(screen_sizes: Sequence[float]) -> Finding:
    """Each level switches in at a strictly smaller screen size than the one before, within (0, 1]."""
    sizes = [float(s) for s in screen_sizes]
    bad = [f"LOD{i} switches at screen size {sizes[i]:g}, not below LOD{i - 1}'s {sizes[i - 1]:g}"
           for i in range(1, len(sizes)) if not sizes[i] < sizes[i - 1]]
    bad += [f"LOD{i} screen size {s:g} is outside (0, 1]" for i, s in enumerate(sizes) if not 0 < s <= 1]
    return _finding("lod_screen_sizes_fall", bad, [], {"screen_sizes": sizes},
                    {"rule": "strictly falling, within (0, 1] (largest side / screen height)"},
                    " > ".join(f"{s:g}" for s in sizes))


def check_lod_errors(errors_m: Sequence[float], limits_m: Sequence[float],
                     screen_sizes: Sequence[float] | None = None) -> Finding:
    """Every level's measured error against the normalized source (m) is within its bound (m): one
    pixel at the level's switch screen size. Kiln's search keeps every level it makes inside, so
    a failure is a defect (a chain made elsewhere or by an older Kiln), not a hard model."""
    if len(errors_m) != len(limits_m):
        raise ValueError(f"{len(errors_m)} errors but {len(limits_m)} limits")
    sizes = list(screen_sizes) if screen_sizes is not None else [None] * len(errors_m)
    over = []
    for i, (e, lim, s) in enumerate(zip(errors_m, limits_m, sizes)):
        if np.isfinite(e) and e <= lim:
            continue
        at = f" (one pixel at switch screen size {s:g})" if s is not None else ""
        over.append(f"LOD{i} error {e * 1000:.3g} mm vs the normalized source exceeds its bound "
                    f"{lim * 1000:.3g} mm{at}: to raise quality, rebuild the chain, or lower "
                    f"`[lod] screen_sizes` for LOD{i} so it is shown only smaller" if np.isfinite(e)
                    else f"LOD{i} error is {e}")
    return _finding("lod_error_within_bound", over, [],
                    {"error_m": [float(e) for e in errors_m], "reference": "normalized source"},
                    {"max_error_m": [float(v) for v in limits_m], "rule": "one 1080p pixel at the switch screen size"},
                    "every level within one pixel at its switch screen size")


def check_budgets(counts: Sequence[int], ceilings: Sequence[int], limits_m: Sequence[float] = (),
                  screen_sizes: Sequence[float] = ()) -> Finding:
    """Every level within its triangle ceiling. A warning, never a failure: the error bound wins,
    and a level that needs more triangles than its ceiling to look right keeps them."""
    if len(counts) != len(ceilings):
        raise ValueError(f"{len(counts)} levels but {len(ceilings)} ceilings")
    over = []
    for i, (c, b) in enumerate(zip(counts, ceilings)):
        if c <= b:
            continue
        why = ""
        if i < len(limits_m) and i < len(screen_sizes):
            why = f" to stay within {limits_m[i] * 1000:.3g} mm (one pixel at screen size {screen_sizes[i]:g})"
        over.append(f"LOD{i} needs {c} triangles, {c - b} over its ceiling of {b},{why}: to lower its cost, "
                    f"lower `[lod] screen_sizes` for LOD{i} (shown smaller, it may be coarser), or raise the "
                    "ceiling (`lod0_triangles` / `ratios`) to accept it")
    return _finding("lod_budgets", [], over, {"triangles": [int(c) for c in counts],
                                              "over_ceiling": [max(0, int(c) - int(b)) for c, b in zip(counts, ceilings)]},
                    {"max_triangles": [int(b) for b in ceilings]}, "every level within its triangle ceiling")


def check_chain_complete(levels: int, requested: int, notes: Sequence[str] = ()) -> Finding:
    """The chain has every level asked for (a warning: a shorter chain still ships)."""
    short = [] if levels >= requested else [f"{levels} of {requested} levels: " + ("; ".join(notes) or "see chain notes")]
    return _finding("lod_chain_complete", [], short, {"levels": int(levels)}, {"requested_levels": int(requested)},
                    f"all {requested} levels")


# ----------------------------------------------------------------------------------------------
# Everything for one file


def validate_glb(data: bytes, *, category: str | None = None,
                 limits: ValidationLimits = ValidationLimits()) -> list[Finding]:
    """Every single-file check that applies: structure first (nothing else is trustworthy without
    it), then readability, materials, triangles, normals, UVs, textures, and, with a category,
    bounding box and file size."""
    structure = check_structure(data)
    findings = [structure]
    try:
        document, _ = parse_container(data)
    except GlbError:
        return findings  # not even a GLB container: nothing else can be measured
    readable, model = check_readable(data)
    findings.append(readable)
    if model is not None:
        findings += [check_has_triangles(model), check_finite_positions(model)]
    findings.append(check_pbr_materials(document))
    if model is not None:
        findings += [
            check_no_degenerate_triangles(model),
            check_normals(model, limits.normal_length_tolerance),
            check_uvs(model, uv_abs_max=limits.uv_abs_max, require=limits.require_uvs),
            check_textures(model, limits.max_texture_px),
        ]
        if category is not None:
            findings.append(check_bounds(model, category))
    budget = limits.max_file_bytes or (CATEGORY_FILE_BUDGETS_BYTES.get(category) if category else None)
    if budget:
        findings.append(check_file_size(len(data), budget))
    return findings
