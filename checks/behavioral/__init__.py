"""Behavioral validation: does the target answer the application's queries like the source?

A target can hold exactly the right rows and still answer differently (collation, NULL
ordering, integer division, rounding, time zones, case sensitivity). This package replays
what the application really ran, taken from a query log, on both databases, translated to
the target's dialect and names, strictly read-only (writes inside transactions that are
always rolled back), and compares the answers.

Plain library code, no Dagster: :func:`replay_log` is the entry point. The Dagster asset
checks live in :mod:`checks.behavioral.assetchecks` (imported on purpose, not from here).

    statements = read_query_log(plan.query_log)
    report = replay_log(statements, source_url, target_url, renames_from_plan(plan))
    print(report.summary()); print(report.mismatches_markdown())
"""
from checks.behavioral.compare import Comparison, compare_results, numbers_equal, values_equal
from checks.behavioral.querylog import (OTHER, READ, SESSION, WRITE, LoggedStatement, classify,
                                        parse_mysql_general_log, parse_pg_stat_statements, parse_query_log,
                                        parse_sql_script, read_pg_stat_statements, read_query_log)
from checks.behavioral.replay import (ReplayError, ReplayRefused, ReplaySide, Result, TableRef, TableSnapshot,
                                      TransactionResult)
from checks.behavioral.report import (ERROR, MATCHED, MISMATCHED, SKIPPED, UNTRANSLATABLE, ReplayOutcome,
                                      ReplayReport)
from checks.behavioral.translate import (OrderSpec, Renames, Translation, renames_from_plan, sqlglot_dialect,
                                         translate)
from checks.behavioral.validator import replay_log

__all__ = [
    "Comparison", "compare_results", "numbers_equal", "values_equal",
    "OTHER", "READ", "SESSION", "WRITE", "LoggedStatement", "classify", "parse_mysql_general_log",
    "parse_pg_stat_statements", "parse_query_log", "parse_sql_script", "read_pg_stat_statements", "read_query_log",
    "ReplayError", "ReplayRefused", "ReplaySide", "Result", "TableRef", "TableSnapshot", "TransactionResult",
    "ERROR", "MATCHED", "MISMATCHED", "SKIPPED", "UNTRANSLATABLE", "ReplayOutcome", "ReplayReport",
    "OrderSpec", "Renames", "Translation", "renames_from_plan", "sqlglot_dialect", "translate",
    "replay_log",
]
