"""Asset checks: each says what it measured and the limit, and blocks what would ship a broken asset.

The measurements themselves live in `pipeline.geometry.validate`; this module only turns findings
into Dagster check results. Blocking checks stop `engine_export` in the same run; across runs the
export's automation condition waits for them (`all_deps_blocking_checks_passed`).
"""

from __future__ import annotations

from typing import Iterable

import dagster as dg

from .assets.common import game_assets, record_failure
from .assets.generation import generated_model
from .assets.lods import lod_chain
from .geometry import validate
from .geometry.normalize import DEFAULT_MAX_NONFINITE_SHARE
from .resources import KilnStorage


# The lever that fixes each measurement, by finding name (without its "LOD<n> " prefix): what an
# artist changes (asset.toml, the launchpad, the source model), in the words the UI uses.
_REGENERATE = "re-generate with another seed or provider, or fix and re-export the imported model.glb"
FIXES: dict[str, str] = {
    "glb_structure": _REGENERATE,
    "glb_readable": _REGENERATE,
    "has_triangles": _REGENERATE + " (it must hold triangle meshes)",
    "finite_positions": _REGENERATE,
    "source_repairs": _REGENERATE + " (too many corners are NaN/infinite to repair)",
    "pbr_metallic_roughness": "convert the materials to metallic-roughness in model.glb, or re-generate",
    "no_degenerate_triangles": _REGENERATE,
    "normals_unit_length": _REGENERATE,
    "uvs_present_finite": "unwrap UVs in model.glb (or remove the textures that need them), or re-generate",
    "textures_power_of_two": "resize the textures in model.glb to powers of two within the limit, or re-generate",
    "bounding_box_plausible": "set the right `category` (or `height_m`) in asset.toml, or fix the model's units",
    "file_size_within_budget": "lower `[lod] lod0_triangles` or `[options] texture_size` in asset.toml",
    "lod_triangles_fall": "re-materialize lod_chain; if it persists, re-generate the model",
    "lod_screen_sizes_fall": "make `[lod] screen_sizes` strictly falling, each in (0, 1]",
    "lod_error_within_bound": "lower that level's `[lod] screen_sizes` entry (it is then shown only smaller), "
                              "or re-materialize lod_chain",
    "lod_budgets": "lower that level's `[lod] screen_sizes` entry to make it cheaper, or raise `[lod] "
                   "lod0_triangles` / `ratios` to accept the cost",
    "lod_chain_complete": "ask for fewer levels (a shorter `[lod] screen_sizes`), or accept the shorter chain",
}


def _fix(name: str) -> str:
    return FIXES.get(name.split(" ", 1)[1] if name.startswith("LOD") and " " in name else name, _REGENERATE)


def _value(value) -> str:
    """A measurement for a person: numbers rounded, short lists inline, long ones cut."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        shown = ", ".join(_value(v) for v in value[:6])
        return f"[{shown}{', ...' if len(value) > 6 else ''}]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(v)}" for k, v in value.items() if k != "first")
    return str(value)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _order(finding: validate.Finding) -> int:
    """Failures first (blocking errors, then warnings), then the passes."""
    return 2 if finding.passed else 0 if finding.severity == "error" else 1


def describe_failure(finding: validate.Finding) -> str:
    """What failed, measured against the limit, then the lever: `name: message (measured ...;
    limit ...). Fix: ...`."""
    return (f"{finding.name}: {finding.message} (measured {_value(finding.measured)}; limit "
            f"{_value(finding.limit)}). Fix: {_fix(finding.name)}")


def _result(findings: Iterable[validate.Finding], **extra) -> dg.AssetCheckResult:
    findings = sorted(findings, key=_order)  # stable: each group keeps the measuring order
    failed = [f for f in findings if not f.passed]
    errors = [f for f in failed if f.severity == "error"]
    rows = [
        f"| {'FAIL' if f.severity == 'error' else 'WARN'} | {_cell(f.name)} | {_cell(_value(f.measured))} | "
        f"{_cell(_value(f.limit))} | {_cell(f.message)}. Fix: {_cell(_fix(f.name))} |" for f in failed
    ] + [f"| pass | {_cell(f.name)} | {_cell(_value(f.measured))} | {_cell(_value(f.limit))} | {_cell(f.message)} |"
         for f in findings if f.passed]
    table = "| result | check | measured | limit | detail |\n|---|---|---|---|---|\n" + "\n".join(rows)
    return dg.AssetCheckResult(
        passed=not errors,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=" | ".join(describe_failure(f) for f in failed) or "all measurements within limits",
        metadata={
            "findings": dg.MetadataValue.md(table),
            "failed": [f.name for f in failed],
            **extra,
        },
    )


def _blocking(context: dg.AssetCheckExecutionContext, storage: KilnStorage, asset_id: str, name: str,
              result: dg.AssetCheckResult) -> dg.AssetCheckResult:
    """A blocking check that failed stops the export: the asset's last attempt says so."""
    if not result.passed:
        record_failure(storage, asset_id, f"check {name}", result.description or "failed", context.run.run_id,
                       context.log)
    return result


@dg.asset_check(
    asset=generated_model,
    blocking=True,
    partitions_def=game_assets,
    description=(
        "The generated (normalized) GLB is structurally valid (container, accessors, buffers, index "
        "ranges, min/max), has finite positions, normals and finite UVs, PBR metallic-roughness materials, power-of-two "
        "textures and a bounding box plausible for its category; what normalization dropped or repaired "
        "in the source (NaN/infinite corners, UVs) is reported as a warning.\n\n"
        "If it fails: the findings table names the measurement and its limit; re-generate with another "
        "seed or provider, or fix the imported model.glb / the category in asset.toml."
    ),
)
def generated_model_valid(context, storage: KilnStorage,
                          generated_model: dict) -> dg.AssetCheckResult:
    data = storage.blob_store().get(generated_model["glb_sha256"])
    findings = validate.validate_glb(data, category=generated_model["category"])
    findings.append(validate.check_repairs(generated_model.get("repairs"), DEFAULT_MAX_NONFINITE_SHARE))
    return _blocking(context, storage, generated_model["asset_id"], "generated_model_valid", _result(findings))


@dg.asset_check(
    asset=lod_chain,
    blocking=True,
    partitions_def=game_assets,
    description=(
        "Defects, not difficulty: every LOD level's GLB is valid (structure, index ranges, no degenerate "
        "triangles, unit normals, finite UVs, power-of-two textures within limits, PBR materials), "
        "triangle counts and switch screen sizes fall level by level, and each level's measured error "
        "against the normalized source is within one 1080p pixel at its switch screen size.\n\n"
        "If it fails: the finding names the level. An error over its bound: lower that level's "
        "`[lod] screen_sizes` entry (shown only smaller) or rebuild the chain; an invalid file: fix or "
        "re-generate the source model. Budgets are not checked here (see `lod_budgets_met`)."
    ),
)
def lod_levels_valid(context, storage: KilnStorage,
                     lod_chain: dict) -> dg.AssetCheckResult:
    store = storage.blob_store()
    findings: list[validate.Finding] = []
    for lv in lod_chain["levels"]:
        for f in validate.validate_glb(store.get(lv["glb_sha256"]), category=lod_chain["category"]):
            f.name = f"LOD{lv['level']} {f.name}"
            findings.append(f)
    levels = lod_chain["levels"]
    counts = [lv["triangles"] for lv in levels]
    findings.append(validate.check_triangles_fall(counts))
    findings.append(validate.check_screen_sizes_fall([lv["screen_size"] for lv in levels]))
    findings.append(validate.check_lod_errors([lv["error_m"] for lv in levels], [lv["error_limit_m"] for lv in levels],
                                              [lv["screen_size"] for lv in levels]))
    return _blocking(context, storage, lod_chain["asset_id"], "lod_levels_valid",
                     _result(findings, triangles_per_level=counts))


@dg.asset_check(
    asset=lod_chain,
    blocking=False,
    partitions_def=game_assets,
    description=(
        "Cost, a warning only (when it fails, the asset still exports): each level within its triangle "
        "ceiling, and "
        "every requested level made. A level over its ceiling needed those triangles to stay within one "
        "pixel at its switch screen size; the finding shows the deficit.\n\n"
        "To lower the cost: lower that level's `[lod] screen_sizes` entry (shown smaller, it may be "
        "coarser); to accept it: raise `lod0_triangles` / `ratios` (launchpad or asset.toml `[lod]`)."
    ),
)
def lod_budgets_met(lod_chain: dict) -> dg.AssetCheckResult:
    levels = lod_chain["levels"]
    findings = [
        validate.check_budgets([lv["triangles"] for lv in levels], [lv["triangle_ceiling"] for lv in levels],
                               [lv["error_limit_m"] for lv in levels], [lv["screen_size"] for lv in levels]),
        validate.check_chain_complete(len(levels), lod_chain["requested_levels"], lod_chain["chain_notes"]),
    ]
    failed = [f for f in findings if not f.passed]
    result = _result(findings, over_ceiling=[lv["over_ceiling"] for lv in levels])
    # shown as a warning in the UI (passed=False, severity WARN); not blocking, so exports go on
    return dg.AssetCheckResult(passed=not failed, severity=dg.AssetCheckSeverity.WARN,
                               description=result.description, metadata=result.metadata)


ALL_CHECKS = [generated_model_valid, lod_levels_valid, lod_budgets_met]
# The checks that must pass before an asset ships (the blocking ones); exports record their results.
GUARDING_CHECK_KEYS = sorted(spec.key for check in ALL_CHECKS for spec in check.check_specs if spec.blocking)
