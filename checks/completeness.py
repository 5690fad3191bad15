"""Conservation, proven per partition: source rows = landed rows + rows in the error queue.

Counts alone could balance by accident (a duplicate landed, another row dropped), so the
check compares the key sets: every source key is landed or queued, exactly once, and
nothing else is. A checksum of the keys on each side goes to the metadata so it plots.
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
    both: list[str] = field(default_factory=list)  # sample keys landed AND queued
    missing_n: int = 0
    extra_n: int = 0
    both_n: int = 0
    source_checksum: str = ""
    accounted_checksum: str = ""

    @property
    def passed(self) -> bool:
        return (self.source_rows == self.landed_rows + self.queued_rows
                and not (self.missing_n or self.extra_n or self.both_n))


def _key_strings(df: pl.DataFrame, names: list[str]) -> pl.Series:
    if df.height == 0:
        return pl.Series("k", [], dtype=pl.String)
    cols = [pl.col(c).cast(pl.Int64) if df.schema[c].is_integer() else pl.col(c).cast(pl.String) for c in df.columns]
    return df.select(pl.struct([c.alias(n) for c, n in zip(cols, names)]).struct.json_encode().alias("k")).to_series()


def _checksum(keys: pl.Series) -> str:
    return f"{int(keys.hash(seed=7).cast(pl.UInt64).sum() or 0) % (1 << 64):016x}" if keys.len() else "0" * 16


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
    src = _key_strings(SourceReader(source, plan.source.schema_).keys(table, pk, src_where), pk)
    tgt_reader = SourceReader(target, plan.target.schema_)
    landed = _key_strings(tgt_reader.keys(plan.target_name(table), [tp.target_column(k) for k in pk], tgt_where), pk)
    q = _normalise_json_keys(pl.Series("k", queued, dtype=pl.String), pk)
    src_set = pl.DataFrame({"k": src}).unique()
    acc = pl.concat([pl.DataFrame({"k": landed}), pl.DataFrame({"k": q})])
    missing = src_set.join(acc.unique(), on="k", how="anti")["k"]
    extra = acc.unique().join(src_set, on="k", how="anti")["k"]
    both = pl.DataFrame({"k": landed}).join(pl.DataFrame({"k": q}), on="k", how="semi")["k"]
    return Conservation(
        partition_key, src.len(), landed.len(), q.len(),
        missing.head(10).to_list(), extra.head(10).to_list(), both.head(10).to_list(),
        missing.len(), extra.len(), both.len(), _checksum(src), _checksum(acc["k"]))


def _normalise_json_keys(q: pl.Series, pk: list[str]) -> pl.Series:
    """Queue keys were written from source values; re-encode them like the landed ones."""
    if q.len() == 0:
        return q
    decoded = q.str.json_decode()
    df = decoded.struct.unnest()
    return _key_strings(df.select(pk), pk)


def _queued_keys(target: Database, table: str, partition_key: str) -> list[str]:
    q = bookkeeping_table(target, "error_queue")
    mark = "?" if target.dialect == "sqlite" else "%s"
    sql = (f"SELECT primary_key FROM {q} WHERE table_name = {mark} AND partition_key = {mark} "
           f"AND status IN ('pending', 'quarantined')")
    with target.engine.connect() as c:
        rows = c.exec_driver_sql(sql, (table, partition_key)).fetchall()
    return [r[0] if isinstance(r[0], str) else json.dumps(r[0]) for r in rows]
