"""Binary COPY (the workers' bulk path) lands exactly what the CSV path lands, type by type."""
from __future__ import annotations

import datetime as dt
import decimal

import polars as pl
import psycopg
import pytest

from kora_assets.dbio.binary_copy import binary_schema, copy_binary
from kora_assets.dbio.connections import Database
from kora_assets.dbio.target import _csv_ready
from kora_assets.plan.types import parse_type

TYPES = {"a": "smallint", "b": "integer", "c": "bigint", "d": "boolean", "e": "real", "f": "double",
         "g": "date", "h": "timestamp", "i": "timestamptz", "j": "time", "k": "bytes", "l": "text",
         "m": "char(4)", "n": "varchar(5)", "o": "numeric(15,2)", "p": "numeric(38,10)"}


def _frame() -> pl.DataFrame:
    D = decimal.Decimal
    raw = {
        "a": [1, None, -3], "b": [1, 2, None], "c": [2**40, None, 3], "d": [True, None, False],
        "e": [1.5, None, float("inf")], "f": [1.25, None, -0.0],
        "g": [dt.date(2020, 1, 1), None, dt.date(1, 1, 1)],
        "h": [dt.datetime(2020, 1, 1, 1, 2, 3, 456789), None, dt.datetime(1970, 1, 1)],
        "i": [dt.datetime(2020, 1, 1, 1, 2, 3, tzinfo=dt.timezone.utc), None,
              dt.datetime(1999, 12, 31, tzinfo=dt.timezone.utc)],
        "j": [dt.time(1, 2, 3, 4), None, dt.time(23, 59, 59, 999999)], "k": [b"\x00\x01", None, b""],
        "l": ["h\u00e9llo, \"x\"\n", None, ""], "m": ["ab", None, "x"], "n": ["abc", None, "q"],
        "o": [D("1.25"), None, D("-99999.99")], "p": [D("1.5"), None, D("12345678901234567890.1234567890")],
    }
    return pl.DataFrame({c: pl.Series(v, dtype=parse_type(TYPES[c]).polars_dtype()) for c, v in raw.items()})


def test_binary_copy_lands_what_csv_lands(pg_db):
    db = Database(pg_db, "target")
    ddl = ", ".join(f"{c} {parse_type(t).ddl('postgresql')}" for c, t in TYPES.items())
    schema = binary_schema([(c, parse_type(t)) for c, t in TYPES.items()])
    assert schema is not None
    df = _frame()
    with psycopg.connect(db.psycopg_conninfo()) as conn:
        cur = conn.cursor()
        cur.execute(f"CREATE TABLE by_csv ({ddl})")
        cur.execute(f"CREATE TABLE by_binary ({ddl})")
        with cur.copy("COPY by_csv FROM STDIN WITH (FORMAT csv)") as cp:
            cp.write(_csv_ready(df).write_csv(include_header=False, null_value="", quote_style="necessary",
                                              time_format="%H:%M:%S%.f").encode())
        # an all-null chunk arrives typed Null: it is cast to the column's dtype, not rejected
        nulls = pl.DataFrame({c: [None] for c in TYPES})
        copy_binary(cur, "COPY by_binary FROM STDIN WITH (FORMAT binary)", df, schema)
        copy_binary(cur, "COPY by_binary FROM STDIN WITH (FORMAT binary)", nulls, schema)
        cur.execute("INSERT INTO by_csv DEFAULT VALUES")
        got = cur.execute("SELECT * FROM by_binary ORDER BY b NULLS LAST, a NULLS LAST").fetchall()
        want = cur.execute("SELECT * FROM by_csv ORDER BY b NULLS LAST, a NULLS LAST").fetchall()
    assert got == want and len(got) == 4
    assert got[0][9] == dt.time(1, 2, 3, 4) and got[0][10] == b"\x00\x01" and got[0][12] == "ab  "


@pytest.mark.parametrize("kind", ["json", "uuid", "numeric"])
def test_types_whose_wire_format_differs_keep_text_copy(kind):
    """jsonb, uuid and an unconstrained numeric (a float in the batch) cannot go as binary."""
    assert binary_schema([("id", parse_type("integer")), ("x", parse_type(kind))]) is None
    assert binary_schema([("id", parse_type("integer")), ("x", parse_type("numeric(10,2)"))]) is not None


@pytest.mark.parametrize("ktype", ["numeric(5,2)", "numeric(12,4)", "numeric(38,0)", "numeric(38,2)"])
def test_values_round_into_numeric_as_postgresql_rounds_them(pg_db, ktype):
    """PostgreSQL rounds half away from zero into numeric(p,s); polars' cast rounds half to even.
    The workers must land what PostgreSQL's own cast would store, from text and from decimals
    (numeric(38,s) from text: no wider decimal holds spare digits, the text's digits decide)."""
    from kora_assets.transforms.casting import cast_expr

    kt = parse_type(ktype)
    texts = ["2.665", "1.005", "-2.675", "0.125", "-0.005", "12.34565", "7", " 3.14159 ", "999.994", "0.00005",
             "12.5", "-12.5", "13.5", "-0.5", ".5", "0.49999"]
    with psycopg.connect(Database(pg_db, "target").psycopg_conninfo(), autocommit=True) as con:
        expected = [con.execute(f"SELECT %s::numeric::{ktype}", (t.strip(),)).fetchone()[0] for t in texts]
    got_text = pl.DataFrame({"v": texts}).select(cast_expr(pl.col("v"), kt, pl.String)).to_series().to_list()
    decimals = pl.Series("v", [decimal.Decimal(t.strip()) for t in texts], dtype=pl.Decimal(38, 10))
    got_decimal = decimals.to_frame().select(cast_expr(pl.col("v"), kt, decimals.dtype)).to_series().to_list()
    assert got_text == expected
    assert got_decimal == expected


@pytest.mark.parametrize("ktype", ["numeric(5,2)", "numeric(15,0)", "numeric(15,2)", "numeric(38,0)", "numeric(38,2)"])
def test_long_fractions_exponents_and_floats_round_once_as_postgresql_rounds_them(pg_db, ktype):
    """Text with more digits than a wider decimal keeps (a float printed with 17 digits), in
    exponent form, and floats: each lands as PostgreSQL's own cast stores it. Before, a cast to
    a wider scale rounded twice ('1.00499999999999989' -> 1.01 where PostgreSQL stores 1.00),
    exponent forms rounded half to even, and floats were rounded in binary (1.005 -> 1.00
    where a text pipe and pgloader store 1.01)."""
    from kora_assets.transforms.casting import cast_expr

    kt = parse_type(ktype)
    texts = ["2.499999999999", "1.00499999999999989", "0.0049999999999999", "2.5e0", "-3.25e-1", "1.005E0",
             "1e2", "12.5E-1", "1.5e+2", ".5e1", "5.e-1", "-9.995e2", "1e-7", "0e0", "+2.5", "e5", "1.2.3", "1e999"]
    floats = [1.005, 2.675, 0.125, 1.0049999999999999, 2.4999999999999996, 0.285, -0.285, 1e-7,
              0.30000000000000004, 999.995, -999.995, 123.0, float("nan"), float("inf")]

    def cast_by_postgresql(con, sql, value):
        try:
            got = con.execute(sql, (value,)).fetchone()[0]
        except psycopg.errors.DataError:  # out of range or not a number: kora queues it (NULL here)
            return None
        return None if got.is_nan() else got  # a NaN has no polars decimal: kora queues it

    with psycopg.connect(Database(pg_db, "target").psycopg_conninfo(), autocommit=True) as con:
        want_text = [cast_by_postgresql(con, f"SELECT %s::numeric::{ktype}", t) for t in texts]
        # a float as a text pipe sends it: its shortest text (Python's repr)
        want_float = [cast_by_postgresql(con, f"SELECT %s::numeric::{ktype}", repr(f)) for f in floats]
    got_text = pl.DataFrame({"v": texts}).select(cast_expr(pl.col("v"), kt, pl.String)).to_series().to_list()
    got_float = pl.DataFrame({"v": floats}).select(cast_expr(pl.col("v"), kt, pl.Float64)).to_series().to_list()
    assert got_text == want_text
    assert got_float == want_float


def test_text_rounding_past_38_digits_is_null_not_an_error():
    """A value that rounds beyond numeric(38,s) is NULL (queued as out of range), as PostgreSQL
    refuses it; the decimal addition behind the rounding must not raise for the whole chunk."""
    from kora_assets.transforms.casting import cast_expr

    texts = ["9" * 38 + ".5", "9" * 38, "-" + "9" * 38 + ".4", "1.5"]
    got = pl.DataFrame({"v": texts}).select(cast_expr(pl.col("v"), parse_type("numeric(38,0)"), pl.String)).to_series()
    assert got.to_list() == [None, decimal.Decimal("9" * 38), decimal.Decimal("-" + "9" * 38), decimal.Decimal(2)]


def test_a_double_beyond_real_is_queued_not_landed_as_infinity():
    """Into ``real`` (4 bytes) a double of 1e308 became Infinity without a word, from a number
    or from text; now it is NULL, classed range.overflow, while infinities and NaN stay."""
    from kora_assets.transforms.casting import cast_expr, classify_cast_failure

    kt = parse_type("real")
    doubles = pl.Series("v", [1.5, 1e308, -4e38, float("inf"), float("nan"), None], dtype=pl.Float64)
    texts = pl.Series("v", ["1.5", "1e308", "-4e38", "Infinity", "NaN", None])
    for values in (doubles, texts):
        got = values.to_frame().select(cast_expr(pl.col("v"), kt, values.dtype).alias("out"),
                                       classify_cast_failure(pl.col("v").cast(pl.String), kt).alias("class"))
        out = got["out"].to_list()
        assert out[0] == 1.5 and out[1] is None and out[2] is None and out[3] == float("inf"), values.dtype
        assert out[4] != out[4] and out[5] is None  # NaN stays NaN
        assert got["class"].to_list()[1:3] == ["range.overflow", "range.overflow"]


def test_a_decimal_with_a_fraction_is_not_truncated_into_an_integer():
    """A DECIMAL(10,2) source column whose plan type is integer: 12.70 once landed as 12 (polars
    truncates). A whole value casts; any other is NULL, i.e. queued as parse.number, as a text
    pipe or pgloader would have PostgreSQL refuse '12.70' for an integer column."""
    from kora_assets.transforms.casting import cast_expr, classify_cast_failure

    values = pl.Series("v", [decimal.Decimal(t) for t in ("12.00", "12.70", "-12.50", "7")], dtype=pl.Decimal(10, 2))
    kt = parse_type("integer")
    got = values.to_frame().select(
        cast_expr(pl.col("v"), kt, values.dtype).alias("out"),
        classify_cast_failure(pl.col("v").cast(pl.String), kt).alias("class"))
    assert got["out"].to_list() == [12, None, None, 7]
    assert got["class"][1] == "parse.number"
