"""Plausibility rules per semantic type: valid for the schema, implausible for what the column means.

A rule is data (a kind from a closed set, with parameters), never code: the built-in rules
below, and the rules the validation pattern library learns (``checks.semantic.library``), are
compiled by the same ``rule_check`` into a vectorized polars ``RecordCheck`` on the column's
cast output (``CompiledColumn.o``). A failing row goes to the error queue as
``semantic.implausible`` with a reason that names the rule (``[rule birth_date.not_future]``);
implausible values are never "fixed": they wait for a steward.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field

import polars as pl

from checks.record import RecordCheck
from checks.semantic.codes import COUNTRY_CODES, CURRENCY_CODES, NAME_PLACEHOLDERS
from kora_assets.transforms.casting import utf8_or_null
from kora_assets.transforms.compiler import CompiledColumn

ERROR_CLASS = "semantic.implausible"
RULE_TAG = re.compile(r"\[rule ([A-Za-z0-9_.#:\-]+)\]")

#: The closed set of rule kinds (a library rule is one of these with parameters).
KINDS = ("max_date_offset_days", "min_date", "min", "max", "regex", "in_set", "not_in_set", "has_letter",
         "digits_between", "not_one_repeated_char")

_SETS = {"iso3166": COUNTRY_CODES, "iso4217": CURRENCY_CODES, "name_placeholders": NAME_PLACEHOLDERS}

# built-in patterns tolerate surrounding blanks (the value is matched as cast, not trimmed)
EMAIL_RE = (r"^\s*[^\s@.\"(),:;<>\[\]\\]+(\.[^\s@.\"(),:;<>\[\]\\]+)*@"
            r"([\p{L}\p{N}]([\p{L}\p{N}\-]*[\p{L}\p{N}])?\.)+\p{L}{2,}\s*$")
URL_RE = r"(?i)^\s*((https?|ftp)://[^\s/?#@]+\.[^\s/?#@]+|www\.[^\s/?#@]+\.[a-z]{2,})([/?#]\S*)?\s*$"
PHONE_RE = r"^\s*\+?[\d\s().\-/]+(\s*(x|ext\.?|#)\s*\d{1,6})?\s*$"
POSTAL_RE = r"^\s*[A-Za-z0-9][A-Za-z0-9 \-]{1,9}\s*$"


@dataclass(frozen=True)
class Rule:
    """One plausibility rule: ``name`` is what a reason and the library call it."""

    name: str  # e.g. birth_date.not_future, or library#12
    kind: str  # one of KINDS
    params: tuple = ()  # sorted (key, value) pairs; values JSON-able
    description: str = ""
    builtin: bool = True

    @classmethod
    def make(cls, name: str, kind: str, description: str = "", builtin: bool = True, **params) -> Rule:
        if kind not in KINDS:
            raise ValueError(f"unknown rule kind {kind!r}; known: {', '.join(KINDS)}")
        return cls(name, kind, tuple(sorted((k, _freeze(v)) for k, v in params.items())), description, builtin)

    @property
    def p(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.params}

    def params_json(self) -> str:
        return json.dumps(self.p, sort_keys=True, ensure_ascii=False)


def _freeze(v):
    return tuple(v) if isinstance(v, (list, tuple, set, frozenset)) else v


R = Rule.make
BUILTIN_RULES: dict[str, tuple[Rule, ...]] = {
    "birth_date": (
        R("birth_date.not_future", "max_date_offset_days", "in the future", days=0),
        R("birth_date.not_before_1900", "min_date", "before 1900-01-01", date="1900-01-01"),
    ),
    "event_timestamp": (
        R("event_timestamp.not_before_1900", "min_date", "before 1900-01-01", date="1900-01-01"),
        R("event_timestamp.not_far_future", "max_date_offset_days", "more than a year in the future", days=366),
    ),
    "age": (R("age.not_negative", "min", "negative", value=0), R("age.at_most_130", "max", "over 130", value=130)),
    "money_nonnegative": (R("money_nonnegative.not_negative", "min", "negative", value=0),),
    "quantity": (R("quantity.not_negative", "min", "negative", value=0),),
    "percentage": (R("percentage.not_negative", "min", "below 0", value=0),
                   R("percentage.at_most_100", "max", "over 100", value=100)),
    "email": (R("email.parses", "regex", "not an e-mail address", pattern=EMAIL_RE),),
    "phone": (R("phone.format", "regex", "has characters a phone number does not", pattern=PHONE_RE),
              R("phone.digits", "digits_between", "has too few or too many digits", min=6, max=15),
              R("phone.not_placeholder", "not_one_repeated_char", "is one digit repeated (a placeholder)")),
    "postal_code": (R("postal_code.format", "regex", "is not shaped like a postal code", pattern=POSTAL_RE),
                    R("postal_code.not_placeholder", "not_one_repeated_char", "is one character repeated")),
    "country_code": (R("country_code.exists", "in_set", "is not an ISO 3166-1 country code", set="iso3166"),),
    "currency_code": (R("currency_code.exists", "in_set", "is not an ISO 4217 currency code", set="iso4217"),),
    "url": (R("url.parses", "regex", "is not a URL", pattern=URL_RE),),
    "person_name": (R("person_name.not_placeholder", "not_in_set", "is a placeholder or test value",
                      set="name_placeholders"),
                    R("person_name.has_letter", "has_letter", "has no letter")),
}


def builtin_rules(semantic_type: str | None) -> tuple[Rule, ...]:
    return BUILTIN_RULES.get(semantic_type or "", ())


def _lit(s: str) -> pl.Expr:
    return pl.lit(s, dtype=pl.String)


def _as_date(c: CompiledColumn) -> pl.Expr | None:
    out, kt = pl.col(c.o), c.ktype
    if kt.name == "date":
        return out
    if kt.name in ("timestamp", "timestamptz"):
        return out.dt.date()
    if kt.is_text:
        return out.str.strip_chars().str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False)
    return None


def _as_number(c: CompiledColumn) -> pl.Expr | None:
    out, kt = pl.col(c.o), c.ktype
    if kt.is_numeric:
        return out.cast(pl.Float64, strict=False)
    if kt.is_text:
        return out.str.strip_chars().cast(pl.Float64, strict=False)
    return None


def _as_text(c: CompiledColumn) -> pl.Expr:
    return pl.col(c.o).cast(pl.String, strict=False).str.strip_chars()


def rule_fails(rule: Rule, c: CompiledColumn, today: dt.date) -> pl.Expr | None:
    """True where the rule fails (null where the value is null or not of a checkable shape)."""
    p = rule.p
    if rule.kind in ("max_date_offset_days", "min_date"):
        d = _as_date(c)
        if d is None:
            return None
        if rule.kind == "min_date":
            return d < pl.lit(dt.date.fromisoformat(p["date"]))
        return d > pl.lit(today + dt.timedelta(days=int(p["days"])))
    if rule.kind in ("min", "max"):
        x = _as_number(c)
        if x is None:
            return None
        return x < float(p["value"]) if rule.kind == "min" else x > float(p["value"])
    out = pl.col(c.o).cast(pl.String, strict=False)
    nonempty = out.str.contains(r"\S")  # cheaper than stripping every value
    if rule.kind == "regex":  # like the plan's own regex rule: on the value as cast
        return nonempty & ~out.str.contains(p["pattern"])
    if rule.kind in ("in_set", "not_in_set"):
        values = sorted({str(v).strip().lower() for v in (_SETS[p["set"]] if "set" in p else p["values"])} - {""})
        if len(values) <= 5000:  # one case-insensitive alternation: no lower-cased copy of the column
            hit = out.str.contains(_alternation(tuple(values)))
        else:
            hit = out.str.strip_chars().str.to_lowercase().is_in(values)
        return (nonempty & ~hit) if rule.kind == "in_set" else hit
    if rule.kind == "has_letter":  # something there (blanks too), and not one letter in it
        return (out.str.len_bytes() > 0) & ~out.str.contains(r"\p{L}")
    s = _as_text(c)
    nonempty = s.str.len_chars() > 0
    if rule.kind == "digits_between":
        n = s.str.replace(r"(?i)\s*(x|ext\.?|#)\s*\d{1,6}$", "").str.count_matches(r"\d")
        return nonempty & ((n < int(p["min"])) | (n > int(p["max"])))
    if rule.kind == "not_one_repeated_char":
        core = s.str.replace_all(r"[\s\-().+/]", "")
        return (core.str.len_chars() >= 3) & (core.str.strip_chars(core.str.slice(0, 1)).str.len_chars() == 0)
    raise ValueError(f"unknown rule kind {rule.kind!r}")


@functools.lru_cache(maxsize=256)
def _alternation(values: tuple[str, ...]) -> str:
    alts = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return rf"(?i)^\s*(?:{alts})\s*$"


def rule_check(rule: Rule, c: CompiledColumn, semantic_type: str, today: dt.date) -> RecordCheck | None:
    fails = rule_fails(rule, c, today)
    if fails is None:
        return None
    raw = utf8_or_null(pl.col(c.source))  # evaluated on failed rows only; bytes that are not UTF-8 are NULL
    shown = pl.concat_str([_lit("'"), raw.str.slice(0, 80), _lit("'")], ignore_nulls=True)
    what = rule.description or rule.kind.replace("_", " ")
    reason = pl.concat_str([shown, _lit(f" is implausible for {semantic_type} column {c.target}: {what} "
                                        f"[rule {rule.name}]")])
    return RecordCheck(c.target, fails, _lit(ERROR_CLASS), reason, raw)


def plausibility_checks(column: CompiledColumn, semantic_type: str, today: dt.date | None = None,
                        rules: tuple[Rule, ...] | None = None) -> list[RecordCheck]:
    """The record checks of a column's semantic type (built-in rules unless ``rules`` is given)."""
    today = today or dt.date.today()
    chosen = builtin_rules(semantic_type) if rules is None else rules
    return [ck for r in chosen if (ck := rule_check(r, column, semantic_type, today)) is not None]


def rule_name_of(reason: str | None) -> str | None:
    """The rule a ``semantic.implausible`` reason names."""
    m = RULE_TAG.search(reason or "")
    return m.group(1) if m else None


@dataclass
class RuleVerdicts:
    """How a sample of a column fares under a type's rules (to vet an inferred type)."""

    rows: int = 0
    failing: dict = field(default_factory=dict)  # rule name -> rows

    @property
    def pass_rate(self) -> float:
        bad = max(self.failing.values(), default=0)
        return 1.0 - bad / self.rows if self.rows else 1.0


def vet_sample(df: pl.DataFrame, column: CompiledColumn, semantic_type: str, today: dt.date) -> RuleVerdicts:
    """Evaluate the type's built-in rules on a transformed sample frame (with ``column.o``)."""
    checks = plausibility_checks(column, semantic_type, today)
    v = RuleVerdicts(rows=int(df.select(pl.col(column.o).is_not_null().sum()).item()))
    if not checks or not v.rows:
        return v
    res = df.select([ck.fails.fill_null(False).sum().alias(str(i)) for i, ck in enumerate(checks)]).row(0)
    names = [r.name for r in builtin_rules(semantic_type) if rule_fails(r, column, today) is not None]
    v.failing = {n: int(x) for n, x in zip(names, res) if x}
    return v
