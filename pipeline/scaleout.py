"""Scale-out: runs as Celery tasks on worker machines (dagster-celery's CeleryRunLauncher, amended).

`deploy/dagster.celery.yaml` names `KilnCeleryRunLauncher` as the instance's run launcher: the
daemon hands every run (sensor, automation, backfill, launchpad) to the broker, and any worker
started with `celery -A pipeline.scaleout worker -Q dagster` executes it in its own process,
against the same PostgreSQL instance, blob store and export target. What it changes in dagster-celery
0.29.27, and why:

- Resume. Run monitoring resumes a run whose worker died, but the stock launcher sends the resume
  task its argument as `execute_job_args_packed` while the task takes `resume_job_args_packed`, so
  every resume fails on the worker with a TypeError. Sent under the task's own name here.
- Dead workers. The stock health check trusts the task state in the result backend; a worker that
  is killed (OOM, kill -9, a machine lost) leaves its task STARTED forever, so monitoring never
  notices and the run hangs. Here a STARTED task's worker is pinged (the worker's main process
  answers even while its pool process runs a long generation); no answer twice means it is gone,
  the run is reported FAILED to monitoring, which resumes it on another worker.
- Waiting in the broker. A resumed run's task waits in the queue until a worker is free; the stock
  check calls that state unknown, which monitoring treats as another dead worker and resumes again,
  once per poll. A queued task is healthy here; `run_monitoring.max_runtime_seconds` bounds it.
- Routing. Runs whose generator is a vendor API (they mostly wait on the vendor) go to the queue
  named by `KILN_VENDOR_QUEUE` when it is set, so CPU workers keep the local reconstructions; a
  run's own `dagster-celery/queue` tag still wins.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from dagster import DagsterRun
from dagster._core.launcher import CheckRunHealthResult, ResumeRunContext, WorkerStatus
from dagster._grpc.types import ResumeRunArgs
from dagster._serdes import pack_value
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.config import TASK_RESUME_JOB_NAME
from dagster_celery.tags import DAGSTER_CELERY_QUEUE_TAG, DAGSTER_CELERY_TASK_ID_TAG
from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

from .pools import run_provider

VENDOR_QUEUE_ENV = "KILN_VENDOR_QUEUE"
PING_TIMEOUT_S = 2.0
PING_TRIES = 2


class KilnCeleryRunLauncher(CeleryRunLauncher):
    """CeleryRunLauncher with a working resume, a dead-worker health check and vendor routing."""

    def resume_run(self, context: ResumeRunContext) -> None:
        run = context.dagster_run
        args = ResumeRunArgs(job_origin=run.job_code_origin, run_id=run.run_id,
                             instance_ref=self._instance.get_ref(), set_exit_code_on_failure=True)
        task = create_resume_job_task(self.celery)
        signature = task.si(resume_job_args_packed=pack_value(args))
        self._launch_celery_task_run(run=run, task_signature=signature, routing_key=TASK_RESUME_JOB_NAME)

    def _launch_celery_task_run(self, run: DagsterRun, task_signature: Any, routing_key: str) -> None:
        queue = run_queue(run, self.default_queue)
        if queue != run.tags.get(DAGSTER_CELERY_QUEUE_TAG, self.default_queue):
            self._instance.add_run_tags(run.run_id, {DAGSTER_CELERY_QUEUE_TAG: queue})
            run = self._instance.get_run_by_id(run.run_id)
        super()._launch_celery_task_run(run, task_signature, routing_key)

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        task_id = run.tags.get(DAGSTER_CELERY_TASK_ID_TAG)
        if task_id is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run has no Celery task yet")
        result = self.celery.AsyncResult(task_id)
        state = result.state
        if state == "PENDING":  # queued at the broker (or unknown to the backend): not a dead worker
            return CheckRunHealthResult(WorkerStatus.RUNNING, "Celery task queued")
        if state != "STARTED":
            return super().check_run_worker_health(run)
        info = result.info if isinstance(result.info, dict) else {}
        hostname = info.get("hostname")
        if not hostname:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        for _ in range(PING_TRIES):
            if self.celery.control.ping(destination=[hostname], timeout=PING_TIMEOUT_S):
                return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"Celery worker {hostname} (pid {info.get('pid')}) running this run does not answer a ping: it is gone")


def run_queue(run: DagsterRun, default_queue: str) -> str:
    """The Celery queue of a run: its own tag, else the vendor queue for a remote provider, else the default."""
    if DAGSTER_CELERY_QUEUE_TAG in run.tags:
        return run.tags[DAGSTER_CELERY_QUEUE_TAG]
    vendor_queue = os.environ.get(VENDOR_QUEUE_ENV)
    if vendor_queue and run_provider(run) in _remote_providers():
        return vendor_queue
    return default_queue


def _remote_providers() -> frozenset[str]:
    from .providers import REMOTE_PROVIDERS

    return frozenset(REMOTE_PROVIDERS)


def worker_app() -> Celery:
    """The Celery app of a worker: the instance's own launcher (so broker, backend and settings come
    from $DAGSTER_HOME/dagster.yaml, one place) with the run tasks registered."""
    from dagster import DagsterInstance

    instance = DagsterInstance.get()
    launcher = instance.run_launcher
    if not isinstance(launcher, CeleryRunLauncher):
        raise RuntimeError(f"$DAGSTER_HOME ({os.environ.get('DAGSTER_HOME')}) does not configure a Celery run "
                           "launcher; use deploy/dagster.celery.yaml as its dagster.yaml")
    create_execute_job_task(launcher.celery)
    create_resume_job_task(launcher.celery)
    return launcher.celery


def __getattr__(name: str) -> Any:
    # `celery -A pipeline.scaleout worker` looks up `app`; built on demand, since the webserver and
    # daemon import this module while they are still building the instance that the app comes from.
    if name == "app":
        global app
        app = worker_app()
        return app
    raise AttributeError(name)
