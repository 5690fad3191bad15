"""The structural, statistical and referential validators as Dagster asset checks of each
table asset, evaluated in the same step that lands the partitions.

Structure and references are properties of a whole table, so they are judged once every
partition has landed (before that their result says so, and passes). Statistics are judged
per partition when a run lands one partition (the UI, a schedule), and over the whole table
when a run lands many (a backfill, ``kora migrate``), which keeps their cost a fraction of
the copy. Structural and referential failures are blocking: downstream tables do not load.
"""
from __future__ import annotations

from collections.abc import Iterator

import dagster as dg

from checks.outcome import CheckOutcome
from checks.referential import check_references
from checks.statistical import check_statistics
from checks.structural import check_structure
from kora_assets.dbio.connections import Database
from kora_assets.errors import explain, recoverable
from kora_assets.naming import asset_key
from kora_assets.partitions import predicate
from kora_assets.plan.model import Plan
from kora_assets.timing import phase

STRUCTURAL, REFERENTIAL, STATISTICAL = "structural", "referential", "statistical"


def table_check_specs(plan: Plan, table: str, pdef: dg.PartitionsDefinition) -> list[dg.AssetCheckSpec]:
    key = asset_key(plan.name, plan.target_name(table))
    specs = [
        dg.AssetCheckSpec(STRUCTURAL, asset=key, blocking=True,
                          description="Target schema as the plan maps the source: columns, types, nullability, "
                                      "keys, unique and check constraints, defaults, index equivalence."),
        dg.AssetCheckSpec(STATISTICAL, asset=key, partitions_def=pdef,
                          description="Per column, source after the plan's transforms vs target: counts, nulls, "
                                      "distincts, mean/std/quantiles; KS on numbers and dates, chi-square on categories."),
    ]
    if plan.tables[table].foreign_keys:
        specs.append(dg.AssetCheckSpec(
            REFERENTIAL, asset=key, blocking=True,
            description="FK integrity in the target (orphans), source dirt, and ON DELETE/UPDATE behaviour "
                        "proven by a rolled-back trial."))
    return specs


def to_result(name: str, o: CheckOutcome, partition: str | None = None) -> dict:
    meta = dict(o.metadata)
    if "report" in meta:
        meta["report"] = dg.MetadataValue.md(str(meta["report"]))
    sev = dg.AssetCheckSeverity.ERROR if o.severity == "error" else dg.AssetCheckSeverity.WARN
    return {"check_name": name, "passed": o.passed, "severity": sev, "description": o.summary[:1000],
            "metadata": meta}


def _safe(name: str, fn, table: str = "") -> CheckOutcome:
    """A check that cannot run is a failed check with the reason, never a crashed step."""
    try:
        with phase(table, f"{name} check"):
            return fn()
    except BaseException as exc:
        if not recoverable(exc):
            raise
        return CheckOutcome(passed=False, severity="error", summary=f"{name} check could not run: {explain(exc)}",
                            metadata={"report": f"**could not run**: {explain(exc)}"})


def evaluate_table_checks(context, plan: Plan, table: str, partition_keys: list[str],
                          complete: bool, constraints_added: list[str] = (),
                          statistics: dg.AssetCheckResult | None = None) -> Iterator[dg.AssetCheckResult]:
    """Structure and references (once complete), then statistics (``statistics``: already judged)."""
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    se, te = source.engine, target.engine
    tp = plan.tables[table]
    pending = f"deferred: judged once every partition of {table} has landed"
    for name, fn in ((STRUCTURAL, lambda: check_structure(plan, table, se, te)),
                     # The rolled-back trial delete is proven on server databases; on a SQLite
                     # target the declared actions are compared (its write lock would race the loader).
                     (REFERENTIAL, lambda: check_references(plan, table, se, te, trial=target.dialect != "sqlite",
                                                                validated_by_target=frozenset(constraints_added)))):
        if name == REFERENTIAL and not tp.foreign_keys:
            continue
        if complete:
            yield dg.AssetCheckResult(**to_result(name, _safe(name, fn, table)))
        else:
            yield dg.AssetCheckResult(check_name=name, passed=True, description=pending,
                                      metadata={"status": dg.MetadataValue.text("deferred")})
    yield statistics or statistical_result(plan, table, partition_keys)


def statistical_result(plan: Plan, table: str, partition_keys: list[str]) -> dg.AssetCheckResult:
    """Source after the plan's transforms against the target: one partition, or the whole table
    when a run lands many; reads rows only, so it may run while the indexes build."""
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    se, te = source.engine, target.engine
    tp = plan.tables[table]
    col = tp.partitioning.column
    one = partition_keys[0] if len(partition_keys) == 1 and col else None
    src_where = predicate(tp, one, col, source.quote) if one else None
    tgt_where = predicate(tp, one, tp.target_column(col), target.quote) if one else None
    skip = _not_queued(plan, table, source, target, one)
    if skip is None:
        o = CheckOutcome(passed=True, severity="warn", summary=f"skipped: more than {MAX_EXCLUDED:,} queued rows; "
                         "compare again once the error queue is worked down", metadata={"status": "skipped"})
    else:
        where = " AND ".join(f"({w})" for w in (src_where, skip) if w) or None
        o = _safe(STATISTICAL, lambda: check_statistics(plan, table, se, te, where_source=where, where_target=tgt_where,
                                                        thresholds=plan_thresholds(plan, table)), table)
    return dg.AssetCheckResult(**to_result(STATISTICAL, o))


MAX_EXCLUDED = 20_000


def plan_thresholds(plan: Plan, table: str) -> dict[str, dict]:
    """The plan's per-table ('*') and per-column statistical thresholds, keyed by target column."""
    tp = plan.tables[table]
    out = {tp.target_column(c): dict(cp.thresholds) for c, cp in tp.columns.items() if cp.thresholds}
    if tp.thresholds:
        out["*"] = dict(tp.thresholds)
    return out


def _not_queued(plan: Plan, table: str, source: Database, target: Database, partition: str | None) -> str | None:
    """SQL keeping the source rows that should be in the target: those not in the error queue.

    '' when nothing is queued; None when too many are for an exclusion list.
    """
    from kora_assets.bookkeeping.tables import bookkeeping_table

    pk = plan.tables[table].primary_key
    mark = "?" if target.dialect == "sqlite" else "%s"
    sql = (f"SELECT primary_key FROM {bookkeeping_table(target, 'error_queue')} WHERE table_name = {mark} "
           f"AND status IN ('pending', 'quarantined')") + (f" AND partition_key = {mark}" if partition else "")
    with target.engine.connect() as c:
        rows = c.exec_driver_sql(sql, (table, partition) if partition else (table,)).fetchall()
    if not rows:
        return ""
    if not pk or len(rows) > MAX_EXCLUDED:
        return None
    import json

    def lit(v) -> str:
        return str(int(v)) if isinstance(v, (int, bool)) else "'" + str(v).replace("'", "''") + "'"

    keys = [json.loads(r[0]) if isinstance(r[0], str) else r[0] for r in rows]
    cols = ", ".join(source.quote(k) for k in pk)
    tuples = ", ".join("(" + ", ".join(lit(k[c]) for c in pk) + ")" for k in keys if all(k.get(c) is not None for c in pk))
    return f"({cols}) NOT IN ({tuples})" if tuples else ""
