"""Database handles: every ``Database`` naming the same database and role in a process shares
one engine, so a run's many checks reuse connections instead of opening new ones."""
from __future__ import annotations

from kora_assets.dbio import connections
from kora_assets.dbio.connections import Database


def _session_id(db: Database, sql: str) -> int:
    with db.engine.connect() as c:
        return c.exec_driver_sql(sql).scalar()


def test_handles_on_the_same_database_reuse_one_pooled_connection(mysql_db, pg_db):
    for url, sql in ((mysql_db, "SELECT CONNECTION_ID()"), (pg_db, "SELECT pg_backend_pid()")):
        first, second = Database(url, "source"), Database(url, "source")
        assert first.engine is second.engine
        assert _session_id(first, sql) == _session_id(second, sql)  # the pooled session, not a new one


def test_a_sqlite_target_keeps_its_own_engine_and_old_engines_are_let_go(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    source, target = Database(url, "source"), Database(url, "target")
    assert source.engine is not target.engine  # the target's connections enforce foreign keys
    assert _session_id(target, "PRAGMA foreign_keys") == 1 and _session_id(source, "PRAGMA foreign_keys") == 0
    monkeypatch.setattr(connections, "_ENGINES_KEPT", 2)
    engines = [Database(f"sqlite:///{tmp_path / f'{i}.db'}", "source").engine for i in range(3)]
    kept = list(connections._ENGINES.values())
    assert len(kept) == 2 and engines[0] not in kept and engines[1:] == kept
