"""Deciding whether two databases answered a query the same way.

The answer is a multiset of rows, or a sequence where the query orders it. Equal means what
the application would consider equal, no more:

* **Numbers** compare by value across ``int``, ``Decimal`` and ``float`` (drivers return
  different types for the same SQL type). Exact decimals allow half a unit in the last place of
  the coarser one (MySQL rounds ``AVG`` and ``/`` to 4 more digits, PostgreSQL keeps ~16), so
  ``Decimal('2.5000')`` equals ``2.5`` but not ``2``; floats allow a relative 1e-9.
* **NULL** equals only NULL.
* **Strings** compare exactly: case, accents and trailing spaces count (what the application
  reads). Blank-padding of ``CHAR(n)`` is undone where it is fetched, because it is padding.
* **Times**: an aware timestamp compares as UTC; a ``DATE`` equals a midnight timestamp (MySQL
  ``DATE + INTERVAL`` is a date, PostgreSQL's a timestamp, same day for the application).

An ordered result is compared in order on its sort keys, and as a multiset within each run of
equal keys (ties have no defined order); under a LIMIT the last run may be cut differently.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from checks.behavioral.translate import OrderSpec

_NUMBER = (int, float, Decimal)
_EPS = 1e-12


@dataclass
class Comparison:
    """The verdict, with enough evidence for a steward to see the difference."""

    equal: bool
    rows_source: int
    rows_target: int
    reason: str = ""
    only_source: list[tuple] = field(default_factory=list)  # sample of rows missing from the target
    only_target: list[tuple] = field(default_factory=list)  # sample of rows missing from the source
    note: str = ""


def normalize_value(v):
    """One Python representation per SQL value, whatever the driver returned."""
    if isinstance(v, memoryview):
        return v.tobytes()
    if isinstance(v, bytearray):
        return bytes(v)
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.timezone.utc).replace(tzinfo=None)
    if isinstance(v, dt.time):
        if v.tzinfo is not None:
            v = v.replace(tzinfo=None)
        return dt.timedelta(hours=v.hour, minutes=v.minute, seconds=v.second, microseconds=v.microsecond)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return v


_AS_IS = {int, float, Decimal, str, bytes, bool, dt.date, dt.timedelta, type(None)}


def normalize_row(row) -> tuple:
    if all(type(v) in _AS_IS for v in row):
        return tuple(row)
    return tuple(normalize_value(v) for v in row)


def _scale(d: Decimal) -> int | None:
    if not d.is_finite():
        return None
    return max(0, -d.as_tuple().exponent)


def numbers_equal(a, b, rel_tol: float = 1e-9) -> bool:
    """Equal as the application would read them; see the module docstring for the tolerance."""
    if isinstance(a, bool):
        a = int(a)
    if isinstance(b, bool):
        b = int(b)
    if isinstance(a, int) and isinstance(b, int):
        return a == b
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    if math.isinf(fa) or math.isinf(fb):
        return fa == fb
    da = a if isinstance(a, Decimal) else Decimal(a)
    db = b if isinstance(b, Decimal) else Decimal(b)
    if da == db:
        return True
    diff = abs(da - db)
    tol = Decimal(rel_tol) * max(abs(da), abs(db))
    scales = [s for s in (_scale(x) for x in (a, b) if isinstance(x, Decimal)) if s is not None]
    if scales:
        tol = max(tol, Decimal(5).scaleb(-min(scales) - 1))
    return diff <= tol * (1 + Decimal(_EPS))


def values_equal(a, b, rel_tol: float = 1e-9) -> bool:
    """NULL-safe equality of two normalised values."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, _NUMBER) and isinstance(b, _NUMBER):
        return numbers_equal(a, b, rel_tol)
    if isinstance(a, dt.date) and isinstance(b, dt.date) and type(a) is not type(b):
        da = a if isinstance(a, dt.datetime) else dt.datetime(a.year, a.month, a.day)
        db = b if isinstance(b, dt.datetime) else dt.datetime(b.year, b.month, b.day)
        return da == db
    return a == b


def rows_equal(a: tuple, b: tuple, rel_tol: float = 1e-9) -> bool:
    return len(a) == len(b) and all(values_equal(x, y, rel_tol) for x, y in zip(a, b))


def _key(v):
    """A sort key that puts equal (and nearly equal) values next to each other."""
    if v is None:
        return (0, 0.0)
    if isinstance(v, _NUMBER):
        f = float(v)
        return (1, math.inf if math.isnan(f) else f)
    if isinstance(v, str):
        return (2, v)
    if isinstance(v, bytes):
        return (3, v)
    if isinstance(v, dt.datetime):
        return (4, v)
    if isinstance(v, dt.date):
        return (4, dt.datetime(v.year, v.month, v.day))
    if isinstance(v, dt.timedelta):
        return (5, v.total_seconds())
    return (6, repr(v))


def _row_key(row: tuple) -> tuple:
    return tuple(_key(v) for v in row)


def multiset_difference(source: list[tuple], target: list[tuple], rel_tol: float = 1e-9,
                        budget: int = 4_000_000) -> tuple[list[tuple], list[tuple]]:
    """Rows of each side without an equal partner on the other (with multiplicity)."""
    try:  # rows equal exactly pair up by hash; only the rest needs the tolerant comparison
        ca, cb = Counter(source), Counter(target)
        if ca == cb:
            return [], []
        source = list((ca - cb).elements())
        target = list((cb - ca).elements())
    except TypeError:  # an unhashable value: compare everything the slow way
        pass
    a = sorted(((_row_key(r), r) for r in source), key=lambda kr: kr[0])
    b = sorted(((_row_key(r), r) for r in target), key=lambda kr: kr[0])
    ka, a = [k for k, _ in a], [r for _, r in a]
    kb, b = [k for k, _ in b], [r for _, r in b]
    i = j = 0
    only_a, only_b = [], []
    while i < len(a) and j < len(b):
        if rows_equal(a[i], b[j], rel_tol):
            i += 1
            j += 1
        elif ka[i] < kb[j]:
            only_a.append(a[i])
            i += 1
        else:
            only_b.append(b[j])
            j += 1
    only_a.extend(a[i:])
    only_b.extend(b[j:])
    # values equal within tolerance can sort apart; pair up what the merge left behind
    if only_a and only_b and len(only_a) * len(only_b) <= budget:
        left, rest = [], list(only_b)
        for r in only_a:
            for k, s in enumerate(rest):
                if rows_equal(r, s, rel_tol):
                    del rest[k]
                    break
            else:
                left.append(r)
        only_a, only_b = left, rest
    return only_a, only_b


def _verdict(source, target, only_a, only_b, sample, reason, note="") -> Comparison:
    return Comparison(equal=False, rows_source=len(source), rows_target=len(target), reason=reason,
                      only_source=only_a[:sample], only_target=only_b[:sample], note=note)


def compare_results(source: list[tuple], target: list[tuple], order: OrderSpec | None = None, *,
                    limit: int | None = None, rel_tol: float = 1e-9, sample: int = 5) -> Comparison:
    """Compare two normalised results; ``order`` is the query's top-level ORDER BY (or None)."""
    ns, nt = len(source), len(target)
    widths = {len(r) for r in source[:1] + target[:1]}
    if len(widths) > 1:
        return _verdict(source, target, source[:sample], target[:sample], sample,
                        f"different number of columns: source {len(source[0])}, target {len(target[0])}")
    if order is None:
        only_a, only_b = multiset_difference(source, target, rel_tol)
        if not only_a and not only_b:
            return Comparison(True, ns, nt)
        if limit is not None and ns == nt and ns >= limit:
            return Comparison(True, ns, nt, note="LIMIT without ORDER BY returns arbitrary rows; "
                                                 "only the row count is compared")
        return _verdict(source, target, only_a, only_b, sample, _count_reason(ns, nt, "rows differ"))

    if order.keys is None:  # sort keys not in the output: positions are all we can compare
        first = next((i for i, (x, y) in enumerate(zip(source, target)) if not rows_equal(x, y, rel_tol)), None)
        if first is None and ns == nt:
            return Comparison(True, ns, nt)
        only_a, only_b = multiset_difference(source, target, rel_tol)
        if not only_a and not only_b:
            return _verdict(source, target, source[first:first + sample], target[first:first + sample], sample,
                            f"same rows in a different order (first difference at row {first + 1}; "
                            "the ORDER BY keys are not in the select list, so ties cannot be told apart)")
        return _verdict(source, target, only_a, only_b, sample, _count_reason(ns, nt, "rows differ"))

    keys = order.keys
    if ns != nt:
        only_a, only_b = multiset_difference(source, target, rel_tol)
        return _verdict(source, target, only_a, only_b, sample, _count_reason(ns, nt, "rows differ"))
    ks = [tuple(r[k] for k in keys) for r in source]
    kt = [tuple(r[k] for k in keys) for r in target]
    for i, (x, y) in enumerate(zip(ks, kt)):
        if not rows_equal(x, y, rel_tol):
            only_a, only_b = multiset_difference(source, target, rel_tol)
            if not only_a and not only_b:
                return _verdict(source, target, source[i:i + sample], target[i:i + sample], sample,
                                f"same rows in a different order (first difference at row {i + 1}: "
                                "collation or NULL ordering)")
            return _verdict(source, target, only_a, only_b, sample,
                            f"rows differ (first at ordered position {i + 1})")
    cut = order.limit is not None and ns >= order.limit
    start, note = 0, ""
    while start < ns:
        end = start + 1
        while end < ns and rows_equal(ks[end], ks[start], rel_tol):
            end += 1
        only_a, only_b = multiset_difference(source[start:end], target[start:end], rel_tol)
        if (only_a or only_b) and cut and end == ns:
            note = (f"the last {end - start} row(s) tie on the ORDER BY keys at the LIMIT, where each "
                    "database may cut ties differently; they were compared on their keys only")
            break
        if only_a or only_b:
            where = (f"values differ at ordered position {start + 1}" if end - start == 1
                     else f"rows differ among ties at ordered positions {start + 1}-{end}")
            all_a, all_b = multiset_difference(source, target, rel_tol)  # the whole picture
            return _verdict(source, target, all_a or only_a, all_b or only_b, sample, where)
        start = end
    return Comparison(True, ns, nt, note=note)


def _count_reason(ns: int, nt: int, default: str) -> str:
    return f"row counts differ: source {ns}, target {nt}" if ns != nt else default
