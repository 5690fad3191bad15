"""Casting a transformed column to its target type, and naming why a value did not cast.

Casts are never strict: a value that does not convert becomes NULL, and the pair
(input not null, output null) marks the row as failed with a class the recovery loop can
act on (``parse.date``, ``sentinel.zero_date``, ``range.overflow``, ...). The accepted
spellings mirror what PostgreSQL itself accepts, so kora is no stricter than the target.
"""
from __future__ import annotations

import polars as pl

from kora_assets.plan.types import INT_BOUNDS, KoraType
from kora_assets.transforms.operators import PLACEHOLDERS

TIMESTAMP_FORMATS = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M",
                     "%Y-%m-%dT%H:%M", "%Y-%m-%d"]
TRUE_WORDS = ["1", "t", "true", "y", "yes", "on"]
FALSE_WORDS = ["0", "f", "false", "n", "no", "off"]
ZERO_DATE = r"^\s*0{4}-0{2}-0{2}"


def utf8_or_null(e: pl.Expr) -> pl.Expr:
    """Bytes as text, NULL where they are not UTF-8: polars raises on such bytes even when a
    cast is not strict, and one bad value would fail its whole partition."""
    return e.map_batches(as_text, return_dtype=pl.String)


def as_text(s: pl.Series) -> pl.Series:
    """Any column as text, bytes that are not UTF-8 as NULL (a cast raises on them)."""
    try:
        return s.cast(pl.String)
    except pl.exceptions.PolarsError:  # rare: decode bytes value by value
        if s.dtype != pl.Binary:
            return s.cast(pl.String, strict=False)

        def decode(b: bytes | None) -> str | None:
            try:
                return None if b is None else b.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return pl.Series(s.name, [decode(b) for b in s.to_list()], dtype=pl.String)


def cast_expr(e: pl.Expr, kt: KoraType, dtype: pl.DataType) -> pl.Expr:
    """``e`` (currently of ``dtype``) converted to ``kt``'s polars dtype, NULL where it can't be."""
    target = kt.polars_dtype()
    if kt.name == "numeric" and not kt.precision:
        return _numeric_text(e, dtype)
    if dtype == target:
        return e
    if dtype == pl.String:
        return _from_text(e.str.strip_chars() if not kt.is_text else e, kt, target)
    if kt.is_integer:
        if dtype.is_float() or isinstance(dtype, pl.Decimal):  # a whole value only: no silent rounding or truncation
            return pl.when(e == e.round(0)).then(e).otherwise(None).cast(pl.Int64, strict=False)
        return e.cast(pl.Int64, strict=False)
    if kt.name == "boolean" and dtype.is_numeric():  # 0 or 1 (MySQL's TINYINT(1)); a 2 is data, not true: queued
        return pl.when(e == 1).then(True).when(e == 0).then(False).otherwise(None)
    if kt.is_text:
        return utf8_or_null(e) if dtype == pl.Binary else e.cast(pl.String)
    if kt.name == "date" and isinstance(dtype, pl.Datetime):
        return e.dt.date()
    if kt.name == "timestamptz" and isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return e.dt.replace_time_zone("UTC")
    if isinstance(target, pl.Decimal) and dtype.is_float():
        return _float_to_decimal(e, target)
    if isinstance(target, pl.Decimal) and isinstance(dtype, pl.Decimal) and (dtype.scale or 0) > target.scale:
        return _half_away(e, target).cast(target, strict=False)
    if kt.name == "real" and dtype.is_numeric():
        return _real(e.cast(pl.Float64, strict=False))
    return e.cast(target, strict=False)


def _real(f: pl.Expr) -> pl.Expr:
    """A double into ``real``: a finite value beyond its range is NULL (queued as
    range.overflow), not the infinity the cast makes of it (1e308 landed as Infinity)."""
    return pl.when(_beyond_real(f)).then(None).otherwise(f).cast(pl.Float32)


def _beyond_real(f: pl.Expr) -> pl.Expr:
    return f.is_finite() & (f.abs() > 3.4028234663852886e38)


def _half_away(e: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """Rounded to the target's scale half away from zero, as PostgreSQL rounds into numeric(p,s):
    polars' cast rounds half to even (2.665 -> 2.66 where PostgreSQL stores 2.67)."""
    return e.round(target.scale, mode="half_away_from_zero")


def _text_to_decimal(s: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """Text into numeric(p,s) as PostgreSQL stores it: every digit of the text counts, and the
    value is rounded once, half away from zero.

    polars' cast rounds half to even ('12.5' -> 12 where PostgreSQL stores 13), and a cast to a
    wider scale first rounds twice ('1.00499999999999989', a float printed with 17 digits, went
    to 1.0050000000 and then 1.01, where PostgreSQL stores 1.00). So the fraction is cut after
    the scale and the first digit cut decides: half away from zero needs no other. Exponent
    forms are spelt out first (``_plain_decimal_text``). A value that rounds past the precision
    is NULL (queued as out of range, as PostgreSQL refuses it). One batch at a time: as one
    expression, each intermediate would be computed once per use."""
    return s.map_batches(lambda batch: _decimals_from_text(batch, target), return_dtype=target)


def _decimals_from_text(s: pl.Series, target: pl.Decimal) -> pl.Series:
    s = _plain_decimal_text(s)
    out = s.cast(target, strict=False)  # exact where the text has no more fraction digits than the scale
    longer = (s.str.len_bytes() - s.str.find(".", literal=True) - 1 > target.scale).fill_null(False)
    if not longer.any():
        return out
    rows = longer.arg_true()
    return out.scatter(rows, _rounded_once(s.gather(rows), target))


def _rounded_once(s: pl.Series, target: pl.Decimal) -> pl.Series:
    """Text with more fraction digits than the scale: cut after the scale, the first digit cut
    decides (half away from zero needs no other)."""
    parts = s.str.extract_groups(rf"^([+-]?)(\d*)\.(\d{{{target.scale}}})(\d)\d*$").struct.unnest()
    parts.columns = ["sign", "whole", "kept", "first_cut"]
    p, sc = target.precision, target.scale
    ulp, largest = (pl.lit(t).cast(target) for t in  # from text: 38-digit literals do not infer
                    (f"0.{'0' * (sc - 1)}1" if sc else "1", "9" * (p - sc) + (f".{'9' * sc}" if sc else "")))
    frame = parts.select(
        pl.concat_str([pl.col("sign"), pl.lit("0"), pl.col("whole"), pl.lit("."), pl.col("kept")])
        .cast(target, strict=False).alias("cut"),
        pl.col("first_cut").is_in(list("56789")).fill_null(False).alias("up"),
        (pl.col("sign") == "-").alias("neg"))
    cut = pl.col("cut")
    return frame.select(  # at the largest value the precision holds: NULL, not an overflow error
        pl.when(~pl.col("up")).then(cut).when(cut.abs() >= largest).then(None)
        .when(pl.col("neg")).then(cut - ulp).otherwise(cut + ulp).cast(target, strict=False)
    ).to_series()


_EXPONENT_FORM = r"^([+-]?)(\d*)(?:\.(\d*))?[eE]([+-]?\d{1,3})$"  # larger exponents: overflow or 0 either way


def _plain_decimal_text(s: pl.Series) -> pl.Series:
    """Exponent forms spelt out in plain digits ('2.5e0' -> '2.5', '-1.5e-3' -> '-0.0015',
    '1e2' -> '100'), so that rounding sees the digits PostgreSQL sees; other text unchanged."""
    if not s.str.contains("e|E").any():  # the usual batch: nothing to spell out
        return s
    sign, whole, frac, exp = s.str.extract_groups(_EXPONENT_FORM).struct.unnest().get_columns()
    frame = pl.DataFrame({"s": s, "sign": sign, "whole": whole, "digits": whole + frac.fill_null(""),
                          "exp": exp.cast(pl.Int32, strict=False)})
    digits, n = pl.col("digits"), pl.col("digits").str.len_chars().cast(pl.Int32)
    point = pl.col("whole").str.len_chars().cast(pl.Int32) + pl.col("exp")
    plain = (pl.when(point <= 0).then(pl.concat_str([pl.lit("0."), digits.str.pad_start(n - point, "0")]))
             .when(point >= n).then(digits.str.pad_end(point, "0"))
             .otherwise(pl.concat_str([digits.str.slice(0, point), pl.lit("."), digits.str.slice(point)])))
    return frame.select(pl.when(n > 0).then(pl.concat_str([pl.col("sign"), plain])).otherwise(pl.col("s"))
                        ).to_series().alias(s.name)


# What PostgreSQL's numeric input reads (before version 16's underscores and hex)
NUMERIC_TEXT = r"^(?:[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|(?i:nan|[+-]?inf(?:inity)?))$"


def _numeric_text(e: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """A value for an unconstrained numeric: its exact text, NULL where it is not a number.
    The target parses the text, with no float in between to lose digits (a float itself goes
    as its shortest text, as pgloader and a text pipe send it)."""
    if dtype.is_numeric():  # integers and decimals print exactly, floats as their shortest text ('NaN', 'inf')
        return e.cast(pl.String)
    text = e.str.strip_chars() if dtype == pl.String else e.cast(pl.String, strict=False)
    return pl.when(text.str.contains(NUMERIC_TEXT)).then(text)


def _float_to_decimal(e: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """A float into numeric(p,s) as pgloader and a text pipe land it: its shortest text (the
    digits that read back as the same float), rounded half away from zero. A DOUBLE 1.005 is
    1.00499999999999989 in binary, and rounding the binary value gave 1.00 where they (and
    PostgreSQL's own float8 cast) store 1.01. NaN and infinities are NULL (queued as out of range)."""
    return _text_to_decimal(pl.when(e.is_finite()).then(e).cast(pl.String), target)


def _from_text(s: pl.Expr, kt: KoraType, target: pl.DataType) -> pl.Expr:
    if kt.is_text or kt.name == "bytes":
        return s.cast(target, strict=False)
    if kt.is_integer:
        as_int = s.cast(pl.Int64, strict=False)
        as_float = s.cast(pl.Float64, strict=False)
        # "12.0" is exactly 12: accepting it loses nothing.
        integral = pl.when(as_float == as_float.round(0)).then(as_float).otherwise(None)
        return pl.coalesce([as_int, integral.cast(pl.Int64, strict=False)])
    if kt.name == "numeric" and kt.precision:
        return _text_to_decimal(s, target)
    if kt.name == "real":
        return _real(s.cast(pl.Float64, strict=False))
    if kt.name == "double":
        return s.cast(target, strict=False)
    if kt.name == "boolean":
        key = s.str.to_lowercase()
        return pl.when(key.is_in(TRUE_WORDS)).then(True).when(key.is_in(FALSE_WORDS)).then(False).otherwise(None)
    if kt.name == "date":
        return pl.coalesce([s.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
                            s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False).dt.date(),
                            _before_christ(s)])
    if kt.name in ("timestamp", "timestamptz"):
        parsed = pl.coalesce([s.str.strptime(pl.Datetime("us"), f, strict=False) for f in TIMESTAMP_FORMATS])
        if kt.name == "timestamp":
            return parsed
        # with an offset ('2024-01-02 01:04:05+05:30', PostgreSQL's text of a timestamptz): the
        # instant it names; without one, the time in UTC
        offset = [s.str.strptime(pl.Datetime("us", "UTC"), f + "%#z", strict=False) for f in TIMESTAMP_FORMATS[:2]]
        return pl.coalesce([*offset, parsed.dt.replace_time_zone("UTC")])
    if kt.name == "time":
        return pl.coalesce([s.str.strptime(pl.Time, f, strict=False) for f in ("%H:%M:%S%.f", "%H:%M")])
    return s.cast(target, strict=False)


def _before_christ(s: pl.Expr) -> pl.Expr:
    """PostgreSQL's text of a date before the year 1 ('4713-01-01 BC'; year 1 BC is year 0).
    Components are checked as a date of the same year AD first (``pl.date`` raises on an
    impossible one); 29 February is left to the queue, leap years differ across the shift."""
    digits = s.str.extract(r"^(\d{4,}-\d\d-\d\d) BC$", 1)
    ad = digits.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    ok = ad.is_not_null() & ~((ad.dt.month() == 2) & (ad.dt.day() == 29))
    return pl.date(pl.when(ok).then(1 - ad.dt.year()), pl.when(ok).then(ad.dt.month()), pl.when(ok).then(ad.dt.day()))


def range_ok(out: pl.Expr, kt: KoraType) -> pl.Expr | None:
    """Rows whose value fits the target type's range (integers); None when nothing to check."""
    if kt.is_integer and kt.name != "bigint":
        lo, hi = INT_BOUNDS[kt.name]
        return out.is_null() | out.is_between(lo, hi)
    return None


def failure_class(kt: KoraType) -> str:
    if kt.is_numeric:
        return "parse.number"
    if kt.name == "date":
        return "parse.date"
    if kt.name in ("timestamp", "timestamptz"):
        return "parse.timestamp"
    return f"parse.{kt.name}"


def classify_cast_failure(raw_text: pl.Expr, kt: KoraType) -> pl.Expr:
    """The error class of a value that did not cast: sentinel, overflow or a parse error."""
    key = raw_text.str.strip_chars().str.to_lowercase()
    f = raw_text.str.strip_chars().cast(pl.Float64, strict=False)
    if kt.is_integer:
        numeric_overflow = f.is_not_null() & (f == f.round(0))
    elif kt.name == "numeric":
        numeric_overflow = f.is_not_null()
    elif kt.name == "real":
        numeric_overflow = _beyond_real(f)
    else:
        numeric_overflow = pl.lit(False)
    return (
        pl.when(raw_text.str.contains(ZERO_DATE)).then(pl.lit("sentinel.zero_date"))
        .when(key.is_in(list(PLACEHOLDERS))).then(pl.lit("sentinel.placeholder"))
        .when(numeric_overflow).then(pl.lit("range.overflow"))
        .otherwise(pl.lit(failure_class(kt)))
    )
