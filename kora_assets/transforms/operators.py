"""The closed operator vocabulary: plan transforms and learned fixes are the same typed data.

Every operator is a pydantic model with an ``op`` tag and parameters, and compiles to a polars
expression. Nothing here evaluates user or model supplied code: an LLM proposing a fix can
only pick one of these classes and fill in its fields, which pydantic checks.
"""
from __future__ import annotations

import functools
from typing import Annotated, Any, ClassVar, Literal, Union

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

PLACEHOLDERS = ("", "n/a", "na", "null", "none", "nil", "-", "--", "?", "unknown", "#n/a", "nan")


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    #: A lossy operator can lose information; it runs only where the plan allows lossy fixes.
    lossy: ClassVar[bool] = False

    def expr(self, e: pl.Expr) -> pl.Expr:  # pragma: no cover - abstract
        raise NotImplementedError


class Trim(_Op):
    """Strip leading/trailing whitespace (or the given characters)."""

    op: Literal["trim"] = "trim"
    chars: str | None = None

    def expr(self, e):
        return e.str.strip_chars(self.chars)


class CollapseWhitespace(_Op):
    op: Literal["collapse_whitespace"] = "collapse_whitespace"

    def expr(self, e):
        return e.str.replace_all(r"\s+", " ").str.strip_chars()


class Lower(_Op):
    op: Literal["lower"] = "lower"

    def expr(self, e):
        return e.str.to_lowercase()


class Upper(_Op):
    op: Literal["upper"] = "upper"

    def expr(self, e):
        return e.str.to_uppercase()


class MapValues(_Op):
    """Replace whole values by a mapping; unmapped values pass through unchanged."""

    op: Literal["map_values"] = "map_values"
    mapping: dict[str, str | None]
    case_insensitive: bool = False

    def expr(self, e):
        key = e.str.strip_chars().str.to_lowercase() if self.case_insensitive else e
        m = {(k.strip().lower() if self.case_insensitive else k): v for k, v in self.mapping.items()}
        hit = key.is_in(list(m.keys()))
        mapped = key.replace_strict(m, default=None, return_dtype=pl.String)
        return pl.when(hit).then(mapped).otherwise(e)


class CaseFoldToAllowed(_Op):
    """Map a value to the allowed value it equals after trimming and case folding."""

    op: Literal["case_fold_allowed"] = "case_fold_allowed"
    allowed: list[str]

    def expr(self, e):
        m = {a.strip().lower(): a for a in self.allowed}
        key = e.str.strip_chars().str.to_lowercase()
        return pl.when(key.is_in(list(m))).then(key.replace_strict(m, default=None)).otherwise(e)


class NullIf(_Op):
    """Turn placeholder values (``N/A``, ``-``, ``0000-00-00``) into NULL."""

    op: Literal["null_if"] = "null_if"
    values: list[str] = Field(default_factory=lambda: list(PLACEHOLDERS))
    case_insensitive: bool = True

    def expr(self, e):
        vals = [v.strip().lower() for v in self.values] if self.case_insensitive else self.values
        key = e.str.strip_chars().str.to_lowercase() if self.case_insensitive else e
        return pl.when(key.is_in(vals)).then(None).otherwise(e)


class Default(_Op):
    """Fill NULL with a constant. Lossy: it invents a value."""

    op: Literal["default"] = "default"
    value: str | int | float | bool
    lossy: ClassVar[bool] = True

    def expr(self, e):
        return e.fill_null(pl.lit(str(self.value)) if isinstance(self.value, str) else self.value)


class ParseDate(_Op):
    """Parse text dates with the first of ``formats`` that matches (strftime syntax)."""

    op: Literal["parse_date"] = "parse_date"
    formats: list[str] = Field(min_length=1)

    def expr(self, e):
        s = e.cast(pl.String).str.strip_chars()
        return pl.coalesce([s.str.strptime(pl.Date, f, strict=False) for f in self.formats])


class ParseTimestamp(_Op):
    op: Literal["parse_timestamp"] = "parse_timestamp"
    formats: list[str] = Field(min_length=1)

    def expr(self, e):
        s = e.cast(pl.String).str.strip_chars()
        return pl.coalesce([s.str.strptime(pl.Datetime("us"), f, strict=False) for f in self.formats])


class ParseNumber(_Op):
    """Normalise a formatted number: currency symbols/codes, thousands separators, decimal comma."""

    op: Literal["parse_number"] = "parse_number"
    decimal: Literal[".", ","] = "."
    thousands: Literal[",", ".", " ", "'", ""] = ","
    strip_currency: bool = True
    percent: bool = False  # strip a trailing % (value kept as is: 12.5% -> 12.5)

    @field_validator("thousands")
    @classmethod
    def _distinct(cls, v, info):
        if v and v == info.data.get("decimal"):
            raise ValueError("thousands separator must differ from the decimal separator")
        return v

    def expr(self, e):
        s = e.cast(pl.String).str.strip_chars()
        if self.strip_currency:
            s = s.str.replace_all(r"[$€£¥]|\b(?:USD|EUR|GBP|JPY)\b", "").str.strip_chars()
        if self.percent:
            s = s.str.strip_suffix("%").str.strip_chars()
        if self.thousands:
            s = s.str.replace_all(self.thousands, "", literal=True)
        if self.decimal == ",":
            s = s.str.replace_all(",", ".", literal=True)
        return s.str.replace_all(r"\s", "")


class ParseBoolean(_Op):
    op: Literal["parse_boolean"] = "parse_boolean"
    true: list[str] = Field(default_factory=lambda: ["1", "true", "t", "y", "yes"])
    false: list[str] = Field(default_factory=lambda: ["0", "false", "f", "n", "no"])

    def expr(self, e):
        key = e.cast(pl.String).str.strip_chars().str.to_lowercase()
        t, f = [v.lower() for v in self.true], [v.lower() for v in self.false]
        return pl.when(key.is_in(t)).then(True).when(key.is_in(f)).then(False).otherwise(None)


class RemoveNul(_Op):
    op: Literal["remove_nul"] = "remove_nul"

    def expr(self, e):
        return e.str.replace_all("\x00", "", literal=True)


class FixMojibake(_Op):
    """Undo UTF-8 text that was decoded as Latin-1/CP1252 (``JosÃ©`` -> ``José``)."""

    op: Literal["fix_mojibake"] = "fix_mojibake"

    def expr(self, e):
        bad, good = _mojibake_table()
        return e.str.replace_many(bad, good)


class Truncate(_Op):
    op: Literal["truncate"] = "truncate"
    length: int = Field(gt=0)
    lossy: ClassVar[bool] = True

    def expr(self, e):
        return e.str.slice(0, self.length)


class Round(_Op):
    op: Literal["round"] = "round"
    digits: int = Field(ge=0, le=12)
    lossy: ClassVar[bool] = True

    def expr(self, e):
        return e.cast(pl.Float64).round(self.digits)


class Scale(_Op):
    """Multiply a number (e.g. a fraction stored where a percentage is expected)."""

    op: Literal["scale"] = "scale"
    factor: float

    def expr(self, e):
        return e.cast(pl.Float64) * self.factor


#: Separators a cross-column split may cut at (a space stands for any run of whitespace).
SPLIT_SEPARATORS = (",", ";", "/", "|", " ")
_RX_META = set("\\.+*?()|[]{}^$#&-~")


def _rx_escape(s: str) -> str:
    """Escape for polars' (Rust) regex: only its metacharacters (Python's ``re.escape`` also
    escapes spaces, which the Rust engine rejects)."""
    return "".join("\\" + ch if ch in _RX_META else ch for ch in s)


class SplitFromSibling(_Op):
    """Move the trailing part of a sibling text column into this (empty) column.

    ``state`` NULL and ``city`` ``'Bend, OR'`` -> ``state`` ``'OR'`` and ``city`` ``'Bend'``. Only
    where this column is NULL or blank, the sibling ends in a separator followed by one of
    ``values`` (the values this column is known to take) and something non-empty precedes it;
    anywhere else both columns pass through unchanged.

    Cross-column: ``expr`` gives this column's value, ``sibling_expr`` the sibling's (the text
    before the separator). kora applies both halves together or neither, and audits both; see
    ``kora_assets.recovery.siblings``. ``sibling`` names a *source* column of the same table.
    """

    op: Literal["split_from_sibling"] = "split_from_sibling"
    sibling: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f]+$")
    separators: list[Literal[",", ";", "/", "|", " "]] = Field(min_length=1, max_length=len(SPLIT_SEPARATORS))
    values: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(min_length=1, max_length=2000)
    cross_column: ClassVar[bool] = True

    @field_validator("separators")
    @classmethod
    def _distinct_separators(cls, v):
        if len(set(v)) != len(v):
            raise ValueError("separators must be distinct")
        return v

    @field_validator("values")
    @classmethod
    def _clean_values(cls, v):
        if any(x != x.strip() for x in v):
            raise ValueError("values must not carry leading or trailing whitespace")
        if any(ch in x for x in v for ch in SPLIT_SEPARATORS if ch != " "):
            raise ValueError("a value must not contain a separator character")
        return v

    def _pattern(self) -> str:
        punct = [s for s in self.separators if s != " "]
        seps = [rf"\s*{_rx_escape(s)}\s*" for s in punct] + ([r"\s+"] if " " in self.separators else [])
        stop = _rx_escape("".join(punct))
        vals = "|".join(_rx_escape(x) for x in sorted(set(self.values), key=lambda x: (-len(x), x)))
        # rest: anything ending in a character that is neither a space nor a separator
        return rf"^(.*[^\s{stop}])(?:{'|'.join(seps)})({vals})\s*$"

    def _applies(self, this: pl.Expr) -> pl.Expr:
        blank = this.is_null() | (this.cast(pl.String, strict=False).str.strip_chars() == "")
        return (blank & pl.col(self.sibling).cast(pl.String, strict=False).str.contains(self._pattern())).fill_null(False)

    def expr(self, e):
        part = pl.col(self.sibling).cast(pl.String, strict=False).str.extract(self._pattern(), 2)
        return pl.when(self._applies(e)).then(part).otherwise(e.cast(pl.String, strict=False))

    def sibling_expr(self, this: pl.Expr) -> pl.Expr:
        """The sibling's new raw value (the text before the separator) where the split applies,
        else the sibling unchanged; ``this`` is this column's raw value."""
        sib = pl.col(self.sibling).cast(pl.String, strict=False)
        return pl.when(self._applies(this)).then(sib.str.extract(self._pattern(), 1)).otherwise(sib)


#: Operators a plan's ``transform`` may use: each reads and writes its own column only.
Operator = Annotated[
    Union[Trim, CollapseWhitespace, Lower, Upper, MapValues, CaseFoldToAllowed, NullIf, Default,
          ParseDate, ParseTimestamp, ParseNumber, ParseBoolean, RemoveNul, FixMojibake, Truncate,
          Round, Scale],
    Field(discriminator="op"),
]
#: Operators a learned fix may use (library, LLM, broadcast): the plan's, plus the cross-column
#: ones, which the recovery path applies to both of their columns at once.
FixOperator = Annotated[
    Union[Trim, CollapseWhitespace, Lower, Upper, MapValues, CaseFoldToAllowed, NullIf, Default,
          ParseDate, ParseTimestamp, ParseNumber, ParseBoolean, RemoveNul, FixMojibake, Truncate,
          Round, Scale, SplitFromSibling],
    Field(discriminator="op"),
]
OPERATOR_ADAPTER: TypeAdapter[Any] = TypeAdapter(FixOperator)
OPERATOR_LIST_ADAPTER: TypeAdapter[Any] = TypeAdapter(list[FixOperator])
OPERATOR_NAMES = sorted(a.model_fields["op"].default for a in _Op.__subclasses__()
                        if not getattr(a, "cross_column", False))


def cross_column_ops(ops) -> list:
    """The cross-column operators of a chain (looking inside a shape guard's chain too)."""
    out = []
    for op in ops:
        if getattr(op, "cross_column", False):
            out.append(op)
        out.extend(cross_column_ops(getattr(op, "ops", ()) or ()))
    return out


def check_chain(ops) -> None:
    """A chain with a cross-column operator is that operator alone (its two halves must see the
    same raw values); ``ValueError`` otherwise."""
    if cross_column_ops(ops) and len(ops) != 1:
        raise ValueError("a cross-column operator (split_from_sibling) must be the only operator of its fix")


def parse_operator(data: Any) -> _Op:
    """Validate untrusted operator data (library, LLM, broadcast) into an operator."""
    return OPERATOR_ADAPTER.validate_python(data)


def operator_json_schema() -> dict:
    """JSON schema of one operator: what an LLM is constrained to answer with."""
    return OPERATOR_ADAPTER.json_schema()


def apply_chain(e: pl.Expr, ops: list[_Op]) -> pl.Expr:
    for op in ops:
        e = op.expr(e)
    return e


@functools.cache
def _mojibake_table() -> tuple[list[str], list[str]]:
    """Every two-byte UTF-8 character as it looks after a Latin-1 or CP1252 mis-decode."""
    bad, good = [], []
    for cp in range(0x80, 0x800):
        ch = chr(cp)
        raw = ch.encode("utf-8")
        for enc in ("latin-1", "cp1252"):
            try:
                wrong = raw.decode(enc)
            except UnicodeDecodeError:
                continue
            if wrong != ch and wrong not in bad:
                bad.append(wrong)
                good.append(ch)
    return bad, good


#: Text that is almost surely mis-decoded UTF-8: a lead byte char followed by a continuation char.
MOJIBAKE_PATTERN = "[\u00c2-\u00df][\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178]"
