"""Kiln's Celery run launcher (pipeline/scaleout.py): what it changes in dagster-celery's, checked
against the library's own tasks and a real Redis result backend. Fast; the cluster itself is
tests/test_scaleout.py (make test-scale)."""

from __future__ import annotations

import inspect
import uuid

import dagster as dg
import pytest

pytest.importorskip("dagster_celery", reason="the scale-out extra is not installed: pip install -e '.[scaleout]'")

from dagster._core.launcher import ResumeRunContext, WorkerStatus  # noqa: E402
from dagster_celery.launcher import CeleryRunLauncher  # noqa: E402
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG  # noqa: E402
from dagster_celery.tasks import create_resume_job_task  # noqa: E402

from pipeline import scaleout  # noqa: E402
from tests.test_partition_lifecycle import make_folder  # noqa: E402


def launcher(broker: str = "memory://", backend: str = "cache+memory://") -> scaleout.KilnCeleryRunLauncher:
    return scaleout.KilnCeleryRunLauncher(default_queue="dagster", broker=broker, backend=backend)


def run(**tags: str) -> dg.DagsterRun:
    return dg.DagsterRun(job_name="kiln_asset_job", run_id=str(uuid.uuid4()), tags=tags)


def test_resume_sends_the_argument_the_resume_task_takes(monkeypatch):
    sent = []
    monkeypatch.setattr(CeleryRunLauncher, "_launch_celery_task_run",
                        lambda self, run, task_signature, routing_key: sent.append((task_signature, routing_key)))
    with dg.instance_for_test() as instance:
        rl = launcher()
        rl.register_instance(instance)
        origin = dg.reconstructable(_job).get_python_origin()
        resumed = dg.DagsterRun(job_name="kiln_asset_job", run_id=str(uuid.uuid4()), job_code_origin=origin)
        rl.resume_run(ResumeRunContext(dagster_run=resumed, workspace=None, resume_attempt_number=1))
    (signature, routing_key), = sent
    task = create_resume_job_task(rl.celery)
    takes = set(inspect.signature(task.run).parameters) - {"_self", "self"}
    assert set(signature.kwargs) == takes == {"resume_job_args_packed"} and routing_key == "resume_job"
    assert signature.task == task.name


@dg.job
def _job():
    pass


def test_health_check_finds_dead_workers_and_trusts_queued_tasks(redis_server):
    rl = launcher(redis_server, redis_server)
    backend = rl.celery.backend
    gone, queued, done = (str(uuid.uuid4()) for _ in range(3))
    backend.store_result(gone, {"pid": 4242, "hostname": "kiln-gone@nowhere"}, "STARTED")
    backend.store_result(done, 0, "SUCCESS")

    dead = rl.check_run_worker_health(run(**{DAGSTER_CELERY_TASK_ID_TAG: gone}))
    assert dead.status == WorkerStatus.FAILED and "kiln-gone@nowhere" in dead.msg and "ping" in dead.msg
    # a resumed run's task waiting for a free worker is not another dead worker
    assert rl.check_run_worker_health(run(**{DAGSTER_CELERY_TASK_ID_TAG: queued})).status == WorkerStatus.RUNNING
    assert rl.check_run_worker_health(run(**{DAGSTER_CELERY_TASK_ID_TAG: done})).status == WorkerStatus.SUCCESS


def test_vendor_runs_go_to_the_vendor_queue(kiln_env, monkeypatch):
    monkeypatch.delenv(scaleout.VENDOR_QUEUE_ENV, raising=False)
    assert scaleout.run_queue(run(**{"kiln/provider": "runware"}), "dagster") == "dagster"
    monkeypatch.setenv(scaleout.VENDOR_QUEUE_ENV, "kiln-vendor")
    assert scaleout.run_queue(run(**{"kiln/provider": "runware"}), "dagster") == "kiln-vendor"
    assert scaleout.run_queue(run(**{"kiln/provider": "local"}), "dagster") == "dagster"
    assert scaleout.run_queue(run(**{"kiln/provider": "runware", DAGSTER_CELERY_QUEUE_TAG: "mine"}), "dagster") == "mine"
    # backfill and automation runs carry only their partition: the folder's asset.toml decides
    make_folder(kiln_env, "statue", toml='provider = "scenario"\n')
    make_folder(kiln_env, "crate")
    assert scaleout.run_queue(run(**{"dagster/partition": "statue"}), "dagster") == "kiln-vendor"
    assert scaleout.run_queue(run(**{"dagster/partition": "crate"}), "dagster") == "dagster"
    assert scaleout.run_queue(run(**{"dagster/partition": "gone"}), "dagster") == "dagster"


def test_celery_deploy_yaml_builds_the_launcher(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(Path(__file__).resolve().parents[1] / "deploy" / "dagster.celery.yaml", home / "dagster.yaml")
    for var, value in {"KILN_PG_HOST": "127.0.0.1", "KILN_PG_PORT": "1", "KILN_PG_USER": "u", "KILN_PG_PASSWORD": "",
                       "KILN_PG_DB": "d", "KILN_CELERY_BROKER": "redis://127.0.0.1:1/0"}.items():
        monkeypatch.setenv(var, value)
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(home))
    assert config["run_launcher"]["class"] == "KilnCeleryRunLauncher"
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_resume_run_attempts"] >= 1
    import yaml
    from dagster._core.launcher import RunLauncher
    from dagster._serdes import ConfigurableClassData

    section = config["run_launcher"]
    rl = ConfigurableClassData(section["module"], section["class"], yaml.dump(section["config"])).rehydrate(RunLauncher)
    assert isinstance(rl, scaleout.KilnCeleryRunLauncher) and rl.broker == "redis://127.0.0.1:1/0"
    assert rl.celery.conf.worker_disable_prefetch is True and rl.celery.conf.result_extended is True
    assert rl.supports_resume_run and rl.supports_check_run_worker_health
    # every vendor provider's runs are limited to its pool's slots and as many waiting at the pool
    from pipeline.providers import POOL_LIMITS, REMOTE_PROVIDERS

    assert config["run_coordinator"]["class"] == "ProviderRunCoordinator"
    limits = {limit["value"]: limit["limit"] for limit in config["concurrency"]["runs"]["tag_concurrency_limits"]
              if limit["key"] == "kiln/provider"}
    assert {p: limits.get(p) for p in REMOTE_PROVIDERS} == {p: 2 * POOL_LIMITS[p] for p in REMOTE_PROVIDERS}
