"""Parent keys a worker holds while it loads a child table, for orphan flags by semi-join.

Looking each chunk's foreign keys up in the target (``= ANY(...)`` over tens of thousands of
keys, three FKs per lineitem chunk) was 40% of a worker's time on TPC-H. Parents land before
their children (FK order), so a worker reads a parent's key columns once, as Arrow, and every
later chunk is flagged by a lookup in a dense bitmap (one integer key whose values are not too
sparse; ~1 ms per 100k values and FK), a binary search (other single integer keys, held
sorted; 8-11 ms) or a polars join. The copy is tied to a signature of what has landed in the
parent (its ledger rows and the rows recovery fixed): when either changes, it is read again.
Parents larger than ``MAX_ROWS`` keep the per-chunk lookup, and a worker holds only the
parents of the table it is loading, so its memory stays bounded whatever the parents' sizes.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database

MAX_ROWS = 5_000_000  # ~40 MB of int64 keys per key column
DENSE_SPAN = 8  # a bitmap when max - min + 1 <= DENSE_SPAN * keys (TPC-H orders: 4), ...
DENSE_MAX = 64_000_000  # ... and at most this many bytes


@dataclass
class ParentKeyCache:
    """One per worker process: (target, parent, columns) -> (signature, key frame, its bitmap),
    holding only the parents of the table being loaded (see ``retain``)."""

    max_rows: int = MAX_ROWS
    _frames: dict[tuple, tuple[tuple, pl.DataFrame, Dense | None]] = field(default_factory=dict)
    _checked: dict[tuple, pl.DataFrame | None] = field(default_factory=dict)  # this partition's answers

    def retain(self, target: Database, tables: set[str]) -> None:
        """At a partition's start: drop every parent but these (a worker holds one table's
        parents at a time), and check the kept ones' signatures again on first use."""
        url = str(target.url)
        for key in [k for k in self._frames if k[0] != url or k[1] not in tables]:
            del self._frames[key]
        self._checked.clear()

    def keys(self, target: Database, plan_parent: str, table: str, columns: list[str]) -> pl.DataFrame | None:
        """All key tuples of the parent as the partition found it, or None where a full copy is not worth it."""
        if target.dialect != "postgresql":
            return None
        key = (str(target.url), table, tuple(columns))
        if key not in self._checked:  # once per partition, not per chunk
            self._checked[key] = self._current(target, plan_parent, key)
        return self._checked[key]

    def dense(self, target: Database, table: str, columns: list[str]) -> Dense | None:
        """The bitmap of the keys ``keys`` holds for these columns; None if too sparse or not held."""
        held = self._frames.get((str(target.url), table, tuple(columns)))
        return held[2] if held else None

    def _current(self, target: Database, plan_parent: str, key: tuple) -> pl.DataFrame | None:
        sig = _signature(target, plan_parent)
        if sig[1] + sig[3] > self.max_rows:
            return None
        cached = self._frames.get(key)
        if cached is None or cached[0] != sig:
            frame = _read_keys(target, key[1], list(key[2]))
            cached = self._frames[key] = (sig, frame, Dense.of(frame))
        return cached[1]


PROCESS_CACHE = ParentKeyCache()


def _signature(target: Database, plan_parent: str) -> tuple:
    """What has landed in the parent: ledger rows (count, landed sum, last update), rows fixed."""
    ledger, queue = bookkeeping_table(target, "partition_ledger"), bookkeeping_table(target, "error_queue")
    with target.engine.connect() as c:
        n, landed, last = c.exec_driver_sql(
            f"SELECT COUNT(*), COALESCE(SUM(landed_rows), 0), MAX(updated_at) FROM {ledger} WHERE table_name = %s",
            (plan_parent,)).one()
        fixed = c.exec_driver_sql(f"SELECT COUNT(*) FROM {queue} WHERE table_name = %s AND status = 'fixed'",
                                  (plan_parent,)).scalar()
    return int(n), int(landed), str(last), int(fixed or 0)


def _read_keys(target: Database, table: str, columns: list[str]) -> pl.DataFrame:
    if len(columns) == 1 and (ints := _integer_keys(target, table, columns[0])) is not None:
        return ints.sort(columns[0])
    import connectorx as cx

    cols = ", ".join(target.quote(c) for c in columns)
    nonnull = " AND ".join(f"{target.quote(c)} IS NOT NULL" for c in columns)
    t = cx.read_sql(target.connectorx_url, f"SELECT {cols} FROM {table} WHERE {nonnull}", return_type="arrow")
    df = pl.from_arrow(t)  # no unique(): on 4.5M keys it took 570 MB; hits are made unique instead
    return df.sort(df.columns[0]) if df.width == 1 and df.dtypes[0].is_integer() else df  # see ``contains``


_INTEGER_TYPES = {21: (">i2", pl.Int16), 23: (">i4", pl.Int32), 20: (">i8", pl.Int64)}  # int2, int4, int8 OIDs


def _integer_keys(target: Database, table: str, column: str) -> pl.DataFrame | None:
    """One integer key column as one binary array value, unpacked by numpy; None for other types.

    Row by row (connectorx's binary COPY) the 1.5M keys of TPC-H orders took 0.75 s of this
    process's CPU, and every worker loading lineitem reads them; as one ``array_send`` value
    0.03-0.1 s, and the server's scan is the same.
    """
    with target.engine.connect() as c:
        oid = c.exec_driver_sql("SELECT atttypid::int FROM pg_attribute WHERE attrelid = to_regclass(%s) "
                                "AND attname = %s AND NOT attisdropped", (table, column)).scalar()
        if oid not in _INTEGER_TYPES:
            return None
        col = target.quote(column)
        with c.connection.driver_connection.cursor(binary=True) as cur:  # bytes as bytes, not hex
            cur.execute(f"SELECT array_send(array_agg({col})) FROM {table} WHERE {col} IS NOT NULL")
            raw = cur.fetchone()[0]
    width, dtype = _INTEGER_TYPES[oid]
    if raw is None:  # no rows
        return pl.DataFrame(schema={column: dtype})
    # array_send: ndim, has-nulls flag, element type, then (length, lower bound) per dimension,
    # then (byte length, value) per element; one dimension, no nulls (filtered above).
    cells = np.frombuffer(raw, dtype=np.dtype([("len", ">i4"), ("v", width)]), offset=20)
    return pl.DataFrame({column: pl.Series(cells["v"].astype(width[1:]), dtype=dtype)})


@dataclass(frozen=True)
class Dense:
    """A parent's integer keys as a bitmap over [lo, lo + len(bits)): membership is one gather."""

    lo: int
    bits: np.ndarray  # bool

    @classmethod
    def of(cls, held: pl.DataFrame) -> Dense | None:
        if held.width != 1 or not held.dtypes[0].is_integer() or held.height == 0:
            return None
        s = held.to_series()
        lo, hi = int(s.min()), int(s.max())
        span = hi - lo + 1
        if span > DENSE_SPAN * held.height or span > DENSE_MAX:
            return None
        bits = np.zeros(span, dtype=np.bool_)
        bits[s.to_numpy().astype(np.int64) - lo] = True
        return cls(lo, bits)

    def contains(self, values: pl.Series) -> pl.Series:
        """False for nulls and for values outside the parent's range (beyond int64 included)."""
        v = values.cast(pl.Int64, strict=False)
        a = v.fill_null(self.lo).to_numpy()
        inside = v.is_not_null().to_numpy() & (a >= self.lo) & (a < self.lo + len(self.bits))
        found = np.zeros(len(a), dtype=np.bool_)
        found[inside] = self.bits[a[inside] - self.lo]
        return pl.Series(values.name, found)


def contains(held: pl.DataFrame, values: pl.Series, dense: Dense | None = None) -> pl.Series | None:
    """Whether each value is among the parent's keys (null where the value is null), with no
    join back onto the chunk: by ``dense``, the key's bitmap, where there is one, else by binary
    search in the sorted copy (against 1.5M TPC-H order keys 5 ms for 100k ordered values and
    25 ms for random ones, where the semi-join plus the join back took about twice that per
    chunk and FK). None unless the key is one sorted integer column (then ``hits`` joins)."""
    if held.width != 1 or not held.dtypes[0].is_integer() or not values.dtype.is_integer():
        return None
    if dense is not None:
        found = dense.contains(values)
        return pl.select(pl.when(values.is_null()).then(None).otherwise(found)).to_series().alias(values.name)
    s = held.to_series()
    if not s.flags["SORTED_ASC"]:
        return None
    if len(s) == 0:
        found = pl.repeat(False, len(values), eager=True)
    else:
        v = values.cast(s.dtype, strict=False)  # outside the parent's integer range: null, so not found
        found = (s.gather(s.search_sorted(v).clip(upper_bound=len(s) - 1)) == v).fill_null(False)
    return pl.select(pl.when(values.is_null()).then(None).otherwise(found)).to_series().alias(values.name)


def hits(held: pl.DataFrame, keys: pl.DataFrame, outs: list[str]) -> pl.DataFrame:
    """The chunk's (unique, non-null) ``keys`` that are among the parent's ``held`` keys."""
    held = held.rename(dict(zip(held.columns, outs)))
    held = held if held.schema == keys.schema else held.cast(keys.schema, strict=False)
    return held.join(keys, on=outs, how="semi").unique()
