"""Partitions: every key in exactly one partition, time windows that keep growing tables in
sync, and a daily partition materialized end to end; the queue over an embedded Redis."""
from __future__ import annotations

import datetime as dt
import sqlite3

import dagster as dg
import pytest

from kora_assets.definitions import build_definitions
from kora_assets.partitions import key_range_keys, partitions_def, predicate
from kora_assets.plan.loader import parse_plan

PLAN = """
name: ev
source: {{url: "sqlite:///{src}"}}
target: {{url: "{tgt}", schema: public}}
tables:
  readings:
    primary_key: [id]
    partitioning: {{kind: time, column: taken_at, granularity: daily, start: 2024-03-01}}
    columns:
      id: {{type: integer, nullable: false}}
      taken_at: {{type: timestamp}}
      value: {{type: double}}
  ranged:
    primary_key: [id]
    partitioning: {{kind: key_range, column: id, bounds: [10, 20]}}
    columns:
      id: {{type: integer, nullable: false}}
"""


def _plan(tmp_path, tgt="postgresql://postgres@127.0.0.1/x"):
    src = tmp_path / "src.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, taken_at TEXT, value REAL)")
    rows = [(1, "2024-02-20 08:00:00", 1.0), (2, None, 2.0), (3, "2024-03-01 00:00:00", 3.0),
            (4, "2024-03-01 23:59:59", 4.0), (5, "2024-03-02 00:00:00", 5.0), (6, "2024-03-03 12:00:00", 6.0)]
    con.executemany("INSERT INTO readings VALUES (?, ?, ?)", rows)
    con.execute("CREATE TABLE ranged (id INTEGER PRIMARY KEY)")
    con.executemany("INSERT INTO ranged VALUES (?)", [(i,) for i in range(1, 30)])
    con.commit()
    con.close()
    return parse_plan(PLAN.format(src=src, tgt=tgt), require_env=False)


def test_key_ranges_cover_every_key_once(tmp_path):
    t = _plan(tmp_path).tables["ranged"]
    assert key_range_keys(t) == ["..10", "10..20", "20.."]
    q = lambda c: c  # noqa: E731
    assert [predicate(t, k, "id", q) for k in key_range_keys(t)] == ["(id < 10 OR id IS NULL)", "id >= 10 AND id < 20", "id >= 20"]


def test_time_windows_first_takes_older_and_null(tmp_path):
    t = _plan(tmp_path).tables["readings"]
    keys = partitions_def(t).get_partition_keys(current_time=dt.datetime(2024, 3, 3, 12))
    assert keys == ["2024-03-01", "2024-03-02", "2024-03-03"]  # end_offset=1: today's window too
    first = predicate(t, "2024-03-01", "taken_at", lambda c: c)
    assert "taken_at IS NULL" in first and "taken_at < '2024-03-01 00:00:00'" in first
    assert predicate(t, "2024-03-02", "taken_at", lambda c: c) == \
        "taken_at >= '2024-03-02 00:00:00' AND taken_at < '2024-03-03 00:00:00'"


def test_sync_schedule_requests_newest_windows(tmp_path):
    defs = build_definitions(_plan(tmp_path))
    sched = defs.get_schedule_def("sync_readings_schedule")
    with dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 3, 3, 12, tzinfo=dt.timezone.utc),
                                   repository_def=defs.get_repository_def()) as ctx:
        reqs = list(sched.evaluate_tick(ctx).run_requests)
    assert [r.partition_key for r in reqs] == ["2024-03-02", "2024-03-03"]


@pytest.mark.usefixtures("ray_local", "redis_url")
def test_daily_partitions_land_exactly_their_rows(tmp_path, pg_db, dagster_instance):
    plan = _plan(tmp_path, pg_db)
    defs = build_definitions(plan)
    asset = defs.get_assets_def(dg.AssetKey(["ev", "readings"]))
    from kora_assets.dbio.connections import Database

    db = Database(pg_db, "target")
    for key, ids in [("2024-03-01", [1, 2, 3, 4]), ("2024-03-02", [1, 2, 3, 4, 5])]:
        res = dg.materialize([asset], partition_key=key, resources=defs.resources, instance=dagster_instance)
        assert res.success and all(e.passed for e in res.get_asset_check_evaluations())
        with db.engine.connect() as c:
            assert [r[0] for r in c.exec_driver_sql("SELECT id FROM public.readings ORDER BY id")] == ids


def test_queue_over_embedded_redis():
    from kora_assets.workers.partition_task import PartitionTask
    from kora_assets.workers.queue import TaskQueue
    from resources.redis_bus import start_embedded_redis

    q = TaskQueue(start_embedded_redis(), "unit")
    q.clear()  # a fresh queue
    q.add([PartitionTask("a", "..10", "r"), PartitionTask("b", "all", "r"), PartitionTask("a", "10..", "r")])
    assert q.pull("w1", prefer=["b"]) == PartitionTask("b", "all", "r")  # warm table first
    t = q.pull("w1", prefer=["b"])
    assert t == PartitionTask("a", "..10", "r")
    assert q.requeue_inflight("w1") == 2  # a dead worker's tasks go back
    assert q.pending() == 3
    q.clear()
