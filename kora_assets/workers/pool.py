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
        self.warm()
        run_key = f"{tasks[0].run_id}-{uuid.uuid4().hex[:8]}"
        q = TaskQueue(redis_url, run_key)
        q.push(tasks)
        running = {self.actors[n].drain.remote(redis_url, run_key): n for n in list(self.actors)}
        seen, results = 0, []
        try:
            while running:
                ready, _ = ray.wait(list(running), timeout=0.5)
                for ref in ready:
                    name = running.pop(ref)
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayActorError:
                        n = q.requeue_inflight(name)
                        log.warning("worker %s died; re-queued %d task(s) and started a replacement", name, n)
                        self.actors.pop(name, None)
                        new = self._spawn()
                        running[self.actors[new].drain.remote(redis_url, run_key)] = new
                if not running and q.pending():
                    # Every actor finished while a requeued task appeared: keep draining.
                    running = {self.actors[n].drain.remote(redis_url, run_key): n for n in list(self.actors)}
                fresh = q.done(seen)
                seen += len(fresh)
                for d in fresh:
                    r = PartitionResult(**d)
                    results.append(r)
                    if on_result:
                        on_result(r)
        finally:
            q.clear()
        return results

    def pids(self) -> dict[str, int]:
        return {n: ray.get(a.pid.remote()) for n, a in self.actors.items()}
