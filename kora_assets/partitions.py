"""Partitions of a table: their Dagster definition and the SQL predicate that selects each.

Every source row belongs to exactly one partition, so conservation can be proven partition
by partition: key ranges are half-open with open ends, and the first time window also takes
rows older than the start or with no timestamp at all.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

from kora_assets.plan.model import TablePlan

if TYPE_CHECKING:  # the workers use the predicates without loading Dagster
    import dagster as dg

ALL = "all"


def partitions_def(t: TablePlan) -> "dg.PartitionsDefinition":
    import dagster as dg

    p = t.partitioning
    if p.kind == "time":
        start = dt.datetime.combine(p.start, dt.time())
        cls = dg.DailyPartitionsDefinition if p.granularity == "daily" else dg.MonthlyPartitionsDefinition
        # end_offset=1: the window still filling up is a partition too, kept in sync until cut-over.
        return cls(start_date=start, end_offset=1)
    return dg.StaticPartitionsDefinition(key_range_keys(t))


def key_range_keys(t: TablePlan) -> list[str]:
    b = t.partitioning.bounds if t.partitioning.kind == "key_range" else []
    if not b:
        return [ALL]
    edges = [None, *b, None]
    return [f"{'' if lo is None else lo}..{'' if hi is None else hi}" for lo, hi in zip(edges, edges[1:])]


def predicate(t: TablePlan, partition_key: str, column: str, quote: Callable[[str], str],
              literal: Callable[[object], str] | None = None) -> str | None:
    """SQL selecting the partition's rows; ``column`` is the partition column's name on that side."""
    p = t.partitioning
    if p.kind == "none" or partition_key == ALL:
        return None
    col = quote(column)
    if p.kind == "key_range":
        lo, hi = partition_key.split("..")
        if not lo:  # the first range also owns NULLs, should the column allow them
            return f"({col} < {int(hi)} OR {col} IS NULL)"
        return f"{col} >= {int(lo)}" + (f" AND {col} < {int(hi)}" if hi else "")
    start, end = time_window(t, partition_key)
    lit = literal or (lambda v: f"'{v}'")
    window = f"{col} >= {lit(start)} AND {col} < {lit(end)}"
    if start == dt.datetime.combine(p.start, dt.time()):
        return f"({window} OR {col} < {lit(start)} OR {col} IS NULL)"
    return window


def time_window(t: TablePlan, partition_key: str) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a daily or monthly partition key (Dagster's ``%Y-%m-%d`` / ``%Y-%m-%d``)."""
    start = dt.datetime.strptime(partition_key, "%Y-%m-%d")
    if t.partitioning.granularity == "daily":
        return start, start + dt.timedelta(days=1)
    y, m = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start, start.replace(year=y, month=m, day=1)


def describe(t: TablePlan, partition_key: str) -> str:
    p = t.partitioning
    if p.kind == "key_range" and partition_key != ALL:
        lo, hi = partition_key.split("..")
        return f"{p.column} in [{lo or '-inf'}, {hi or '+inf'})"
    if p.kind == "time":
        s, e = time_window(t, partition_key)
        return f"{p.column} in [{s:%Y-%m-%d}, {e:%Y-%m-%d})"
    return "whole table"
