"""Partitions follow the concept folders: gone folders are retired, renamed ones are new assets with
a note of the old name, the run queue's limits are the instance's, and the instance remembers which
data folder it serves. Against a real Dagster instance in a temporary DAGSTER_HOME."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest

from pipeline import cli, concepts, settings
from pipeline.definitions import defs
from pipeline.sensors import new_concept_art
from tests.test_pipeline import SMALL, draw_blob, failure_text
from tests.test_sensor import _Collect

ROOT = Path(__file__).resolve().parents[1]


def tick(instance, cursor=None):
    """One sensor evaluation, with its partition requests applied as the daemon applies them."""
    logs = _Collect()
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    ctx.log.addHandler(logs)
    result = new_concept_art(ctx)
    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)
    return result, ctx.cursor, "\n".join(logs.messages)


def make_folder(kiln_env: Path, name: str, color=(180, 90, 40), toml: str = SMALL) -> Path:
    folder = kiln_env / "concepts" / name
    draw_blob(folder / "front.png", color=color)
    (folder / "asset.toml").write_text(toml)
    return folder


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(home)) as inst:
        yield inst


def partitions(instance) -> list[str]:
    return sorted(instance.get_dynamic_partitions("game_assets"))


def test_gone_folder_is_retired_and_its_exports_stay(kiln_env, instance):
    make_folder(kiln_env, "crate")
    make_folder(kiln_env, "barrel", color=(40, 90, 180))
    first, cursor, _ = tick(instance)
    assert sorted(r.partition_key for r in first.run_requests) == ["barrel", "crate"]
    assert partitions(instance) == ["barrel", "crate"]
    run = defs.resolve_job_def("kiln_asset_job").execute_in_process(
        partition_key="crate", instance=instance, raise_on_error=False)
    assert run.success, failure_text(run)

    shutil.rmtree(kiln_env / "concepts" / "crate")
    result, cursor, log = tick(instance, cursor)
    assert result.run_requests == []
    assert "retired crate: its concept folder" in log and "gone" in log
    assert partitions(instance) == ["barrel"]
    assert "1 retired" in result.skip_reason.skip_message
    # ... and not again on the next tick
    again, cursor, log = tick(instance, cursor)
    assert "retired" not in log and again.dynamic_partitions_requests == []

    # its published version stays and the catalog still lists it
    catalog = defs.resolve_job_def("kiln_catalog_job").execute_in_process(instance=instance, raise_on_error=False)
    assert catalog.success, failure_text(catalog)
    listed = json.loads((kiln_env / "exports" / "catalog.json").read_text())["assets"]
    assert [a["asset_id"] for a in listed] == ["crate"]
    assert (kiln_env / "exports" / "crate" / "latest.json").exists()


def test_retired_partitions_are_not_run_by_automation(kiln_env, instance):
    for name, color in (("left", (200, 30, 30)), ("right", (30, 200, 30))):
        make_folder(kiln_env, name, color=color)
    _, cursor, _ = tick(instance)
    auto = dg.evaluate_automation_conditions(defs=defs, instance=instance)
    # concept art re-materialized for both (say from the UI): generated_model would follow for both ...
    for name in ("left", "right"):
        instance.report_runless_asset_event(dg.AssetMaterialization("concept_art", partition=name))
    shutil.rmtree(kiln_env / "concepts" / "left")  # ... but "left" is gone before automation's tick
    tick(instance, cursor)
    followed = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=auto.cursor)
    requested = {(r.key.to_user_string(), p) for r in followed.results for p in r.true_subset.expensively_compute_partition_keys()}
    assert ("generated_model", "right") in requested
    assert not any(p == "left" for _, p in requested)


def test_missing_concepts_folder_retires_nothing(kiln_env, instance):
    make_folder(kiln_env, "crate")
    _, cursor, _ = tick(instance)
    shutil.rmtree(kiln_env / "concepts")  # an unmounted share or a mistyped KILN_DATA_DIR
    result, _, log = tick(instance, cursor)
    assert partitions(instance) == ["crate"] and "retired" not in log
    assert result.dynamic_partitions_requests == []


def test_unusable_folder_keeps_its_partition(kiln_env, instance):
    folder = make_folder(kiln_env, "crate")
    _, cursor, _ = tick(instance)
    for f in folder.iterdir():  # emptied while being replaced: skipped, not retired
        f.unlink()
    _, _, log = tick(instance, cursor)
    assert partitions(instance) == ["crate"] and "skipped crate" in log and "retired" not in log


def test_renamed_folder_is_a_new_asset_tagged_with_the_old_name(kiln_env, instance):
    make_folder(kiln_env, "crate")
    make_folder(kiln_env, "barrel", color=(40, 90, 180))
    _, cursor, _ = tick(instance)

    (kiln_env / "concepts" / "crate").rename(kiln_env / "concepts" / "wooden_crate")
    result, cursor, log = tick(instance, cursor)
    (run,) = result.run_requests
    assert run.partition_key == "wooden_crate" and run.tags["kiln/renamed_from"] == "crate"
    assert partitions(instance) == ["barrel", "wooden_crate"]
    assert "retired crate" in log and "wooden_crate: the same concept art as retired crate" in log

    # moved in two steps, with a tick between (the retired asset's art is remembered)
    moved = kiln_env.parent / "aside"
    shutil.move(kiln_env / "concepts" / "barrel", moved)
    _, cursor, _ = tick(instance, cursor)
    assert partitions(instance) == ["wooden_crate"]
    shutil.move(moved, kiln_env / "concepts" / "blue_barrel")
    result, cursor, _ = tick(instance, cursor)
    assert [r.tags.get("kiln/renamed_from") for r in result.run_requests] == ["barrel"]

    # other art under a new name is not a rename, and neither is a copy beside its original
    make_folder(kiln_env, "lamp", color=(250, 250, 20))
    shutil.copytree(kiln_env / "concepts" / "wooden_crate", kiln_env / "concepts" / "crate_copy")
    result, _, _ = tick(instance, cursor)
    assert sorted(r.partition_key for r in result.run_requests) == ["crate_copy", "lamp"]
    assert all("kiln/renamed_from" not in r.tags for r in result.run_requests)


def test_returning_folder_with_materialized_art_does_not_run_again(kiln_env, instance):
    folder = make_folder(kiln_env, "crate")
    _, cursor, _ = tick(instance)
    content_hash = concepts.list_files(folder).content_hash
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "concept_art", partition="crate", tags={"dagster/data_version": content_hash}))
    shutil.move(folder, kiln_env.parent / "crate")
    _, cursor, _ = tick(instance, cursor)
    assert partitions(instance) == []
    shutil.move(kiln_env.parent / "crate", folder)
    result, _, _ = tick(instance, cursor)
    assert result.run_requests == [] and partitions(instance) == ["crate"]


def test_registered_partition_is_left_for_a_backfill_until_its_art_changes(kiln_env, instance):
    folder = make_folder(kiln_env, "crate")
    instance.add_dynamic_partitions("game_assets", ["crate"])  # `make register`, or the UI
    result, cursor, _ = tick(instance)
    assert result.run_requests == [] and "1 registered and left for a backfill" in result.skip_reason.skip_message
    draw_blob(folder / "front.png", color=(10, 10, 10))
    changed, _, _ = tick(instance, cursor)
    assert [r.partition_key for r in changed.run_requests] == ["crate"]


def test_runs_are_tagged_with_their_provider(kiln_env, instance):
    make_folder(kiln_env, "statue", toml='provider = "hunyuan3d"\n')
    make_folder(kiln_env, "crate", color=(1, 2, 3))
    broken = make_folder(kiln_env, "broken", color=(9, 9, 9), toml="provider = [\n")  # fails in concept_art
    result, _, _ = tick(instance)
    tags = {r.partition_key: r.tags["kiln/provider"] for r in result.run_requests}
    assert tags == {"statue": "hunyuan3d", "crate": "local", "broken": "local"}
    assert broken.exists()


def test_run_queue_limits_come_from_dagster_yaml(instance):
    queue = instance.get_concurrency_config().run_queue_config
    assert queue.max_concurrent_runs == 3
    limits = {(limit["key"], limit.get("value")): limit["limit"] for limit in queue.tag_concurrency_limits}
    assert limits == {("kiln/provider", "local"): 2, ("kiln/provider", "hunyuan3d"): 1}
    from pipeline.providers import PROVIDERS

    assert all(value in PROVIDERS for _, value in limits)
    # the team deployment queues the same way
    import yaml

    team = yaml.safe_load((ROOT / "deploy" / "dagster.postgres.yaml").read_text())
    assert team["concurrency"] == yaml.safe_load((ROOT / "dagster.yaml").read_text())["concurrency"]


def test_queued_runs_carry_their_provider_so_backfills_keep_the_provider_limits(kiln_env, instance):
    """A backfill's runs name only their partition; the run queue tags each with the provider its
    folder asks for before queueing it, so `kiln/provider` limits hold for them as for the sensor's."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
    from dagster._core.run_coordinator import SubmitRunContext
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin

    from pipeline.pools import PROVIDER_TAG, ProviderRunCoordinator

    make_folder(kiln_env, "statue", toml='provider = "hunyuan3d"\n')
    make_folder(kiln_env, "crate")
    assert isinstance(instance.run_coordinator, ProviderRunCoordinator)
    # queued runs need a code location origin; the project's own, as the daemon would load it
    job = defs.resolve_job_def("kiln_asset_job")
    where = InProcessCodeLocationOrigin(LoadableTargetOrigin(module_name="pipeline.definitions"))
    origin = RemoteJobOrigin(RemoteRepositoryOrigin(where, "__repository__"), job.name)
    submitted = {}
    for key in ("statue", "crate", "gone"):
        run = instance.create_run_for_job(job, tags={"dagster/partition": key, "dagster/backfill": "b1"},
                                          remote_job_origin=origin)
        submitted[key] = instance.run_coordinator.submit_run(SubmitRunContext(run, workspace=None))
    assert submitted["statue"].tags[PROVIDER_TAG] == "hunyuan3d"
    assert submitted["crate"].tags[PROVIDER_TAG] == "local"
    assert PROVIDER_TAG not in submitted["gone"].tags  # no folder: nothing to tell, queued as is
    assert all(r.status == dg.DagsterRunStatus.QUEUED for r in submitted.values())
    # a run that already names its provider (the sensor's) keeps it
    run = instance.create_run_for_job(job, tags={"dagster/partition": "crate", PROVIDER_TAG: "runware"},
                                      remote_job_origin=origin)
    assert instance.run_coordinator.submit_run(SubmitRunContext(run, None)).tags[PROVIDER_TAG] == "runware"


def test_instance_remembers_its_data_folder_and_warns_when_it_changes(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KILN_DATA_DIR", str(tmp_path / "first"))
    cli.warn_if_data_dir_changed(home)
    assert capsys.readouterr().err == ""
    assert (home / settings.DATA_DIR_RECORD).read_text().strip() == str(tmp_path / "first")
    cli.warn_if_data_dir_changed(home)
    assert capsys.readouterr().err == ""

    monkeypatch.setenv("KILN_DATA_DIR", str(tmp_path / "second"))
    cli.warn_if_data_dir_changed(home)
    err = capsys.readouterr().err
    assert "WARNING" in err and f"KILN_DATA_DIR={tmp_path / 'first'}" in err and "retires" in err
    assert (home / settings.DATA_DIR_RECORD).read_text().strip() == str(tmp_path / "second")


def test_sensor_says_when_the_data_folder_changed(kiln_env, instance, tmp_path, monkeypatch):
    make_folder(kiln_env, "crate")
    _, cursor, _ = tick(instance)
    other = tmp_path / "other-data"
    (other / "concepts").mkdir(parents=True)
    monkeypatch.setenv("KILN_DATA_DIR", str(other))
    _, _, log = tick(instance, cursor)
    assert f"KILN_DATA_DIR changed from {kiln_env}" in log and "retired crate" in log
    assert partitions(instance) == []
