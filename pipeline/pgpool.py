"""PostgreSQL instance storage that keeps its connections (deploy/dagster.celery.yaml).

dagster-postgres opens a new connection for every storage call outside the webserver (SQLAlchemy's
NullPool, so that idle instances hold nothing), and each connection is a freshly forked PostgreSQL
backend. A run writes and reads its events through such calls, so on the scale-out stack every asset
cost hundreds of connections, and the database spent more CPU on starting backends than on queries:
bench/backfill_bench.py measured it as the bottleneck of a 10-machine cluster. These classes are the
stock storages with the pool the webserver already uses (`optimize_for_webserver`: one kept
connection, overflow for concurrent threads, no statement timeout here since runs write large
batches). Engines are dropped without closing in a forked child (Celery's prefork pool forks the
worker that built the instance), so a child never talks over its parent's sockets.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_S = 3600  # reconnect an hour-old connection (servers and proxies drop idle ones)
MAX_OVERFLOW = 10  # extra connections for concurrent threads (the daemon's), closed when returned
NO_STATEMENT_TIMEOUT = 0

_engines: "weakref.WeakSet[Any]" = weakref.WeakSet()


def _forget_inherited_connections() -> None:
    for engine in list(_engines):
        engine.dispose(close=False)  # the parent keeps using them; the child opens its own


os.register_at_fork(after_in_child=_forget_inherited_connections)


class _KeepsConnections:
    """The stock storage, built from the same config, with a kept connection; disposed with the instance."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.optimize_for_webserver(NO_STATEMENT_TIMEOUT, POOL_RECYCLE_S, MAX_OVERFLOW)
        _engines.add(self._engine)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, postgres_url=pg_url_from_config(config_value),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()  # the stock storage holds nothing to close; a pool does


class PooledPostgresRunStorage(_KeepsConnections, PostgresRunStorage):
    pass


class PooledPostgresEventLogStorage(_KeepsConnections, PostgresEventLogStorage):
    pass


class PooledPostgresScheduleStorage(_KeepsConnections, PostgresScheduleStorage):
    pass
