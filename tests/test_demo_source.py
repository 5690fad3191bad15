"""The demo's legacy source: realistic shape, every planted dirt kind present and counted
exactly, reproducible from its seed, and a plan + query log that fit it."""
from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import time
from collections import Counter

import polars as pl
import pytest

from kora_assets.demo.legacy_source import (ALT_DATE_FORMATS, DIRT_SPECS, QUERIES, TABLES,
                                            build_legacy_source, demo_plan, key_range_bounds,
                                            truth_path, write_query_log)
from kora_assets.plan import parse_plan
from kora_assets.transforms.operators import MOJIBAKE_PATTERN, PLACEHOLDERS, apply_chain

ROWS = 20_000
TARGET = "postgresql://kora:secret@localhost:5432/shop"
HOUSE_BOOLEANS = {("customers", "vip"): {"Y", "N"}, ("products", "discontinued"): {"Y", "N"},
                  ("payments", "confirmed"): {"0", "1"}}
PARENT = {("orders", "customer_id"): "customers", ("order_items", "product_id"): "products",
          ("payments", "order_id"): "orders"}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("legacy") / "legacy.db"
    counts = build_legacy_source(path, rows=ROWS, seed=42)
    return path, counts


@pytest.fixture(scope="module")
def con(source):
    c = sqlite3.connect(source[0])
    yield c
    c.close()


@pytest.fixture(scope="module")
def plan(source):
    return parse_plan(demo_plan(source[0], TARGET), require_env=False)


def _column(con, table, column) -> list:
    return [r[0] for r in con.execute(f"SELECT {column} FROM {table} ORDER BY id")]


def _is_iso(v: str) -> bool:
    try:
        dt.date.fromisoformat(v)
        return len(v) == 10
    except ValueError:
        return False


def _parses(v: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(v, fmt)
        return True
    except ValueError:
        return False


def _dirty_count(con, plan, spec) -> int:
    """Count the cells of one spec's column that show its kind of dirt, independently of the
    generator (a clean value never matches these)."""
    t, c, kind = spec.table, spec.column, spec.kind
    if kind == "nul_byte":
        return con.execute(f"SELECT COUNT(*) FROM {t} WHERE instr({c}, char(0)) > 0").fetchone()[0]
    if kind == "orphan":
        p = PARENT[(t, c)]
        return con.execute(f"SELECT COUNT(*) FROM {t} x LEFT JOIN {p} p ON p.id = x.{c} "
                           "WHERE p.id IS NULL").fetchone()[0]
    values = [v for v in _column(con, t, c) if v is not None]
    if kind == "mojibake":
        return sum(bool(re.search(MOJIBAKE_PATTERN, v)) for v in values)
    if kind == "overlong":
        return sum(len(v) > plan.tables[t].columns[c].ktype.length for v in values)
    if kind == "alt_date_format":
        fmt = ALT_DATE_FORMATS[(t, c)]
        return sum(not _is_iso(v) and _parses(v, fmt) for v in values)
    if kind == "zero_date":
        return sum(v == "0000-00-00" for v in values)
    if kind == "placeholder":
        return sum(v.strip().lower() in PLACEHOLDERS for v in values)
    if kind == "boolean_variant":
        return sum(v not in HOUSE_BOOLEANS[(t, c)] for v in values)
    if kind == "enum_case_whitespace":
        return sum(v != v.strip().lower() for v in values)
    if kind == "currency_format":
        return sum("$" in v or "€" in v for v in values)
    raise AssertionError(f"no check for dirt kind {kind}")


def test_tables_and_row_counts(source, con):
    path, counts = source
    tables = [r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    assert len(tables) >= 6 and set(tables) == set(TABLES) == set(counts)
    for t in TABLES:
        assert con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] == counts[t] > 0
    assert sum(counts.values()) == ROWS
    assert counts["order_items"] > counts["orders"] > counts["customers"]


def test_schema_is_legacy_but_declared(con):
    for t in TABLES:
        cols = con.execute(f"PRAGMA table_info({t})").fetchall()
        pk = [c for c in cols if c[5] == 1]
        assert [(c[1], c[2]) for c in pk] == [("id", "INTEGER")], t
    # Dates, money, enums and booleans are TEXT, as the legacy app stored them.
    types = {c[1]: c[2] for c in con.execute("PRAGMA table_info(orders)")}
    assert types["order_date"] == types["total"] == types["status"] == "TEXT"
    fks = {(t, r[3]): (r[2], r[6]) for t in TABLES for r in con.execute(f"PRAGMA foreign_key_list({t})")}
    assert fks[("order_items", "order_id")] == ("orders", "CASCADE")
    assert fks[("employees", "manager_id")] == ("employees", "SET NULL")
    assert len(fks) >= 8
    unique = {(t, r[1]) for t in TABLES for r in con.execute(f"PRAGMA index_list({t})") if r[2]}
    assert {t for t, _ in unique} == {"customers", "products"}
    named = con.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL").fetchone()[0]
    assert named >= 5


@pytest.mark.parametrize("spec", DIRT_SPECS, ids=lambda s: f"{s.table}.{s.column}:{s.kind}")
def test_each_dirt_kind_is_present_at_a_small_rate(con, plan, spec):
    n = _dirty_count(con, plan, spec)
    rows = con.execute(f"SELECT COUNT(*) FROM {spec.table}").fetchone()[0]
    assert n >= 1
    if rows >= 1000:
        assert 0.001 <= n / rows <= 0.025, (n, rows)


def test_truth_file_matches_the_data(source, con, plan):
    truth = json.loads(truth_path(source[0]).read_text())
    seen: Counter = Counter()
    for spec in DIRT_SPECS:
        seen[(spec.table, spec.kind)] += _dirty_count(con, plan, spec)
    assert {(t, k): n for t, kinds in truth.items() for k, n in kinds.items()} == dict(seen)
    assert "_kora_demo_truth" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}


def test_text_is_valid_utf8(con):
    for t in TABLES:  # sqlite3 raises on a str column that is not valid UTF-8
        con.execute(f"SELECT * FROM {t}").fetchall()
        assert con.execute(f"SELECT COUNT(*) FROM {t} WHERE 0").fetchone()[0] == 0


def _content(path) -> dict[str, list]:
    c = sqlite3.connect(path)
    try:
        return {t: c.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}
    finally:
        c.close()


def test_same_seed_same_content(tmp_path):
    a, b, other = tmp_path / "a.db", tmp_path / "b.db", tmp_path / "c.db"
    assert build_legacy_source(a, rows=5_000, seed=7) == build_legacy_source(b, rows=5_000, seed=7)
    assert _content(a) == _content(b)
    assert truth_path(a).read_text() == truth_path(b).read_text()
    build_legacy_source(other, rows=5_000, seed=8)
    assert _content(other) != _content(a)
    build_legacy_source(a, rows=5_000, seed=7)  # overwrites in place, same content
    assert _content(a) == _content(b)


def test_plan_parses_and_mirrors_the_source(source, con, plan):
    assert plan.target.schema_ == "public"
    assert plan.query_log and plan.query_log.endswith(".queries.sql")
    for t in TABLES:
        src_cols = [c[1] for c in con.execute(f"PRAGMA table_info({t})")]
        assert list(plan.tables[t].columns) == src_cols
        src_fks = {r[3]: (r[2], r[6].lower()) for r in con.execute(f"PRAGMA foreign_key_list({t})")}
        plan_fks = {fk.columns[0]: (fk.references, fk.on_delete) for fk in plan.tables[t].foreign_keys}
        assert plan_fks == src_fks, t
    for t in ("orders", "order_items", "payments", "customers"):
        part = plan.tables[t].partitioning
        assert part.kind == "key_range" and part.column == "id" and 3 <= len(part.bounds) <= 7
    assert plan.tables["regions"].partitioning.kind == "none"


def test_plan_for_a_full_size_source_without_the_file(tmp_path):
    plan = parse_plan(demo_plan(tmp_path / "missing.db", TARGET), require_env=False)
    for t in ("orders", "order_items", "payments", "customers"):
        assert 4 <= len(plan.tables[t].partitioning.bounds) + 1 <= 8


def test_key_range_bounds():
    assert key_range_bounds(200_000, 6) == [34001, 68001, 102001, 136001, 170001]
    assert key_range_bounds(10, 4) == [4, 7, 10]
    assert key_range_bounds(1, 4) == []


def test_plan_transforms_exactly_the_known_dirt(con, plan):
    """Dirt the plan claims to fix has a transform on its column and the transform fixes it;
    dirt it leaves for recovery has no transform there."""
    for spec in DIRT_SPECS:
        if spec.kind == "orphan":
            continue
        col = plan.tables[spec.table].columns[spec.column]
        assert bool(col.transform) == spec.fixed_by_plan, spec
        if not spec.fixed_by_plan:
            continue
        raw = pl.Series("v", _column(con, spec.table, spec.column), dtype=pl.String)
        out = pl.select(apply_chain(pl.lit(raw), col.transform)).to_series()
        if spec.kind == "boolean_variant":
            assert out.null_count() == 0
        elif spec.kind == "enum_case_whitespace":
            assert set(out.to_list()) <= set(col.rules.allowed)
        elif spec.kind == "currency_format":
            assert out.cast(pl.Float64, strict=True).null_count() == 0
        elif spec.kind == "placeholder":
            assert not any(v.strip().lower() in PLACEHOLDERS for v in out.drop_nulls())


def test_query_log_runs_on_the_source(source, con, tmp_path):
    log = write_query_log(tmp_path / "queries.sql")
    lines = log.read_text().splitlines()
    assert lines == list(QUERIES) and 12 <= len(lines) <= 20
    for q in lines:
        assert q.startswith("SELECT ") and q.endswith(";") and q.count(";") == 1
        con.execute(q).fetchall()


@pytest.mark.slow
def test_full_size_build_is_fast(tmp_path):
    t0 = time.perf_counter()
    counts = build_legacy_source(tmp_path / "big.db", rows=1_000_000)
    assert sum(counts.values()) == 1_000_000
    assert time.perf_counter() - t0 < 60
