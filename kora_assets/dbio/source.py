"""Reading the source in Arrow batches.

connectorx streams query results straight into Arrow without a Python object per value;
SQLAlchemy is only the fallback for what connectorx cannot read (an exotic dialect, a SQLite
column whose stored values defy its declared type).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

import polars as pl
import pyarrow as pa

from kora_assets.dbio.connections import Database

log = logging.getLogger("kora.source")
_TEXT_COLUMNS: dict[tuple[str, str], frozenset[str]] = {}  # (source, table) -> columns read as text


class SourceReader:
    def __init__(self, db: Database, schema: str | None = None):
        self.db, self.schema = db, schema

    def select_sql(self, table: str, columns: list[str], where: str | None) -> str:
        as_text = self._read_as_text(table)
        q = self.db.quote
        cols = ", ".join(f"{q(c)}::text AS {q(c)}" if c in as_text else q(c) for c in columns)
        sql = f"SELECT {cols} FROM {self.db.qualified(table, self.schema)}"
        return sql + (f" WHERE {where}" if where else "")

    def _read_as_text(self, table: str) -> frozenset[str]:
        """PostgreSQL columns of an unconstrained ``numeric``, read as their exact text: each
        value has its own scale, and connectorx, which decodes a column at one scale, panics
        on the first value with another ("decimal scale is not equal to expected scale")."""
        if self.db.dialect != "postgresql":
            return frozenset()
        key = (self.db.connectorx_url, self.db.qualified(table, self.schema))
        if key not in _TEXT_COLUMNS:
            with self.db.engine.connect() as c:
                _TEXT_COLUMNS[key] = frozenset(r[0] for r in c.exec_driver_sql(
                    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND NOT attisdropped "
                    "AND attnum > 0 AND atttypid = 'numeric'::regtype AND atttypmod = -1", (key[1],)))
        return _TEXT_COLUMNS[key]

    def batches(self, table: str, columns: list[str], where: str | None, batch_rows: int) -> Iterator[pl.DataFrame]:
        """Stream the selected rows as polars frames of at most ``batch_rows`` rows."""
        sql = self.select_sql(table, columns, where)
        try:
            yield from self._connectorx(sql, batch_rows)
        except _ConnectorxUnsupported as exc:
            log.info("connectorx cannot read %s (%s); falling back to SQLAlchemy", table, exc)
            yield from self._sqlalchemy(sql, columns, batch_rows)

    def _connectorx(self, sql: str, batch_rows: int) -> Iterator[pl.DataFrame]:
        import connectorx as cx

        try:
            reader = cx.read_sql(self.db.connectorx_url, sql, return_type="arrow_stream", batch_size=batch_rows)
        except Exception as exc:
            raise _ConnectorxUnsupported(str(exc).splitlines()[0]) from None
        for rb in reader:
            if rb.num_rows:
                yield _to_polars(pa.Table.from_batches([rb]))

    def _sqlalchemy(self, sql: str, columns: list[str], batch_rows: int) -> Iterator[pl.DataFrame]:
        with self.db.engine.connect().execution_options(stream_results=True) as conn:
            result = conn.exec_driver_sql(sql)
            while rows := result.fetchmany(batch_rows):
                cols = list(zip(*rows))
                yield pl.DataFrame({c: _column(v) for c, v in zip(columns, cols)})

    def count(self, table: str, where: str | None) -> int:
        sql = f"SELECT COUNT(*) FROM {self.db.qualified(table, self.schema)}" + (f" WHERE {where}" if where else "")
        with self.db.engine.connect() as c:
            return int(c.exec_driver_sql(sql).scalar())

    def keys(self, table: str, key_columns: list[str], where: str | None) -> pl.DataFrame:
        """Just the key columns of the selected rows (for conservation checks)."""
        sql = self.select_sql(table, key_columns, where)
        if self.db.dialect == "sqlite" and self.db.role == "target":  # a file other processes write: (see below)
            return self._keys_sqlalchemy(sql, key_columns)
        try:
            import connectorx as cx

            return _to_polars(cx.read_sql(self.db.connectorx_url, sql, return_type="arrow"))
        except Exception:
            return self._keys_sqlalchemy(sql, key_columns)

    def _keys_sqlalchemy(self, sql: str, key_columns: list[str]) -> pl.DataFrame:
        """Keys through the DBAPI: connectorx's own SQLite build reading a WAL file that kora's
        workers write in other processes made checks see half-written data (and once a
        'malformed' file) in the SQLite-to-SQLite test; the system sqlite3 shares its locking."""
        return pl.concat(list(self._sqlalchemy(sql, key_columns, 500_000)) or
                         [pl.DataFrame(schema={k: pl.Int64 for k in key_columns})])


class _ConnectorxUnsupported(Exception):
    pass


def _to_polars(t: pa.Table) -> pl.DataFrame:
    # Large strings and decimal256 are what polars expects; dictionary columns are decoded.
    return pl.from_arrow(t, rechunk=False)  # type: ignore[return-value]


def _column(values: tuple) -> pl.Series:
    try:
        return pl.Series(values, strict=False)
    except Exception:
        return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
