"""The demo's dirty legacy source: a shop/ERP database as it looks after fifteen years of use.

kora's promise is that every row lands or is accounted for, and that the recovery loop fixes
what it safely can. A demo of that needs a source that is realistically dirty in known ways, at
realistic rates, and large enough to partition. This module builds one in SQLite, writes how
much dirt of each kind it planted (``<db>.truth.json``), writes the migration plan a careful
plan author would write for it (``demo_plan``) and the SQL the shop's application runs
(``write_query_log``).

The plan deliberately fixes only the dirt an author knows about up front (enum case,
Y/N booleans, ``$1,234.50`` money, phone placeholders). Everything else (alternate date
formats, zero dates, mojibake, NUL bytes, over-long strings, European money, category
placeholders, orphans) is left to be caught by validation and handled by the recovery loop.

Everything is vectorised with numpy/polars; Python only touches the small dirty subsets,
where the format mini-language is the clearest spec of the dirt.
"""
from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import yaml

__all__ = ["ALT_DATE_FORMATS", "DIRT_SPECS", "DirtSpec", "QUERIES", "TABLES",
           "build_legacy_source", "demo_plan", "key_range_bounds", "query_log_path",
           "table_sizes", "truth_path", "write_query_log"]

#: Tables in creation (parent-before-child) order.
TABLES = ("regions", "employees", "customers", "products", "orders", "order_items", "payments")

_DDL = {
    "regions": """CREATE TABLE regions (
        id INTEGER PRIMARY KEY, code TEXT NOT NULL, name TEXT, country TEXT)""",
    "employees": """CREATE TABLE employees (
        id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT,
        manager_id INTEGER REFERENCES employees(id) ON DELETE SET NULL,
        region_id INTEGER REFERENCES regions(id),
        hired_on TEXT, salary TEXT, active TEXT)""",
    "customers": """CREATE TABLE customers (
        id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, first_name TEXT, last_name TEXT,
        region_id INTEGER REFERENCES regions(id),
        signup_date TEXT, birth_date TEXT, vip TEXT, phone TEXT, status TEXT, credit_limit TEXT)""",
    "products": """CREATE TABLE products (
        id INTEGER PRIMARY KEY, sku TEXT NOT NULL UNIQUE, name TEXT, category TEXT,
        unit_price TEXT, discontinued TEXT, created_at TEXT)""",
    "orders": """CREATE TABLE orders (
        id INTEGER PRIMARY KEY,
        customer_id INTEGER NOT NULL REFERENCES customers(id),
        employee_id INTEGER REFERENCES employees(id) ON DELETE SET NULL,
        order_date TEXT, ship_date TEXT, status TEXT, total TEXT, currency TEXT, notes TEXT)""",
    "order_items": """CREATE TABLE order_items (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        product_id INTEGER NOT NULL REFERENCES products(id),
        quantity TEXT, unit_price TEXT, discount TEXT)""",
    "payments": """CREATE TABLE payments (
        id INTEGER PRIMARY KEY,
        order_id INTEGER NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
        paid_on TEXT, amount TEXT, method TEXT, confirmed TEXT)""",
}

#: Secondary indexes, created after the bulk insert (cheaper than maintaining them per row).
_INDEXES = {
    "employees": [["manager_id"]],
    "customers": [["region_id"], ["last_name", "first_name"]],
    "products": [["category"]],
    "orders": [["customer_id"], ["order_date"], ["status"]],
    "order_items": [["order_id"], ["product_id"]],
    "payments": [["order_id"]],
}


@dataclass(frozen=True)
class DirtSpec:
    """One kind of dirt planted in one column, at ``rate`` of that column's (eligible) rows.

    ``fixed_by_plan`` says whether ``demo_plan`` carries a transform for it; the rest is what
    kora's validation must catch and its recovery loop (or a steward) must handle.
    """

    table: str
    column: str
    kind: str
    rate: float
    fixed_by_plan: bool


DIRT_SPECS: tuple[DirtSpec, ...] = (
    DirtSpec("customers", "first_name", "mojibake", 0.005, False),
    DirtSpec("customers", "first_name", "nul_byte", 0.003, False),
    DirtSpec("customers", "last_name", "mojibake", 0.010, False),
    DirtSpec("customers", "last_name", "overlong", 0.005, False),
    DirtSpec("customers", "signup_date", "alt_date_format", 0.010, False),  # %Y%m%d
    DirtSpec("customers", "birth_date", "zero_date", 0.005, False),
    DirtSpec("customers", "vip", "boolean_variant", 0.020, True),
    DirtSpec("customers", "phone", "placeholder", 0.010, True),
    DirtSpec("customers", "status", "enum_case_whitespace", 0.010, True),
    DirtSpec("products", "name", "overlong", 0.005, False),
    DirtSpec("products", "category", "placeholder", 0.010, False),
    DirtSpec("products", "discontinued", "boolean_variant", 0.020, True),
    DirtSpec("orders", "customer_id", "orphan", 0.003, False),
    DirtSpec("orders", "order_date", "alt_date_format", 0.010, False),  # %d.%m.%Y
    DirtSpec("orders", "ship_date", "zero_date", 0.005, False),  # of rows that have a ship date
    DirtSpec("orders", "status", "enum_case_whitespace", 0.020, True),
    DirtSpec("orders", "total", "currency_format", 0.015, True),  # $1,234.50
    DirtSpec("order_items", "product_id", "orphan", 0.002, False),
    DirtSpec("payments", "order_id", "orphan", 0.003, False),
    DirtSpec("payments", "paid_on", "alt_date_format", 0.010, False),  # %m/%d/%Y
    DirtSpec("payments", "amount", "currency_format", 0.010, False),  # 1.234,50 €
    DirtSpec("payments", "method", "enum_case_whitespace", 0.015, True),
    DirtSpec("payments", "confirmed", "boolean_variant", 0.020, True),
)

#: The one alternate format each dirty date column uses (one per column, so it is decidable).
ALT_DATE_FORMATS = {("customers", "signup_date"): "%Y%m%d", ("orders", "order_date"): "%d.%m.%Y",
                    ("payments", "paid_on"): "%m/%d/%Y"}

ORDER_STATUSES = ["pending", "paid", "shipped", "delivered", "cancelled", "returned"]
CUSTOMER_STATUSES = ["active", "inactive", "blocked"]
PAYMENT_METHODS = ["card", "paypal", "bank_transfer", "invoice", "cash"]
CATEGORIES = ["electronics", "home", "garden", "toys", "books", "clothing", "sports", "food"]

_REGIONS = [("NE", "Northeast", "US"), ("SE", "Southeast", "US"), ("MW", "Midwest", "US"),
            ("SW", "Southwest", "US"), ("WC", "West Coast", "US"), ("ON", "Ontario", "CA"),
            ("QC", "Québec", "CA"), ("BY", "Bayern", "DE"), ("NW", "Nordrhein-Westfalen", "DE"),
            ("IDF", "Île-de-France", "FR"), ("CAT", "Catalunya", "ES"), ("LDN", "London", "GB")]
_FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda",
          "David", "Susan", "Anna", "Peter", "Thomas", "Laura", "Daniel", "Emma", "Paul",
          "Sarah", "Mark", "Julia", "Kevin", "Lisa", "Brian", "Nina", "Oliver", "Sophie"]
_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson",
         "Taylor", "Anderson", "Thomas", "Moore", "Martin", "Lee", "Walker", "Hall", "Young",
         "King", "Wright", "Schmidt", "Fischer", "Weber", "Dubois", "Garcia", "Rossi", "Novak"]
#: Accented names: most are stored correctly; the mojibake dirt is these, mis-decoded.
_FIRST_ACCENTED = ["José", "François", "Zoë", "Jürgen", "Søren", "Renée", "Ángel", "Inês",
                   "Björn", "Mónica", "Łukasz", "Chloé"]
_LAST_ACCENTED = ["Müller", "Gómez", "Peña", "Núñez", "Ångström", "Dvořák", "Lefèvre",
                  "Öztürk", "Søndergaard", "Citroën", "Hernández", "Žižek"]
_OVERLONG_SUFFIX = [
    " (née {}; see correspondence file 2011/0042 in the old CRM, do not merge with duplicate)",
    " c/o Accounts Payable Department, Building 7, Third Floor, Attn: Procurement Officer",
    " -- CUSTOMER REQUESTED NAME CHANGE, PENDING VERIFICATION BY LEGAL, CALL BEFORE SHIPPING",
]
_PRODUCT_ADJ = ["Classic", "Deluxe", "Compact", "Smart", "Eco", "Pro", "Ultra", "Mini",
                "Vintage", "Premium"]
_PRODUCT_NOUN = ["Lamp", "Kettle", "Backpack", "Headphones", "Blender", "Chair", "Puzzle",
                 "Novel", "Jacket", "Racket", "Coffee Beans", "Planter", "Drone", "Mug"]
_OVERLONG_PRODUCT = (" - imported from supplier catalogue v3, description continues in the"
                     " attached PDF; includes mounting kit, manual (EN/DE/FR) and 2-year warranty")

_EPOCH = np.datetime64("1970-01-01", "D")


def _day(iso: str) -> int:
    return int((np.datetime64(iso, "D") - _EPOCH).astype(int))


_SIGNUP_START, _ORDERS_START, _END = _day("2012-01-01"), _day("2015-01-01"), _day("2024-12-31")


# ----------------------------------------------------------------------------- sizes & paths

def table_sizes(rows: int) -> dict[str, int]:
    """Expected row counts for a ``rows``-row build (orders/order_items carry the bulk).

    ``payments`` and ``order_items`` depend on the random order statuses, so a real build is
    within a fraction of a percent of this; the plan uses it only when no source exists yet.
    """
    if rows < 1_000:
        raise ValueError("rows must be at least 1000 for a meaningful demo source")
    sizes = {"regions": len(_REGIONS), "employees": max(20, round(rows * 0.002)),
             "customers": max(100, round(rows * 0.05)), "products": max(50, round(rows * 0.01)),
             "orders": round(rows * 0.20)}
    sizes["payments"] = round(sizes["orders"] * 0.92)
    sizes["order_items"] = rows - sum(sizes.values())
    return sizes


def truth_path(path: str | Path) -> Path:
    """Where the dirt ground truth for the source at ``path`` lives (next to it, not in it)."""
    return Path(f"{path}.truth.json")


def query_log_path(path: str | Path) -> Path:
    """The conventional place of the query log for the source at ``path``."""
    return Path(f"{path}.queries.sql")


# ----------------------------------------------------------------------------- small helpers

@dataclass
class _Truth:
    """Dirty cells per table and kind, for the truth file."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, table: str, kind: str, n: int) -> None:
        t = self.counts.setdefault(table, {})
        t[kind] = t.get(kind, 0) + int(n)


def _rng(seed: int, table: str) -> np.random.Generator:
    """One independent stream per table, so changing one table never shifts another's data."""
    return np.random.default_rng([seed, TABLES.index(table)])


def _rates(table: str, column: str) -> dict[str, float]:
    return {d.kind: d.rate for d in DIRT_SPECS if (d.table, d.column) == (table, column)}


def _pick(rng: np.random.Generator, candidates: np.ndarray, table: str, column: str,
          truth: _Truth) -> dict[str, np.ndarray]:
    """Disjoint row positions per dirt kind of one column, exact sizes, sorted.

    Exact sizes (at least one row each) keep the truth file exact and make every kind appear
    even in a small test build; disjointness means one cell carries one kind of dirt.
    """
    perm = rng.permutation(candidates)
    out, start = {}, 0
    for kind, rate in _rates(table, column).items():
        k = min(max(1, round(rate * len(candidates))), len(candidates) - start)
        out[kind] = np.sort(perm[start:start + k])
        truth.add(table, kind, k)
        start += k
    return out


def _gather(pool: list[str], codes: np.ndarray) -> pl.Series:
    """Vectorised lookup of string values by integer code."""
    return pl.Series(pool, dtype=pl.String).gather(codes)


def _choice(rng: np.random.Generator, n: int, probs: list[float]) -> np.ndarray:
    return rng.choice(len(probs), size=n, p=np.asarray(probs) / sum(probs))


def _dates(days: np.ndarray, fmt: str = "%Y-%m-%d") -> pl.Series:
    return pl.Series(days.astype(np.int32)).cast(pl.Date).dt.strftime(fmt)


def _set(s: pl.Series, idx: np.ndarray, values: pl.Series | list | None) -> pl.Series:
    """Overwrite ``s`` at ``idx`` (in place; returned for chaining); ``None`` writes NULLs."""
    if len(idx):
        if values is None:
            values = pl.Series([None] * len(idx), dtype=s.dtype)
        elif not isinstance(values, pl.Series):
            values = pl.Series(values, dtype=s.dtype)
        s.scatter(idx, values)
    return s


def _money(cents: np.ndarray) -> pl.Series:
    """Plain legacy money text: ``1234.50``."""
    c = pl.Series(cents.astype(np.int64))
    return (c // 100).cast(pl.String) + "." + (c % 100).cast(pl.String).str.zfill(2)


def _money_us(cents: np.ndarray) -> list[str]:
    """``$1,234.50``, only for the few dirty cells."""
    return [f"${c / 100:,.2f}" for c in cents.tolist()]


_EU = str.maketrans(",.", ".,")


def _money_eu(cents: np.ndarray) -> list[str]:
    """``1.234,50 €``, only for the few dirty cells."""
    return [f"{c / 100:,.2f}".translate(_EU) + " €" for c in cents.tolist()]


_N_VARIANTS = 5


def _dirty_spellings(values: list[str]) -> list[str]:
    """``_N_VARIANTS`` stray spellings per value (upper, Capitalized, padded), value-major."""
    return [s for v in values for s in (v.upper(), v.capitalize(), f" {v}", f"{v}  ",
                                         f" {v.capitalize()} ")]


def _enum(rng: np.random.Generator, codes: np.ndarray, values: list[str], idx: np.ndarray) -> pl.Series:
    """Enum text for ``codes``; rows in ``idx`` get stray case/whitespace spellings."""
    s = _gather(values, codes)
    variant = rng.integers(0, _N_VARIANTS, len(idx))
    return _set(s, idx, _gather(_dirty_spellings(values), codes[idx] * _N_VARIANTS + variant))


#: Spellings a boolean parser understands but no column uses as its house style (so every
#: planted cell really differs from the clean ones).
_BOOL_DIRTY = {False: ["no", "No", "NO", "n", " N", "false"],
               True: ["yes", "Yes", "YES", "y", " Y", "true"]}


def _boolean(rng: np.random.Generator, flags: np.ndarray, clean: tuple[str, str],
             idx: np.ndarray) -> pl.Series:
    """Boolean text in the column's house style ``clean=(false, true)``; ``idx`` rows get
    another spelling a parser still understands (``yes``, `` Y``, ``false``...)."""
    s = _gather(list(clean), flags.astype(np.int64))
    pool = _BOOL_DIRTY[False] + _BOOL_DIRTY[True]
    k = len(_BOOL_DIRTY[False])
    return _set(s, idx, _gather(pool, flags[idx].astype(np.int64) * k + rng.integers(0, k, len(idx))))


def _mojibake(text: str) -> str:
    """UTF-8 bytes read back as Latin-1: ``José`` -> ``JosÃ©`` (still valid UTF-8 text)."""
    return text.encode("utf-8").decode("latin-1")


def _names(rng: np.random.Generator, n: int, plain: list[str], accented: list[str],
           accented_share: float = 0.05) -> tuple[pl.Series, np.ndarray]:
    """Names from both pools; returns the names and the codes into ``plain + accented``."""
    codes = rng.integers(0, len(plain), n)
    acc = rng.random(n) < accented_share
    codes[acc] = len(plain) + rng.integers(0, len(accented), int(acc.sum()))
    return _gather(plain + accented, codes), codes


def _insert(con: sqlite3.Connection, table: str, df: pl.DataFrame) -> None:
    cols = ", ".join(df.columns)
    marks = ", ".join("?" * df.width)
    con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", df.rows())


# ----------------------------------------------------------------------------- the tables

@dataclass
class _Ctx:
    """What child tables need to know about their parents (arrays indexed by id - 1)."""

    sizes: dict[str, int]
    seed: int
    truth: _Truth
    total: int
    customer_signup: np.ndarray | None = None
    product_cents: np.ndarray | None = None
    order_days: np.ndarray | None = None
    order_status: np.ndarray | None = None
    order_cents: np.ndarray | None = None


def _regions(ctx: _Ctx) -> pl.DataFrame:
    """A fixed, clean lookup table (some names accented, correctly stored)."""
    code, name, country = zip(*_REGIONS)
    return pl.DataFrame({"id": range(1, len(_REGIONS) + 1), "code": code, "name": name,
                         "country": country})


def _employees(ctx: _Ctx) -> pl.DataFrame:
    """Staff with a manager hierarchy (self-reference): id 1 is the boss, others report up."""
    rng, n = _rng(ctx.seed, "employees"), ctx.sizes["employees"]
    ids = np.arange(1, n + 1)
    first, _ = _names(rng, n, _FIRST, _FIRST_ACCENTED)
    last, _ = _names(rng, n, _LAST, _LAST_ACCENTED)
    manager = pl.Series((rng.random(n) * np.minimum(ids - 1, max(3, n // 10))).astype(np.int64) + 1)
    manager[0] = None
    email = ("emp" + pl.Series(ids).cast(pl.String) + "@shop.example")
    return pl.DataFrame({
        "id": ids, "first_name": first, "last_name": last, "email": email,
        "manager_id": manager, "region_id": rng.integers(1, len(_REGIONS) + 1, n),
        "hired_on": _dates(rng.integers(_day("2005-01-01"), _day("2023-12-31"), n)),
        "salary": _money(rng.integers(32_000, 140_000, n) * 100),
        "active": _gather(["N", "Y"], (rng.random(n) < 0.9).astype(np.int64)),
    })


def _person_names(rng: np.random.Generator, n: int) -> tuple[pl.Series, pl.Series, pl.Series]:
    """First/last names (some accented, stored correctly) and unique e-mails built from them."""
    first, fcodes = _names(rng, n, _FIRST, _FIRST_ACCENTED)
    last, lcodes = _names(rng, n, _LAST, _LAST_ACCENTED)
    # E-mail local parts stay ASCII, as legacy systems forced them to be.
    slug_first = _gather([s.lower() for s in _FIRST] + [f"f{i}" for i in range(len(_FIRST_ACCENTED))], fcodes)
    slug_last = _gather([s.lower() for s in _LAST] + [f"l{i}" for i in range(len(_LAST_ACCENTED))], lcodes)
    ids = pl.Series(np.arange(1, n + 1)).cast(pl.String)
    return first, last, slug_first + "." + slug_last + ids + "@mail.example"


def _dirty_first_names(rng: np.random.Generator, first: pl.Series, t: _Truth) -> pl.Series:
    """Mojibake (``JosÃ©``) and NUL bytes inside the name (``Ma\\x00ria``)."""
    d = _pick(rng, np.arange(len(first)), "customers", "first_name", t)
    bad = [_mojibake(x) for x in _FIRST_ACCENTED]
    _set(first, d["mojibake"], _gather(bad, rng.integers(0, len(bad), len(d["mojibake"]))))
    nul = first.gather(d["nul_byte"])
    return _set(first, d["nul_byte"], nul.str.slice(0, 2) + "\x00" + nul.str.slice(2))


def _dirty_last_names(rng: np.random.Generator, last: pl.Series, t: _Truth) -> pl.Series:
    """Mojibake and notes pasted into the name field (longer than the plan's varchar(60))."""
    d = _pick(rng, np.arange(len(last)), "customers", "last_name", t)
    bad = [_mojibake(x) for x in _LAST_ACCENTED]
    _set(last, d["mojibake"], _gather(bad, rng.integers(0, len(bad), len(d["mojibake"]))))
    suffix = [s.format(_LAST[i]) for i, s in enumerate(_OVERLONG_SUFFIX)]
    long = last.gather(d["overlong"]) + _gather(suffix, rng.integers(0, len(suffix), len(d["overlong"])))
    return _set(last, d["overlong"], long)


def _date_column(rng: np.random.Generator, days: np.ndarray, table: str, column: str,
                 t: _Truth, candidates: np.ndarray | None = None) -> pl.Series:
    """ISO date text with this column's planted dirt: its one alternate format, zero dates."""
    s = _dates(days)
    d = _pick(rng, np.arange(len(days)) if candidates is None else candidates, table, column, t)
    if "alt_date_format" in d:
        idx = d["alt_date_format"]
        _set(s, idx, _dates(days[idx], ALT_DATE_FORMATS[(table, column)]))
    if "zero_date" in d:
        _set(s, d["zero_date"], ["0000-00-00"] * len(d["zero_date"]))
    return s


_PLACEHOLDERS = ["N/A", "-", "NULL", "", "n/a"]


def _placeholders(rng: np.random.Generator, s: pl.Series, table: str, column: str, t: _Truth) -> pl.Series:
    """Values someone typed instead of leaving the field empty."""
    idx = _pick(rng, np.arange(len(s)), table, column, t)["placeholder"]
    return _set(s, idx, _gather(_PLACEHOLDERS, rng.integers(0, len(_PLACEHOLDERS), len(idx))))


def _customers(ctx: _Ctx) -> pl.DataFrame:
    """Customers, ids in signup order (as an auto-increment would have assigned them)."""
    rng, n, t = _rng(ctx.seed, "customers"), ctx.sizes["customers"], ctx.truth
    rows = np.arange(n)
    signup = np.sort(rng.integers(_SIGNUP_START, _END, n))
    ctx.customer_signup = signup
    first, last, email = _person_names(rng, n)

    unknown = rng.random(n) < 0.05  # never asked: real NULLs, not dirt
    birth = _date_column(rng, signup - rng.integers(18 * 365, 80 * 365, n), "customers",
                         "birth_date", t, candidates=rows[~unknown])
    _set(birth, rows[unknown], None)

    phone = ("+1 555 " + pl.Series(rng.integers(0, 10_000_000, n)).cast(pl.String).str.zfill(7))
    _set(phone, rows[rng.random(n) < 0.10], None)
    return pl.DataFrame({
        "id": rows + 1, "email": email,
        "first_name": _dirty_first_names(rng, first, t),
        "last_name": _dirty_last_names(rng, last, t),
        "region_id": rng.integers(1, len(_REGIONS) + 1, n),
        "signup_date": _date_column(rng, signup, "customers", "signup_date", t),
        "birth_date": birth,
        "vip": _boolean(rng, rng.random(n) < 0.1, ("N", "Y"),
                        _pick(rng, rows, "customers", "vip", t)["boolean_variant"]),
        "phone": _placeholders(rng, phone, "customers", "phone", t),
        "status": _enum(rng, _choice(rng, n, [85, 12, 3]), CUSTOMER_STATUSES,
                        _pick(rng, rows, "customers", "status", t)["enum_case_whitespace"]),
        "credit_limit": _money(np.array([500, 1000, 2500, 5000, 10000])[_choice(rng, n, [30, 30, 20, 15, 5])] * 100),
    })


def _products(ctx: _Ctx) -> pl.DataFrame:
    """The catalogue; prices are remembered so order lines and totals add up."""
    rng, n, t = _rng(ctx.seed, "products"), ctx.sizes["products"], ctx.truth
    rows = np.arange(n)
    cents = np.maximum(99, np.round(np.exp(rng.normal(3.2, 0.9, n)) * 100)).astype(np.int64)
    ctx.product_cents = cents
    name = (_gather(_PRODUCT_ADJ, rng.integers(0, len(_PRODUCT_ADJ), n)) + " "
            + _gather(_PRODUCT_NOUN, rng.integers(0, len(_PRODUCT_NOUN), n)) + " "
            + pl.Series(rng.integers(100, 1000, n)).cast(pl.String))
    long = _pick(rng, rows, "products", "name", t)["overlong"]
    _set(name, long, name.gather(long) + _OVERLONG_PRODUCT)
    created = ((rng.integers(_SIGNUP_START - 3 * 365, _END - 365, n) * 86_400
                + rng.integers(0, 86_400, n)) * 1_000_000)
    return pl.DataFrame({
        "id": rows + 1,
        "sku": "SKU-" + pl.Series(rows + 1).cast(pl.String).str.zfill(6),
        "name": name,
        "category": _placeholders(rng, _gather(CATEGORIES, rng.integers(0, len(CATEGORIES), n)),
                                  "products", "category", t),
        "unit_price": _money(cents),
        "discontinued": _boolean(rng, rng.random(n) < 0.08, ("N", "Y"),
                                 _pick(rng, rows, "products", "discontinued", t)["boolean_variant"]),
        "created_at": pl.Series(created).cast(pl.Datetime("us")).dt.strftime("%Y-%m-%d %H:%M:%S"),
    })


#: Order status mix: old shops are mostly delivered orders.
_STATUS_MIX = [3, 5, 7, 78, 5, 2]
_PAID = np.isin(np.arange(len(ORDER_STATUSES)), [1, 2, 3, 5])  # paid, shipped, delivered, returned
_SHIPPED = np.isin(np.arange(len(ORDER_STATUSES)), [2, 3, 5])


def _order_skeleton(ctx: _Ctx) -> np.random.Generator:
    """Order dates (ids in time order) and statuses, which sizes payments and order_items."""
    rng, n = _rng(ctx.seed, "orders"), ctx.sizes["orders"]
    ctx.order_days = np.sort(rng.integers(_ORDERS_START, _END, n))
    ctx.order_status = _choice(rng, n, _STATUS_MIX)
    ctx.sizes["payments"] = int(_PAID[ctx.order_status].sum())
    fixed = sum(v for k, v in ctx.sizes.items() if k != "order_items")
    ctx.sizes["order_items"] = ctx.total - fixed
    if ctx.sizes["order_items"] < 1:
        raise ValueError("rows too small for the demo's table mix")
    return rng


def _order_item_arrays(ctx: _Ctx) -> dict[str, np.ndarray]:
    """Order lines; their sum is each order's total (so totals are checkable, not random)."""
    rng, n = _rng(ctx.seed, "order_items"), ctx.sizes["order_items"]
    n_orders, n_products = ctx.sizes["orders"], ctx.sizes["products"]
    # Every order has at least one line (when there are enough lines); the rest fall anywhere.
    first = np.arange(1, min(n, n_orders) + 1)
    order_id = np.sort(np.concatenate([first, rng.integers(1, n_orders + 1, n - len(first))]))
    product_id = (n_products * rng.random(n) ** 2).astype(np.int64) + 1  # a few best sellers
    quantity = np.minimum(rng.geometric(0.55, n), 20)
    discount = _choice(rng, n, [80, 8, 6, 4, 2])  # 0, 5, 10, 15, 20 %
    price = ctx.product_cents[product_id - 1]
    line = np.round(quantity * price * (100 - 5 * discount) / 100)
    ctx.order_cents = np.round(np.bincount(order_id - 1, weights=line, minlength=n_orders)).astype(np.int64)
    orphan = _pick(rng, np.arange(n), "order_items", "product_id", ctx.truth)["orphan"]
    product_id[orphan] = n_products + 1 + rng.integers(0, max(1, n_products // 10), len(orphan))
    return {"order_id": order_id, "product_id": product_id, "quantity": quantity,
            "price": price, "discount": discount}


def _orphans(rng: np.random.Generator, fk: np.ndarray, parent_rows: int, table: str,
             column: str, t: _Truth) -> np.ndarray:
    """Point some child rows at parents that were deleted long ago (ids past the last one)."""
    idx = _pick(rng, np.arange(len(fk)), table, column, t)["orphan"]
    fk[idx] = parent_rows + 1 + rng.integers(0, max(1, parent_rows // 10), len(idx))
    return fk


_NOTES = ["leave at the door", "gift wrap please", "call before delivery",
          "Lieferung an Nachbarn", "fragile!", "invoice to head office"]


def _orders(ctx: _Ctx, rng: np.random.Generator) -> pl.DataFrame:
    """Orders over ten years; ``rng`` continues the stream that drew dates and statuses."""
    n, t = ctx.sizes["orders"], ctx.truth
    rows, days, status = np.arange(n), ctx.order_days, ctx.order_status
    # A customer can only order after signing up: pick among those signed up by then.
    eligible = np.maximum(np.searchsorted(ctx.customer_signup, days, side="right"), 1)
    customer = (rng.random(n) * eligible).astype(np.int64) + 1
    employee = pl.Series(rng.integers(1, ctx.sizes["employees"] + 1, n))
    _set(employee, rows[rng.random(n) < 0.10], None)  # web orders: no sales rep

    shipped = rows[_SHIPPED[status]]
    ship = _date_column(rng, days + rng.integers(1, 8, n), "orders", "ship_date", t, candidates=shipped)
    _set(ship, rows[~_SHIPPED[status]], None)

    total = _money(ctx.order_cents)
    us = _pick(rng, rows, "orders", "total", t)["currency_format"]
    _set(total, us, _money_us(ctx.order_cents[us]))
    notes = pl.Series([None] * n, dtype=pl.String)
    noted = rows[rng.random(n) < 0.03]
    _set(notes, noted, _gather(_NOTES, rng.integers(0, len(_NOTES), len(noted))))
    return pl.DataFrame({
        "id": rows + 1,
        "customer_id": _orphans(rng, customer, ctx.sizes["customers"], "orders", "customer_id", t),
        "employee_id": employee,
        "order_date": _date_column(rng, days, "orders", "order_date", t),
        "ship_date": ship,
        "status": _enum(rng, status, ORDER_STATUSES,
                        _pick(rng, rows, "orders", "status", t)["enum_case_whitespace"]),
        "total": total,
        "currency": pl.Series(["USD"] * n, dtype=pl.String),
        "notes": notes,
    })


def _order_items(ctx: _Ctx, a: dict[str, np.ndarray]) -> pl.DataFrame:
    n = len(a["order_id"])
    return pl.DataFrame({
        "id": np.arange(1, n + 1), "order_id": a["order_id"], "product_id": a["product_id"],
        "quantity": pl.Series(a["quantity"]).cast(pl.String),
        "unit_price": _money(a["price"]),
        "discount": _gather(["0.00", "0.05", "0.10", "0.15", "0.20"], a["discount"]),
    })


def _payments(ctx: _Ctx) -> pl.DataFrame:
    """One payment per paid order, for its total, a few days after the order."""
    rng, t = _rng(ctx.seed, "payments"), ctx.truth
    order_idx = np.flatnonzero(_PAID[ctx.order_status])
    n, rows = len(order_idx), np.arange(len(order_idx))
    cents = ctx.order_cents[order_idx]
    amount = _money(cents)
    eu = _pick(rng, rows, "payments", "amount", t)["currency_format"]
    _set(amount, eu, _money_eu(cents[eu]))
    return pl.DataFrame({
        "id": rows + 1,
        "order_id": _orphans(rng, order_idx + 1, ctx.sizes["orders"], "payments", "order_id", t),
        "paid_on": _date_column(rng, ctx.order_days[order_idx] + rng.integers(0, 4, n),
                                "payments", "paid_on", t),
        "amount": amount,
        "method": _enum(rng, _choice(rng, n, [55, 20, 15, 7, 3]), PAYMENT_METHODS,
                        _pick(rng, rows, "payments", "method", t)["enum_case_whitespace"]),
        "confirmed": _boolean(rng, rng.random(n) < 0.97, ("0", "1"),
                              _pick(rng, rows, "payments", "confirmed", t)["boolean_variant"]),
    })


# ----------------------------------------------------------------------------- build

def _frames(rows: int, seed: int, truth: _Truth) -> dict[str, pl.DataFrame]:
    """All tables, in dependency order of their *generation* (children need parent arrays)."""
    ctx = _Ctx(sizes=table_sizes(rows), seed=seed, truth=truth, total=rows)
    frames = {"regions": _regions(ctx), "employees": _employees(ctx),
              "customers": _customers(ctx), "products": _products(ctx)}
    orders_rng = _order_skeleton(ctx)
    items = _order_item_arrays(ctx)
    frames["orders"] = _orders(ctx, orders_rng)
    frames["order_items"] = _order_items(ctx, items)
    frames["payments"] = _payments(ctx)
    return {name: frames[name] for name in TABLES}


def _remove_db(path: Path) -> None:
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def build_legacy_source(path: str | Path, *, rows: int = 1_000_000, seed: int = 42) -> dict[str, int]:
    """Create (overwriting) the dirty legacy shop database at ``path``; row counts per table.

    ``rows`` is the exact total over all tables. The same ``seed`` gives the same content.
    Also writes ``<path>.truth.json``: ``{table: {dirt kind: dirty cells}}``; it lives next to
    the database, not in it, so it is never migrated itself.
    """
    path = Path(path)
    truth = _Truth()
    frames = _frames(rows, seed, truth)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_db(path)
    con = sqlite3.connect(path, isolation_level=None)
    try:
        # Build speed only: this file is scratch until the final COMMIT. FKs stay unenforced
        # (SQLite's default), which is how the orphans got into the legacy system.
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("PRAGMA foreign_keys=OFF")
        con.execute("BEGIN")
        for name, df in frames.items():
            con.execute(_DDL[name])
            _insert(con, name, df)
        for name, indexes in _INDEXES.items():
            for cols in indexes:
                con.execute(f"CREATE INDEX ix_{name}_{'_'.join(cols)} ON {name} ({', '.join(cols)})")
        con.execute("COMMIT")
    finally:
        con.close()
    truth_path(path).write_text(json.dumps(truth.counts, indent=2, sort_keys=True) + "\n")
    return {name: df.height for name, df in frames.items()}


# ----------------------------------------------------------------------------- query log

#: What the shop's application runs, in source names; SQLite- and MySQL-compatible, one per line.
#: Filters compare dates as ISO literals and order by computed numbers or keys (never by the
#: legacy TEXT money), so the same statements mean the same on the typed target.
QUERIES: tuple[str, ...] = (
    "SELECT c.id, c.first_name, c.last_name, c.email FROM customers c WHERE c.status = 'active' ORDER BY c.id LIMIT 50;",
    "SELECT r.name, COUNT(*) AS customers FROM customers c JOIN regions r ON r.id = c.region_id GROUP BY r.name ORDER BY customers DESC, r.name;",
    "SELECT o.status, COUNT(*) AS orders FROM orders o GROUP BY o.status ORDER BY o.status;",
    "SELECT o.id, o.order_date, o.status, o.total FROM orders o WHERE o.customer_id = 42 ORDER BY o.order_date DESC, o.id;",
    "SELECT p.category, COUNT(*) AS lines, SUM(oi.quantity) AS units FROM order_items oi JOIN products p ON p.id = oi.product_id GROUP BY p.category ORDER BY units DESC, p.category;",
    "SELECT p.id, p.sku, p.name, SUM(oi.quantity) AS units FROM order_items oi JOIN products p ON p.id = oi.product_id GROUP BY p.id, p.sku, p.name ORDER BY units DESC, p.id LIMIT 20;",
    "SELECT o.id, COUNT(oi.id) AS lines, ROUND(SUM(oi.quantity * oi.unit_price * (1 - oi.discount)), 2) AS gross FROM orders o JOIN order_items oi ON oi.order_id = o.id WHERE o.order_date >= '2021-01-01' AND o.order_date < '2021-02-01' GROUP BY o.id ORDER BY gross DESC, o.id LIMIT 25;",
    "SELECT pm.method, COUNT(*) AS payments, ROUND(SUM(pm.amount), 2) AS collected FROM payments pm WHERE pm.confirmed = '1' GROUP BY pm.method ORDER BY collected DESC, pm.method;",
    "SELECT e.id, e.last_name, m.last_name AS manager FROM employees e LEFT JOIN employees m ON m.id = e.manager_id ORDER BY e.id LIMIT 100;",
    "SELECT o.employee_id, COUNT(*) AS orders FROM orders o WHERE o.status = 'delivered' AND o.employee_id IS NOT NULL GROUP BY o.employee_id ORDER BY orders DESC, o.employee_id LIMIT 10;",
    "SELECT c.id, c.email FROM customers c LEFT JOIN orders o ON o.customer_id = c.id WHERE o.id IS NULL ORDER BY c.id LIMIT 100;",
    "SELECT r.country, COUNT(DISTINCT o.customer_id) AS buyers, COUNT(o.id) AS orders FROM orders o JOIN customers c ON c.id = o.customer_id JOIN regions r ON r.id = c.region_id WHERE o.status IN ('shipped', 'delivered') GROUP BY r.country ORDER BY orders DESC, r.country;",
    "SELECT c.id, c.first_name, c.last_name, c.signup_date FROM customers c WHERE c.vip = 'Y' AND c.signup_date >= '2020-01-01' ORDER BY c.signup_date, c.id LIMIT 50;",
    "SELECT p.id, p.sku, p.name FROM products p WHERE p.discontinued = 'N' AND p.category = 'electronics' ORDER BY p.sku LIMIT 20;",
    "SELECT o.id, o.order_date, o.ship_date FROM orders o WHERE o.status = 'shipped' AND o.ship_date >= '2024-06-01' ORDER BY o.ship_date, o.id LIMIT 50;",
    "SELECT COUNT(*) AS payments, ROUND(SUM(pm.amount), 2) AS collected FROM payments pm JOIN orders o ON o.id = pm.order_id WHERE pm.paid_on >= '2023-01-01' AND pm.paid_on < '2024-01-01';",
)


def write_query_log(path: str | Path) -> Path:
    """Write the application's query log (one statement a line) for replay checks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(QUERIES) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- the plan

#: How many key-range partitions each big table aims for; the rest is one partition.
_PARTITIONS = {"customers": 4, "orders": 6, "order_items": 8, "payments": 6}


def _col(type_: str, *, nullable: bool = True, transform: list | None = None, **rules) -> dict:
    c: dict = {"type": type_}
    if not nullable:
        c["nullable"] = False
    if transform:
        c["transform"] = transform
    if rules:
        c["rules"] = rules
    return c


def _pk() -> dict:
    return _col("integer", nullable=False)


def _fk(column: str, parent: str, on_delete: str = "no action") -> dict:
    fk = {"columns": [column], "references": parent, "ref_columns": ["id"]}
    if on_delete != "no action":
        fk["on_delete"] = on_delete
    return fk


def _ix(*columns: str) -> dict:
    return {"columns": list(columns)}


_BOOL = [{"op": "parse_boolean"}]
_ENUM = [{"op": "trim"}, {"op": "lower"}]


def _table_plans() -> dict[str, dict]:
    """Target types and transforms, as the plan author writes them knowing the *known* dirt.

    Fixed here: enum case/whitespace, Y/N-style booleans, ``$1,234.50`` order totals, phone
    placeholders. Not fixed (left to validation and recovery): alternate date formats, zero
    dates, mojibake, NUL bytes, over-long names, European-format payment amounts, product
    category placeholders, orphaned foreign keys.
    """
    return {
        "regions": {
            "primary_key": ["id"],
            "columns": {"id": _pk(), "code": _col("varchar(8)", nullable=False),
                        "name": _col("varchar(60)"), "country": _col("char(2)")},
        },
        "employees": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "first_name": _col("varchar(60)"), "last_name": _col("varchar(60)"),
                "email": _col("varchar(120)"), "manager_id": _col("integer"),
                "region_id": _col("integer"), "hired_on": _col("date"),
                "salary": _col("numeric(12,2)", min=0),
                "active": _col("boolean", nullable=False, transform=_BOOL)},
            "foreign_keys": [_fk("manager_id", "employees", "set null"), _fk("region_id", "regions")],
            "indexes": [_ix("manager_id")],
        },
        "customers": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "email": _col("varchar(120)", nullable=False),
                "first_name": _col("varchar(60)"), "last_name": _col("varchar(60)"),
                "region_id": _col("integer"), "signup_date": _col("date", nullable=False),
                "birth_date": _col("date"),
                "vip": _col("boolean", nullable=False, transform=_BOOL),
                "phone": _col("varchar(30)", transform=[{"op": "null_if"}]),
                "status": _col("varchar(16)", nullable=False, transform=_ENUM,
                               allowed=CUSTOMER_STATUSES),
                "credit_limit": _col("numeric(12,2)", min=0)},
            "unique": [["email"]],
            "foreign_keys": [_fk("region_id", "regions")],
            "indexes": [_ix("region_id"), _ix("last_name", "first_name")],
        },
        "products": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "sku": _col("varchar(16)", nullable=False),
                "name": _col("varchar(100)"),
                "category": _col("varchar(20)", allowed=CATEGORIES),
                "unit_price": _col("numeric(12,2)", nullable=False, min=0),
                "discontinued": _col("boolean", nullable=False, transform=_BOOL),
                "created_at": _col("timestamp")},
            "unique": [["sku"]],
            "indexes": [_ix("category")],
        },
        "orders": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "customer_id": _col("integer", nullable=False),
                "employee_id": _col("integer"), "order_date": _col("date", nullable=False),
                "ship_date": _col("date"),
                "status": _col("varchar(16)", nullable=False, transform=_ENUM,
                               allowed=ORDER_STATUSES),
                "total": _col("numeric(12,2)", nullable=False, min=0,
                              transform=[{"op": "parse_number", "decimal": ".", "thousands": ","}]),
                "currency": _col("char(3)"), "notes": _col("text")},
            "foreign_keys": [_fk("customer_id", "customers"),
                             _fk("employee_id", "employees", "set null")],
            "indexes": [_ix("customer_id"), _ix("order_date"), _ix("status")],
        },
        "order_items": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "order_id": _col("integer", nullable=False),
                "product_id": _col("integer", nullable=False),
                "quantity": _col("integer", nullable=False, min=1),
                "unit_price": _col("numeric(12,2)", nullable=False, min=0),
                "discount": _col("numeric(4,2)", min=0, max=0.5)},
            "foreign_keys": [_fk("order_id", "orders", "cascade"), _fk("product_id", "products")],
            "indexes": [_ix("order_id"), _ix("product_id")],
        },
        "payments": {
            "primary_key": ["id"],
            "columns": {
                "id": _pk(), "order_id": _col("integer", nullable=False),
                "paid_on": _col("date", nullable=False),
                "amount": _col("numeric(12,2)", nullable=False, min=0),
                "method": _col("varchar(20)", nullable=False, allowed=PAYMENT_METHODS,
                               transform=[{"op": "case_fold_allowed", "allowed": PAYMENT_METHODS}]),
                "confirmed": _col("boolean", transform=_BOOL)},
            "foreign_keys": [_fk("order_id", "orders", "cascade")],
            "indexes": [_ix("order_id")],
        },
    }


def _round_up_2sig(x: int) -> int:
    """Round up to two significant digits, so bounds read like ``34001, 68001, ...``."""
    if x < 100:
        return max(1, x)
    unit = 10 ** (len(str(x)) - 2)
    return math.ceil(x / unit) * unit


def key_range_bounds(max_id: int, parts: int) -> list[int]:
    """Lower bounds of partitions 2..n for ids 1..max_id; never an empty last partition."""
    step = _round_up_2sig(math.ceil(max_id / parts))
    return [1 + k * step for k in range(1, parts) if 1 + k * step <= max_id]


def _max_ids(source_path: Path, rows: int | None) -> dict[str, int]:
    """Largest id per table: read from the source when it exists, else the expected size."""
    if rows is None and source_path.exists():
        con = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
        try:
            return {t: con.execute(f"SELECT COALESCE(MAX(id), 0) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            con.close()
    return table_sizes(rows or 1_000_000)


_HEADER = """\
# kora demo plan: the legacy shop (SQLite) -> {target}
#
# Written the way a plan author would, knowing some of the source's dirt: enum spellings
# (trim + lower / case_fold_allowed), Y/N-style booleans (parse_boolean), "$1,234.50" order
# totals (parse_number) and phone placeholders (null_if) are fixed by transforms below.
# Deliberately NOT handled here, so kora's validation catches them and its recovery loop (or
# a data steward) deals with them: alternate date formats, 0000-00-00 dates, mojibake, NUL
# bytes, over-long names, "1.234,50 €" payment amounts, product category placeholders and
# orphaned foreign keys.
"""


class _PlanDumper(yaml.SafeDumper):
    """Block style for structure, flow style for leaves (short lists, one-line operators,
    simple columns); no anchors, since a human edits this file."""

    def ignore_aliases(self, data):
        return True


def _represent_list(dumper: yaml.SafeDumper, data: list):
    flow = all(not isinstance(x, (list, dict)) for x in data) or all(
        isinstance(x, dict) and all(not isinstance(v, (list, dict)) for v in x.values()) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _represent_dict(dumper: yaml.SafeDumper, data: dict):
    flow = "type" in data and all(not isinstance(v, (list, dict)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_PlanDumper.add_representer(list, _represent_list)
_PlanDumper.add_representer(dict, _represent_dict)


def demo_plan(source_path: str | Path, target_url: str, *, rows: int | None = None,
              query_log: str | Path | None = None, name: str = "legacy_shop") -> str:
    """The YAML text of the demo's migration plan for the source at ``source_path``.

    Partition bounds come from the source's actual ids when it exists (and ``rows`` is not
    given), else from the expected sizes of a ``rows``-row (default 1,000,000) build. The query
    log defaults to ``query_log_path(source_path)``; write it with ``write_query_log``.
    """
    source_path = Path(source_path).resolve()
    max_ids = _max_ids(source_path, rows)
    tables = _table_plans()
    for table, parts in _PARTITIONS.items():
        bounds = key_range_bounds(max_ids[table], parts)
        if bounds:
            tables[table]["partitioning"] = {"kind": "key_range", "column": "id", "bounds": bounds}
    plan = {
        "version": 1,
        "name": name,
        "source": {"url": f"sqlite:///{source_path}"},
        "target": {"url": target_url, "schema": "public"},
        "settings": {"chunk_rows": 50_000, "workers": 2, "lossy_fixes_allowed": False,
                     "detect_mojibake": True},
        "query_log": str(Path(query_log) if query_log else query_log_path(source_path)),
        "tables": tables,
    }
    body = yaml.dump(plan, Dumper=_PlanDumper, sort_keys=False, allow_unicode=True, width=100)
    return _HEADER.format(target=target_url.split("://", 1)[0]) + body
