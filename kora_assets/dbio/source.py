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
import sqlalchemy as sa

from kora_assets.dbio.connections import Database
from kora_assets.errors import recoverable

log = logging.getLogger("kora.source")
_TEXT_COLUMNS: dict[tuple[str, str, bool], dict[str, str | None]] = {}  # (database, table, fallback) -> read as text
_DECODED_DIGITS = 28  # connectorx decodes decimals through rust_decimal: 28 significant digits
# PostgreSQL types connectorx decodes; any other (interval, money, inet, arrays, ...) is read as
# text. json and jsonb too: connectorx re-serializes them through serde_json (2.50 -> 2.5).
_PG_DECODED = ("'smallint', 'integer', 'bigint', 'real', 'double precision', 'boolean', 'text', 'character varying', "
               "'character', 'date', 'timestamp without time zone', 'timestamp with time zone', "
               "'time without time zone', 'bytea', 'uuid'")
_PG_COLUMNS = ("SELECT attname, false FROM pg_attribute WHERE attrelid = to_regclass(%s) AND NOT attisdropped "
               "AND attnum > 0 AND ")
# MySQL's spatial values are its internal bytes (SRID + WKB): read as their WKT text (ST_AsText)
_MYSQL_SPATIAL = ("'point', 'linestring', 'polygon', 'geometry', 'multipoint', 'multilinestring', 'multipolygon', "
                  "'geometrycollection'")
_MYSQL_COLUMNS = (f"SELECT COLUMN_NAME, DATA_TYPE IN ({_MYSQL_SPATIAL}) FROM information_schema.COLUMNS "
                  "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND ")
_TEXT_COLUMNS_SQL = {  # numeric typmod: ((precision << 16) | scale) + 4
    "postgresql": _PG_COLUMNS + f"(atttypid::regtype::text NOT IN ('numeric', {_PG_DECODED}) OR "
                  f"(atttypid = 'numeric'::regtype AND (atttypmod = -1 OR (atttypmod - 4) >> 16 > {_DECODED_DIGITS})))",
    "mysql": _MYSQL_COLUMNS + f"(DATA_TYPE IN ('time', {_MYSQL_SPATIAL}) OR "
             f"(DATA_TYPE = 'decimal' AND NUMERIC_PRECISION > {_DECODED_DIGITS}))",
}
_FALLBACK_TEXT_COLUMNS_SQL = {  # and, after a value could not be decoded, every date, time and decimal
    "postgresql": _PG_COLUMNS + f"(atttypid::regtype::text NOT IN ({_PG_DECODED}) OR atttypid IN "
                  "('date'::regtype, 'timestamp'::regtype, 'timestamptz'::regtype))",
    "mysql": _MYSQL_COLUMNS + f"DATA_TYPE IN ('time', 'date', 'datetime', 'timestamp', 'decimal', {_MYSQL_SPATIAL})",
}
WKT = "wkt"  # a column read as the WKT text of its geometry, not cast


class SourceValuesUndecodable(Exception):
    """connectorx could not decode a value of the source (a MySQL zero date, a PostgreSQL
    'infinity'): it panics, and the partition's reading stops there."""


def columns_read_as_text(engine: sa.Engine, table: str, schema: str | None, *,
                         fallback: bool = False) -> dict[str, str | None]:
    """Columns whose values connectorx cannot decode one by one, read as their exact text: it
    panics on the first value it cannot, failing the whole partition (or a check's sample).
    PostgreSQL types it does not read (interval, money, inet, arrays, ...), its unconstrained
    ``numeric`` (each value has its own scale: "decimal scale is not equal to expected scale"),
    decimals wider than rust_decimal's 28 digits (MySQL's DECIMAL(65,30)) and MySQL's ``TIME``,
    a duration from -838:59:59 to 838:59:59 ("could not retrieve NaiveTime"), and MySQL's
    geometries (its own bytes; they travel as WKT). As text, a value the target cannot hold is
    queued by itself. ``fallback``: dates, times and decimals too. Each column maps to ``WKT``
    for a geometry, else None (a plain cast): ``text_expression`` writes either."""
    dialect = {"mariadb": "mysql"}.get(engine.dialect.name, engine.dialect.name)
    sql = (_FALLBACK_TEXT_COLUMNS_SQL if fallback else _TEXT_COLUMNS_SQL).get(dialect)
    if sql is None:
        return {}
    quote = engine.dialect.identifier_preparer.quote
    qualified = f"{quote(schema)}.{quote(table)}" if schema else quote(table)
    key = (engine.url.render_as_string(hide_password=False), qualified, fallback)
    if key not in _TEXT_COLUMNS:
        with engine.connect() as c:
            params = ((qualified,) if dialect == "postgresql" else
                      (schema or c.exec_driver_sql("SELECT DATABASE()").scalar(), table))
            _TEXT_COLUMNS[key] = {r[0]: WKT if r[1] else None for r in c.exec_driver_sql(sql, params)}
    return _TEXT_COLUMNS[key]


def text_expression(dialect: str, quoted: str, kind: str | None) -> str:
    """The SQL that reads a column as its text (``columns_read_as_text``), named as the column."""
    if kind == WKT:
        return f"ST_AsText({quoted}) AS {quoted}"
    return f"CAST({quoted} AS CHAR) AS {quoted}" if dialect == "mysql" else f"{quoted}::text AS {quoted}"


class SourceReader:
    """``as_text_fallback``: read every date, time and decimal column as text (SQLite: every
    column, through the DBAPI), for a partition whose values connectorx could not decode
    (``SourceValuesUndecodable``); kora's casts then queue each value the target cannot hold,
    instead of the partition failing."""

    def __init__(self, db: Database, schema: str | None = None, *, as_text_fallback: bool = False):
        self.db, self.schema, self.as_text_fallback = db, schema, as_text_fallback

    def select_sql(self, table: str, columns: list[str], where: str | None) -> str:
        as_text = self._read_as_text(table)
        cols = ", ".join(text_expression(self.db.dialect, self.db.quote(c), as_text[c]) if c in as_text
                         else self.db.quote(c) for c in columns)
        sql = f"SELECT {cols} FROM {self.db.qualified(table, self.schema)}"
        return sql + (f" WHERE {where}" if where else "")

    def _read_as_text(self, table: str) -> dict[str, str | None]:
        return columns_read_as_text(self.db.engine, table, self.schema, fallback=self.as_text_fallback)

    def batches(self, table: str, columns: list[str], where: str | None, batch_rows: int) -> Iterator[pl.DataFrame]:
        """Stream the selected rows as polars frames of at most ``batch_rows`` rows."""
        sql = self.select_sql(table, columns, where)
        if self.as_text_fallback and self.db.dialect not in _FALLBACK_TEXT_COLUMNS_SQL:
            # SQLite: a value unlike its column's declared type (dynamic typing) stops connectorx
            # ("InvalidColumnType"); through the DBAPI such a column becomes text, value by value
            yield from self._sqlalchemy(sql, columns, batch_rows)
            return
        try:
            yield from self._connectorx(sql, batch_rows)
        except _ConnectorxUnsupported as exc:
            log.info("connectorx cannot read %s (%s); falling back to SQLAlchemy", table, exc)
            yield from self._sqlalchemy(sql, columns, batch_rows)

    def _connectorx(self, sql: str, batch_rows: int) -> Iterator[pl.DataFrame]:
        import connectorx as cx

        try:
            reader = cx.read_sql(self.db.connectorx_url, sql, return_type="arrow_stream", batch_size=batch_rows)
        except BaseException as exc:  # a type it does not read panics (pyo3's PanicException)
            if not recoverable(exc):
                raise
            raise _ConnectorxUnsupported(_first_line(exc)) from None
        batches = iter(reader)
        while True:
            try:
                rb = next(batches)
            except StopIteration:
                return
            except BaseException as exc:  # a Rust panic (pyo3's PanicException) is a BaseException
                if not recoverable(exc):
                    raise
                raise SourceValuesUndecodable(_first_line(exc)) from None
            if rb.num_rows:
                yield _finite(_to_polars(pa.Table.from_batches([rb])))

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


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _finite(df: pl.DataFrame) -> pl.DataFrame:
    """The batch, unless it holds a PostgreSQL 'infinity' date or timestamp, which connectorx
    reads as chrono's first or last day (year -262143 or +262142) without a word: then the
    partition is read again with its dates as text, and the value is queued as it is."""
    temporal = [c for c, t in df.schema.items() if t == pl.Date or isinstance(t, pl.Datetime)]
    if temporal:
        years = df.select(pl.max_horizontal(pl.col(temporal).dt.year().abs().max()))
        if (years.item() or 0) >= _CHRONO_YEAR_LIMIT:
            raise SourceValuesUndecodable("a date or timestamp is 'infinity' or '-infinity'")
    return df


_CHRONO_YEAR_LIMIT = 262142  # connectorx's stand-in for PostgreSQL's infinities


def _to_polars(t: pa.Table) -> pl.DataFrame:
    # Large strings and decimal256 are what polars expects; dictionary columns are decoded.
    return pl.from_arrow(t, rechunk=False)  # type: ignore[return-value]


def _column(values: tuple) -> pl.Series:
    try:
        return pl.Series(values, strict=False)
    except Exception:
        return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)
