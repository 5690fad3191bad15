"""The event log of the Dagster instance kora keeps beside a plan (``.kora/dagster``).

It is Dagster's own SQLite event log (one database file per run, plus an index file), read
and written the same way, so `dagster dev` and plain Dagster tools read it as they would the
default. One difference: Dagster opens a new SQLAlchemy engine and SQLite connection for every
statement batch (``NullPool``), and each event of a run costs two to four of them (the run's
file, the index for asset and check events). A ``kora migrate`` of TPC-H stores ~700 events,
on the coordinating thread that runs each table's Dagster step: ~7 ms of CPU per event,
~2.5 ms with one pooled engine per file. Engines are kept for the most recent files only.
"""
from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict

import dagster as dg
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from sqlalchemy import create_engine

from kora_assets.dbio.connections import cached_engine

_ENGINES_KEPT = 8  # a run's file and the index are what a run writes; older runs' files are only read


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one pooled engine per database file, least recently used
    beyond ``_ENGINES_KEPT`` disposed. ``base_dir`` defaults to ``$DAGSTER_HOME/history/runs``,
    where Dagster's default event log lives."""

    def __init__(self, base_dir: str | None = None, inst_data=None):
        self._engines: OrderedDict[str, object] = OrderedDict()
        self._engines_lock = threading.Lock()
        super().__init__(base_dir or default_base_dir(), inst_data)

    @classmethod
    def config_type(cls):
        return {"base_dir": dg.Field(dg.StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value):  # ty: ignore[invalid-method-override]
        return cls(inst_data=inst_data, **config_value)

    @contextlib.contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str):
        def create():
            return create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=4,
                                 connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})

        return cached_engine(self._engines, self._engines_lock, shard, create, _ENGINES_KEPT)

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            while self._engines:
                self._engines.popitem()[1].dispose()

    def wipe(self) -> None:
        self._dispose_engines()  # the files are deleted: no connection may keep one open
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def default_base_dir() -> str:
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise dg.DagsterInvariantViolationError(
            "PooledSqliteEventLogStorage needs a base_dir in its config or DAGSTER_HOME set")
    return os.path.join(home, "history", "runs")


INSTANCE_YAML = f"""\
telemetry:
  enabled: false
# Dagster's SQLite event log with pooled connections (kora_assets/dagster_storage.py): the same
# files as the default, readable by any Dagster.
event_log_storage:
  module: {__name__}
  class: {PooledSqliteEventLogStorage.__name__}
"""
