"""The shared work queue: workers *pull* partition tasks; nobody assigns them.

One Redis list per table and run, so a worker can prefer the tables it has warm. A task is
moved atomically (LMOVE) to the worker's in-flight list while it runs; if the worker dies
the coordinator moves it back, so a killed worker loses no task.
"""
from __future__ import annotations

import json

import redis

from kora_assets.workers.partition_task import PartitionTask


class TaskQueue:
    def __init__(self, redis_url: str, run_key: str):
        self.r = redis.Redis.from_url(redis_url)
        self.run_key = run_key
        self._k = f"kora:run:{run_key}"

    def _table_q(self, table: str) -> str:
        return f"{self._k}:q:{table}"

    def _inflight(self, worker: str) -> str:
        return f"{self._k}:inflight:{worker}"

    def add(self, tasks: list[PartitionTask], rank: list[str] = ()) -> None:
        """Append tasks; idle workers take the tables in ``rank`` order (then in arrival order)."""
        known = [t.decode() for t in self.r.lrange(f"{self._k}:tables", 0, -1)]
        tables = list(dict.fromkeys(known + [t.table for t in tasks]))
        tables.sort(key=lambda t: rank.index(t) if t in rank else len(rank))
        pipe = self.r.pipeline()  # one MULTI: a pulling worker never sees the list half rewritten
        pipe.delete(f"{self._k}:tables")
        pipe.rpush(f"{self._k}:tables", *tables)
        for t in tasks:
            pipe.rpush(self._table_q(t.table), t.encode())
        pipe.expire(f"{self._k}:tables", 7 * 86400)
        pipe.execute()

    def pull(self, worker: str, prefer: list[str]) -> PartitionTask | None:
        """Next task: from a warm table if any is queued, else from the first table with work."""
        tables = [t.decode() for t in self.r.lrange(f"{self._k}:tables", 0, -1)]
        for table in [t for t in prefer if t in tables] + [t for t in tables if t not in prefer]:
            raw = self.r.lmove(self._table_q(table), self._inflight(worker), "LEFT", "RIGHT")
            if raw is not None:
                return PartitionTask.decode(raw)
        return None

    def ack(self, worker: str, task: PartitionTask, result: dict) -> None:
        pipe = self.r.pipeline()
        pipe.lrem(self._inflight(worker), 1, task.encode())
        pipe.rpush(f"{self._k}:done", json.dumps(result))
        pipe.execute()

    def drop(self, table: str) -> int:
        """Take a table's queued tasks off the queue (not those in flight); how many."""
        pipe = self.r.pipeline()
        pipe.llen(self._table_q(table))
        pipe.delete(self._table_q(table))
        return int(pipe.execute()[0])

    def requeue_inflight(self, worker: str) -> int:
        """Give a dead worker's tasks back to the queue (front, they were next)."""
        n = 0
        while (raw := self.r.rpop(self._inflight(worker))) is not None:
            self.r.lpush(self._table_q(PartitionTask.decode(raw).table), raw)
            n += 1
        return n

    def done(self, start: int = 0) -> list[dict]:
        return [json.loads(x) for x in self.r.lrange(f"{self._k}:done", start, -1)]

    def pending(self) -> int:
        tables = [t.decode() for t in self.r.lrange(f"{self._k}:tables", 0, -1)]
        return sum(self.r.llen(self._table_q(t)) for t in tables)

    def clear(self) -> None:
        keys = list(self.r.scan_iter(f"{self._k}:*"))
        if keys:
            self.r.delete(*keys)
