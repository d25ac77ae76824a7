"""The `new_concept_art` sensor against a real (temporary) Dagster instance."""

from __future__ import annotations

import json
import logging

import dagster as dg
import pytest

from pipeline.sensors import new_concept_art, refresh_catalog

PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000b49444154789c6360000200000500017a5eab3f0000000049454e44ae426082"
)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _evaluate(instance, cursor=None, handler=None):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    if handler:
        ctx.log.addHandler(handler)
    result = new_concept_art(ctx)
    return result, ctx.cursor


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_new_folder_adds_partition_and_requests_run(kiln_env, instance):
    (kiln_env / "concepts" / "crate").mkdir()
    (kiln_env / "concepts" / "crate" / "front.png").write_bytes(PNG_1x1)
    result, cursor = _evaluate(instance)
    assert [r.partition_key for r in result.run_requests] == ["crate"]
    assert result.run_requests[0].run_key.startswith("crate:")
    adds = result.dynamic_partitions_requests
    assert len(adds) == 1 and list(adds[0].partition_keys) == ["crate"] and adds[0].partitions_def_name == "game_assets"


def test_same_content_requests_nothing_and_changed_content_gets_new_run_key(kiln_env, instance):
    folder = kiln_env / "concepts" / "potion"
    folder.mkdir()
    (folder / "a.png").write_bytes(PNG_1x1)
    first, cursor = _evaluate(instance)
    instance.add_dynamic_partitions("game_assets", ["potion"])
    again, cursor2 = _evaluate(instance, cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    assert "no new or changed" in again.skip_reason.skip_message

    # touching a file without changing its bytes is not a change
    (folder / "a.png").write_bytes(PNG_1x1)
    touched, cursor3 = _evaluate(instance, cursor2)
    assert touched.run_requests == []

    (folder / "b.png").write_bytes(PNG_1x1 + b"\0")
    changed, _ = _evaluate(instance, cursor3)
    assert [r.partition_key for r in changed.run_requests] == ["potion"]
    assert changed.run_requests[0].run_key != first.run_requests[0].run_key
    assert changed.dynamic_partitions_requests == []  # partition already exists


def test_invalid_and_empty_folders_are_skipped_with_reason(kiln_env, instance):
    (kiln_env / "concepts" / "Bad Name").mkdir()
    (kiln_env / "concepts" / "Bad Name" / "x.png").write_bytes(PNG_1x1)
    (kiln_env / "concepts" / "empty").mkdir()
    (kiln_env / "concepts" / "ok").mkdir()
    (kiln_env / "concepts" / "ok" / "x.png").write_bytes(PNG_1x1)
    logs = _Collect()
    result, cursor = _evaluate(instance, handler=logs)
    assert [r.partition_key for r in result.run_requests] == ["ok"]
    skipped = json.loads(cursor)["skipped"]
    assert "not a valid asset id" in skipped["Bad Name"]
    assert "empty" in skipped["empty"]
    logged = "\n".join(logs.messages)
    assert "skipped Bad Name" in logged and "not a valid asset id" in logged and "skipped empty" in logged
    # the same reasons are not logged again on the next tick
    again = _Collect()
    _evaluate(instance, cursor, handler=again)
    assert not any("skipped" in m for m in again.messages)


def test_refresh_catalog_fires_once_per_new_export(kiln_env, instance):
    ctx = dg.build_sensor_context(instance=instance)
    assert refresh_catalog(ctx).run_requests == []
    instance.report_runless_asset_event(dg.AssetMaterialization("engine_export", partition="a"))
    instance.report_runless_asset_event(dg.AssetMaterialization("engine_export", partition="b"))
    first = refresh_catalog(ctx)
    assert len(first.run_requests) == 1  # two exports between ticks coalesce into one catalog run
    assert refresh_catalog(dg.build_sensor_context(instance=instance, cursor=ctx.cursor)).run_requests == []


def test_art_already_materialized_is_not_requested_again(kiln_env, instance):
    """After a backfill or the demo CLI materialized the art, turning the sensor on runs nothing."""
    from pipeline import concepts

    folder = kiln_env / "concepts" / "done"
    folder.mkdir()
    (folder / "front.png").write_bytes(PNG_1x1)
    content_hash = concepts.list_files(folder).content_hash
    instance.add_dynamic_partitions("game_assets", ["done"])
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "concept_art", partition="done", tags={"dagster/data_version": content_hash}))
    result, _ = _evaluate(instance)
    assert result.run_requests == []

    (folder / "front.png").write_bytes(PNG_1x1 + b"\0")  # edited afterwards: runs again
    changed, _ = _evaluate(instance)
    assert [r.partition_key for r in changed.run_requests] == ["done"]
