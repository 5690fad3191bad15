"""What every table-level check returns, and the little plumbing all of them share.

A check is plain library code: it looks at a source and a target database through SQLAlchemy
engines and answers with a :class:`CheckOutcome`. It never imports Dagster; the asset-check
wrapper turns ``passed``/``severity``/``metadata`` into an ``AssetCheckResult`` one to one,
so everything in ``metadata`` is a plain value Dagster can store: ints and floats (which the
UI plots across runs), short strings, and one markdown report under ``report``.

``findings`` is the machine-readable list behind the report: one dict per thing found, with
at least ``column``, ``rule``, ``level`` and ``message``, and where it applies ``count``
(how many rows or objects) and ``sample_keys`` (up to ten keys a human can look up).
A finding's ``level`` is ``fail`` (makes the check fail), ``warn`` (shown, does not fail) or
``info`` (context, e.g. an index the plan chose to drop).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.sql.elements import quoted_name

Severity = Literal["error", "warn"]

#: How many sample keys a finding carries: enough to look a few rows up, small enough for metadata.
SAMPLE_KEYS = 10


@dataclass
class CheckOutcome:
    """The answer of one check on one table (or one partition of it).

    ``passed`` is False iff some finding has level ``fail``. ``severity`` is how a failure is
    to be reported (Dagster ``AssetCheckSeverity``): ``error`` for the structural and
    referential checks, ``warn`` by default for the statistical one (strong evidence, not
    proof). ``metadata`` always has ``failures`` and ``warnings`` counts and a markdown
    ``report``; the rest are per-check numbers that plot across runs.
    """

    passed: bool
    severity: Severity = "error"
    summary: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    findings: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("level") == "fail"]

    @property
    def warnings(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("level") == "warn"]

    def rules_failed(self) -> set[tuple[str | None, str]]:
        """``{(column, rule)}`` of the failing findings: what a test or a steward asks first."""
        return {(f.get("column"), f["rule"]) for f in self.failures}


def finding(rule: str, message: str, *, column: str | None = None, level: str = "fail",
            count: int | None = None, sample_keys: list | None = None, **detail: Any) -> dict[str, Any]:
    """One finding with the keys every consumer can rely on; extra detail goes alongside."""
    out: dict[str, Any] = {"column": column, "rule": rule, "level": level, "message": message}
    if count is not None:
        out["count"] = int(count)
    if sample_keys is not None:
        out["sample_keys"] = [plain(k) for k in sample_keys[:SAMPLE_KEYS]]
    out.update({k: plain(v) for k, v in detail.items()})
    return out


def outcome_from(findings: list[dict[str, Any]], *, what: str, severity: Severity = "error",
                 metadata: dict[str, Any] | None = None) -> CheckOutcome:
    """Fold findings into an outcome: it fails iff some finding has level ``fail``."""
    fails = [f for f in findings if f["level"] == "fail"]
    warns = [f for f in findings if f["level"] == "warn"]
    if fails:
        rules = sorted({f["rule"] for f in fails})
        summary = f"{what}: {len(fails)} problem(s) ({', '.join(rules)})"
    elif warns:
        summary = f"{what}: passed with {len(warns)} warning(s)"
    else:
        summary = f"{what}: passed"
    meta = {"failures": len(fails), "warnings": len(warns)}
    meta.update(metadata or {})
    return CheckOutcome(passed=not fails, severity=severity, summary=summary,
                        metadata={k: plain(v) for k, v in meta.items()}, findings=findings)


def findings_markdown(findings: list[dict[str, Any]]) -> str:
    """The findings as a markdown table (failures first), or a line saying there are none."""
    if not findings:
        return "_no findings_"
    order = {"fail": 0, "warn": 1, "info": 2}
    rows = [[f["level"], f.get("column") or "", f["rule"], f.get("count", ""), f["message"],
             ", ".join(str(k) for k in f.get("sample_keys", []))]
            for f in sorted(findings, key=lambda f: order.get(f["level"], 3))]
    return to_markdown_table(rows, ["level", "column", "rule", "count", "message", "sample keys"])


def to_markdown_table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A GitHub-flavoured markdown table, which is what the Dagster UI renders for ``md`` metadata.

    Cells are escaped (pipes, newlines) so a value can never break the table, and numbers are
    printed compactly so columns stay readable side by side.
    """
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            if math.isnan(v):
                return "NaN"
            return f"{v:.6g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(h) for h in headers) + " |"
    rule = "| " + " | ".join("---" for _ in headers) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def plain(v: Any) -> Any:
    """A value Dagster metadata and JSON can hold: Decimals, dates, numpy scalars become plain."""
    import datetime as dt
    from decimal import Decimal

    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, (dt.date, dt.datetime, dt.time)):
        return v.isoformat()
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    if hasattr(v, "item"):  # numpy scalar
        return plain(v.item())
    return str(v)


# --- where tables live, and how to name them safely ---------------------------------------

def source_schema(plan, engine: sa.Engine) -> str | None:
    """The source schema: the plan's, else the connection's default (MySQL: the URL's database)."""
    return plan.source.schema_ or None


def target_schema(plan, engine: sa.Engine) -> str | None:
    """The target schema: the plan's, else ``public`` on PostgreSQL (the design's default)."""
    if plan.target.schema_:
        return plan.target.schema_
    return "public" if engine.dialect.name == "postgresql" else None


def q(name: str) -> quoted_name:
    """An identifier that is always quoted, whatever its case or reserved-word status."""
    return quoted_name(name, quote=True)


def table_ref(name: str, columns: Iterable[str] = (), schema: str | None = None) -> sa.TableClause:
    """A lightweight table clause with force-quoted names: safe for any source naming."""
    return sa.table(q(name), *[sa.column(q(c)) for c in columns], schema=q(schema) if schema else None)


def quote(engine: sa.Engine, name: str) -> str:
    """A quoted identifier for the few places that build SQL text (catalog queries, errors)."""
    return engine.dialect.identifier_preparer.quote_identifier(name)


def is_mysql(engine: sa.Engine) -> bool:
    return engine.dialect.name in ("mysql", "mariadb")


def mysql_schema(conn, schema: str | None) -> str:
    """The schema as a constant for ``information_schema`` queries.

    MariaDB only restricts an ``information_schema`` scan to one schema when the schema is a
    literal; ``COALESCE(:s, DATABASE())`` makes it open every table of every database, which
    waits on any metadata lock anywhere on the server.
    """
    return schema or conn.exec_driver_sql("SELECT DATABASE()").scalar()
