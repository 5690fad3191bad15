"""A worker process killed mid-partition loses nothing: its transaction rolls back in the
target, its task goes back on the queue, a replacement finishes it, and a re-run changes nothing."""
from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time

import pytest
import ray
import redis

from kora_assets.dbio.connections import Database
from kora_assets.migrate import migrate
from kora_assets.plan.loader import parse_plan
from kora_assets.workers.pool import WorkerPool

pytestmark = pytest.mark.usefixtures("ray_local")
ROWS = 200_000


def _source(path) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT, amount TEXT)")
    con.executemany("INSERT INTO events VALUES (?, ?, ?)",
                    ((i, "bad" if i % 1000 == 0 else "ok", f"{i % 97}.5") for i in range(1, ROWS + 1)))
    con.commit()
    con.close()
    return f"sqlite:///{path}"


PLAN = """
name: killtest
source: {{url: "{src}"}}
target: {{url: "{tgt}", schema: public}}
settings: {{chunk_rows: 1000, workers: 2}}
tables:
  events:
    primary_key: [id]
    partitioning: {{kind: key_range, column: id, bounds: [50001, 100001, 150001]}}
    columns:
      id: {{type: integer, nullable: false}}
      kind: {{type: varchar(8), rules: {{allowed: [ok]}}}}
      amount: {{type: "numeric(8,2)"}}
"""


def _state(url):
    db = Database(url, "target")
    with db.engine.connect() as c:
        n, s = c.exec_driver_sql("SELECT COUNT(*), SUM(amount) FROM public.events").one()
        dup = c.exec_driver_sql("SELECT COUNT(*) - COUNT(DISTINCT id) FROM public.events").scalar()
        q = c.exec_driver_sql("SELECT COUNT(*), COUNT(DISTINCT primary_key::text) FROM kora.error_queue").one()
    db.engine.dispose()
    return n, s, dup, tuple(q)


def test_killed_worker_then_rerun_gives_exact_target(tmp_path, pg_db, redis_url, dagster_instance):
    plan = parse_plan(PLAN.format(src=_source(tmp_path / "src.db"), tgt=pg_db), require_env=False)
    r = redis.Redis.from_url(redis_url)
    killed: list[str] = []

    def killer():
        pool = WorkerPool.shared(plan, plan.settings.workers)
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for key in r.scan_iter("kora:run:*:inflight:*"):
                if r.llen(key):
                    name = key.decode().rsplit(":", 1)[1]
                    actor = pool.actors.get(name)
                    if actor is not None:
                        os.kill(ray.get(actor.pid.remote()), signal.SIGKILL)
                        killed.append(name)
                        return
            time.sleep(0.01)

    t = threading.Thread(target=killer)
    t.start()
    outcome = migrate(plan, dagster_instance)
    t.join()
    assert killed, "no worker was caught mid-partition"
    assert outcome.ok, outcome
    expected = (ROWS - ROWS // 1000, None, 0, (ROWS // 1000, ROWS // 1000))
    first = _state(pg_db)
    assert (first[0], first[2], first[3]) == (expected[0], expected[2], expected[3])
    assert migrate(plan, dagster_instance).ok
    assert _state(pg_db) == first


def test_worker_processes_start_with_the_bounded_heap_settings():
    """Workers inherit kora's glibc settings (two arenas, trim on free): without them a
    worker's RSS grew with every partition it ran (kora_assets.memory)."""
    from kora_assets.memory import WORKER_MALLOC_ENV

    @ray.remote(num_cpus=0)
    def heap_env() -> dict:
        return {k: os.environ.get(k) for k in WORKER_MALLOC_ENV}

    assert ray.get(heap_env.remote()) == WORKER_MALLOC_ENV
