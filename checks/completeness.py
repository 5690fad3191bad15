"""Conservation, proven per partition: source rows = landed rows + rows in the error queue.

Counts alone could balance by accident (a duplicate landed, another row dropped), so the
check compares the key multisets: every source key is landed or queued exactly as often as
the source holds it, and nothing else is. A checksum of the keys on each side goes to the metadata so it plots.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.source import SourceReader
from kora_assets.partitions import predicate
from kora_assets.plan.model import Plan


@dataclass
class Conservation:
    partition_key: str
    source_rows: int
    landed_rows: int
    queued_rows: int
    missing: list[str] = field(default_factory=list)  # sample keys neither landed nor queued
    extra: list[str] = field(default_factory=list)  # sample keys landed/queued but not in source
    missing_n: int = 0
    extra_n: int = 0
    source_checksum: str = ""
    accounted_checksum: str = ""

    @property
    def passed(self) -> bool:
        return (self.source_rows == self.landed_rows + self.queued_rows
                and not (self.missing_n or self.extra_n))


def _normalise(df: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """Key frames from different databases made comparable: same names, ints as Int64, else text."""
    df = df.rename(dict(zip(df.columns, names)))
    return df.select([pl.col(c).cast(pl.Int64) if df.schema[c].is_integer() else pl.col(c).cast(pl.String)
                      for c in names])


def _checksum(keys: pl.DataFrame) -> str:
    if keys.height == 0:
        return "0" * 16
    h = keys.select(pl.struct(pl.all()).hash(seed=7).alias("h"))["h"]
    return f"{int((h % (1 << 61)).sum()) % (1 << 64):016x}"


def _sample(df: pl.DataFrame) -> list[str]:
    return df.head(10).select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()


def check_partition(plan: Plan, table: str, partition_key: str, source: Database, target: Database) -> Conservation:
    tp = plan.tables[table]
    pk = tp.primary_key
    part = tp.partitioning.column
    src_where = predicate(tp, partition_key, part, source.quote) if part else None
    tgt_where = predicate(tp, partition_key, tp.target_column(part), target.quote) if part else None
    queued = _queued_keys(target, table, partition_key)
    if not pk:  # no key to compare: counts are all there is
        src_n = SourceReader(source, plan.source.schema_).count(table, src_where)
        tgt_n = SourceReader(target, plan.target.schema_).count(plan.target_name(table), tgt_where)
        return Conservation(partition_key, src_n, tgt_n, len(queued))
    src = _normalise(SourceReader(source, plan.source.schema_).keys(table, pk, src_where), pk)
    landed = _normalise(SourceReader(target, plan.target.schema_).keys(
        plan.target_name(table), [tp.target_column(k) for k in pk], tgt_where), pk)
    if src.schema != landed.schema:  # a TEXT source key ('42') landed as an integer key (42)
        src = src.cast(landed.schema, strict=False)
    if queued:
        q = pl.Series("k", queued, dtype=pl.String).str.json_decode().struct.unnest()
        q = _normalise(q.select([c for c in pk]), pk)
    else:
        q = landed.clear()
    if q.schema != landed.schema:  # e.g. a text key that JSON decoded as numbers
        q = q.cast(landed.schema)
    accounted = pl.concat([landed, q])
    # Multisets, not sets: a source duplicate lands once and is queued once, and that balances.
    diff = (src.group_by(pk).len("n_src")
            .join(accounted.group_by(pk).len("n_acc"), on=pk, how="full", coalesce=True, nulls_equal=True)
            .with_columns(pl.col("n_src").fill_null(0), pl.col("n_acc").fill_null(0)))
    missing = diff.filter(pl.col("n_src") > pl.col("n_acc"))
    extra = diff.filter(pl.col("n_acc") > pl.col("n_src"))
    return Conservation(
        partition_key, src.height, landed.height, q.height,
        _sample(missing.select(pk)), _sample(extra.select(pk)),
        int((missing["n_src"] - missing["n_acc"]).sum()), int((extra["n_acc"] - extra["n_src"]).sum()),
        _checksum(src), _checksum(accounted))


def _queued_keys(target: Database, table: str, partition_key: str) -> list[str]:
    q = bookkeeping_table(target, "error_queue")
    mark = "?" if target.dialect == "sqlite" else "%s"
    sql = (f"SELECT primary_key FROM {q} WHERE table_name = {mark} AND partition_key = {mark} "
           f"AND status IN ('pending', 'quarantined')")
    with target.engine.connect() as c:
        rows = c.exec_driver_sql(sql, (table, partition_key)).fetchall()
    return [r[0] if isinstance(r[0], str) else json.dumps(r[0]) for r in rows]
