"""Sensors: new or changed concept art becomes runs; new exports refresh the catalog."""

from __future__ import annotations

import json
from collections import Counter

import dagster as dg

from . import concepts, settings
from .assets.common import game_assets, record_failure
from .export.status import read_status
from .jobs import asset_job, catalog_job
from .pools import PROVIDER_TAG
from .resources import KilnStorage


# Retired assets remembered for rename detection (a folder moved while the daemon was down, or
# between two ticks, is found by its art alone).
RETIRED_MEMORY = 1000


@dg.sensor(
    job=asset_job,
    # Every pass of the daemon's sensor loop (it runs every 5 s): an interval equal to the loop's own
    # let a pass a few ms early skip the tick, so new art waited up to 10 s. A steady tick over
    # 1,000 folders is ~0.4 s.
    minimum_interval_seconds=1,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=(
        "Watches `$KILN_DATA_DIR/concepts/`. A new folder gets a `game_assets` partition and a run of the "
        "whole chain in the same tick; changed art (a new content hash) gets a new run; unchanged art "
        "never does. A partition registered by someone else (`make register`, the UI) is left for a "
        "backfill until its art changes. Folders with invalid names or no usable files are skipped with "
        "the reason logged. A partition whose folder is gone is retired (deleted, so neither automation "
        "nor backfills run it; its published exports stay); a folder holding the same art as one just "
        "retired is a renamed asset, its run tagged `kiln/renamed_from`. Runs are tagged "
        "`kiln/provider`, which the run queue limits per provider (dagster.yaml)."
    ),
)
def new_concept_art(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    requested: dict[str, str] = cursor.get("requested", {})  # asset_id -> content hash seen (16 hex)
    art: dict[str, str] = cursor.get("art", {})  # asset_id -> art hash (16 hex)
    retired: dict[str, str] = cursor.get("retired", {})  # asset_id -> its art hash, oldest first
    logged_skips: dict[str, str] = cursor.get("skipped", {})

    concepts_dir, data_dir = settings.concepts_dir(), str(settings.data_dir())
    if cursor.get("data_dir", data_dir) != data_dir:
        context.log.warning(f"KILN_DATA_DIR changed from {cursor['data_dir']} to {data_dir}: every partition "
                            "whose concept folder is not in the new folder is retired")
    found, skipped = concepts.scan(concepts_dir)
    for name, reason in skipped:
        if logged_skips.get(name) != reason:
            context.log.warning(f"skipped {name}: {reason}")

    existing = set(context.instance.get_dynamic_partitions(game_assets.name))
    gone = concepts.retirable(existing, found, skipped, concepts_dir)
    for asset_id in gone:
        context.log.warning(f"retired {asset_id}: its concept folder {concepts_dir / asset_id} is gone, so "
                            "automation and backfills no longer run it; its published exports stay in the catalog")
        requested.pop(asset_id, None)
        retired.pop(asset_id, None)
        retired[asset_id] = art.pop(asset_id, "")
    renamed_from = {h: old for old, h in retired.items() if h}
    copies = Counter(f.art_hash[:16] for f in found if f.art_hash)  # the same art twice is a copy, not a move

    new_keys = [f.asset_id for f in found if f.asset_id not in existing]
    # One query for every partition whose latest materialization decides whether it runs.
    ask = [f.asset_id for f in found if requested.get(f.asset_id) != f.content_hash[:16]
           and (f.asset_id in existing or f.asset_id in retired)]
    materialized = _materialized_hashes(context.instance, ask) if ask else {}
    run_requests, left_for_backfill = [], 0
    for folder in found:
        asset_id, short = folder.asset_id, folder.content_hash[:16]
        if folder.art_hash:
            art[asset_id] = folder.art_hash[:16]
        seen = requested.get(asset_id)
        if seen == short:
            continue
        requested[asset_id] = short
        before = retired.pop(asset_id, None) is not None  # a retired asset's folder came back
        if materialized.get(asset_id) == folder.content_hash:
            continue  # this exact art is already materialized (a backfill, the CLI, a run from the UI)
        if asset_id in existing and seen is None and asset_id not in materialized:
            left_for_backfill += 1  # registered (make register, the UI), never run: a backfill's job
            continue
        tags = {"kiln/asset_id": asset_id, "kiln/content_hash": folder.content_hash,
                PROVIDER_TAG: concepts.provider_of(folder)}
        old = renamed_from.get(folder.art_hash[:16]) if folder.art_hash else None
        if asset_id not in existing and not before and old in retired and copies[folder.art_hash[:16]] == 1:
            tags["kiln/renamed_from"] = old
            del retired[old]  # one new name per retired asset
            context.log.info(f"{asset_id}: the same concept art as retired {old}; a renamed asset (new partition)")
        run_requests.append(dg.RunRequest(run_key=f"{asset_id}:{folder.content_hash}", partition_key=asset_id,
                                          tags=tags))
    while len(retired) > RETIRED_MEMORY:
        retired.pop(next(iter(retired)))
    context.update_cursor(json.dumps({"requested": requested, "art": art, "retired": retired,
                                      "skipped": dict(skipped), "data_dir": data_dir}))
    partition_requests = [game_assets.build_add_request(new_keys)] if new_keys else []
    if gone:
        partition_requests.append(game_assets.build_delete_request(gone))
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=partition_requests,
        skip_reason=None if run_requests else
        f"no new or changed concept art ({len(found)} folders, {len(skipped)} skipped, {len(gone)} retired, "
        f"{left_for_backfill} registered and left for a backfill)",
    )


def _materialized_hashes(instance: dg.DagsterInstance, asset_ids: list[str]) -> dict[str, str]:
    """The content hash (data version) of each partition's latest concept_art materialization."""
    tags = instance.event_log_storage.get_latest_tags_by_partition(
        dg.AssetKey("concept_art"), dg.DagsterEventType.ASSET_MATERIALIZATION, ["dagster/data_version"], asset_ids)
    return {p: t["dagster/data_version"] for p, t in tags.items() if "dagster/data_version" in t}


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
