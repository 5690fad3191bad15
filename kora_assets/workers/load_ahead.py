"""Loading ahead: ``kora migrate`` keeps the workers loading while the coordinator checks.

The tables' Dagster runs go one after another in FK order, and most of a run after its load
is the coordinator's and the databases' (keys, indexes and foreign keys, completeness and
statistics, semantic scans): the workers would sit idle. So one shared queue is fed from the
start: a table's partitions go on it as soon as every parent in the migration has landed all
of its partitions (the rows the child's inline FK check reads), under the run id its Dagster
run will get. When that run comes, its step collects the results instead of queuing the
partitions again (``factory.run_partitions``) and goes on to its checks as usual.

Into a table that holds no partition yet, a child loads once its parents have *landed*: its
rows are new, and if a parent's run then fails (a blocking check, its constraints), the
partitions loaded ahead are taken out again (rows, queued errors, ledger), so a blocked table
ends as it began, as with plain Dagster runs. Into a table that already holds partitions (a
re-run), or under a parent with unique columns (its run may still queue a landed row that
repeats a unique value, and a child row checked against it would be an orphan), a child loads
only once its parents' runs have succeeded.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable

from kora_assets.bookkeeping.ledger import ledger_partitions
from kora_assets.errors import explain
from kora_assets.partitions import partitions_def
from kora_assets.plan.loader import ancestors, parents
from kora_assets.plan.model import Plan
from kora_assets.workers.partition_task import PartitionResult, PartitionTask

log = logging.getLogger("kora.load_ahead")
_ACTIVE: LoadAhead | None = None


class LoadAhead:
    def __init__(self, plan: Plan, order: list[str], run_ids: dict[str, str], session, target):
        self.plan, self.order, self.run_ids, self.session, self.target = plan, order, run_ids, session, target
        self.keys = {t: partitions_def(plan.tables[t]).get_partition_keys() for t in order}
        self.results: dict[str, list[PartitionResult]] = {t: [] for t in order}
        self.inbox: dict[str, queue.Queue] = {t: queue.Queue() for t in order}
        self.submitted: set[str] = set()
        self.collected: set[str] = set()  # tables whose run took its results: a claim is for its first load only
        self.fresh = {t: not ledger_partitions(target, t) for t in order}  # nothing landed yet
        self.succeeded: set[str] = set()
        self.blocked: set[str] = set()  # failed runs, and tables whose partitions were taken out
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="kora-load-ahead", daemon=True)

    # -- the migration's side ------------------------------------------------------------------
    def claims(self, table: str, run_id: str, keys: list[str]) -> bool:
        """Does this run's step find its partitions loading (or loaded) here? Once only: the same
        step loading them again (to queue repeats of a unique value) has nothing waiting here."""
        return (self.run_ids.get(table) == run_id and table not in self.collected
                and sorted(keys) == sorted(self.keys.get(table, [])))

    def wait(self, table: str, on_result: Callable[[PartitionResult], None] | None = None) -> list[PartitionResult]:
        """The table's results, each handed to ``on_result`` as it arrives (or at once if it has)."""
        with self.lock:
            if table not in self.submitted:  # released by the loop's ancestors' loads only
                self._submit(table)
            self.collected.add(table)
        out: list[PartitionResult] = []
        while len(out) < len(self.keys[table]):
            r = self.inbox[table].get()
            if isinstance(r, BaseException):
                raise r
            out.append(r)
            if on_result:
                on_result(r)
        return out

    def run_done(self, table: str, ok: bool) -> None:
        """A table's run ended: release the children waiting for it, or take out what its
        descendants loaded ahead (see the module doc)."""
        with self.lock:
            if ok:
                self.succeeded.add(table)
                self._release()
                return
            victims = [t for t in self.order if t in self.submitted and t not in self.blocked
                       and table in ancestors(self.plan, t)]
            self.blocked.update([table, *victims])
        for t in victims:
            self._take_out(t)

    def _take_out(self, table: str) -> None:
        """A fresh table's partitions loaded ahead, removed again once its last task is back."""
        expected = len(self.keys[table]) - self.session.q.drop(table)
        deadline = time.monotonic() + 600
        while len(self.results[table]) < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        landed = [r.partition_key for r in self.results[table] if not r.error]
        if landed:
            remove_partitions(self.target, self.plan, table, landed)
            log.warning("%s: a parent's run failed; its %d partition(s) loaded ahead were taken out again",
                        table, len(landed))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.session.close()

    # -- the loop ------------------------------------------------------------------------------
    def _ready(self, table: str) -> bool:
        if table in self.blocked:
            return False
        ps = [p for p in parents(self.plan, table) if p in self.keys]
        if any(p in self.blocked for p in ps):
            return False
        if self.fresh[table]:
            return all((self._landed(p) and not self.plan.tables[p].unique_sets()) or p in self.succeeded for p in ps)
        return all(p in self.succeeded for p in ps)

    def _landed(self, table: str) -> bool:
        done = self.results[table]
        return len(done) == len(self.keys[table]) and not any(r.error for r in done)

    def _submit(self, table: str) -> None:
        """Its semantic types first (the workers read them, as ``factory.run_partitions`` does), then its tasks."""
        from checks.semantic.runtime import prime_or_reason

        if reason := prime_or_reason(self.plan, table):
            log.warning("%s: semantic types not inferred (%s); plan rules only", table, reason)
        self.submitted.add(table)
        self.session.add([PartitionTask(table, k, self.run_ids[table]) for k in self.keys[table]], self.order)

    def _release(self) -> None:
        """Queue every table now ready (the caller holds the lock)."""
        for t in self.order:
            if t not in self.submitted and self._ready(t):
                self._submit(t)

    def _loop(self) -> None:
        try:
            with self.lock:
                self._release()
            while not self.stopping.is_set():
                for r in self.session.poll():
                    if r.table in self.results:
                        self.results[r.table].append(r)
                        self.inbox[r.table].put(r)
                        if self._landed(r.table):
                            with self.lock:
                                self._release()
                            self._scan_semantics(r.table)
        except Exception as exc:  # the waiting step reports it; nothing is left half-written
            log.warning("loading ahead stopped: %s", explain(exc))
            for box in self.inbox.values():
                box.put(RuntimeError(f"the worker pool stopped: {explain(exc)}"))

    def _scan_semantics(self, table: str) -> None:
        """The semantic anomaly scan of the landed rows, started now on its own thread: the
        table's semantic check takes the report (``checks.semantic.prefetch``). Not for a table
        with unique columns: its run may still queue repeats of a unique value."""
        from checks.semantic import prefetch
        from checks.semantic.anomaly import DEFAULT_THRESHOLD
        from checks.semantic.encoder import available

        if available() and not self.plan.tables[table].unique_sets():
            prefetch.start(self.plan, table, self.keys[table], self.run_ids[table], DEFAULT_THRESHOLD,
                           sum(r.landed for r in self.results[table]))


def remove_partitions(target, plan: Plan, table: str, keys: list[str]) -> None:
    """Rows, queued errors, fix audits and ledger rows of these partitions, in one transaction."""
    from kora_assets.bookkeeping.tables import bookkeeping_table
    from kora_assets.partitions import predicate

    tp = plan.tables[table]
    col = tp.partitioning.column
    name = target.qualified(plan.target_name(table), plan.target.schema_)
    with target.engine.begin() as c:
        for k in keys:
            where = predicate(tp, k, tp.target_column(col), target.quote) if col else None
            c.exec_driver_sql(f"DELETE FROM {name}" + (f" WHERE {where}" if where else ""))
            for book in ("error_queue", "fix_audit", "partition_ledger"):
                c.exec_driver_sql(f"DELETE FROM {bookkeeping_table(target, book)} "
                                  "WHERE table_name = %s AND partition_key = %s", (table, k))


def start(plan: Plan, order: list[str], resources: dict) -> tuple[LoadAhead | None, dict[str, str]]:
    """Start loading ahead for ``order`` (a PostgreSQL target, more than one table); the run
    id each table's Dagster run must use. None when it cannot start: the runs then load their
    own partitions and report whatever stopped this (an unreachable database, ...)."""
    global _ACTIVE
    from kora_assets.dbio.connections import Database
    from kora_assets.dbio.ddl import ensure_target_schema
    from kora_assets.workers.pool import WorkerPool
    from resources.databases import bind_plan

    run_ids = {t: str(uuid.uuid4()) for t in order}  # Dagster's own run ids are uuid4s
    bound = bind_plan(plan, resources["source_db"], resources["target_db"])
    target = Database(bound.target.url, "target")
    if len(order) < 2 or target.dialect != "postgresql":
        return None, run_ids  # SQLite: one writer at a time, the checks would wait for the loads
    try:
        Database(bound.source.url, "source").check()
        target.check()
        ensure_target_schema(target, bound)
        ray_cluster = resources["ray_cluster"]
        ray_cluster.ensure()
        pool = WorkerPool.shared(bound, ray_cluster.num_workers or bound.settings.workers)
        session = pool.session(resources["redis"].resolved_url(), f"migrate-{uuid.uuid4().hex[:12]}")
    except Exception as exc:
        log.info("not loading ahead: %s", explain(exc))
        return None, run_ids
    _ACTIVE = LoadAhead(bound, order, run_ids, session, target)
    _ACTIVE.thread.start()
    return _ACTIVE, run_ids


def active() -> LoadAhead | None:
    return _ACTIVE


def finish() -> None:
    global _ACTIVE
    if _ACTIVE is not None:
        _ACTIVE.stop()
        _ACTIVE = None
