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
    return e.map_batches(_decode_batch, return_dtype=pl.String)


def _decode_batch(s: pl.Series) -> pl.Series:
    try:
        return s.cast(pl.String)
    except pl.exceptions.PolarsError:  # rare: decode value by value
        def decode(b: bytes | None) -> str | None:
            try:
                return None if b is None else b.decode("utf-8")
            except UnicodeDecodeError:
                return None
        return pl.Series(s.name, [decode(b) for b in s.to_list()], dtype=pl.String)


def cast_expr(e: pl.Expr, kt: KoraType, dtype: pl.DataType) -> pl.Expr:
    """``e`` (currently of ``dtype``) converted to ``kt``'s polars dtype, NULL where it can't be."""
    target = kt.polars_dtype()
    if dtype == target:
        return e
    if dtype == pl.String:
        return _from_text(e.str.strip_chars() if not kt.is_text else e, kt, target)
    if kt.is_integer:
        if dtype.is_float():
            return pl.when(e == e.round(0)).then(e).otherwise(None).cast(pl.Int64, strict=False)
        return e.cast(pl.Int64, strict=False)
    if kt.name == "boolean" and dtype.is_numeric():
        return e != 0
    if kt.is_text:
        return utf8_or_null(e) if dtype == pl.Binary else e.cast(pl.String)
    if kt.name == "date" and isinstance(dtype, pl.Datetime):
        return e.dt.date()
    if kt.name == "timestamptz" and isinstance(dtype, pl.Datetime) and dtype.time_zone is None:
        return e.dt.replace_time_zone("UTC")
    if isinstance(target, pl.Decimal) and dtype.is_float():
        # polars raises on a float too large for the decimal even when not strict: NULL it first
        # (the row is then queued as range.overflow), and NaN/inf with it
        limit = 10.0 ** (target.precision - target.scale) - 0.5 * 10.0 ** -target.scale
        fits = pl.when(e.is_finite() & (e.abs() < limit)).then(e).otherwise(None)
        return _half_away(fits, target).cast(target, strict=False)
    if isinstance(target, pl.Decimal) and isinstance(dtype, pl.Decimal) and (dtype.scale or 0) > target.scale:
        return _half_away(e, target).cast(target, strict=False)
    return e.cast(target, strict=False)


def _half_away(e: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """Rounded to the target's scale half away from zero, as PostgreSQL rounds into numeric(p,s):
    polars' cast rounds half to even (2.665 -> 2.66 where PostgreSQL stores 2.67)."""
    return e.round(target.scale, mode="half_away_from_zero")


def _text_to_decimal(s: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """Text parsed with spare fraction digits, then rounded like PostgreSQL (``_half_away``)."""
    spare = min(target.scale + 10, 38 - (target.precision - target.scale))
    if spare <= target.scale:  # no room for more digits (numeric(38,s)): round by the text's digits
        return _text_to_wide_decimal(s, target)
    return _half_away(s.cast(pl.Decimal(38, spare), strict=False), target).cast(target, strict=False)


def _text_to_wide_decimal(s: pl.Expr, target: pl.Decimal) -> pl.Expr:
    """Text into a numeric with 38 digits: no wider decimal holds spare digits, and polars'
    cast rounds half to even ('12.5' -> 12 where PostgreSQL stores 13). The fraction is cut
    after the scale, and the first digit cut decides the rounding, half away from zero. A
    value that rounds past the precision is NULL (queued as out of range, as PostgreSQL
    refuses it). Exponent forms ('1.5e1') keep polars' own cast."""
    digits = rf"^([+-]?)(\d*)\.(\d{{{target.scale}}})(\d)\d*$"
    cut = s.str.replace(digits, "${1}0${2}.${3}").cast(target, strict=False)
    up = s.str.extract(digits, 4).is_in(list("56789"))
    p, sc = target.precision, target.scale
    texts = (f"0.{'0' * (sc - 1)}1" if sc else "1", "9" * (p - sc) + (f".{'9' * sc}" if sc else ""), "0")
    ulp, largest, zero = (pl.lit(t).cast(target) for t in texts)  # from text: 38-digit literals do not infer
    room = pl.when(up & (cut.abs() >= largest)).then(None).otherwise(cut)  # the addition would overflow
    step = pl.when(up & s.str.starts_with("-")).then(-ulp).when(up).then(ulp).otherwise(zero)
    return (room + step).cast(target, strict=False)


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
    if kt.name in ("numeric", "real", "double"):
        return s.cast(target, strict=False)
    if kt.name == "boolean":
        key = s.str.to_lowercase()
        return pl.when(key.is_in(TRUE_WORDS)).then(True).when(key.is_in(FALSE_WORDS)).then(False).otherwise(None)
    if kt.name == "date":
        return pl.coalesce([s.str.strptime(pl.Date, "%Y-%m-%d", strict=False),
                            s.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S%.f", strict=False).dt.date()])
    if kt.name in ("timestamp", "timestamptz"):
        parsed = pl.coalesce([s.str.strptime(pl.Datetime("us"), f, strict=False) for f in TIMESTAMP_FORMATS])
        return parsed.dt.replace_time_zone("UTC") if kt.name == "timestamptz" else parsed
    if kt.name == "time":
        return pl.coalesce([s.str.strptime(pl.Time, f, strict=False) for f in ("%H:%M:%S%.f", "%H:%M")])
    return s.cast(target, strict=False)


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
    else:
        numeric_overflow = pl.lit(False)
    return (
        pl.when(raw_text.str.contains(ZERO_DATE)).then(pl.lit("sentinel.zero_date"))
        .when(key.is_in(list(PLACEHOLDERS))).then(pl.lit("sentinel.placeholder"))
        .when(numeric_overflow).then(pl.lit("range.overflow"))
        .otherwise(pl.lit(failure_class(kt)))
    )
