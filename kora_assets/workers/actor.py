"""The Ray worker actor: pulls partition tasks until the queue is empty.

It keeps each table's compiled transform and validator (a ``TableRunner``) and asks the
queue for those tables first, so a warm worker keeps working on what it has compiled.
"""
from __future__ import annotations

import os
import traceback

import ray

from kora_assets.dbio.connections import Database
from kora_assets.errors import recoverable
from kora_assets.plan.model import Plan
from kora_assets.recovery.broadcast import WorkerFixes
from kora_assets.workers.partition_task import PartitionResult, TableRunner
from kora_assets.workers.queue import TaskQueue


class MigrationWorker:
    def __init__(self, plan_json: dict, name: str):
        self.plan = Plan.model_validate(plan_json)
        self.name = name
        self.runners: dict[str, TableRunner] = {}
        self.source = Database(self.plan.source.url, "source")
        self.target = Database(self.plan.target.url, "target")
        # learned fixes: the library's (re-read when it changes) + signed broadcasts
        self.fixes = WorkerFixes(self.plan, on_new=self._hot_swap)

    def pid(self) -> int:
        return os.getpid()

    def warm_tables(self) -> list[str]:
        return list(self.runners)

    def drain(self, redis_url: str, run_key: str) -> int:
        """Work until no task is left; returns how many this worker ran."""
        q, n = TaskQueue(redis_url, run_key), 0
        self.fixes.listen(redis_url)
        while (task := q.pull(self.name, prefer=list(self.runners))) is not None:
            try:
                runner = self._runner(task.table)
                result = runner.run(task, self.source, self.target, worker=self.name)
            except BaseException as exc:  # reported per partition; the run decides what fails
                if not recoverable(exc):
                    raise
                result = PartitionResult(task.table, task.partition_key, worker=self.name,
                                         error=_describe(exc))
            q.ack(self.name, task, result.to_dict())
            n += 1
        return n

    def _runner(self, table: str) -> TableRunner:
        fixes = self.fixes.for_table(table)
        runner = self.runners.get(table)
        if runner is None or runner.fixes != fixes:
            runner = self.runners[table] = TableRunner(self.plan, table, fixes)
        return runner

    def _hot_swap(self, table: str) -> None:
        """A broadcast fix arrived: a running partition's later chunks already apply it."""
        runner = self.runners.get(table)
        if runner is not None:
            fresh = TableRunner(self.plan, table, self.fixes.for_table(table, refresh=False))
            runner.fixes, runner.validator, runner.transform = fresh.fixes, fresh.validator, fresh.transform


def _describe(exc: BaseException) -> str:
    """One specific line for the steward, the traceback's last frame for the developer."""
    from kora_assets.errors import explain

    msg = explain(exc)
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return msg + where


RemoteWorker = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(MigrationWorker)
