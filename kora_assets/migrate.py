"""``kora migrate``: the whole migration through Dagster, table by table in FK order.

Each table is one Dagster run over all its partitions (a single-run backfill), executed in
this process against a real Dagster instance, so the runs, materializations and check
results show up in ``dagster dev`` afterwards. A table whose run or blocking check fails
stops its descendants; the rest go on.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from kora_assets.dagster_storage import INSTANCE_YAML
from kora_assets.definitions import POST_MIGRATION_CHECKS, build_definitions, build_partition_checks
from kora_assets.memory import release_free_heap
from kora_assets.naming import asset_key
from kora_assets.partitions import partitions_def
from kora_assets.plan.loader import load_order, parents
from kora_assets.plan.model import Plan
from kora_assets.workers import load_ahead

log = logging.getLogger("kora.migrate")
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
QUIETER = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # the summary prints every verdict


@dataclass
class TableOutcome:
    table: str
    status: str  # ok | failed | check_failed | skipped
    seconds: float = 0.0
    detail: str = ""
    partitions: int = 0
    counts: dict[str, int] | None = None  # source/landed/queued rows as the completeness check counted them


@dataclass
class CheckOutcome:
    asset: str
    check: str
    passed: bool
    blocking: bool
    description: str = ""


@dataclass
class MigrationOutcome:
    tables: list[TableOutcome] = field(default_factory=list)
    checks: list[CheckOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.status == "ok" for t in self.tables) and all(c.passed for c in self.checks if c.blocking)


_EARLIER_INSTANCE_YAML = "telemetry:\n  enabled: false\n"  # what kora wrote before its pooled event log


def dagster_instance(plan_path: str | os.PathLike) -> dg.DagsterInstance:
    """DAGSTER_HOME if set, else a persistent instance beside the plan (for `dagster dev` later)."""
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    home = Path(plan_path).resolve().parent / ".kora" / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    cfg = home / "dagster.yaml"
    if not cfg.exists() or cfg.read_text() == _EARLIER_INSTANCE_YAML:  # not one the user wrote
        cfg.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def _blocked_by(plan: Plan, table: str, failed: set[str]) -> str | None:
    for p in parents(plan, table):
        if p in failed:
            return p
    return None


def migrate(plan: Plan, instance: dg.DagsterInstance, tables: list[str] | None = None, *,
            post_checks: bool = True) -> MigrationOutcome:
    """Every table (or ``tables``) in FK order; then, unless ``post_checks`` is False, the
    whole-migration checks (a caller that recovers first runs ``after_migration`` itself)."""
    defs = build_definitions(plan)
    partition_checks = build_partition_checks(plan)
    order = run_order(plan, [t for t in load_order(plan) if not tables or t in tables])
    outcome, failed = MigrationOutcome(), set()
    ahead, run_ids = load_ahead.start(plan, order, dict(defs.resources))
    try:
        for table in order:
            _migrate_table(plan, instance, defs, partition_checks, table, run_ids[table], outcome, failed)
            if ahead is not None:
                ahead.run_done(table, table not in failed)
    finally:
        load_ahead.finish()
    if post_checks:
        after_migration(plan, instance, outcome, tables, defs)
    return outcome


def run_order(plan: Plan, order: list[str]) -> list[str]:
    """FK order, the table with the fewest partitions first among those whose parents are done:
    the big tables load (ahead) under the small ones' checks, and only the biggest table's
    keys, indexes and checks are left at the end, not a small table's after it."""
    size = {t: len(partitions_def(plan.tables[t]).get_partition_keys()) for t in order}
    rank = {t: i for i, t in enumerate(order)}
    out: list[str] = []
    while len(out) < len(order):
        ready = [t for t in order if t not in out and all(p in out or p not in rank for p in parents(plan, t))]
        out.append(min(ready, key=lambda t: (size[t], rank[t])))
    return out


def _migrate_table(plan: Plan, instance: dg.DagsterInstance, defs: dg.Definitions, partition_checks: list,
                   table: str, run_id: str, outcome: MigrationOutcome, failed: set[str]) -> None:
    """One table's Dagster run (its partitions, its checks), under the run id loading ahead used."""
    parent = _blocked_by(plan, table, failed)
    if parent:
        failed.add(table)
        outcome.tables.append(TableOutcome(table, "skipped", detail=f"parent {parent} did not complete"))
        return
    key = asset_key(plan.name, plan.target_name(table))
    keys = partitions_def(plan.tables[table]).get_partition_keys(dynamic_partitions_store=instance)
    t0 = time.perf_counter()
    log.info("%s: %d partition(s)", table, len(keys))
    with_checks = [c for c in partition_checks if key in {k.asset_key for k in c.check_keys}]
    result = _materialize([defs.get_assets_def(key), *with_checks], instance, defs.resources, run_id,
                          tags={"dagster/asset_partition_range_start": keys[0],
                                "dagster/asset_partition_range_end": keys[-1], "kora/launched_by": "kora migrate"})
    secs = time.perf_counter() - t0
    status, detail = "ok", ""
    blocked = [ev for ev in result.get_asset_check_evaluations()
               if not ev.passed and ev.blocking and ev.partition is None]
    if blocked:
        status = "check_failed"
        detail = "; ".join(f"{ev.check_name}: {ev.description or 'failed'}" for ev in blocked)
    elif not result.success:
        status, detail = "failed", _failure_text(result)
    if status != "ok":
        failed.add(table)
    outcome.tables.append(TableOutcome(table, status, secs, detail, len(keys), _conserved_counts(result)))
    release_free_heap()


def _materialize(assets: list, instance: dg.DagsterInstance, resources: dict, run_id: str,
                 tags: dict) -> dg.ExecuteInProcessResult:
    """``dg.materialize`` with a run id chosen beforehand (the one loading ahead queued under)."""
    job = dg.define_asset_job("__ephemeral_asset_job__")
    d = dg.Definitions(jobs=[job], assets=assets, resources=resources)
    return d.resolve_job_def(job.name).execute_in_process(run_config=QUIET, instance=instance, run_id=run_id,
                                                          tags=tags, raise_on_error=False)


def _conserved_counts(result) -> dict[str, int] | None:
    """The table's rows as its completeness check just counted them on both databases."""
    from kora_assets.factory import COMPLETENESS

    for ev in result.get_asset_check_evaluations():
        if ev.check_name == COMPLETENESS and ev.partition is None:
            meta = ev.metadata
            if all(k in meta for k in ("source_rows", "landed_rows", "queued_rows")):
                return {k: int(meta[k].value) for k in ("source_rows", "landed_rows", "queued_rows")}
    return None


def summary_counts(plan: Plan, outcome: MigrationOutcome, tables: list[str] | None = None, *,
                   recovered: bool = False) -> dict:
    """Rows per table for the closing summary: the completeness check's counts from this run
    (the same live SQL counts ``kora status`` would make again, a full pass over both databases:
    ~6 s on TPC-H SF1), counted anew only for tables the run did not check.

    ``recovered``: the recovery loop ran since. It lands a fixed row and marks it ``fixed`` in
    one transaction, so the rows that left the queue (still pending or quarantined) are the rows
    it landed; only the queue is counted again. A table whose queue grew is counted live."""
    from kora_assets.status import migration_status

    counted = {t.table: t.counts for t in outcome.tables if t.counts is not None}
    if recovered and counted:
        counted = _after_recovery(plan, counted)
    wanted = [t for t in plan.tables if (not tables or t in tables)]
    rest = [t for t in wanted if t not in counted]
    live = migration_status(plan, rest)["tables"] if rest else {}
    return {"tables": {t: counted.get(t) or live[t] for t in wanted}}


def _after_recovery(plan: Plan, counted: dict[str, dict]) -> dict[str, dict]:
    from kora_assets.bookkeeping.tables import bookkeeping_table
    from kora_assets.dbio.connections import Database

    target = Database(plan.target.url, "target")
    with target.engine.connect() as c:
        now = dict(c.exec_driver_sql(
            f"SELECT table_name, COUNT(*) FROM {bookkeeping_table(target, 'error_queue')} "
            "WHERE status IN ('pending', 'quarantined') GROUP BY table_name").fetchall())
    out = {}
    for table, c in counted.items():
        left = int(now.get(table, 0))
        if left <= c["queued_rows"]:
            out[table] = {**c, "landed_rows": c["landed_rows"] + c["queued_rows"] - left, "queued_rows": left}
    return out


def after_migration(plan: Plan, instance: dg.DagsterInstance, outcome: MigrationOutcome,
                    tables: list[str] | None = None, defs: dg.Definitions | None = None) -> None:
    """Whole-migration checks (behavioral replay, ...): they need every table, so not for ``--tables``."""
    if not tables and any(t.status == "ok" for t in outcome.tables):
        outcome.checks = run_post_migration_checks(defs or build_definitions(plan), instance)


def run_post_migration_checks(defs: dg.Definitions, instance: dg.DagsterInstance) -> list[CheckOutcome]:
    """Whole-table checks (behavioral replay, ...) once the tables have landed."""
    if POST_MIGRATION_CHECKS not in {j.name for j in defs.jobs or []}:
        return []
    job = defs.resolve_job_def(POST_MIGRATION_CHECKS)
    log.info("running post-migration checks")
    result = job.execute_in_process(instance=instance, run_config=QUIETER, raise_on_error=False,
                                    tags={"kora/launched_by": "kora migrate"})
    return [CheckOutcome(ev.asset_key.to_user_string(), ev.check_name, ev.passed, bool(ev.blocking),
                         ev.description or "") for ev in result.get_asset_check_evaluations()]


def _failure_text(result) -> str:
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            user = getattr(ev.event_specific_data, "user_failure_data", None)
            if user is not None and user.description:
                return user.description
            cause = err
            while cause.cause is not None:
                cause = cause.cause
            return cause.message.strip()
    return "run failed"
