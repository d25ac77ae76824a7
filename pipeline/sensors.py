"""Sensors: new or changed concept art becomes runs; new exports refresh the catalog."""

from __future__ import annotations

import json

import dagster as dg

from . import concepts, settings
from .assets.common import game_assets
from .jobs import asset_job, catalog_job


@dg.sensor(
    job=asset_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches `$KILN_DATA_DIR/concepts/`. A new folder gets a `game_assets` partition and a run of the "
        "whole chain in the same tick; changed art (a new content hash) gets a new run; unchanged art "
        "never does. Folders with invalid names or no usable files are skipped with the reason logged."
    ),
)
def new_concept_art(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = cursor.get("requested", {})
    logged_skips: dict[str, str] = cursor.get("skipped", {})

    found, skipped = concepts.scan(settings.concepts_dir())
    skipped_now = dict(skipped)
    for name, reason in skipped:
        if logged_skips.get(name) != reason:
            context.log.warning(f"skipped {name}: {reason}")

    existing = set(context.instance.get_dynamic_partitions(game_assets.name))
    new_keys = [f.asset_id for f in found if f.asset_id not in existing]
    run_requests = []
    for folder in found:
        short = folder.content_hash[:16]
        if requested.get(folder.asset_id) == short:
            continue
        requested[folder.asset_id] = short
        run_requests.append(dg.RunRequest(
            run_key=f"{folder.asset_id}:{folder.content_hash}",
            partition_key=folder.asset_id,
            tags={"kiln/asset_id": folder.asset_id, "kiln/content_hash": folder.content_hash},
        ))
    context.update_cursor(json.dumps({"requested": requested, "skipped": skipped_now}, sort_keys=True))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[game_assets.build_add_request(new_keys)] if new_keys else [],
        skip_reason=None if run_requests else
        f"no new or changed concept art ({len(found)} folders, {len(skipped)} skipped)",
    )


@dg.sensor(
    job=catalog_job,
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Re-materializes `catalog` once after any new `engine_export` materializations (many exports "
        "between two ticks coalesce into one catalog run). Dagster does not propagate staleness from "
        "more than 100 partitions to an unpartitioned asset, so the catalog is kept current this way."
    ),
)
def refresh_catalog(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("engine_export")), limit=1, ascending=False).records
    if not records:
        return dg.SensorResult(skip_reason="no engine_export materializations yet")
    newest = records[0].storage_id
    if newest <= int(context.cursor or 0):
        return dg.SensorResult(skip_reason="catalog is current")
    context.update_cursor(str(newest))
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"catalog:{newest}")])


ALL_SENSORS = [new_concept_art, refresh_catalog]
