"""One-line, specific explanations of failures, for the CLI, Dagster logs and the ledger.

Users see *which* database, table or plan line is wrong and why, never a traceback dump.
"""
from __future__ import annotations


def explain(exc: BaseException) -> str:
    from kora_assets.dbio.connections import DatabaseUnreachable
    from kora_assets.plan.loader import PlanError

    if isinstance(exc, (PlanError, DatabaseUnreachable)):
        return str(exc)
    diag = getattr(exc, "diag", None)  # psycopg errors carry the server's diagnosis
    if diag is not None and getattr(diag, "message_primary", None):
        detail = f" ({diag.message_detail})" if diag.message_detail else ""
        state = f" [SQLSTATE {exc.sqlstate}]" if getattr(exc, "sqlstate", None) else ""
        return f"target database: {diag.message_primary}{detail}{state}"
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{type(exc).__name__}: {first}"


def recoverable(exc: BaseException) -> bool:
    """Is this a failure of one step (to report and go on), not of the process? Rust libraries
    (polars, connectorx, pgpq) raise pyo3's ``PanicException``, a ``BaseException`` that
    ``except Exception`` lets through: a Decimal column whose values differ in scale crashed
    the whole statistical check that way."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"
