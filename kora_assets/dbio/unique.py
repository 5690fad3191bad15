"""Rows that would break a unique constraint other than the primary key: queued, not landed.

A primary key partitions with the table (a key lives in one key range), so a duplicate key
meets its twin inside one partition and the workers queue it there. A unique column does
not: two partitions loaded side by side may each hold the same e-mail address, and neither
sees the other's uncommitted row. So once every partition of a table has landed, and before
the table gets its unique constraints, the duplicates are found in the target (all but the
row with the lowest key of each value) and written to ``kora.unique_conflicts``; the
partitions holding them are loaded again, and the workers queue those rows as
``constraint.unique`` with the source row, like any other failure. Re-runs keep queuing them.
Then the constraint is added, and nothing it would reject has landed.

Where the table already enforces the constraint while loading, the worker checks each chunk
against the rows landed by other partitions instead (``TableRunner._flag_repeats_of_landed``):
a PostgreSQL table once it has its keys (a later load, e.g. a schedule until cut-over), and a
SQLite target, which declares its unique constraints at CREATE TABLE and loads one partition at
a time. There the row that lands first keeps the value; across a SQLite target's partitions
that depends on the order they load in.
"""
from __future__ import annotations

import json

import polars as pl

from checks.record import UNIQUE_DENIED
from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.ddl import sql_literal
from kora_assets.partitions import predicate
from kora_assets.plan.model import Plan


def find_conflicts(db: Database, plan: Plan, table: str) -> list[dict]:
    """Every landed row whose unique values an earlier row (by primary key) already holds:
    ``{"key": {target pk column: value}, "set": i, "reason": text}``."""
    tp = plan.tables[table]
    if db.dialect != "postgresql" or not tp.primary_key:
        return []
    t = db.qualified(plan.target_name(table), plan.target.schema_)
    pk = [tp.target_column(k) for k in tp.primary_key]
    qpk = ", ".join(db.quote(k) for k in pk)
    out = []
    with db.engine.connect() as c:
        for i, cols in enumerate(tp.unique_sets()):
            tcols = [tp.target_column(k) for k in cols]
            qu = ", ".join(db.quote(k) for k in tcols)
            held = ", ".join(f"first_value({db.quote(k)}) OVER w" for k in pk)
            sql = (f"SELECT * FROM (SELECT {qpk}, {qu}, row_number() OVER w AS kora_rn, {held} FROM {t} "
                   f"WHERE {' AND '.join(f'{db.quote(k)} IS NOT NULL' for k in tcols)} "
                   f"WINDOW w AS (PARTITION BY {qu} ORDER BY {qpk})) d WHERE kora_rn > 1")
            for r in c.exec_driver_sql(sql):
                key = dict(zip(pk, r[:len(pk)]))
                values = dict(zip(tcols, r[len(pk):len(pk) + len(tcols)]))
                first = dict(zip(pk, r[len(pk) + len(tcols) + 1:]))
                out.append({"key": key, "set": i, "reason": (
                    f"duplicate value of unique ({', '.join(tcols)}): {_show(values)} is already held by the "
                    f"row {_show(first)}")})
    return out


def record_conflicts(db: Database, plan: Plan, table: str, conflicts: list[dict]) -> None:
    """Remember the rows to queue, so that every later load of their partition queues them too."""
    q = bookkeeping_table(db, "unique_conflicts")
    rows = [(table, json.dumps({k: str(v) for k, v in c["key"].items()}, sort_keys=True), c["set"], c["reason"])
            for c in conflicts]
    with db.engine.begin() as c:
        c.connection.cursor().executemany(
            f"INSERT INTO {q} (table_name, primary_key, unique_set, reason) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (table_name, primary_key, unique_set) DO NOTHING", rows)


def conflict_partitions(db: Database, plan: Plan, table: str, conflicts: list[dict], keys: list[str]) -> list[str]:
    """Which of the partitions ``keys`` hold the conflicting rows (to be loaded again)."""
    tp = plan.tables[table]
    col = tp.partitioning.column
    if not col or len(keys) == 1:
        return keys
    t = db.qualified(plan.target_name(table), plan.target.schema_)
    pk = [tp.target_column(k) for k in tp.primary_key]
    tuples = ", ".join("(" + ", ".join(sql_literal(c["key"][k]) for k in pk) + ")" for c in conflicts)
    which = f"({', '.join(db.quote(k) for k in pk)}) IN ({tuples})"
    found = []
    with db.engine.connect() as c:
        for k in keys:
            where = predicate(tp, k, tp.target_column(col), db.quote)
            if c.exec_driver_sql(f"SELECT 1 FROM {t} WHERE ({where}) AND {which} LIMIT 1").first():
                found.append(k)
    return found


def denied_rows(db: Database, plan: Plan, table: str) -> pl.DataFrame | None:
    """The rows of the table to queue as duplicates: the target primary key columns and one
    reason column per unique set (``UNIQUE_DENIED``); None when there are none."""
    tp = plan.tables[table]
    sets = tp.unique_sets()
    if db.dialect != "postgresql" or not sets or not tp.primary_key:
        return None
    q = bookkeeping_table(db, "unique_conflicts")
    try:
        with db.engine.connect() as c:
            rows = c.exec_driver_sql(f"SELECT primary_key, unique_set, reason FROM {q} WHERE table_name = %s",
                                     (table,)).fetchall()
    except Exception:  # a target prepared by an older kora: no conflicts recorded
        return None
    if not rows:
        return None
    pk = [tp.target_column(k) for k in tp.primary_key]
    records = [{**json.loads(key), **{UNIQUE_DENIED.format(j): (reason if j == i else None) for j in range(len(sets))}}
               for key, i, reason in rows]
    frame = pl.DataFrame(records, schema={**{k: pl.String for k in pk},
                                          **{UNIQUE_DENIED.format(j): pl.String for j in range(len(sets))}},
                         strict=False)
    return frame.group_by(pk).agg(pl.all().drop_nulls().first())


def flag_unique_conflicts(df: pl.DataFrame, denied: pl.DataFrame | None, tp, by_source) -> pl.DataFrame:
    """Give a transformed batch its ``UNIQUE_DENIED`` columns: the reason where the row is one
    of ``denied`` (by primary key), else null. Workers and the recovery sandbox both use it,
    so a fix never lands a row that repeats a unique value."""
    flags = [UNIQUE_DENIED.format(i) for i in range(len(tp.unique_sets()))]
    if denied is not None:
        outs = {tp.target_column(k): by_source[k].o for k in tp.primary_key}
        d = denied.rename(outs).with_columns([pl.col(o).cast(df.schema[o], strict=False) for o in outs.values()])
        df = df.join(d, on=list(outs.values()), how="left", maintain_order="left")
    return df.with_columns([pl.lit(None, dtype=pl.String).alias(f) for f in flags if f not in df.columns])


def _show(values: dict) -> str:
    return json.dumps(values, default=str, ensure_ascii=False)

