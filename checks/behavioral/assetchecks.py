"""Behavioral validation as Dagster asset checks: one result per migrated table.

The query log is read and translated when the definitions load (cheap, no database), to learn
which target tables the application's queries touch; each of those tables gets an
``AssetCheckSpec`` named ``behavioral_replay`` on its asset, and all of them belong to one
multi-asset check, because one query often touches several tables and should run once. When
the check runs it replays the (selected part of the) log on both databases and reports, per
table, the queries touching it: counts that plot over time (replayed, matched, mismatched,
untranslatable, inconclusive, skipped) and markdown tables a steward can read.

A statement whose tables cannot be known (it does not even parse) is reported on every table:
nothing in the log goes unreported.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from checks.behavioral.querylog import READ, WRITE, LoggedStatement, read_query_log
from checks.behavioral.report import ERROR, MATCHED, MISMATCHED, SKIPPED, UNTRANSLATABLE
from checks.behavioral.translate import renames_from_plan, translate
from checks.behavioral.validator import replay_log
from kora_assets.naming import asset_key, redact_url

#: Resolves a plan endpoint (``plan.source``/``plan.target``) to a SQLAlchemy URL or engine,
#: or a DBAPI connection, when the check runs.
EndpointResolver = Callable[[object], object]

CHECK_NAME = "behavioral_replay"


def _resolve_default(endpoint) -> str:
    from kora_assets.plan.loader import resolve_env

    return resolve_env(endpoint.url, what="database url")


def _scheme(url_template: str) -> str:
    """The dialect of a plan URL, without connecting (``${VAR}`` expanded where it is set)."""
    from kora_assets.plan.loader import resolve_env

    try:
        url = resolve_env(url_template)
    except Exception:
        url = url_template
    m = re.match(r"\s*([A-Za-z][A-Za-z0-9]*)", url)
    return m.group(1).lower() if m else "postgresql"


def _log_path(plan) -> Path:
    from kora_assets.plan.loader import resolve_env

    return Path(resolve_env(plan.query_log, what="query_log"))


def touched_tables(plan, statements: list[LoggedStatement]) -> set[str]:
    """Target tables of the plan that the replayable statements of the log touch."""
    renames = renames_from_plan(plan)
    planned = {plan.target_name(t) for t in plan.tables}
    src, tgt = _scheme(plan.source.url), _scheme(plan.target.url)
    out: set[str] = set()
    for s in statements:
        if s.kind in (READ, WRITE):
            out |= set(translate(s.sql, src, tgt, renames).target_tables) & planned
    return out


def build_behavioral_checks(plan, source_url_resolver: EndpointResolver | None = None,
                            target_url_resolver: EndpointResolver | None = None, *,
                            statements: list[LoggedStatement] | None = None, timeout_s: float = 30.0,
                            max_rows: int = 100_000, max_table_rows: int = 200_000
                            ) -> list[dg.AssetChecksDefinition]:
    """The behavioral replay check of a plan, or ``[]`` when the plan names no query log.

    ``source_url_resolver``/``target_url_resolver`` receive ``plan.source``/``plan.target`` and
    return what to connect to (a URL, an engine or a DBAPI connection); by default the plan's
    URL with ``${VAR}`` expanded. ``statements`` replaces the plan's log (for tests and tools).
    """
    if statements is None and not plan.query_log:
        return []
    load_error = None
    if statements is None:
        try:
            statements = read_query_log(_log_path(plan))
        except Exception as exc:  # reported by the check itself, so the code location still loads
            load_error, statements = f"cannot read the query log {plan.query_log!r}: {exc}", []
    tables = touched_tables(plan, statements) if not load_error else set()
    if not tables:
        tables = {plan.target_name(t) for t in plan.tables}
    resolve_src = source_url_resolver or _resolve_default
    resolve_tgt = target_url_resolver or _resolve_default
    renames = renames_from_plan(plan)
    log_name = str(plan.query_log or "statements given in code")

    table_of = {asset_key(plan.name, t): t for t in tables}  # the key's name is Dagster's spelling of the table's
    specs = [dg.AssetCheckSpec(CHECK_NAME, asset=asset_key(plan.name, t),
                               description=f"The application's queries touching {t} answer alike on source "
                                           f"and target (replayed from {log_name}).")
             for t in sorted(tables)]
    op_name = re.sub(r"\W", "_", f"{plan.name}_{CHECK_NAME}")

    @dg.multi_asset_check(specs=specs, name=op_name, can_subset=True,
                          description="Replays the application's query log on source and target, "
                                      "read-only (writes always rolled back), and compares the answers.")
    def _behavioral_replay(context):
        selected = sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string())
        if load_error:
            for key in selected:
                yield dg.AssetCheckResult(asset_key=key.asset_key, check_name=key.name, passed=False,
                                          severity=dg.AssetCheckSeverity.WARN,
                                          metadata={"error": dg.MetadataValue.text(load_error)})
            return
        wanted = {table_of[key.asset_key] for key in selected}
        source, target = resolve_src(plan.source), resolve_tgt(plan.target)

        def log(o):
            if o.status in (MISMATCHED, UNTRANSLATABLE, ERROR):
                context.log.warning(f"{o.status}: {o.title}: {o.reason}")

        report = replay_log(statements, source, target, renames, timeout_s=timeout_s, max_rows=max_rows,
                            max_table_rows=max_table_rows, only_tables=wanted,
                            target_schema=plan.target.schema_, on_outcome=log)
        context.log.info(f"behavioral replay: {report.summary()}")
        for key in selected:
            sub = report.for_tables({table_of[key.asset_key]})
            c = sub.counts()
            passed = c[MISMATCHED] == 0 and c[UNTRANSLATABLE] == 0 and c[ERROR] == 0
            yield dg.AssetCheckResult(
                asset_key=key.asset_key, check_name=key.name, passed=passed,
                severity=dg.AssetCheckSeverity.ERROR if c[MISMATCHED] else dg.AssetCheckSeverity.WARN,
                description=sub.summary(),
                metadata={
                    "replayed": dg.MetadataValue.int(c["replayed"]),
                    "matched": dg.MetadataValue.int(c[MATCHED]),
                    "mismatched": dg.MetadataValue.int(c[MISMATCHED]),
                    "untranslatable": dg.MetadataValue.int(c[UNTRANSLATABLE]),
                    "inconclusive": dg.MetadataValue.int(c[ERROR]),
                    "skipped": dg.MetadataValue.int(c[SKIPPED]),
                    "mismatches": dg.MetadataValue.md(sub.mismatches_markdown()),
                    "untranslatable statements": dg.MetadataValue.md(sub.problems_markdown(UNTRANSLATABLE)),
                    "inconclusive statements": dg.MetadataValue.md(sub.problems_markdown(ERROR)),
                    "source seconds": dg.MetadataValue.float(round(sub.seconds_source, 3)),
                    "target seconds": dg.MetadataValue.float(round(sub.seconds_target, 3)),
                    "query log": dg.MetadataValue.text(log_name),
                    "source": dg.MetadataValue.text(_display(source)),
                    "target": dg.MetadataValue.text(_display(target)),
                })

    return [_behavioral_replay]


def _display(obj) -> str:
    if isinstance(obj, str):
        return redact_url(obj)
    url = getattr(obj, "url", None)
    return redact_url(str(url)) if url is not None else type(obj).__name__
