"""Anomaly scores for text columns: values far from the rest of their column.

Placeholders, keyboard mash and test data look nothing like the rest of a name or notes
column. Per column, over the distinct values (each once, whatever its row count, so a frequent
placeholder cannot pull the column towards itself), two robust z-scores (median and MAD,
the MAD floored so a near-uniform column does not magnify noise) are averaged:

* **embedding distance**: the cosine distance of the value's MiniLM vector from the column's
  centroid (the mean direction after trimming the farthest 5 %): what the value *means*
  compared with the column (``N/A``, ``Test User``, ``lorem ipsum`` in a name column);
* **character-trigram rarity**: the mean -log share of the column's other values containing
  each of its character trigrams: what an uncased sub-word encoder sees poorly (``xcvbnm``,
  ``jjjjjjj``), and a real but rare name does not trip (its trigrams occur in other names).

Values scoring at least the threshold (default 4.5) are anomalies: flagged in the semantic
asset check, or queued when the plan says ``semantic: <type>:block``. On the planted benchmark
(bench/semantic_bench.py) each score alone costs either recall or false positives; the mean
separates both name and notes columns at the same threshold.

The encoder is the expensive part, so at most ``max_embed`` distinct values are embedded per
call: the most repeated quarter (placeholders are typed again and again), the most
trigram-rare third, values of a rare *shape* (letters/digits/punctuation pattern), and a
random sample of the rest; values not embedded get no score. The column's centroid and the
distance spread come from the random sample alone: the targeted picks are chosen for looking
odd, and as part of the reference they pulled the centre towards themselves and widened the
spread, hiding a third of the placeholder names.
"""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

DEFAULT_THRESHOLD = 4.5
# Distinct values embedded per column and partition: bounds the CPU cost (the encoder took ~20 s
# of the coordinator in a TPC-H SF1 migration at 256). bench/semantic_bench.py, seeds 1-4, 0 false
# positives throughout: F1 0.982, 0.978, 0.977, 0.980 at 128 and 0.990, 0.987, 0.984, 0.986 at 256,
# against 0.977, 0.971, 0.972, 0.973 at 256 before the repeat picks and the random reference.
MAX_EMBED = 128
MAX_SCORED = 20_000  # distinct values scored by trigram rarity per column and partition
MIN_VALUES = 20  # fewer distinct values than this: no meaningful centroid, no scores
MIN_SPREAD = 0.04  # lower bound of the distance spread (natural name/e-mail/notes columns: 0.06-0.08)
MIN_TRIGRAM_SPREAD = 0.3  # lower bound of the trigram-rarity spread


@dataclass(frozen=True)
class Anomaly:
    value: str
    score: float
    rows: int = 1
    keys: tuple = field(default=(), compare=False)


def _robust_z(d: np.ndarray, floor: float, ref: np.ndarray | None = None) -> np.ndarray:
    """Robust z of ``d`` against the median and MAD of ``ref`` (default: ``d`` itself)."""
    ref = d if ref is None else ref
    med = float(np.median(ref))
    # floor the spread: in a near-uniform column tiny differences must not score
    mad = max(float(np.median(np.abs(ref - med))) * 1.4826, floor)
    return (d - med) / mad


def trigram_rarity(values: list[str]) -> np.ndarray:
    """Mean -log document frequency of each value's character trigrams among the *other* values.

    In polars, one row per value and trigram position, a slice of the values at a time: all
    20k values of a comment column at once held ~400 MB of trigrams; a Python loop took 3x
    as long.
    """
    n = max(len(values), 2)
    if not values:
        return np.zeros(0)
    padded = pl.DataFrame({"v": values}, schema={"v": pl.String}).select(
        pl.concat_str(pl.lit("^^"), pl.col("v").str.to_lowercase(), pl.lit("$")).alias("v")).with_row_index("i")
    slices = [padded.slice(o, _TRIGRAM_SLICE) for o in range(0, padded.height, _TRIGRAM_SLICE)]
    doc_freq = (pl.concat([_trigrams(b).unique().group_by("g").len("df") for b in slices])
                .group_by("g").agg(pl.col("df").sum()))
    scored = pl.concat([_trigrams(b).join(doc_freq, on="g").group_by("i")
                        .agg((-((pl.col("df") - 1 + 0.5) / n).log()).mean().alias("r")) for b in slices])
    return scored.sort("i")["r"].to_numpy().astype(np.float64)


_TRIGRAM_SLICE = 2_000  # values per slice: ~250k trigram rows for comment-length text


def _trigrams(frame: pl.DataFrame) -> pl.DataFrame:
    """(value index, trigram) for every trigram position of every value."""
    return (frame.with_columns(pl.int_ranges(0, pl.col("v").str.len_chars() - 2).alias("p")).explode("p")
            .select("i", pl.col("v").str.slice(pl.col("p"), 3).alias("g")))


def _shapes(values: list[str]) -> list[str]:
    s = pl.Series(values, dtype=pl.String)
    shape = (s.str.replace_all(r"\p{Lu}+", "A").str.replace_all(r"\p{Ll}+", "a").str.replace_all(r"\d+", "9")
             .str.replace_all(r"\s+", " "))
    return (shape + "|" + (s.str.len_chars() // 8).cast(pl.String)).to_list()


def choose_for_embedding(values: list[str], rarity: np.ndarray, max_embed: int = MAX_EMBED, seed: int = 0,
                         freq: np.ndarray | None = None) -> tuple[list[int], set[int]]:
    """Indexes to embed: all if few; else the most repeated, the most trigram-rare, every rare
    shape, and a sample of the rest.

    Repeats first: in a column of mostly unique values (names, notes) a placeholder is typed
    again and again (``N/A``, ``Test User``), while its trigrams are common, so rarity alone
    leaves it to the random sample (bench/semantic_bench.py: placeholder names are most of
    what a budget misses). Only values seen more often than the column's median count qualify.
    """
    if len(values) <= max_embed:
        return list(range(len(values))), set(range(len(values)))
    picked: set[int] = set()
    if freq is not None and len(freq) == len(values):
        repeated = np.flatnonzero(freq > max(1.0, float(np.median(freq))))
        picked |= set(repeated[np.argsort(-freq[repeated], kind="stable")][: max_embed // 4].tolist())
    picked |= set([i for i in np.argsort(-rarity).tolist() if i not in picked][: max_embed // 3])
    shapes = _shapes(values)
    freq_shape = Counter(shapes)
    rare_cut = max(2, int(0.005 * len(values)))
    rng = random.Random(seed)
    # Free text makes almost every shape rare: take a bounded share of them, never all.
    rare = [i for i, s in enumerate(shapes) if freq_shape[s] <= rare_cut and i not in picked]
    reserve = max(MIN_VALUES, max_embed // 6)  # the random reference sample (see score_distinct)
    picked |= set(rng.sample(rare, max(0, min(len(rare), max_embed // 3, max_embed - len(picked) - reserve))))
    rest = [i for i in range(len(values)) if i not in picked]
    drawn = set(rng.sample(rest, max(0, min(max_embed - len(picked), len(rest)))))
    return sorted(picked | drawn), drawn


def score_distinct(values: list, encoder, *, max_embed: int = MAX_EMBED, seed: int = 0,
                   rows: dict[str, int] | None = None) -> dict[str, float]:
    """Anomaly score of (a budgeted subset of) the distinct values: mean of two robust z-scores.

    ``find_anomalies`` hands at most ``MAX_SCORED`` values (sampled in polars), and ``rows``,
    each value's row count, which steers the embedding budget (``choose_for_embedding``)."""
    distinct = sorted({v.strip() for v in values if v is not None and v.strip()})
    if len(distinct) < MIN_VALUES:
        return {}
    rarity = _robust_z(trigram_rarity(distinct), MIN_TRIGRAM_SPREAD)
    freq = np.array([rows.get(v, 1) for v in distinct], dtype=np.float64) if rows else None
    idx, drawn = choose_for_embedding(distinct, rarity, max_embed, seed, freq)
    chosen = [distinct[i] for i in idx]
    V = encoder.encode(chosen)
    # The column's centre and spread come from the values drawn at random: the rest of the
    # selection is picked *for* looking odd, and would pull the centre and widen the spread.
    ref = np.array([i in drawn for i in idx])
    if ref.sum() < MIN_VALUES:
        ref[:] = True
    c = V[ref].mean(0)
    d = 1.0 - V[ref] @ (c / (np.linalg.norm(c) + 1e-12))
    c = V[ref][d <= np.quantile(d, 0.95)].mean(0)
    d = 1.0 - V @ (c / (np.linalg.norm(c) + 1e-12))
    z = (_robust_z(d, MIN_SPREAD, d[ref]) + rarity[idx]) / 2.0
    return {v: float(s) for v, s in zip(chosen, z)}


def find_anomalies(series: pl.Series, encoder, *, threshold: float = DEFAULT_THRESHOLD, keys: pl.Series | None = None,
                   max_embed: int = MAX_EMBED, top: int | None = None, counts: pl.Series | None = None) -> list[Anomaly]:
    """Values of a column scoring above ``threshold``, worst first, with row counts and sample keys.

    ``counts``: the row count of each entry of ``series`` when it holds distinct values
    (a ``GROUP BY``); otherwise every entry is one row."""
    s = series.cast(pl.String, strict=False)
    frame = pl.DataFrame({"v": s.str.strip_chars(), "k": keys if keys is not None else pl.Series([None] * len(s)),
                          "n": counts.cast(pl.Int64) if counts is not None else pl.repeat(1, len(s), eager=True)})
    frame = frame.filter(pl.col("v").is_not_null() & (pl.col("v").str.len_chars() > 0))
    if frame.height == 0:
        return []
    distinct = frame.group_by("v").agg(pl.col("n").sum()).sort("v")
    if distinct.height > MAX_SCORED:  # bound the trigram pass; sampled here, not as 200k Python strings
        distinct = distinct.sample(MAX_SCORED, seed=0)
    rows = dict(zip(distinct["v"].to_list(), distinct["n"].to_list()))
    scores = score_distinct(list(rows), encoder, max_embed=max_embed, rows=rows)
    bad = {v: z for v, z in scores.items() if z >= threshold}
    if not bad:
        return []
    grouped = (frame.filter(pl.col("v").is_in(list(bad))).group_by("v")
               .agg(pl.col("n").sum(), pl.col("k").head(5).alias("keys")))
    out = [Anomaly(v, round(bad[v], 2), int(n), tuple(x for x in ks if x is not None))
           for v, n, ks in grouped.iter_rows()]
    out.sort(key=lambda a: -a.score)
    return out[:top] if top else out
