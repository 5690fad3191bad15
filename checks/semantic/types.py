"""Semantic types: what a column *means*, beyond its storage type.

A plan column may name one (``semantic: birth_date``), switch semantic validation off
(``semantic: off``), or ask that anomalies in it block rows instead of only being flagged
(``semantic: person_name:block``). Without a name the type is inferred by the classifier in
``checks.semantic.classifier`` (when the model is installed).
"""
from __future__ import annotations

from dataclasses import dataclass

#: The closed set of semantic types, in the order the classifier's head stores them.
SEMANTIC_TYPES: tuple[str, ...] = (
    "birth_date",         # a person's date of birth
    "event_timestamp",    # when something happened: created_at, order_date, paid_on
    "age",                # a person's age in years
    "money_nonnegative",  # an amount that never goes below zero: balance, price, total
    "money_signed",       # an amount that may be negative: adjustment, net change, profit
    "quantity",           # a count of items
    "percentage",         # a share 0..100 (or 0..1)
    "email",
    "phone",
    "postal_code",
    "country_code",       # ISO 3166-1 alpha-2 / alpha-3
    "currency_code",      # ISO 4217
    "url",
    "person_name",        # first, last or full name of a person
    "identifier",         # a key, SKU, code or reference with no arithmetic meaning
    "free_text",          # notes, comments, descriptions
    "other",              # anything else (statuses, flags, cities, ...)
)
OFF = "off"

#: Types whose values are text a person wrote: these get anomaly scores (e-mails have a parse rule,
#: and their local parts are too varied to score without false positives).
ANOMALY_TYPES = frozenset({"person_name", "free_text", "other"})

#: Short spellings a plan author may use.
ALIASES = {
    "dob": "birth_date", "date_of_birth": "birth_date", "birthdate": "birth_date",
    "timestamp": "event_timestamp", "event": "event_timestamp", "event_date": "event_timestamp",
    "money": "money_nonnegative", "amount": "money_signed", "signed_amount": "money_signed",
    "nonnegative_amount": "money_nonnegative", "non_negative_amount": "money_nonnegative",
    "count": "quantity", "percent": "percentage", "pct": "percentage",
    "zip": "postal_code", "postcode": "postal_code", "country": "country_code",
    "currency": "currency_code", "name": "person_name", "id": "identifier", "text": "free_text",
}

#: Storage kinds each type is compatible with (the classifier never picks an incompatible one).
_NUMBER = frozenset({"integer", "decimal", "text"})
COMPATIBLE_KINDS: dict[str, frozenset[str]] = {
    "birth_date": frozenset({"date", "timestamp", "text"}),
    "event_timestamp": frozenset({"date", "timestamp", "text"}),
    "age": _NUMBER, "money_nonnegative": _NUMBER, "money_signed": _NUMBER, "quantity": _NUMBER,
    "percentage": _NUMBER,
    "email": frozenset({"text"}), "phone": frozenset({"text", "integer"}),
    "postal_code": frozenset({"text", "integer"}), "country_code": frozenset({"text"}),
    "currency_code": frozenset({"text"}), "url": frozenset({"text"}), "person_name": frozenset({"text"}),
    "identifier": frozenset({"integer", "decimal", "text", "uuid"}),
    "free_text": frozenset({"text"}),
    "other": frozenset({"integer", "decimal", "date", "timestamp", "text", "boolean", "uuid", "other"}),
}


def storage_kind(ktype) -> str:
    """A kora type (or its text) reduced to the kind semantic types care about."""
    from kora_assets.plan.types import parse_type

    kt = parse_type(ktype) if isinstance(ktype, str) else ktype
    if kt.is_integer:
        return "integer"
    if kt.is_numeric:
        return "decimal"
    if kt.name == "date":
        return "date"
    if kt.name in ("timestamp", "timestamptz"):
        return "timestamp"
    if kt.name == "boolean":
        return "boolean"
    if kt.name == "uuid":
        return "uuid"
    if kt.name in ("text", "varchar", "char"):
        return "text"
    return "other"


def profile_key(semantic_type: str, ktype) -> str:
    """The semantic profile a validation-library rule is keyed by: ``type/storage kind``."""
    return f"{semantic_type}/{storage_kind(ktype)}"


@dataclass(frozen=True)
class SemanticSpec:
    """What a plan's ``semantic:`` field says about a column."""

    type: str | None = None  # a name from SEMANTIC_TYPES; None: infer it
    off: bool = False  # semantic validation switched off for the column
    block_anomalies: bool = False  # anomalous values are queued instead of only flagged

    @property
    def explicit(self) -> bool:
        return self.type is not None or self.off


def parse_semantic(value: str | None) -> SemanticSpec:
    """``None`` | ``off`` | ``<type>`` | ``<type>:block``; raises ValueError on unknown names."""
    if value is None or not str(value).strip():
        return SemanticSpec()
    text = str(value).strip().lower()
    if text in (OFF, "false", "none", "no"):
        return SemanticSpec(off=True)
    name, _, opt = text.partition(":")
    name = ALIASES.get(name.strip(), name.strip())
    if name not in SEMANTIC_TYPES:
        raise ValueError(f"unknown semantic type {value!r}; known: {', '.join(SEMANTIC_TYPES)}, or 'off'")
    opt = opt.strip()
    if opt not in ("", "block", "flag"):
        raise ValueError(f"semantic {value!r}: the only options are ':block' (anomalies block rows) and ':flag'")
    return SemanticSpec(type=name, block_anomalies=opt == "block")
