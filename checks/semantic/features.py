"""Cheap per-column features from a sample of values: what the encoder alone sees poorly.

MiniLM reads the column's name and a few values well, but not numeric ranges (are all values
between 0 and 100? any negative?) or formats at scale. These features summarise a sample
(typically 50 values) in one polars pass per column; they are concatenated to the sentence
vector before the classifier's linear head.
"""
from __future__ import annotations

import math
import re

import polars as pl

from checks.semantic.types import storage_kind

KINDS = ("integer", "decimal", "date", "timestamp", "text", "boolean", "uuid", "other")

EMAIL_RE = r"^[^\s@]+@[^\s@.]+(\.[^\s@.]+)+$"
URL_RE = r"(?i)^(https?|ftp)://[^\s/?#]+\.[^\s]+$|^(?i)www\.[^\s]+\.[a-z]{2,}"
PHONE_RE = r"^\+?[\d\s().\-/]{7,}(\s*(x|ext\.?)\s*\d+)?$"
DATE_RE = r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?"

FEATURE_NAMES = (
    *(f"kind_{k}" for k in KINDS),
    "numeric", "integral", "negative", "in_0_1", "in_0_100", "in_0_130_int", "log_max_abs", "log_median_abs",
    "email", "url", "phone", "iso_date", "year_before_1990", "year_after_today", "year_median",
    "alpha2_upper", "alpha3_upper", "has_space", "has_digit", "letters_only", "mean_len", "distinct_ratio",
    "capitalised", "many_words",
)


def _split_words(name: str) -> str:
    """``birthDate`` / ``birth_date`` -> ``birth date`` (what the tokenizer reads best)."""
    s = re.sub(r"([a-z])([A-Z])", r"\1 \2", str(name))
    return re.sub(r"[_\-.]+", " ", s).strip().lower()


def column_text(table: str, column: str, ktype: str, values: list[str], max_values: int = 12) -> str:
    vals = [str(v)[:40] for v in values if v is not None and str(v).strip()][:max_values]
    return f"{_split_words(table)} . {_split_words(column)} ({ktype}): " + " ; ".join(vals)


def header_text(table: str, column: str, ktype: str) -> str:
    return f"{_split_words(column)} of {_split_words(table)} ({ktype})"


def column_features(values: list, ktype: str, today_year: int = 2026) -> list[float]:
    kind = storage_kind(ktype)
    feats = [1.0 if kind == k else 0.0 for k in KINDS]
    s = pl.Series("v", [None if v is None else str(v) for v in values], dtype=pl.String).drop_nulls()
    s = s.str.strip_chars()
    s = s.filter(s.str.len_chars() > 0)
    n = s.len()
    if n == 0:
        return feats + [0.0] * (len(FEATURE_NAMES) - len(KINDS))
    num = s.str.replace_all(r"[,$€£¥%\s]", "").cast(pl.Float64, strict=False)
    num = num.set(~num.is_finite().fill_null(True), None)  # '1e999' in a hex id is no number
    df = pl.DataFrame({"s": s, "x": num})
    x = pl.col("x")
    r = df.select(
        numeric=x.is_not_null().mean(),
        integral=((x.round(0) == x) & x.is_not_null()).sum() / pl.max_horizontal(x.is_not_null().sum(), pl.lit(1)),
        negative=(x < 0).sum() / pl.max_horizontal(x.is_not_null().sum(), pl.lit(1)),
        in_0_1=((x >= 0) & (x <= 1)).sum() / pl.max_horizontal(x.is_not_null().sum(), pl.lit(1)),
        in_0_100=((x >= 0) & (x <= 100)).sum() / pl.max_horizontal(x.is_not_null().sum(), pl.lit(1)),
        in_0_130_int=((x >= 0) & (x <= 130) & (x.round(0) == x)).sum() / pl.max_horizontal(x.is_not_null().sum(), pl.lit(1)),
        max_abs=x.abs().max(), median_abs=x.abs().median(),
        email=pl.col("s").str.contains(EMAIL_RE).mean(),
        url=pl.col("s").str.contains(URL_RE).mean(),
        phone=(pl.col("s").str.contains(PHONE_RE) & (pl.col("s").str.count_matches(r"\d") >= 7)).mean(),
        iso_date=pl.col("s").str.contains(DATE_RE).mean(),
        alpha2=pl.col("s").str.contains(r"^[A-Z]{2}$").mean(),
        alpha3=pl.col("s").str.contains(r"^[A-Z]{3}$").mean(),
        has_space=pl.col("s").str.contains(r"\s").mean(),
        has_digit=pl.col("s").str.contains(r"\d").mean(),
        letters_only=pl.col("s").str.contains(r"^[\p{L}' .\-]+$").mean(),
        mean_len=pl.col("s").str.len_chars().mean(),
        distinct=pl.col("s").n_unique() / pl.len(),
        capitalised=pl.col("s").str.contains(r"^\p{Lu}\p{Ll}").mean(),
        many_words=(pl.col("s").str.count_matches(r"\s+") >= 4).mean(),
    ).to_dicts()
    years = df.select(pl.col("s").str.extract(r"^(\d{4})-\d{2}-\d{2}", 1).cast(pl.Int32, strict=False).alias("y"))["y"]
    years = years.drop_nulls()
    ny = max(years.len(), 1)
    d = r[0]

    def lg(v):
        return math.log10(1.0 + abs(v)) / 10.0 if v is not None else 0.0

    feats += [
        d["numeric"] or 0.0, d["integral"] or 0.0, d["negative"] or 0.0, d["in_0_1"] or 0.0,
        d["in_0_100"] or 0.0, d["in_0_130_int"] or 0.0, lg(d["max_abs"]), lg(d["median_abs"]),
        d["email"] or 0.0, d["url"] or 0.0, d["phone"] or 0.0, d["iso_date"] or 0.0,
        float((years < 1990).sum()) / ny if years.len() else 0.0,
        float((years > today_year).sum()) / ny if years.len() else 0.0,
        (float(years.median()) - 1990.0) / 50.0 if years.len() else 0.0,
        d["alpha2"] or 0.0, d["alpha3"] or 0.0, d["has_space"] or 0.0, d["has_digit"] or 0.0,
        d["letters_only"] or 0.0, min((d["mean_len"] or 0.0) / 50.0, 4.0), d["distinct"] or 0.0,
        d["capitalised"] or 0.0, d["many_words"] or 0.0,
    ]
    assert len(feats) == len(FEATURE_NAMES)
    return [float(f) if math.isfinite(f) else 0.0 for f in feats]
