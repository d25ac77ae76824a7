"""A real Redis server for tests, from the machine's Debian package (`redis-server`).

pytest plugin (`pytest_plugins = ["tests.redisserver"]`) with the session fixture `redis_server`:
it starts `redis-server` on 127.0.0.1 and a free port with no persistence, waits until it answers
PING, yields its URL (`redis://127.0.0.1:<port>/0`) and stops it by PID at the end, also when tests
fail. Without the binary (`apt-get install redis-server`, or `KILN_REDIS_SERVER`) the tests skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from tests.servers import free_port, stop


def redis_binary() -> str | None:
    configured = os.environ.get("KILN_REDIS_SERVER")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@contextmanager
def running_redis(root: Path) -> Iterator[str]:
    """redis-server on a free loopback port, its log in `root`; yields its URL (benches use it too)."""
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server not found (apt-get install redis-server, or set KILN_REDIS_SERVER)")
    redis = pytest.importorskip("redis", reason="the scale-out extra is not installed: pip install -e '.[scaleout]'")
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with open(root / "redis.log", "wb") as log:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(root), "--protected-mode", "no"],
            stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {proc.returncode}:\n{(root / 'redis.log').read_text()[-2000:]}")
            try:
                if redis.Redis.from_url(url, socket_timeout=1).ping():
                    break
            except redis.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not answer PING within 30 s")
            time.sleep(0.05)
        yield url
    finally:
        stop(proc, timeout=10)  # redis-server shuts down cleanly on SIGINT as on SIGTERM
