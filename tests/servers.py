"""Start and stop real Dagster processes (webserver, daemon) for live tests, always by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGINT first (dagster's processes shut down cleanly on it), then SIGKILL the whole group."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(timeout=timeout)
        except (subprocess.TimeoutExpired, ProcessLookupError):
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


@contextmanager
def dagster_processes(env: dict[str, str], *, daemon: bool = False, log_dir: Path, code_server: bool = False):
    """Yield the webserver's base URL; the webserver (and daemon) are stopped by PID even on failure.
    With `code_server`, both use one standing code server through deploy/workspace.yaml, as a team
    deployment does (README.md, "Scale-out"), instead of each starting its own."""
    port = free_port()
    procs: list[subprocess.Popen] = []
    log_dir.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **env}
    workspace = ROOT / "workspace.yaml"
    # Create the instance's storage before two processes race to create it ("table alembic_version
    # already exists" kills the daemon when both start on an empty DAGSTER_HOME).
    from dagster import DagsterInstance

    with DagsterInstance.from_config(full_env["DAGSTER_HOME"]) as instance:
        instance.get_runs(limit=1)
    try:
        if code_server:
            grpc_port = free_port()
            full_env.update(KILN_CODE_SERVER_HOST="127.0.0.1", KILN_CODE_SERVER_PORT=str(grpc_port))
            workspace = ROOT / "deploy" / "workspace.yaml"
            procs.append(subprocess.Popen(
                [str(BIN / "dagster"), "code-server", "start", "-m", "pipeline.definitions", "--location-name", "kiln",
                 "-h", "127.0.0.1", "-p", str(grpc_port)],
                cwd=ROOT, env=full_env, start_new_session=True,
                stdout=open(log_dir / "code-server.log", "wb"), stderr=subprocess.STDOUT,
            ))
            _wait_for_code_server(procs[-1], grpc_port, log_dir / "code-server.log")
        webserver = subprocess.Popen(
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=full_env, start_new_session=True,
            stdout=open(log_dir / "webserver.log", "wb"), stderr=subprocess.STDOUT,
        )
        procs.append(webserver)
        if daemon:
            procs.append(subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)],
                cwd=ROOT, env=full_env, start_new_session=True,
                stdout=open(log_dir / "daemon.log", "wb"), stderr=subprocess.STDOUT,
            ))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            if webserver.poll() is not None:
                raise RuntimeError(f"webserver exited early:\n{(log_dir / 'webserver.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("webserver did not answer within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        for proc in reversed(procs):
            stop(proc)


def _wait_for_code_server(proc: subprocess.Popen, port: int, log: Path, timeout: float = 120) -> None:
    from dagster._grpc.client import DagsterGrpcClient

    client, deadline = DagsterGrpcClient(port=port, host="127.0.0.1"), time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"code server exited early:\n{log.read_text()[-3000:]}")
        try:
            client.ping("")
            return
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                raise RuntimeError(f"code server did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)


def celery_home(path: Path, monitoring_poll_s: int = 5, max_concurrent_runs: int | None = None) -> Path:
    """A DAGSTER_HOME holding deploy/dagster.celery.yaml, monitoring polled faster than in production
    and, when given, the cluster's run queue limit (that file says how to size it)."""
    path.mkdir(parents=True)
    config = yaml.safe_load((ROOT / "deploy" / "dagster.celery.yaml").read_text())
    config["run_monitoring"]["poll_interval_seconds"] = monitoring_poll_s
    if max_concurrent_runs is not None:
        config["concurrency"]["runs"]["max_concurrent_runs"] = max_concurrent_runs
    (path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return path


def start_worker(name: str, root: Path, env: dict[str, str], *, concurrency: int = 1,
                 **home_options) -> subprocess.Popen:
    """One Celery worker "machine": its own working folder, DAGSTER_HOME and copy of the concept art,
    `concurrency` run processes; its log is `root/worker.log`. Stop it with stop()."""
    root.mkdir(parents=True)
    home = celery_home(root / "dagster-home", **home_options)
    shutil.copytree(env["KILN_DATA_DIR"] + "/concepts", root / "data" / "concepts")
    worker_env = {**env, "DAGSTER_HOME": str(home), "KILN_DATA_DIR": str(root / "data")}
    return subprocess.Popen(
        [str(BIN / "celery"), "-A", "pipeline.scaleout", "worker", "-Q", "dagster", "-c", str(concurrency),
         "-n", f"{name}@%h", "--pool", "prefork", "-l", "INFO", "--without-gossip", "--without-mingle"],
        cwd=root, env=worker_env, start_new_session=True,
        stdout=open(root / "worker.log", "wb"), stderr=subprocess.STDOUT)


# What the live tests ask the webserver about: the code location, the game asset's chain, a backfill.
REPO = {"repositoryLocationName": "kiln", "repositoryName": "__repository__"}
CHAIN = ["concept_art", "generated_model", "lod_chain", "engine_export"]
LAUNCH_BACKFILL = """
mutation($p: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $p) {
    __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message }
  }
}"""


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body["errors"]
    return body["data"]
