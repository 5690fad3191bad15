"""Source column defaults in the plan's vocabulary: what ``kora init`` carries to the target.

After cut-over the application inserts into the target, and leaves columns out: their
defaults and generated keys are part of the schema it relies on. Literals (numbers, text,
booleans, dates) carry over as values; the clock functions (``CURRENT_TIMESTAMP``, ``now()``,
``current_timestamp()``, ``CURRENT_DATE``, ``CURRENT_TIME``) as those SQL keywords; an
auto-increment, serial or identity column becomes an ``identity`` column whose sequence
restarts past the migrated keys; MySQL's ``ON UPDATE CURRENT_TIMESTAMP`` becomes ``on_update``
(a trigger). Anything else (``uuid()``, another table's sequence, an expression) is the source
dialect's SQL: it is left out, with a note in the plan, and the structural check warns about
the difference.
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from kora_assets.plan.types import KoraType

_CAST_RE = re.compile(r"::\s*[a-z_][a-z0-9_ ]*(\[\])?(\(\s*\d+(\s*,\s*\d+)?\s*\))?", re.I)
_CLOCK = {
    "CURRENT_TIMESTAMP": re.compile(r"^(current_timestamp|now|localtimestamp|transaction_timestamp)(\(\s*\d*\s*\))?$",
                                    re.I),
    "CURRENT_DATE": re.compile(r"^(current_date|curdate)(\(\s*\))?$", re.I),
    "CURRENT_TIME": re.compile(r"^(current_time|curtime|localtime)(\(\s*\d*\s*\))?$", re.I),
}
_ON_UPDATE = re.compile(r"\s+on\s+update\s+(.*)$", re.I)


def is_generated(col: dict, dialect: str) -> bool:
    """Serial, identity and auto-increment columns (SQLAlchemy reflection): their "default"
    is a generator, not a value."""
    default = str(col.get("default") or "").lower()
    if col.get("identity") or default.startswith("nextval("):
        return True
    return dialect in ("mysql", "mariadb") and col.get("autoincrement") is True


def clock_keyword(text: Any) -> str | None:
    """``CURRENT_TIMESTAMP``, ``CURRENT_DATE`` or ``CURRENT_TIME`` for any spelling of one."""
    if not isinstance(text, str):
        return None
    s = text.strip()
    for keyword, pattern in _CLOCK.items():
        if pattern.match(s):
            return keyword
    return None


def unwrap(text: str) -> str:
    """A reflected default without its outer parentheses and PostgreSQL casts."""
    s = text.strip()
    for _ in range(2):
        while s.startswith("(") and s.endswith(")") and _balanced(s[1:-1]):
            s = s[1:-1].strip()
        s = _CAST_RE.sub("", s).strip()
    return s


def _balanced(s: str) -> bool:
    depth = 0
    for ch in s:
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            return False
    return depth == 0


def plan_default(raw: Any, ktype: KoraType) -> tuple[Any, str | None]:
    """(the plan's ``default`` for a reflected source default, or None; why it is left out)."""
    if raw is None:
        return None, None
    s = unwrap(str(raw))
    if m := _ON_UPDATE.search(s):  # MySQL's ON UPDATE: the clock is the plan's on_update (see on_update_clock)
        value, why = plan_default(s[:m.start()].strip(), ktype)
        if on_update_clock(raw, ktype) is None:
            why = why or f"ON UPDATE {m.group(1)} (not a clock kora can keep on a {ktype.name} column)"
        return value, why
    if s.lower() == "null" or not s:
        return None, None
    if clock := clock_keyword(s):
        return (clock, None) if ktype.is_temporal else (None, f"default {raw} (a clock on a {ktype.name} column)")
    if len(s) >= 2 and s[0] == s[-1] == "'" and "'" not in s[1:-1].replace("''", ""):  # one quoted literal
        return _typed(s[1:-1].replace("''", "'"), ktype, raw)
    if s.lower() in ("true", "false"):
        return _typed(s.lower(), ktype, raw)
    try:
        Decimal(s)
    except (InvalidOperation, ValueError):
        return None, f"default {raw} (an expression in the source's SQL dialect)"
    return _typed(s, ktype, raw)


def on_update_clock(raw: Any, ktype: KoraType) -> str | None:
    """``CURRENT_TIMESTAMP`` when a reflected MySQL default ends in ``ON UPDATE`` a clock and the
    column is a timestamp: the plan's ``on_update``, a trigger on a PostgreSQL target."""
    m = _ON_UPDATE.search(unwrap(str(raw or "")))
    ok = m is not None and clock_keyword(m.group(1)) == "CURRENT_TIMESTAMP" and ktype.name.startswith("timestamp")
    return "CURRENT_TIMESTAMP" if ok else None


def _typed(value: str, ktype: KoraType, raw: Any) -> tuple[Any, str | None]:
    """The literal as the column's type spells it in YAML."""
    if ktype.name == "boolean":
        low = value.strip().lower()
        if low in ("1", "true", "t", "b'1'"):
            return True, None
        if low in ("0", "false", "f", "b'0'"):
            return False, None
        return None, f"default {raw} (not a boolean)"
    if ktype.is_numeric:
        try:
            d = Decimal(value.strip())
        except (InvalidOperation, ValueError):
            return None, f"default {raw} (not a number)"
        if d.is_finite() and d == d.to_integral_value():
            return int(d), None
        return (float(d) if ktype.name in ("real", "double") else str(d)), None  # numeric: exact, as text
    if ktype.is_temporal and value.startswith("0000-00-00"):
        return None, f"default {raw} (a zero date, which PostgreSQL has no spelling for)"
    return value, None
