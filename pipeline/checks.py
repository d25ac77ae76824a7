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


def _result(findings: Iterable[validate.Finding], **extra) -> dg.AssetCheckResult:
    findings = list(findings)
    failed = [f for f in findings if not f.passed]
    errors = [f for f in failed if f.severity == "error"]
    rows = "\n".join(
        f"| {'pass' if f.passed else 'FAIL'} | {f.name} | {f.measured} | {f.limit} | {f.message} |" for f in findings
    )
    return dg.AssetCheckResult(
        passed=not errors,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description="; ".join(f.message for f in failed) or "all measurements within limits",
        metadata={
            "findings": dg.MetadataValue.md("| result | check | measured | limit | detail |\n|---|---|---|---|---|\n" + rows),
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
        "Cost, a warning only (the asset still exports): each level within its triangle ceiling, and "
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
