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

A Celery worker builds a new instance for every run. So that a run does not open its own
connections and ask the database about its schema again, the engine is shared by every instance of
the process with the same storage and database (`_shared`), tables are created (if missing) by the
first one only, and the schema checks Dagster repeats per instance (does a table, a column, a
migrated index exist) are remembered once they answer yes: a migration only adds them, and a
process started before one is restarted after it, as Dagster's own upgrade notes ask.
"""

from __future__ import annotations

import os
from typing import Any

from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from dagster_postgres.utils import get_token_provider_from_config, pg_url_from_config

POOL_RECYCLE_S = 3600  # reconnect an hour-old connection (servers and proxies drop idle ones)
MAX_OVERFLOW = 10  # extra connections for concurrent threads (the daemon's), closed when returned
NO_STATEMENT_TIMEOUT = 0

_shared: dict[tuple[str, str], Any] = {}  # (storage class, database url) -> the process's engine
_schema_facts: set[tuple[str, str, tuple]] = set()  # (database url, check, arguments) that answered yes


def _forget_inherited_connections() -> None:
    for engine in _shared.values():
        engine.dispose(close=False)  # the parent keeps using them; the child opens its own
    _shared.clear()


os.register_at_fork(after_in_child=_forget_inherited_connections)


class _KeepsConnections:
    """The stock storage, built from the same config, on the process's kept connections."""

    def __init__(self, **kwargs: Any):
        key = (type(self).__name__, kwargs["postgres_url"])
        if key in _shared:
            kwargs["should_autocreate_tables"] = False  # the first instance of this process made sure
        super().__init__(**kwargs)
        if key not in _shared:
            self.optimize_for_webserver(NO_STATEMENT_TIMEOUT, POOL_RECYCLE_S, MAX_OVERFLOW)
            _shared[key] = self._engine
        else:
            self._engine.dispose()  # the stock NullPool engine: it holds nothing
            self._engine = _shared[key]

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, postgres_url=pg_url_from_config(config_value),
                   should_autocreate_tables=config_value.get("should_autocreate_tables", True),
                   token_provider=get_token_provider_from_config(config_value))

    def _known(self, check: str, args: tuple, ask) -> bool:
        """A schema check's answer, asked once per process while it is no."""
        fact = (self.postgres_url, check, args)
        if fact in _schema_facts:
            return True
        found = bool(ask())
        if found:
            _schema_facts.add(fact)
        return found


class PooledPostgresRunStorage(_KeepsConnections, PostgresRunStorage):
    def has_built_index(self, migration_name: str) -> bool:
        return self._known("built_index", (migration_name,), lambda: super(PooledPostgresRunStorage, self)
                           .has_built_index(migration_name))

    def has_run_stats_index_cols(self) -> bool:
        return self._known("run_stats_index_cols", (), super().has_run_stats_index_cols)

    def has_bulk_actions_selector_cols(self) -> bool:
        return self._known("bulk_actions_selector_cols", (), super().has_bulk_actions_selector_cols)

    def has_backfill_id_column(self) -> bool:
        return self._known("backfill_id_column", (), super().has_backfill_id_column)

    def has_bulk_action_job_name_column(self) -> bool:
        return self._known("bulk_action_job_name_column", (), super().has_bulk_action_job_name_column)

    def has_backfill_tags_table(self) -> bool:
        return self._known("backfill_tags_table", (), super().has_backfill_tags_table)


class PooledPostgresEventLogStorage(_KeepsConnections, PostgresEventLogStorage):
    def has_table(self, table_name: str) -> bool:
        return self._known("table", (table_name,), lambda: super(PooledPostgresEventLogStorage, self)
                           .has_table(table_name))

    def has_secondary_index(self, name: str) -> bool:
        return self._known("secondary_index", (name,), lambda: super(PooledPostgresEventLogStorage, self)
                           .has_secondary_index(name))

    def _has_asset_key_col_on_connection(self, conn, column_name: str) -> bool:
        return self._known("asset_key_col", (column_name,), lambda: super(PooledPostgresEventLogStorage, self)
                           ._has_asset_key_col_on_connection(conn, column_name))


class PooledPostgresScheduleStorage(_KeepsConnections, PostgresScheduleStorage):
    pass
