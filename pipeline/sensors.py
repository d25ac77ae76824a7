"""Sensors: new or changed concept art becomes runs; new exports refresh the catalog."""

from __future__ import annotations

import json

import dagster as dg

from . import concepts, settings
from .assets.common import game_assets, record_failure
from .export.status import read_status
from .jobs import asset_job, catalog_job
from .resources import KilnStorage


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
        if folder.asset_id in existing and _materialized_hash(context.instance, folder.asset_id) == folder.content_hash:
            continue  # this exact art is already materialized (a backfill, the CLI, a run from the UI)
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


def _materialized_hash(instance: dg.DagsterInstance, asset_id: str) -> str | None:
    """The content hash (data version) of the partition's latest concept_art materialization."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("concept_art"), asset_partitions=[asset_id]), limit=1).records
    return records[0].asset_materialization.tags.get("dagster/data_version") if records else None


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


@dg.run_failure_sensor(
    request_job=catalog_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description=(
        "After a failed run of a game asset: records the failure as the asset's last attempt "
        "(`<asset_id>/status.json` at the export target, and `last_attempt` in its `latest.json`) "
        "when the failing step could not (the run process died, the run config was refused), and "
        "refreshes the catalog so the gallery shows the failure beside the last good version."
    ),
)
def record_failed_runs(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    asset_id = run.tags.get("dagster/partition")
    if not asset_id or asset_id not in context.instance.get_dynamic_partitions(game_assets.name):
        return dg.SkipReason(f"run {run.run_id} is not one game asset's run")
    storage = KilnStorage()
    status = read_status(storage.export_target(), asset_id)
    if not status or status.get("run_id") != run.run_id:
        stage, reason = _first_failure(context)
        record_failure(storage, asset_id, stage, reason, run.run_id, context.log)
    return dg.RunRequest(run_key=f"catalog-after-failure:{run.run_id}")


def _first_failure(context: dg.RunFailureSensorContext) -> tuple[str, str]:
    """(stage, one line) of the run's first failed step, else the run's own failure message."""
    for event in context.get_step_failure_events():
        data = event.event_specific_data
        failure = getattr(data, "user_failure_data", None)
        if failure is not None and failure.description:
            return event.step_key or "run", failure.description
        if getattr(data, "error", None) is not None:
            return event.step_key or "run", (data.error.message.strip().splitlines() or ["failed"])[-1]
    return "run", context.failure_event.message or "the run failed (see its log in the Dagster UI)"


# Downstream stages follow their upstream through automation conditions (eager, gated by blocking
# checks across runs). Dagster's own default_automation_condition_sensor starts STOPPED, which would
# leave them inert in a fresh deployment, so Kiln declares its own, running.
kiln_automation = dg.AutomationConditionSensorDefinition(
    "kiln_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    # Plain runs, one per game asset. By default a tick that requests two partitions of an asset
    # becomes a backfill, whose daemon advances about every 30 s: measured live, a minute to follow
    # instead of ~20 s.
    emit_backfills=False,
    description=(
        "Evaluates the assets' automation conditions: when a stage is re-materialized by hand (e.g. "
        "generated_model with another seed from the asset page), the stages below it follow once its "
        "blocking checks passed."
    ),
)

ALL_SENSORS = [new_concept_art, refresh_catalog, record_failed_runs, kiln_automation]
