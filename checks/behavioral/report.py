"""The outcome of a replay, shaped for the steward who has to act on it.

Every statement of the log ends in exactly one status, so nothing is silently dropped:

``matched``         both databases answered alike (or a write left the same rows);
``mismatched``      they did not, or the target rejected what the source accepted;
``untranslatable``  the statement could not be carried over to the target dialect;
``error``           the replay was inconclusive: the source itself failed, a side timed out,
                    or the write could not have been undone and was not attempted;
``skipped``         session chatter or DDL, which a replay must not run.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

MATCHED = "matched"
MISMATCHED = "mismatched"
UNTRANSLATABLE = "untranslatable"
ERROR = "error"
SKIPPED = "skipped"
STATUSES = (MATCHED, MISMATCHED, UNTRANSLATABLE, ERROR, SKIPPED)


@dataclass
class ReplayOutcome:
    """One replayed query, or one replayed transaction of writes."""

    title: str
    kind: str
    status: str
    source_sql: str
    target_sql: str | None = None
    tables: frozenset[str] = frozenset()  # target tables the statement(s) touch
    reason: str = ""
    note: str = ""
    rows_source: int | None = None
    rows_target: int | None = None
    only_source: list[tuple] = field(default_factory=list)
    only_target: list[tuple] = field(default_factory=list)
    seconds_source: float = 0.0
    seconds_target: float = 0.0
    statements: int = 1
    origin: str = ""
    replayed: bool = False  # ran on both databases
    occurrences: int = 1  # how often the log has this query (repeats are replayed once)


@dataclass
class ReplayReport:
    outcomes: list[ReplayOutcome] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Counts per status plus ``replayed`` (run on both sides) and ``total``."""
        c = {s: 0 for s in STATUSES}
        for o in self.outcomes:
            c[o.status] += 1
        c["replayed"] = sum(1 for o in self.outcomes if o.replayed)
        c["total"] = len(self.outcomes)
        return c

    @property
    def passed(self) -> bool:
        return not any(o.status in (MISMATCHED, UNTRANSLATABLE) for o in self.outcomes)

    def by_status(self, status: str) -> list[ReplayOutcome]:
        return [o for o in self.outcomes if o.status == status]

    def for_tables(self, tables, *, include_unattributed: bool = True) -> "ReplayReport":
        """The outcomes touching any of ``tables`` (and those touching no known table)."""
        wanted = set(tables)
        return ReplayReport([o for o in self.outcomes
                             if o.tables & wanted or (include_unattributed and not o.tables)])

    @property
    def seconds_source(self) -> float:
        return sum(o.seconds_source for o in self.outcomes)

    @property
    def seconds_target(self) -> float:
        return sum(o.seconds_target for o in self.outcomes)

    def summary(self) -> str:
        c = self.counts()
        return (f"{c['replayed']} replayed: {c[MATCHED]} matched, {c[MISMATCHED]} mismatched; "
                f"{c[UNTRANSLATABLE]} untranslatable, {c[ERROR]} inconclusive, {c[SKIPPED]} skipped")

    def mismatches_markdown(self, limit: int = 25) -> str:
        rows = self.by_status(MISMATCHED)
        if not rows:
            return "No mismatches."
        lines = ["| query | tables | rows source | rows target | why | only in source (sample) | only in target (sample) |",
                 "| --- | --- | ---: | ---: | --- | --- | --- |"]
        for o in rows[:limit]:
            lines.append("| " + " | ".join([
                _cell(excerpt(o)), _cell(", ".join(sorted(o.tables))), _num(o.rows_source), _num(o.rows_target),
                _cell(o.reason), _cell(_sample(o.only_source)), _cell(_sample(o.only_target))]) + " |")
        if len(rows) > limit:
            lines.append(f"\n… and {len(rows) - limit} more mismatches.")
        return "\n".join(lines)

    def problems_markdown(self, status: str, limit: int = 25) -> str:
        """A table of the untranslatable (or inconclusive, or skipped) statements and why."""
        rows = self.by_status(status)
        if not rows:
            return f"No {status} statements."
        lines = ["| query | where | why |", "| --- | --- | --- |"]
        for o in rows[:limit]:
            lines.append(f"| {_cell(excerpt(o))} | {_cell(o.origin)} | {_cell(o.reason)} |")
        if len(rows) > limit:
            lines.append(f"\n… and {len(rows) - limit} more.")
        return "\n".join(lines)


def excerpt(o: ReplayOutcome, width: int = 90) -> str:
    sql = re.sub(r"/\*.*?\*/|--[^\n]*", " ", o.source_sql, flags=re.S)
    sql = " ".join(sql.split())
    sql = sql if len(sql) <= width else sql[: width - 1] + "…"
    text = f"{o.title}: {sql}" if o.title and o.title not in sql else sql
    return f"{text} (×{o.occurrences} in the log)" if o.occurrences > 1 else text


def render_value(v) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if isinstance(v, bytes):
        return "0x" + v[:16].hex() + ("…" if len(v) > 16 else "")
    return str(v)


def render_row(row: tuple, width: int = 120) -> str:
    text = "(" + ", ".join(render_value(v) for v in row) + ")"
    return text if len(text) <= width else text[: width - 1] + "…"


def _sample(rows: list[tuple], n: int = 3) -> str:
    if not rows:
        return "—"
    return "; ".join(render_row(r) for r in rows[:n]) + (f" (+{len(rows) - n})" if len(rows) > n else "")


def _cell(text: str) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def _num(v: int | None) -> str:
    return "—" if v is None else str(v)
