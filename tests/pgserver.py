"""A real PostgreSQL server for tests, from the machine's Debian packages (`postgresql-15`).

pytest plugin (`pytest_plugins = ["tests.pgserver"]`) with the session fixture `postgres_server`:
it initializes a throwaway cluster in a temp folder (trust auth, unix socket in that folder),
starts it on 127.0.0.1 and a free port, waits until `pg_isready` says it accepts connections,
creates a database, and stops the server by PID at the end (`pg_ctl stop -m fast`, then SIGKILL
if that did not end it), also when tests fail. The binaries are found in `KILN_PG_BINDIR`, else
the newest `/usr/lib/postgresql/<n>/bin`; without them the tests that need a server skip.

initdb and postgres refuse to run as root, so as root the server runs as the `postgres` system
user (`runuser -u postgres --`) and the temp folder is chowned to it; as anyone else it runs as
that user. Client calls (createdb, psql, Dagster) connect over TCP as the `postgres` superuser.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

SUPERUSER = "postgres"
DEFAULT_DB = "kiln"


def find_bindir() -> Path | None:
    """KILN_PG_BINDIR, else the newest /usr/lib/postgresql/<major>/bin holding initdb."""
    if os.environ.get("KILN_PG_BINDIR"):
        path = Path(os.environ["KILN_PG_BINDIR"])
        return path if (path / "initdb").exists() else None
    found = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()]
    return max(found, key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, default=None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str
    bindir: Path
    root: Path  # temp folder: data/, the socket and server.log
    pid: int

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def url(self, db_name: str | None = None) -> str:
        """A SQLAlchemy URL (psycopg2, the driver dagster-postgres installs) for `db_name` (default: the fixture's database)."""
        return f"postgresql+psycopg2://{self.user}@{self.host}:{self.port}/{db_name or self.db_name}"

    def env(self, db_name: str | None = None) -> dict[str, str]:
        """The KILN_PG_* variables that deploy/dagster.postgres.yaml reads."""
        return {"KILN_PG_HOST": self.host, "KILN_PG_PORT": str(self.port), "KILN_PG_USER": self.user,
                "KILN_PG_PASSWORD": self.password, "KILN_PG_DB": db_name or self.db_name}

    def psql(self, sql: str, db_name: str | None = None) -> str:
        """Run one SQL statement with psql; the unaligned, tuples-only output (stripped)."""
        out = subprocess.run(
            [str(self.bindir / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
             "-d", db_name or self.db_name, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
            capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}) on {sql!r}: {out.stderr.strip()}")
        return out.stdout.strip()

    def create_database(self, prefix: str = "kiln") -> str:
        """A fresh, empty database (tests that need their own Dagster tables share one server)."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self.psql(f'CREATE DATABASE "{name}"', db_name="postgres")
        return name


def _as_server_user(args: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *args] if owner else args


def _server_owner() -> str | None:
    """The system user the server runs as: `postgres` when we are root, else ourselves (None)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SUPERUSER)
    except KeyError:
        pytest.skip("running as root and there is no `postgres` system user to run PostgreSQL as "
                    "(apt-get install postgresql-15 creates it)")
    if shutil.which("runuser") is None:
        pytest.skip("running as root and `runuser` (util-linux) is missing, so PostgreSQL cannot drop root")
    return SUPERUSER


def _server_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True


def _stop(bindir: Path, data: Path, pid: int | None, owner: str | None) -> None:
    if pid is None or not _alive(pid):
        return
    subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "stop", "-D", str(data), "-m", "fast", "-w", "-t", "20"],
                                   owner), cwd=data.parent, capture_output=True, timeout=60)
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):  # pg_ctl could not stop it: end this postmaster (and only it) by PID
        os.kill(pid, signal.SIGKILL)


def _start(bindir: Path, root: Path, owner: str | None, port: int) -> subprocess.CompletedProcess:
    # fsync off: a test cluster is thrown away, durability costs seconds here and buys nothing.
    options = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
               f"-c full_page_writes=off -c max_connections=100")
    return subprocess.run(
        _as_server_user([str(bindir / "pg_ctl"), "start", "-D", str(root / "data"), "-l", str(root / "server.log"),
                         "-w", "-t", "60", "-o", options], owner),
        cwd=root, capture_output=True, text=True, timeout=90)


def _wait_ready(server: PostgresServer, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready = subprocess.run([str(server.bindir / "pg_isready"), "-h", server.host, "-p", str(server.port),
                                "-U", server.user, "-d", "postgres", "-t", "2"], capture_output=True)
        if ready.returncode == 0:
            return
        if not _alive(server.pid):
            break
        time.sleep(0.1)
    raise RuntimeError(f"PostgreSQL on {server.host}:{server.port} did not become ready within {timeout_s:.0f} s:\n"
                       f"{server.log.read_text(errors='replace')[-3000:] if server.log.exists() else '(no log)'}")


@pytest.fixture(scope="session")
def postgres_server():
    with running_postgres() as server:
        yield server


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throwaway cluster (see the module docstring), stopped on exit; benches use it too."""
    bindir = find_bindir()
    if bindir is None or not all((bindir / tool).exists() for tool in ("initdb", "pg_ctl", "postgres", "pg_isready", "psql")):
        pytest.skip("PostgreSQL server binaries not found (apt-get install postgresql-15, or set KILN_PG_BINDIR "
                    "to the folder holding initdb, pg_ctl, postgres, pg_isready and psql)")
    owner = _server_owner()
    # Not under pytest's tmp folder: that is private to the test user and the server user must enter it.
    root = Path(tempfile.mkdtemp(prefix="kiln-pg-"))
    data = root / "data"
    pid: int | None = None
    try:
        if owner:
            info = pwd.getpwnam(owner)
            os.chown(root, info.pw_uid, info.pw_gid)
        init = subprocess.run(
            _as_server_user([str(bindir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust",
                             "-E", "UTF8", "--locale=C", "--no-sync"], owner),
            cwd=root, capture_output=True, text=True, timeout=120)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed ({init.returncode}):\n{init.stdout[-2000:]}\n{init.stderr[-2000:]}")
        for attempt in range(3):  # the free port can be taken between choosing and binding it
            port = _free_port()
            started = _start(bindir, root, owner, port)
            pid = _server_pid(data)
            if started.returncode == 0 and pid:
                break
            _stop(bindir, data, pid, owner)
            pid = None
        else:
            log = (root / "server.log").read_text(errors="replace")[-3000:] if (root / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr.strip()}\n{log}")
        server = PostgresServer(host="127.0.0.1", port=port, user=SUPERUSER, password="", db_name=DEFAULT_DB,
                                bindir=bindir, root=root, pid=pid)
        _wait_ready(server)
        server.psql(f'CREATE DATABASE "{DEFAULT_DB}"', db_name="postgres")
        yield server
    finally:
        _stop(bindir, data, pid or _server_pid(data), owner)
        shutil.rmtree(root, ignore_errors=True)
