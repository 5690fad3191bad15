"""kora's portable column types: one small vocabulary that every dialect translates to and from.

A plan names target types in this vocabulary (``varchar(80)``, ``numeric(12,2)``, ``date``)
so that the same plan reads the same whatever the target is. Each type knows its polars
dtype (what a validated batch holds) and its DDL per target dialect.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

MAX_DECIMAL_DIGITS = 38  # the widest decimal a batch holds (polars, Arrow decimal128)

_SIMPLE = {
    "smallint", "integer", "bigint", "boolean", "real", "double", "text", "date",
    "timestamp", "timestamptz", "time", "bytes", "json", "uuid",
}
_PARAM = {"varchar", "char", "numeric"}
_ALIASES = {
    "int": "integer", "int4": "integer", "int8": "bigint", "int2": "smallint", "bool": "boolean",
    "float": "double", "float8": "double", "double precision": "double", "float4": "real",
    "string": "text", "datetime": "timestamp", "bytea": "bytes", "blob": "bytes",
    "jsonb": "json", "decimal": "numeric", "character varying": "varchar", "character": "char",
}
_TYPE_RE = re.compile(r"^\s*([a-z][a-z ]*?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$")

KNOWN_TYPES = sorted(_SIMPLE | {"varchar(n)", "char(n)", "numeric(p,s)"})

INT_BOUNDS = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1),
              "bigint": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class KoraType:
    """A parsed target type such as ``numeric(12,2)``."""

    name: str
    length: int | None = None  # varchar/char length
    precision: int | None = None  # numeric precision
    scale: int | None = None  # numeric scale

    def __str__(self) -> str:
        if self.name in ("varchar", "char"):
            return f"{self.name}({self.length})"
        if self.name == "numeric":
            return f"numeric({self.precision},{self.scale})" if self.precision else "numeric"
        return self.name

    @property
    def is_text(self) -> bool:
        return self.name in ("text", "varchar", "char", "json", "uuid")

    @property
    def is_integer(self) -> bool:
        return self.name in INT_BOUNDS

    @property
    def is_numeric(self) -> bool:
        return self.is_integer or self.name in ("numeric", "real", "double")

    @property
    def is_temporal(self) -> bool:
        return self.name in ("date", "timestamp", "timestamptz", "time")

    def polars_dtype(self) -> pl.DataType:
        """The dtype a validated batch holds for this column."""
        n = self.name
        if n == "numeric":
            # A declared numeric keeps exact decimals; an unconstrained one, whose values each have
            # their own scale and may hold more digits than a decimal or a float, travels as its
            # exact text (validated as a number, then parsed by the target).
            return pl.Decimal(self.precision, self.scale or 0) if self.precision else pl.String()
        return {
            "smallint": pl.Int16(), "integer": pl.Int32(), "bigint": pl.Int64(),
            "boolean": pl.Boolean(), "real": pl.Float32(), "double": pl.Float64(),
            "date": pl.Date(), "timestamp": pl.Datetime("us"),
            "timestamptz": pl.Datetime("us", "UTC"), "time": pl.Time(), "bytes": pl.Binary(),
        }.get(n, pl.String())

    def ddl(self, dialect: str) -> str:
        """The column type in the target dialect's DDL."""
        if dialect == "sqlite":
            if self.is_integer or self.name == "boolean":
                return "INTEGER"
            if self.name in ("real", "double"):
                return "REAL"
            if self.name == "numeric":
                return "NUMERIC"
            return "BLOB" if self.name == "bytes" else "TEXT"
        if dialect in ("mysql", "mariadb"):
            return {
                "double": "DOUBLE", "text": "LONGTEXT", "timestamptz": "DATETIME(6)",
                "timestamp": "DATETIME(6)", "bytes": "LONGBLOB", "uuid": "CHAR(36)",
                "boolean": "BOOLEAN",
                # MySQL reads a bare NUMERIC as DECIMAL(10,0): it would drop every decimal. Its
                # widest decimal instead (PostgreSQL's unconstrained numeric has no limit at all).
                "numeric": str(self).upper() if self.precision else "DECIMAL(65,30)",
            }.get(self.name, str(self).upper())
        return {
            "double": "double precision", "bytes": "bytea", "json": "jsonb",
        }.get(self.name, str(self))


def parse_type(text: str) -> KoraType:
    """Parse a type name from a plan; raises ValueError with the list of known types."""
    m = _TYPE_RE.match(str(text).lower())
    if not m and "(" in str(text) and ")" not in str(text):
        raise ValueError(f"type {text!r} is cut at a comma: inside {{...}} YAML needs quotes, "
                         f"e.g. type: \"numeric(12,2)\"")
    if not m:
        raise ValueError(f"unknown type {text!r}; known types: {', '.join(KNOWN_TYPES)}")
    name, a, b = m.group(1).strip(), m.group(2), m.group(3)
    name = _ALIASES.get(name, name)
    if name in _SIMPLE and a is None:
        return KoraType(name)
    if name in ("varchar", "char") and a is not None and b is None:
        if int(a) < 1:
            raise ValueError(f"type {text!r}: length must be at least 1")
        return KoraType(name, length=int(a))
    if name == "numeric":
        if a is None:
            return KoraType("numeric")
        p, s = int(a), int(b or 0)
        if not (1 <= p <= MAX_DECIMAL_DIGITS and 0 <= s <= p):
            raise ValueError(f"type {text!r}: need 1 <= precision <= {MAX_DECIMAL_DIGITS} and 0 <= scale <= "
                             f"precision (wider values: plain 'numeric', which keeps every digit)")
        return KoraType("numeric", precision=p, scale=s)
    if name == "varchar" and a is None:
        return KoraType("text")
    raise ValueError(f"unknown type {text!r}; known types: {', '.join(KNOWN_TYPES)}")
