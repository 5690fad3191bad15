"""Rule-based candidate generation: fixes from the closed operator set that fit every value.

Each generator looks at *all* distinct failing values of a group (one signature) and proposes
only chains that are consistent with every one of them. Where the values allow more than one
reading with different results (``01/02/2003``: day-first or month-first, ``1,234``: a
thousands separator or a decimal comma) and nothing in the column decides it, the group gets
an *ambiguity* verdict instead of a guess.

Everything here is vectorized over the distinct values with polars; Python runs per
candidate format, never per value.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import polars as pl

from kora_assets.plan.model import ColumnPlan, Settings, TablePlan
from kora_assets.recovery.classify import UNFIXABLE, Signature
from kora_assets.recovery.library import ZERO_DATES, is_lossy
from kora_assets.transforms.operators import (PLACEHOLDERS, CaseFoldToAllowed, CollapseWhitespace, Default,
                                              FixMojibake, Lower, MapValues, NullIf, ParseBoolean, ParseDate,
                                              ParseNumber, ParseTimestamp, RemoveNul, Scale, SplitFromSibling,
                                              Trim, Truncate, Upper, MOJIBAKE_PATTERN, SPLIT_SEPARATORS, _rx_escape)

#: Date formats tried, most common first. Two-digit years are left out on purpose: their
#: century is a guess. Year-day-month orders are left out: no system writes them.
DATE_FORMATS = [
    "%d.%m.%Y", "%m.%d.%Y", "%Y.%m.%d", "%d/%m/%Y", "%m/%d/%Y", "%Y/%m/%d", "%d-%m-%Y", "%m-%d-%Y",
    "%Y%m%d", "%d%m%Y", "%m%d%Y", "%B %d, %Y", "%b %d, %Y", "%B %d %Y", "%b %d %Y", "%d %B %Y", "%d %b %Y",
    "%d-%b-%Y", "%d. %B %Y", "%A, %B %d, %Y", "%Y-%m-%d",
]
TIME_SUFFIXES = [" %H:%M:%S", " %H:%M", "T%H:%M:%S", " %H:%M:%S%.f", " %I:%M %p", " %I:%M:%S %p"]

#: (decimal, thousands) conventions for formatted numbers.
NUMBER_CONVENTIONS = [(".", ","), (".", ""), (",", "."), (",", ""), (".", " "), (",", " "), (".", "'"), (",", "'")]
_CURRENCY = r"[$€£¥]|\b(?:USD|EUR|GBP|JPY)\b"

#: Boolean spellings beyond the target's own (which already cast): per language.
BOOL_WORDS = [
    (["j", "ja"], ["n", "nein"]), (["s", "si", "sí"], ["n", "no"]), (["o", "oui"], ["n", "non"]),
    (["x", "+", "✓", "check"], ["", "-"]), (["active", "enabled"], ["inactive", "disabled"]),
]


@dataclass
class Candidate:
    ops: tuple
    origin: str = "rules"  # rules | llm | library
    note: str = ""
    fix_id: int | None = None  # set for library fixes

    @property
    def lossy(self) -> bool:
        return is_lossy(self.ops)

    @property
    def key(self) -> str:
        from kora_assets.recovery.library import ops_key

        return ops_key(self.ops)


@dataclass
class Generation:
    """What the rules say about a group: candidates, or why none can exist."""

    candidates: list[Candidate] = field(default_factory=list)
    ambiguous: str | None = None  # why the values allow different readings
    unfixable: str | None = None  # why no operator can repair this class
    ask_llm: bool = True  # whether a model could add anything


@dataclass
class GroupContext:
    sig: Signature
    source_column: str
    column: ColumnPlan
    values: pl.Series  # distinct failing raw values, as text
    settings: Settings
    passing: pl.Series | None = None  # text of values of this column that pass (profile)
    today: dt.date = field(default_factory=dt.date.today)
    #: for cross-column evidence: the group's failing rows (source columns), sample rows whose
    #: value of this column passes (source columns + ``__value``, the landed value as text),
    #: and the table's plan
    rows: pl.DataFrame | None = None
    passing_rows: pl.DataFrame | None = None
    table: TablePlan | None = None


def generate(ctx: GroupContext) -> Generation:
    cls = ctx.sig.error_class
    if cls in UNFIXABLE:
        return Generation(unfixable=UNFIXABLE[cls], ask_llm=False)
    if cls == "fk_orphan":
        return Generation(unfixable="the parent row does not exist in the target", ask_llm=False)
    fn = _GENERATORS.get(cls)
    if fn is None:
        return Generation()
    return fn(ctx)


def _text(ctx: GroupContext) -> pl.Series:
    return ctx.values.cast(pl.String, strict=False).drop_nulls()


# -- dates ------------------------------------------------------------------------------------

def _dates(ctx: GroupContext) -> Generation:
    kt = ctx.column.ktype
    values = _text(ctx).str.strip_chars()
    if values.len() == 0:
        return Generation()
    timestamp = kt.name in ("timestamp", "timestamptz")
    formats = list(DATE_FORMATS)
    if timestamp:
        formats += [f + t for f in DATE_FORMATS for t in TIME_SUFFIXES]
        formats += ["%Y%m%d%H%M%S"]
    dtype = pl.Datetime("us") if timestamp else pl.Date
    df = pl.DataFrame({"v": values})
    parsed = df.select([pl.col("v").str.strptime(dtype, f, strict=False).alias(str(i)) for i, f in enumerate(formats)])
    full = [i for i, f in enumerate(formats) if parsed[str(i)].null_count() == 0]
    if not full:
        best = max(range(len(formats)), key=lambda i: values.len() - parsed[str(i)].null_count())
        n = values.len() - parsed[str(best)].null_count()
        why = (f"no date format fits every value (best: {formats[best]!r} fits {n} of {values.len()})" if n
               else "no known date format fits these values")
        return Generation(ambiguous=why if n else None)
    readings: dict[tuple, list[int]] = {}
    for i in full:
        readings.setdefault(tuple(parsed[str(i)].to_list()), []).append(i)
    if len(readings) > 1:
        (a, ia), (b, ib) = list(readings.items())[:2]
        k = next(j for j in range(len(a)) if a[j] != b[j])
        return Generation(ambiguous=(
            f"ambiguous date order: {values[k]!r} reads as {a[k]} with {formats[ia[0]]!r} and as {b[k]} with "
            f"{formats[ib[0]]!r}, and no value of the column decides it"), ask_llm=False)
    fmts = [formats[i] for i in next(iter(readings.values()))]
    op = ParseTimestamp(formats=[fmts[0]]) if timestamp else ParseDate(formats=[fmts[0]])
    return Generation([Candidate((op,), note=f"date format {fmts[0]} fits all {values.len()} values")], ask_llm=False)


def _zero_date(ctx: GroupContext) -> Generation:
    vals = sorted(set(_text(ctx).str.strip_chars().to_list()))
    ops = (NullIf(values=vals, case_insensitive=True),)
    if all(v in ZERO_DATES or re.match(r"^0{4}-0{2}-0{2}", v) for v in vals):
        return _null_or_default(ctx, ops, "a zero date means no date")
    return Generation()


# -- numbers ----------------------------------------------------------------------------------

def _well_formed(s: pl.Expr, dec: str, th: str) -> pl.Expr:
    d, t = re.escape(dec), re.escape(th)
    grouped = rf"\d{{1,3}}(?:{t}\d{{3}})+|" if th else ""
    return s.str.contains(rf"^[+-]?(?:{grouped}\d+)(?:{d}\d+)?$")


def _numbers(ctx: GroupContext) -> Generation:
    values = _text(ctx)
    if values.len() == 0:
        return Generation()
    df = pl.DataFrame({"v": values})
    core = pl.col("v").str.strip_chars().str.replace_all(_CURRENCY, "").str.strip_chars()
    percent = bool(df.select(core.str.ends_with("%").any()).item())
    all_percent = bool(df.select(core.str.ends_with("%").all()).item())
    if percent and not all_percent:
        return Generation(ambiguous="some values carry % and some do not")
    core = core.str.strip_suffix("%").str.strip_chars()
    readings: dict[tuple, ParseNumber] = {}
    for dec, th in NUMBER_CONVENTIONS:
        ok = df.select(_well_formed(core, dec, th).all()).item()
        if not ok:
            continue
        op = ParseNumber(decimal=dec, thousands=th, percent=percent)
        out = df.select(op.expr(pl.col("v")).cast(pl.Float64, strict=False).alias("x"))["x"]
        if out.null_count():
            continue
        readings.setdefault(tuple(out.to_list()), op)
    if len(readings) > 1:
        (a, oa), (b, ob) = list(readings.items())[:2]
        k = next(j for j in range(len(a)) if a[j] != b[j])
        return Generation(ambiguous=(f"ambiguous number format: {values[k]!r} reads as {a[k]:g} (decimal "
                                     f"{oa.decimal!r}) and as {b[k]:g} (decimal {ob.decimal!r})"), ask_llm=False)
    if readings:
        op = next(iter(readings.values()))
        cands = [Candidate((op,), note=f"number format decimal={op.decimal!r} thousands={op.thousands!r}")]
        if percent:  # 12.5% is 12.5 in a percentage column and 0.125 in a fraction column
            cands.append(Candidate((op, Scale(factor=0.01)), note="percent as a fraction"))
        return Generation(cands, ask_llm=False)
    return _units(ctx, values)


_UNIT = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s*([^\W\d_][\w .\-/]*)$")


def _units(ctx: GroupContext, values: pl.Series) -> Generation:
    """``12.0 oz`` -> ``12.0``: a number followed by a unit word, the same way in every value."""
    df = pl.DataFrame({"v": values}).with_columns(
        num=pl.col("v").str.extract(_UNIT.pattern, 1), unit=pl.col("v").str.extract(_UNIT.pattern, 2))
    if df["num"].null_count() or df.height > 5000:
        return Generation()
    units = df["unit"].str.to_lowercase().str.replace_all(r"[.\s]+", " ").str.strip_chars().unique()
    if units.len() > 3:
        return Generation(ambiguous=f"numbers carry {units.len()} different suffixes; which are units is unclear")
    mapping = dict(zip(df["v"].to_list(), df["num"].to_list()))
    return Generation([Candidate((MapValues(mapping=mapping),),
                                 note=f"strip the unit suffix {', '.join(sorted(units.to_list()))!s}")], ask_llm=False)


# -- sentinels, encodings, text ------------------------------------------------------------------

def _null_or_default(ctx: GroupContext, ops: tuple, why: str) -> Generation:
    if ctx.column.nullable:
        return Generation([Candidate(ops, note=why)], ask_llm=False)
    if ctx.column.default is not None:
        return Generation([Candidate(ops + (Default(value=ctx.column.default),),
                                     note=f"{why}; the column is NOT NULL, so its default fills in (lossy)")],
                          ask_llm=False)
    return Generation(unfixable=f"{why}, but the column is NOT NULL and has no default: no value can be derived",
                      ask_llm=False)


def _placeholder(ctx: GroupContext) -> Generation:
    vals = sorted(set(_text(ctx).str.strip_chars().str.to_lowercase().to_list()))
    if not all(v in PLACEHOLDERS for v in vals):
        return Generation()
    return _null_or_default(ctx, (NullIf(values=vals),), f"{', '.join(repr(v) for v in vals)} stands for a missing value")


def _not_null(ctx: GroupContext) -> Generation:
    split = _split_from_sibling(ctx)
    if split:
        return Generation(split, ask_llm=False)
    if ctx.column.default is not None:
        return Generation([Candidate((Default(value=ctx.column.default),), note="fill the column default (lossy)")],
                          ask_llm=False)
    return Generation(unfixable="NULL in a NOT NULL column with no default: the value cannot be derived", ask_llm=False)


#: A column can take its value from a sibling only if it is code-like: few distinct passing
#: values, each repeated (a state, a country code, a unit), not free text.
SPLIT_MAX_VALUES = 500
SPLIT_MIN_PASSING = 20
SPLIT_MIN_REPEAT = 3.0
#: ... and only if the sibling's passing values do not normally end that way themselves.
SPLIT_MAX_PASSING_SHARE = 0.01


def _split_from_sibling(ctx: GroupContext) -> list[Candidate]:
    """``state`` NULL with ``city`` ``'Bend OR'``: every failing row's sibling text ends in a
    separator and a value this column is known to take. Candidates (one per sibling that fits
    every row) for ``split_from_sibling``; none without that evidence.

    Evidence required, all vectorized: the column is code-like in the passing sample (at most
    ``SPLIT_MAX_VALUES`` distinct values, each seen ``SPLIT_MIN_REPEAT`` times on average); *every*
    failing row's sibling ends in ``<separator><known value>`` after a non-empty rest; and in the
    passing sample the sibling almost never ends that way (else the suffix is part of its values)."""
    rows, ok, tp = ctx.rows, ctx.passing_rows, ctx.table
    col = ctx.source_column
    if rows is None or ok is None or tp is None or rows.height == 0 or col not in rows.columns:
        return []
    blank = rows.select((pl.col(col).is_null() | (pl.col(col).cast(pl.String, strict=False).str.strip_chars() == ""))
                        .all()).item()
    if not blank:
        return []
    seps = "".join(x for x in SPLIT_SEPARATORS if x != " ")
    vals = ok["__value"].drop_nulls()
    vals = vals.filter(vals.str.len_chars().is_between(1, 64) & ~vals.str.contains(f"[{_rx_escape(seps)}]")
                       & (vals == vals.str.strip_chars()))
    known = vals.unique().sort()
    if (vals.len() < SPLIT_MIN_PASSING or known.len() == 0 or known.len() > SPLIT_MAX_VALUES
            or vals.len() / known.len() < SPLIT_MIN_REPEAT):
        return []
    # rest (not ending in a space or separator) | separator | a known value
    alt = "|".join(_rx_escape(v) for v in sorted(known.to_list(), key=lambda v: (-len(v), v)))
    pattern = rf"^(.*[^\s{_rx_escape(seps)}])(\s*[{_rx_escape(seps)}]\s*|\s+)({alt})\s*$"
    out = []
    for sib, sp in tp.columns.items():
        if sib == col or sib not in rows.columns or not sp.ktype.is_text:
            continue
        text = rows[sib].cast(pl.String, strict=False)
        sep = text.str.extract(pattern, 2)
        if text.null_count() or sep.null_count():
            continue  # some failing row's sibling carries no such suffix
        if sib in ok.columns and ok.height:
            both = ok.filter(pl.col("__value").is_not_null())[sib].cast(pl.String, strict=False)
            if both.len() and float(both.str.contains(pattern).fill_null(False).mean()) > SPLIT_MAX_PASSING_SHARE:
                continue  # the sibling's values end like this anyway: the suffix belongs to them
        used = set(sep.str.strip_chars().unique().to_list())
        separators = [x for x in SPLIT_SEPARATORS if (x.strip() or "") in used]
        op = SplitFromSibling(sibling=sib, separators=separators, values=known.to_list())
        out.append(Candidate((op,), note=(f"{rows.height} row(s): {sib} ends in a separator and a known value of "
                                          f"{col} ({known.len()} known); move it over")))
    return out


def _mojibake(ctx: GroupContext) -> Generation:
    return Generation([Candidate((FixMojibake(),), note="undo UTF-8 read as Latin-1/CP1252"),
                       Candidate((FixMojibake(), FixMojibake()), note="undo a double mis-decode")], ask_llm=False)


def _nul(ctx: GroupContext) -> Generation:
    return Generation([Candidate((RemoveNul(),), note="drop NUL bytes (C string padding)"),
                       Candidate((RemoveNul(), Trim()), note="drop NUL bytes and padding")], ask_llm=False)


def _text_shapes() -> list[tuple]:
    return [(Trim(),), (CollapseWhitespace(),), (Trim(), Upper()), (Trim(), Lower()), (RemoveNul(), Trim()),
            (FixMojibake(), Trim())]


def _too_long(ctx: GroupContext) -> Generation:
    cands = [Candidate(ops, note="normalise whitespace/case") for ops in _text_shapes()]
    if ctx.column.ktype.length:
        cands.append(Candidate((Trim(), Truncate(length=ctx.column.ktype.length)), note="truncate (lossy)"))
    return Generation(cands)


def _enum(ctx: GroupContext) -> Generation:
    allowed = ctx.column.rules.allowed or []
    if not allowed:
        return Generation()
    return Generation([Candidate((CaseFoldToAllowed(allowed=allowed),), note="case/space variant of an allowed value"),
                       Candidate((CollapseWhitespace(), CaseFoldToAllowed(allowed=allowed)), note="inner spaces too"),
                       Candidate((FixMojibake(), CaseFoldToAllowed(allowed=allowed)), note="mojibake of an allowed value")])


def _regex(ctx: GroupContext) -> Generation:
    return Generation([Candidate(ops, note="normalise whitespace/case") for ops in _text_shapes() + [(Upper(),), (Lower(),)]])


def _boolean(ctx: GroupContext) -> Generation:
    words = set(_text(ctx).str.strip_chars().str.to_lowercase().to_list())
    for true, false in BOOL_WORDS:
        if words <= set(true) | set(false):
            return Generation([Candidate((ParseBoolean(true=true + ["1", "true", "t", "y", "yes"],
                                                       false=false + ["0", "false", "f", "n", "no"]),),
                                         note=f"boolean words {sorted(words)}")], ask_llm=False)
    return Generation()


_GENERATORS = {
    "parse.date": _dates, "parse.timestamp": _dates, "sentinel.zero_date": _zero_date,
    "parse.number": _numbers, "sentinel.placeholder": _placeholder, "constraint.not_null": _not_null,
    "encoding.mojibake": _mojibake, "encoding.nul_byte": _nul, "length.too_long": _too_long,
    "enum.unknown_value": _enum, "rule.regex": _regex, "parse.boolean": _boolean,
}

__all__ = ["Candidate", "Generation", "GroupContext", "generate", "DATE_FORMATS", "MOJIBAKE_PATTERN"]
