"""The scale-out instance keeps its PostgreSQL connections (pipeline/pgpool.py), also across forks.

A real PostgreSQL server (tests/pgserver.py); `sessions` in pg_stat_database counts every connection
the server accepted, i.e. every backend it forked.
"""

from __future__ import annotations

import os
import time

import dagster as dg
import pytest

from tests.servers import celery_home

pytest_plugins = ["tests.pgserver"]
pytestmark = pytest.mark.live

CALLS = 30


def _sessions(server, db: str) -> int:
    time.sleep(0.6)  # the statistics collector publishes ended sessions within ~0.5 s
    return int(server.psql(f"SELECT sessions FROM pg_stat_database WHERE datname = '{db}'", "postgres"))


def _instance(tmp_path, name: str, pooled: bool) -> dg.DagsterInstance:
    home = celery_home(tmp_path / name)
    if not pooled:  # the stock storage, as dagster-postgres ships it
        import yaml

        config = yaml.safe_load((home / "dagster.yaml").read_text())
        db = config["run_storage"]["config"]
        for key in ("run_storage", "event_log_storage", "schedule_storage"):
            del config[key]
        config["storage"] = {"postgres": db}
        (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return dg.DagsterInstance.from_config(str(home))


def test_pooled_storage_reuses_connections_and_survives_a_fork(postgres_server, tmp_path, monkeypatch):
    pytest.importorskip("dagster_celery", reason="the scale-out extra is not installed: pip install -e '.[scaleout]'")
    db = postgres_server.create_database("kiln_pool")
    for var, value in {**postgres_server.env(db), "KILN_CELERY_BROKER": "redis://127.0.0.1:1/0"}.items():
        monkeypatch.setenv(var, value)

    stock = _instance(tmp_path, "stock", pooled=False)
    stock.get_runs(limit=1)
    before = _sessions(postgres_server, db)
    for _ in range(CALLS):
        stock.get_runs(limit=1)
        stock.event_log_storage.get_concurrency_info("kiln/runware")
    opened_stock = _sessions(postgres_server, db) - before
    stock.dispose()

    pooled = _instance(tmp_path, "pooled", pooled=True)
    assert type(pooled.run_storage).__name__ == "PooledPostgresRunStorage"
    pooled.get_runs(limit=1)
    pooled.event_log_storage.get_concurrency_info("kiln/runware")
    before = _sessions(postgres_server, db)
    for _ in range(CALLS):
        pooled.get_runs(limit=1)
        pooled.event_log_storage.get_concurrency_info("kiln/runware")
    opened_pooled = _sessions(postgres_server, db) - before
    assert opened_stock >= 2 * CALLS, opened_stock  # a connection per call
    assert opened_pooled <= 2, opened_pooled

    # the next run's instance in the same process (a Celery worker's next run) uses the same
    # connections: no new backend, no table creation, no schema reflection
    before = _sessions(postgres_server, db)
    again = _instance(tmp_path, "again", pooled=True)
    assert again.run_storage._engine is pooled.run_storage._engine
    for _ in range(CALLS):
        again.get_runs(limit=1)
        again.event_log_storage.get_concurrency_info("kiln/runware")
    again.dispose()
    assert _sessions(postgres_server, db) - before == 0

    # A forked child (Celery's prefork pool) builds its own instance and must not use the parent's
    # pooled sockets; the parent's connections still work after the child exits.
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = _instance(tmp_path, "child", pooled=True)
            child.add_dynamic_partitions("game_assets", ["forked"])
            code = 0 if "forked" in child.get_dynamic_partitions("game_assets") else 1
            child.dispose()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert "forked" in pooled.get_dynamic_partitions("game_assets")
    assert pooled.get_runs(limit=1) == []
    pooled.dispose()
