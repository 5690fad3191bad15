"""The coordinator side of the worker pool: enqueue, let actors pull, watch, recover.

Actors live as long as the process that created them (one ``kora migrate``, one Dagster
run), so a multi-table migration keeps its warm workers across tables. A worker that dies
mid-partition (its transaction rolls back in the target) gets its task re-queued and a
replacement actor; the partition is then simply done again, idempotently.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable

import ray

from kora_assets.plan.model import Plan
from kora_assets.workers.actor import RemoteWorker
from kora_assets.workers.partition_task import PartitionResult, PartitionTask
from kora_assets.workers.queue import TaskQueue

log = logging.getLogger("kora.pool")
_POOLS: dict[str, WorkerPool] = {}


class WorkerPool:
    def __init__(self, plan: Plan, size: int):
        self.plan_json = plan.dump()
        self.size = size
        self.actors: dict[str, object] = {}
        self._spawned = 0

    @classmethod
    def shared(cls, plan: Plan, size: int) -> WorkerPool:
        """One pool per plan and process: warm actors are reused across runs of one process."""
        key = hashlib.sha1(json.dumps(plan.dump(), sort_keys=True).encode()).hexdigest() + f":{size}"
        pool = _POOLS.get(key)
        if pool is None or not ray.is_initialized():
            pool = _POOLS[key] = cls(plan, size)
        return pool

    def _spawn(self) -> str:
        self._spawned += 1
        name = f"kora-worker-{self._spawned}-{uuid.uuid4().hex[:6]}"
        self.actors[name] = RemoteWorker.remote(self.plan_json, name)
        return name

    def warm(self) -> WorkerPool:
        """Start the missing actors now, without waiting: their processes import and connect
        while the coordinator does its own setup (the semantic model loads in ~5 s)."""
        while len(self.actors) < self.size:
            self._spawn()
        return self

    def run(self, tasks: list[PartitionTask], redis_url: str,
            on_result: Callable[[PartitionResult], None] | None = None) -> list[PartitionResult]:
        """Run all tasks on the pool; results in completion order, one per task."""
        if not tasks:
            return []
        session = self.session(redis_url, f"{tasks[0].run_id}-{uuid.uuid4().hex[:8]}")
        results: list[PartitionResult] = []
        try:
            session.add(tasks)
            while len(results) < len(tasks):
                for r in session.poll():
                    results.append(r)
                    if on_result:
                        on_result(r)
        finally:
            session.close()
        return results

    def session(self, redis_url: str, run_key: str) -> PoolSession:
        return PoolSession(self.warm(), redis_url, run_key)

    def pids(self) -> dict[str, int]:
        return {n: ray.get(a.pid.remote()) for n, a in self.actors.items()}


class PoolSession:
    """One shared queue the pool's actors drain: tasks may be added while others run (``kora
    migrate`` adds a table's partitions as soon as its parents have landed), and ``poll``
    returns the results that came back since the last call.

    An actor's ``drain`` returns when the queue is empty; adding tasks sends the idle ones
    back to it. A worker that dies mid-partition (its transaction rolls back in the target)
    gets its tasks re-queued and a replacement actor; the partition is then done again.
    """

    def __init__(self, pool: WorkerPool, redis_url: str, run_key: str):
        self.pool, self.redis_url = pool, redis_url
        self.q = TaskQueue(redis_url, run_key)
        self.running: dict[object, str] = {}  # drain call -> actor name
        self.seen = 0

    def add(self, tasks: list[PartitionTask], rank: list[str] = ()) -> None:
        self.q.add(tasks, rank)  # the run key is new: nothing stale to clear first
        self._kick()

    def _kick(self) -> None:
        """Every actor without a drain call in flight gets one."""
        busy = set(self.running.values())
        for name in [n for n in list(self.pool.actors) if n not in busy]:
            self.running[self.pool.actors[name].drain.remote(self.redis_url, self.q.run_key)] = name

    def poll(self, timeout: float = 0.5) -> list[PartitionResult]:
        if self.running:
            ready, _ = ray.wait(list(self.running), timeout=timeout)
        else:
            ready = []
            time.sleep(timeout)
        for ref in ready:
            name = self.running.pop(ref)
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError:
                n = self.q.requeue_inflight(name)
                log.warning("worker %s died; re-queued %d task(s) and started a replacement", name, n)
                if self.pool.actors.pop(name, None) is not None:
                    self.pool._spawn()
        if ready and self.q.pending():  # a requeued task, or tasks added while an actor finished
            self._kick()
        fresh = self.q.done(self.seen)
        self.seen += len(fresh)
        return [PartitionResult(**d) for d in fresh]

    def close(self) -> None:
        self.q.clear()
