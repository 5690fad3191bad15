"""A partition landed again merges instead of appending, before the table has its keys too.

Until ``finalize_table`` the target table has no index; whether a partition already holds rows
is then read from the ledger (written in the same transaction as the rows), unless the ledger
holds partitions the plan no longer has (new bounds): then the table itself is asked. And a
chunk's COPY that fails on the writer's thread stops the partition before its ledger row.
"""
from __future__ import annotations

import sqlite3

from kora_assets.dbio.connections import Database
from kora_assets.dbio.ddl import ensure_target_schema, has_key_constraints
from kora_assets.plan.loader import parse_plan
from kora_assets.workers.partition_task import PartitionTask, TableRunner

PLAN = """
name: rerun
source: {{url: "{src}"}}
target: {{url: "{tgt}", schema: public}}
tables:
  items:
    primary_key: [id]
    partitioning: {{kind: key_range, column: id, bounds: {bounds}}}
    columns:
      id: {{type: integer, nullable: false}}
      name: {{type: text}}
"""


def _plan(src: str, tgt: str, bounds: list[int]):
    return parse_plan(PLAN.format(src=src, tgt=tgt, bounds=bounds), require_env=False)


def _counts(target: Database, below: int) -> tuple[int, int]:
    with target.engine.connect() as c:
        return tuple(c.exec_driver_sql(f"SELECT COUNT(*), COUNT(DISTINCT id) FROM public.items WHERE id < {below}").one())


def test_rerun_of_an_unkeyed_partition_merges_under_old_and_new_bounds(tmp_path, pg_db):
    path = tmp_path / "src.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 31)])
    con.commit()
    con.close()
    src = f"sqlite:///{path}"
    plan = _plan(src, pg_db, [10, 20])
    source, target = Database(src, "source"), Database(pg_db, "target")
    ensure_target_schema(target, plan)
    runner = TableRunner(plan, "items")
    for key in ("..10", "10..20", "..10"):  # the last one again: the ledger knows it landed
        runner.run(PartitionTask("items", key, "r1"), source, target)
    assert not has_key_constraints(target, plan, "items")  # "20.." never ran: no keys yet
    assert _counts(target, 20) == (19, 19)
    replanned = _plan(src, pg_db, [15])  # the ledger's "..10" and "10..20" are not partitions of this plan
    TableRunner(replanned, "items").run(PartitionTask("items", "..15", "r2"), source, target)
    assert _counts(target, 20) == (19, 19)  # ids 1-14 merged, not appended a second time


class _Writer:
    """A writer whose COPY of the second chunk fails, slowly (pure logic: no database)."""

    thread_safe = True

    def __init__(self):
        self.chunks, self.ledger = [], None

    def write(self, df):
        import time

        time.sleep(0.05)
        if len(self.chunks) == 1:
            raise RuntimeError("COPY failed: value too long")
        self.chunks.append(df)

    def write_errors(self, errors):
        pass

    def write_audits(self, audits):
        pass

    def record_ledger(self, *args):
        self.ledger = args


def test_pipelined_writes_surface_a_failed_copy_before_the_ledger():
    import polars as pl
    import pytest

    from kora_assets.workers.partition_task import PipelinedWrites

    w = _Writer()
    empty = pl.DataFrame()
    with pytest.raises(RuntimeError, match="value too long"):
        with PipelinedWrites(w) as p:
            p.write_all(pl.DataFrame({"x": [1]}), empty, empty)
            p.write_all(pl.DataFrame({"x": [2]}), empty, empty)  # runs on the thread, fails there
            p.record_ledger(2)  # waits for the chunk in flight first: the failure stops it here
    assert len(w.chunks) == 1 and w.ledger is None


def test_a_table_run_on_an_existing_target_does_not_queue_for_the_error_queue_lock(tmp_path, pg_db):
    """Every table run ensures the target schema while the workers hold partition transactions
    that wrote the error queue. ``CREATE INDEX IF NOT EXISTS`` locks the table before it finds
    the index there: it waited for such a transaction (and the workers' next ones behind it).
    What exists is looked up first now; what is missing is still created."""
    import threading

    import psycopg

    plan = _plan(f"sqlite:///{tmp_path / 'unused.db'}", pg_db, [10])
    target = Database(pg_db, "target")
    ensure_target_schema(target, plan)
    worker = psycopg.connect(target.psycopg_conninfo())  # a partition transaction, still open
    worker.execute("DELETE FROM kora.error_queue WHERE table_name = 'items' AND partition_key = '..10'")
    done = threading.Event()
    threading.Thread(target=lambda: (ensure_target_schema(target, plan), done.set()), daemon=True).start()
    try:
        assert done.wait(10), "ensure_target_schema waited for an open partition transaction"
    finally:
        worker.rollback()
        worker.close()
    with target.engine.begin() as c:
        c.exec_driver_sql("DROP INDEX kora.error_queue_status")
    ensure_target_schema(target, plan)
    with target.engine.connect() as c:
        assert c.exec_driver_sql("SELECT to_regclass('kora.error_queue_status') IS NOT NULL").scalar()


def test_a_sqlite_target_is_made_wal_when_its_schema_is_created(tmp_path):
    """The journal mode is switched once, by the process that creates the target: switching it
    needs the file to itself, and a worker that switched it while the coordinator read the new
    target failed its partition with "database is locked" (seen once in CI). A worker's
    connection then finds WAL set and opens while another connection holds a read transaction."""
    plan = _plan(f"sqlite:///{tmp_path / 'unused.db'}", f"sqlite:///{tmp_path / 'tgt.db'}", [10])
    target = Database(f"sqlite:///{tmp_path / 'tgt.db'}", "target")
    ensure_target_schema(target, plan)
    reader = sqlite3.connect(tmp_path / "tgt.db", isolation_level=None)
    try:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM items").fetchone()  # a read transaction, left open
        worker = target.sqlite_connect()
        assert worker.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        worker.close()
    finally:
        reader.close()


def test_a_sqlite_index_added_to_the_plan_is_created_on_the_next_run(tmp_path):
    """SQLite gets the plan's indexes with its tables; an existing target whose plan gained an
    index is not "all present", so the next run creates it."""
    plan = _plan(f"sqlite:///{tmp_path / 'unused.db'}", f"sqlite:///{tmp_path / 'tgt.db'}", [10])
    target = Database(f"sqlite:///{tmp_path / 'tgt.db'}", "target")
    ensure_target_schema(target, plan)
    indexed = parse_plan(PLAN.format(src=f"sqlite:///{tmp_path / 'unused.db'}", tgt=f"sqlite:///{tmp_path / 'tgt.db'}",
                                     bounds=[10]) + "    indexes:\n      - {columns: [name], name: ix_items_name}\n",
                         require_env=False)
    ensure_target_schema(target, indexed)
    with sqlite3.connect(tmp_path / "tgt.db") as con:
        assert con.execute("SELECT name FROM sqlite_master WHERE name = 'ix_items_name'").fetchone() == ("ix_items_name",)
