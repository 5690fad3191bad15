"""The semantic asset check: one per table, evaluated per partition.

After a partition lands, it reports

* the semantic type of every column, with its confidence and where it came from (the plan,
  the classifier, or off) and the rules applied inline;
* rule violations: rows queued as ``semantic.implausible``, counted per column and rule, with
  sample keys (from the error queue, pushed down to SQL);
* the top anomalies of text columns among the *landed* rows: values far from the column's
  embedding centroid (placeholders, keyboard mash, test data), with scores and sample keys.
  They are flagged, not blocked (``semantic: <type>:block`` in the plan blocks them inline).

and records what fired in the validation pattern library (``checks.semantic.library``). The
check never blocks downstream tables (severity WARN): implausible rows already wait in the
error queue for a steward, and anomalies are for a steward to judge.

``build_semantic_checks(plan)`` returns the checks for the Definitions; ``semantic_report``
is the same evaluation without Dagster (tests, benchmarks).
"""

import json
import logging
import time
import warnings
from dataclasses import dataclass, field

import dagster as dg
import polars as pl
import sqlalchemy as sa

from checks.semantic import prefetch
from checks.semantic.anomaly import DEFAULT_THRESHOLD, MAX_EMBED, Anomaly, find_anomalies
from checks.semantic.plausibility import ERROR_CLASS, rule_name_of
from checks.semantic.runtime import TableSemantics, prime_table
from checks.semantic.types import ANOMALY_TYPES
from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.naming import asset_key
from kora_assets.partitions import partitions_def, predicate
from kora_assets.timing import phase
from resources.databases import DatabaseResource, bind_plan

log = logging.getLogger("kora.semantic")
CHECK_NAME = "semantic"
PLAN_RULE_CLASSES = ("range.out_of_bounds", "rule.regex", "enum.unknown_value")
SAMPLE_KEYS = 5


@dataclass
class Violation:
    column: str  # target column
    rule: str
    rows: int
    sample_keys: list = field(default_factory=list)


@dataclass
class SemanticReport:
    table: str
    partition_key: str
    semantics: TableSemantics
    violations: list[Violation] = field(default_factory=list)
    anomalies: dict[str, list[Anomaly]] = field(default_factory=dict)  # target column -> anomalies
    anomaly_threshold: float = DEFAULT_THRESHOLD
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    recorded_rules: int = 0

    @property
    def implausible_rows(self) -> int:
        return sum(v.rows for v in self.violations)

    @property
    def anomaly_count(self) -> int:
        return sum(len(a) for a in self.anomalies.values())

    @property
    def passed(self) -> bool:
        return not self.violations and not self.anomaly_count

    def summary(self) -> str:
        typed = self.semantics.typed()
        return (f"{len(typed)} of {len(self.semantics.columns)} column(s) semantically typed; "
                f"{self.implausible_rows:,} implausible row(s) queued; {self.anomaly_count} anomal"
                f"{'y' if self.anomaly_count == 1 else 'ies'} flagged among landed values")

    def types_markdown(self) -> str:
        rows = ["| column | semantic type | confidence | from | rules applied inline |", "|---|---|---|---|---|"]
        for cs in self.semantics.columns.values():
            shown = cs.semantic_type or (f"({cs.inferred})" if cs.inferred else "-")
            rules = ", ".join(r.name for r in cs.rules) or "-"
            note = f" {cs.note}" if cs.note else ""
            rows.append(f"| {cs.target} | {shown} | {cs.confidence:.2f} | {cs.origin}{note} | {rules} |")
        return "\n".join(rows)

    def violations_markdown(self) -> str:
        if not self.violations:
            return "no row was implausible"
        rows = ["| column | rule | rows | sample keys |", "|---|---|---|---|"]
        for v in sorted(self.violations, key=lambda v: -v.rows):
            rows.append(f"| {v.column} | {v.rule} | {v.rows:,} | {', '.join(v.sample_keys)} |")
        return "\n".join(rows)

    def anomalies_markdown(self, top: int = 10) -> str:
        if not self.anomaly_count:
            return f"no landed value scored above {self.anomaly_threshold:g}"
        rows = ["| column | value | score | rows | sample keys |", "|---|---|---|---|---|"]
        for col, found in self.anomalies.items():
            for a in found[:top]:
                rows.append(f"| {col} | {_md(a.value)} | {a.score:.1f} | {a.rows:,} | {', '.join(a.keys)} |")
        return "\n".join(rows)

    def metadata(self) -> dict:
        return {
            "implausible_rows": dg.MetadataValue.int(self.implausible_rows),
            "anomalies": dg.MetadataValue.int(self.anomaly_count),
            "typed_columns": dg.MetadataValue.int(len(self.semantics.typed())),
            "semantic_types": dg.MetadataValue.md(self.types_markdown()),
            "rule_violations": dg.MetadataValue.md(self.violations_markdown()),
            "top_anomalies": dg.MetadataValue.md(self.anomalies_markdown()),
            "model": dg.MetadataValue.text(self.semantics.model),
            "library": dg.MetadataValue.text(self.semantics.library),
            "seconds": dg.MetadataValue.float(round(self.seconds, 3)),
        }


def _md(v: str) -> str:
    return "`" + v.replace("|", "\\|").replace("`", "'")[:60] + "`"


def _key_text(v) -> str:
    if isinstance(v, str):
        try:
            v = json.loads(v)
        except ValueError:
            return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False, default=str)


def _queue_rows(plan, table: str, partition_key: str, target: Database) -> pl.DataFrame:
    q = bookkeeping_table(target, "error_queue")
    classes = (ERROR_CLASS, *PLAN_RULE_CLASSES)
    marks = ", ".join(f"'{c}'" for c in classes)
    sql = (f"SELECT column_name, error_class, reason, primary_key FROM {q} WHERE table_name = :t AND "
           f"partition_key = :p AND status <> 'fixed' AND error_class IN ({marks})")

    try:
        with target.engine.connect() as c:
            rows = c.execute(sa.text(sql), {"t": table, "p": partition_key}).all()
    except Exception as exc:  # no queue yet (nothing migrated): nothing queued
        log.debug("no error queue readable: %s", exc)
        rows = []
    return pl.DataFrame([(r[0], r[1], r[2], _key_text(r[3])) for r in rows],
                        schema={"column": pl.String, "class": pl.String, "reason": pl.String, "key": pl.String},
                        orient="row")


def _violations(queue: pl.DataFrame) -> list[Violation]:
    imp = queue.filter(pl.col("class") == ERROR_CLASS)
    if imp.height == 0:
        return []
    imp = imp.with_columns(pl.col("reason").map_elements(lambda r: rule_name_of(r) or "?", return_dtype=pl.String)
                           .alias("rule"))
    g = imp.group_by("column", "rule").agg(pl.len().alias("n"), pl.col("key").head(SAMPLE_KEYS).alias("keys"))
    return [Violation(c, r, int(n), list(k)) for c, r, n, k in g.iter_rows()]


def _landed_anomalies(plan, table: str, partition_key: str, ts: TableSemantics, target: Database, threshold: float,
                      max_embed: int, notes: list[str] | None = None,
                      landed_rows: int | None = None) -> dict[str, list[Anomaly]]:
    from checks.semantic.encoder import get_encoder

    tp = plan.tables[table]
    cols = [cs for cs in ts.columns.values() if cs.semantic_type in ANOMALY_TYPES and tp.columns[cs.source].ktype.is_text]
    if not cols:
        return {}
    enc = get_encoder()
    if enc is None:
        return {}
    part = tp.partitioning.column
    where = predicate(tp, partition_key, tp.target_column(part), target.quote) if part else None
    tname = target.qualified(plan.target_name(table), plan.target.schema_)
    pk = [tp.target_column(k) for k in tp.primary_key]
    rows_from, sampled = _value_rows(target, tname, where, landed_rows)
    out = {}
    for cs in cols:
        col = target.quote(cs.target)
        counts = _value_counts(target, f"SELECT {col}, COUNT(*) FROM {rows_from} GROUP BY {col}")
        found = find_anomalies(counts["v"], enc, threshold=threshold, max_embed=max_embed, counts=counts["n"])
        if not found:
            continue
        top = found[:20]
        counted = dict(counts.filter(pl.col("v").str.strip_chars().is_in([a.value for a in top]))
                       .group_by(pl.col("v").str.strip_chars()).agg(pl.col("n").sum()).iter_rows())
        keys_by_value: dict[str, list[str]] = {}
        if pk:  # one scan for the sample keys of all top anomalies, not one per anomaly
            sel = ", ".join(target.quote(k) for k in pk)
            # The rows the values came from: the whole range, or the same repeatable block sample
            # (a full scan of TPC-H lineitem for 20 values cost more than scoring the column).
            extra = f"{where} AND " if where else ""  # a block sample is of the whole table: no where
            params = {f"v{i}": a.value for i, a in enumerate(top)}
            marks = ", ".join(f":v{i}" for i in range(len(top)))
            with target.engine.connect() as c:
                rows = c.execute(sa.text(f"SELECT TRIM({col}), {sel} FROM {rows_from if sampled else tname} "
                                         f"WHERE {extra}TRIM({col}) IN ({marks})"),
                                 params).all()
            exact: dict[str, int] = {}
            for r in rows:
                exact[r[0]] = exact.get(r[0], 0) + 1
                ks = keys_by_value.setdefault(r[0], [])
                if len(ks) < SAMPLE_KEYS:
                    ks.append(json.dumps(dict(zip(pk, r[1:])), separators=(",", ":"), default=str))
            if not sampled:
                counted.update(exact)  # the LIMIT's counts were the first rows'; these are the range's
        out[cs.target] = [Anomaly(a.value, a.score, counted.get(a.value, a.rows), tuple(keys_by_value.get(a.value, ())))
                          for a in top]
    if out and sampled and notes is not None:
        notes.append(f"anomalies were scored on a repeatable block sample of ~{VALUE_SAMPLE_ROWS:,} rows of "
                     f"{plan.target_name(table)}; their row counts and keys are the sample's")
    return out


def _value_counts(target: Database, sql: str) -> pl.DataFrame:
    """(v, n) as a polars frame: straight from Arrow on PostgreSQL (200k distinct comments as
    Python tuples and strings took ~300 MB of the coordinator's peak), through SQLAlchemy elsewhere."""
    if target.dialect == "postgresql":
        import connectorx as cx

        frame = pl.from_arrow(cx.read_sql(target.connectorx_url, sql, return_type="arrow"))
    else:
        with target.engine.connect() as c:
            frame = pl.DataFrame(c.exec_driver_sql(sql).all(), schema=["v", "n"], orient="row")
    frame.columns = ["v", "n"]
    return frame.with_columns(pl.col("v").cast(pl.String, strict=False), pl.col("n").cast(pl.Int64))


VALUE_SAMPLE_ROWS = 200_000  # rows read per column for anomaly scoring: bounds time and memory


def _value_rows(target: Database, tname: str, where: str | None, landed_rows: int | None = None) -> tuple[str, bool]:
    """The FROM clause of the rows whose values are scored: at most ~``VALUE_SAMPLE_ROWS`` of
    them; True when it is a block sample of the table (counts are then the sample's).

    Scoring needs the column's shape, not every row: a whole-table ``GROUP BY`` over TPC-H
    lineitem's 4.5M distinct comments took 3 GiB in this process. A whole PostgreSQL table
    is sampled by blocks (``TABLESAMPLE SYSTEM``, repeatable), so every part of it is seen;
    elsewhere (a partition, SQLite) the first rows of the range are read. ``landed_rows``, the
    rows the caller just landed, spares counting a table not yet analyzed: on TPC-H lineitem that
    count held up the primary key's build, which waits for every reader of the table.
    """
    if where is None and target.dialect == "postgresql":
        est = landed_rows if (landed_rows or 0) > VALUE_SAMPLE_ROWS else _table_rows(target, tname)
        if est and est > VALUE_SAMPLE_ROWS:
            pct = max(0.01, 100.0 * VALUE_SAMPLE_ROWS / est)
            return f"{tname} TABLESAMPLE SYSTEM ({pct:.4f}) REPEATABLE (7)", True
    cond = f" WHERE {where}" if where else ""
    return f"(SELECT * FROM {tname}{cond} LIMIT {VALUE_SAMPLE_ROWS}) s", False


def _table_rows(target: Database, tname: str) -> int | None:
    with target.engine.connect() as c:
        est = c.execute(sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:t)"),
                        {"t": tname}).scalar()
        if est is not None and est < 0:  # never analyzed (the scan may start before the ANALYZE)
            est = c.execute(sa.text(f"SELECT COUNT(*) FROM {tname}")).scalar()
    return est


def semantic_report(plan, table: str, partition_key: str, *, threshold: float = DEFAULT_THRESHOLD,
                    record: bool = True, max_embed: int = MAX_EMBED, landed_rows: int | None = None) -> SemanticReport:
    """Evaluate the semantic check of one partition (and record what fired in the library);
    ``landed_rows``: how many rows the run just landed there, when the caller knows."""
    t0 = time.perf_counter()
    ts = prime_table(plan, table)
    target = Database(plan.target.url, "target")
    queue = _queue_rows(plan, table, partition_key, target)
    report = SemanticReport(table, partition_key, ts, _violations(queue), anomaly_threshold=threshold)
    try:
        if max_embed > 0:
            report.anomalies = _landed_anomalies(plan, table, partition_key, ts, target, threshold, max_embed,
                                                 report.notes, landed_rows)
    except Exception as exc:
        report.notes.append(f"anomaly scoring failed: {exc}")
        log.warning("kora: semantic anomaly scoring of %s failed: %s", table, exc)
    if ts.model.startswith("unavailable"):
        report.notes.append(ts.model)
    if record:
        _record(plan, report, queue)
    report.seconds = time.perf_counter() - t0
    return report


def record_taken(plan, report: SemanticReport) -> None:
    """Record a report scanned early (``checks.semantic.prefetch``) once its check takes it:
    by then the run kept the rows it scanned (a table loaded ahead is taken out again if a
    parent's run fails, and its hits must not count in the library)."""
    _record(plan, report)


def _record(plan, report: SemanticReport, queue: pl.DataFrame | None = None) -> None:
    """What fired, into the library (the partition's queued rows read now unless given); a
    library that cannot be written is a note on the report, never a failed check."""
    try:
        if queue is None:
            queue = _queue_rows(plan, report.table, report.partition_key, Database(plan.target.url, "target"))
        report.recorded_rules = record_in_library(plan, report.table, report.partition_key, report.semantics, queue,
                                                  report)
    except Exception as exc:
        report.notes.append(f"validation library not updated: {exc}")
        log.warning("kora: validation rule library not updated: %s", exc)


def record_in_library(plan, table: str, partition_key: str, ts: TableSemantics, queue: pl.DataFrame,
                      report: SemanticReport) -> int:
    """Store what fired in this partition: built-in and library rule hits, plan-rule and anomaly candidates."""
    from checks.semantic.library import RuleLibrary, plan_rule_candidates

    lib = RuleLibrary.for_plan(plan)
    tp = plan.tables[table]
    by_target = {cs.target: cs for cs in ts.columns.values()}
    where = f"{plan.name}/{table}"
    n = 0
    for v in report.violations:
        cs = by_target.get(v.column)
        if cs is None or not cs.semantic_type:
            continue
        if v.rule.startswith("library#"):
            rid = int(v.rule.split("#", 1)[1])
        else:
            rid = lib.builtin_id(cs.profile, cs.semantic_type, v.rule)
        if rid is not None:
            lib.record_hits(rid, plan_name=plan.name, table=table, column=v.column, partition_key=partition_key,
                            fired=v.rows, sample_keys=v.sample_keys)
            n += 1
    plan_hits = queue.filter(pl.col("class").is_in(PLAN_RULE_CLASSES))
    for (col, cls), grp in plan_hits.group_by("column", "class"):
        cs = by_target.get(col)
        if cs is None or not cs.semantic_type:
            continue
        reasons = grp["reason"].to_list()
        for ecls, kind, params, desc in plan_rule_candidates(tp.columns[cs.source]):
            if ecls != cls:
                continue
            fired = sum(1 for r in reasons if kind not in ("min", "max")
                        or (kind == "min" and "below the minimum" in r) or (kind == "max" and "above the maximum" in r))
            if not fired:
                continue
            name = f"{cs.semantic_type}.{kind}" + (f"_{params['value']:g}" if kind in ("min", "max") else "")
            rid = lib.upsert_rule(profile=cs.profile, semantic_type=cs.semantic_type, name=name, kind=kind,
                                  params=params, description=desc, origin="plan", status="candidate",
                                  first_seen=f"{where}.{col}")
            lib.record_hits(rid, plan_name=plan.name, table=table, column=col, partition_key=partition_key,
                            fired=fired, sample_keys=grp["key"].head(SAMPLE_KEYS).to_list())
            n += 1
    for col, found in report.anomalies.items():
        cs = by_target.get(col)
        if cs is None or not cs.semantic_type:
            continue
        for a in found[:10]:
            rid = lib.upsert_rule(profile=cs.profile, semantic_type=cs.semantic_type, name=f"{cs.semantic_type}.deny",
                                  kind="not_in_set", params={"values": [a.value]},
                                  description=f"{a.value!r} (flagged as an anomaly, score {a.score:.1f})",
                                  origin="anomaly", status="candidate", first_seen=f"{where}.{col}")
            lib.record_hits(rid, plan_name=plan.name, table=table, column=col, partition_key=partition_key,
                            fired=a.rows, sample_keys=list(a.keys))
            n += 1
    return n


def _build_one(plan, table: str, threshold: float) -> dg.AssetChecksDefinition:
    tp = plan.tables[table]
    key = asset_key(plan.name, plan.target_name(table))

    @dg.asset_check(asset=key, name=CHECK_NAME, partitions_def=partitions_def(tp), blocking=False,
                    description="Semantic validation per partition: inferred semantic types with confidence, "
                                "implausible rows by rule (queued as semantic.implausible), top anomalies among "
                                "landed text values. Flags, never blocks.")
    def _semantic(context: dg.AssetCheckExecutionContext, source_db: DatabaseResource,
                  target_db: DatabaseResource) -> dg.AssetCheckResult:
        bound = bind_plan(plan, source_db, target_db)
        keys = list(context.partition_keys) if (context.has_partition_key or context.has_partition_key_range) else ["all"]
        with phase(table, "semantic check", context):
            early = prefetch.take(bound, table, keys, context.run.run_id, threshold)  # started by the asset's step
            if len(keys) == 1:
                reports = [early or semantic_report(bound, table, keys[0], threshold=threshold)]
            else:  # a backfill: rule hits per partition, anomalies once over the table (one embedding budget)
                reports = [semantic_report(bound, table, k, threshold=threshold, max_embed=0) for k in keys]
                whole = early or semantic_report(bound, table, "all", threshold=threshold, record=False)
                reports[0].anomalies = whole.anomalies
        _log_notes(context, table, reports)
        if len(reports) > 1:
            for r in reports:
                context.op_execution_context.log_event(dg.AssetCheckEvaluation(
                    asset_key=key, check_name=CHECK_NAME, passed=r.passed, partition=r.partition_key,
                    metadata=r.metadata(), severity=dg.AssetCheckSeverity.WARN, description=r.summary()))
        merged = _merge(reports)
        return dg.AssetCheckResult(passed=merged.passed, severity=dg.AssetCheckSeverity.WARN,
                                   description=merged.summary(), metadata=merged.metadata())

    return _semantic


def _log_notes(context, table: str, reports: list[SemanticReport]) -> None:
    """Each note once for the run's partitions, not once per partition; a missing model is
    said once per process (``get_encoder``) and stays in the check's metadata."""
    where: dict[str, list[str]] = {}
    for r in reports:
        for note in r.notes:
            if note != r.semantics.model:
                where.setdefault(note, []).append(r.partition_key)
    for note, keys in where.items():
        context.log.warning(f"{table} {keys[0] if len(keys) == 1 else f'({len(keys)} partitions)'}: {note}")


def _merge(reports: list[SemanticReport]) -> SemanticReport:
    if len(reports) == 1:
        return reports[0]
    first = reports[0]
    m = SemanticReport(first.table, ",".join(r.partition_key for r in reports), first.semantics,
                       anomaly_threshold=first.anomaly_threshold, seconds=sum(r.seconds for r in reports))
    agg: dict[tuple, Violation] = {}
    for r in reports:
        for v in r.violations:
            cur = agg.setdefault((v.column, v.rule), Violation(v.column, v.rule, 0, []))
            cur.rows += v.rows
            cur.sample_keys = (cur.sample_keys + v.sample_keys)[:SAMPLE_KEYS]
        for col, found in r.anomalies.items():
            m.anomalies.setdefault(col, []).extend(found)
    m.violations = list(agg.values())
    for col in m.anomalies:
        m.anomalies[col].sort(key=lambda a: -a.score)
    return m


def build_semantic_checks(plan, *, threshold: float = DEFAULT_THRESHOLD) -> list[dg.AssetChecksDefinition]:
    """One partitioned ``semantic`` asset check per table of the plan (WARN severity, non-blocking)."""
    with warnings.catch_warnings():  # partitioned asset checks are a preview feature used knowingly
        warnings.simplefilter("ignore")
        return [_build_one(plan, t, threshold) for t in plan.tables]
