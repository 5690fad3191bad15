"""Semantic plausibility rules without the model: the rule set per type, how column_checks applies
them from the plan's ``semantic:`` fields ('off' disables), and kora running on rules alone."""
from __future__ import annotations

import datetime as dt
import logging

import polars as pl
import pytest

from checks.record import RecordValidator, column_checks
from checks.semantic import runtime
from checks.semantic.plausibility import ERROR_CLASS, Rule, plausibility_checks, rule_name_of
from checks.semantic.types import SEMANTIC_TYPES, parse_semantic, profile_key
from kora_assets.plan.model import Settings, TablePlan
from kora_assets.transforms.compiler import TableTransform

TODAY = dt.date(2026, 1, 1)


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    monkeypatch.setenv("KORA_TODAY", TODAY.isoformat())
    runtime.clear()
    yield
    runtime.clear()


def _fails(semantic_type: str, ktype: str, values: list) -> list[bool]:
    tp = TablePlan.model_validate({"columns": {"v": {"type": ktype}}})
    tr = TableTransform(tp)
    df = tr.apply(pl.DataFrame({"v": pl.Series(values, dtype=pl.String)}).lazy()).collect()
    checks = plausibility_checks(tr.columns[0], semantic_type, TODAY)
    if not checks:
        return [False] * len(values)
    return df.select(pl.any_horizontal([c.fails.fill_null(False) for c in checks])).to_series().to_list()


def test_semantic_field_parsing():
    assert parse_semantic(None).type is None and not parse_semantic(None).explicit
    assert parse_semantic("off").off and parse_semantic("OFF").explicit
    assert parse_semantic("dob").type == "birth_date"
    s = parse_semantic("person_name:block")
    assert s.type == "person_name" and s.block_anomalies
    with pytest.raises(ValueError, match="unknown semantic type"):
        parse_semantic("shoe_size")
    assert len(SEMANTIC_TYPES) == 17 and profile_key("money_nonnegative", "numeric(12,2)") == "money_nonnegative/decimal"


@pytest.mark.parametrize("stype, ktype, values, expected", [
    ("birth_date", "date", ["1980-05-01", "2026-01-01", "2026-01-02", "1899-12-31", "1900-01-01", None],
     [False, False, True, True, False, False]),
    ("birth_date", "text", ["1980-05-01", "2031-01-01", "not a date"], [False, True, False]),
    ("event_timestamp", "timestamp", ["2020-01-01 10:00:00", "2028-01-01 00:00:00", "1850-01-01 00:00:00"],
     [False, True, True]),
    ("age", "integer", ["0", "130", "131", "-1"], [False, False, True, True]),
    ("money_nonnegative", "numeric(12,2)", ["0", "10.50", "-0.01"], [False, False, True]),
    ("money_signed", "numeric(12,2)", ["-5000", "5000"], [False, False]),
    ("quantity", "integer", ["0", "3", "-2"], [False, False, True]),
    ("percentage", "numeric(5,2)", ["0", "100", "100.5", "-1", "12.5"], [False, False, True, True, False]),
    ("email", "varchar(80)", ["ana@example.com", "josé.garcía1@example.com", "a.b+c@sub.example.co.uk",
                               "ana@", "ana.example.com", "ana@@x.com", "an a@x.com", "ana@x.c", "ana..b@x.com"],
     [False, False, False, True, True, True, True, True, True]),
    ("phone", "text", ["+1 (780) 428-9482", "+49 0711 2842222", "0000000000", "12", "call me"],
     [False, False, True, True, True]),
    ("postal_code", "text", ["12227-000", "T5K 2N1", "1016 AB", "00000", "!!"], [False, False, False, True, True]),
    ("country_code", "char(3)", ["US", "deu", "XK", "XX", "UK"], [False, False, False, True, True]),
    ("currency_code", "char(3)", ["EUR", "usd", "DEM", "ABC", "XTS"], [False, False, False, True, True]),
    ("url", "text", ["https://example.com/a?b=1", "www.acme.io", "http//x", "example"], [False, False, True, True]),
    ("person_name", "text", ["Zoë Çelik", "O'Brien", "test", " N/A ", "asdf", "12345", "Max Mustermann"],
     [False, False, True, True, True, True, True]),
    ("identifier", "text", ["test", "-1"], [False, False]),
])
def test_rules_per_type(stype, ktype, values, expected):
    assert _fails(stype, ktype, values) == expected


def test_reason_names_the_rule():
    tp = TablePlan.model_validate({"columns": {"born": {"type": "date", "target": "birth"}}})
    c = TableTransform(tp).columns[0]
    ck = plausibility_checks(c, "birth_date", TODAY)[0]
    df = TableTransform(tp).apply(pl.DataFrame({"born": ["2030-02-03"]}).lazy()).collect()
    reason = df.select(ck.reason).item()
    assert reason == "'2030-02-03' is implausible for birth_date column birth: in the future [rule birth_date.not_future]"
    assert rule_name_of(reason) == "birth_date.not_future"
    assert df.select(ck.error_class).item() == ERROR_CLASS


PLAN = {
    "primary_key": ["id"],
    "columns": {
        "id": {"type": "integer", "nullable": False},
        "name": {"type": "varchar(40)", "semantic": "person_name"},
        "born": {"type": "date", "semantic": "birth_date"},
        "pct": {"type": "numeric(5,2)", "semantic": "percentage", "rules": {"min": 0}},
        "age": {"type": "integer", "semantic": "off"},
        "email": {"type": "varchar(80)"},
    },
}


def _split(plan: dict, frame: pl.DataFrame):
    tp = TablePlan.model_validate(plan)
    tr = TableTransform(tp)
    v = RecordValidator(tr, Settings())
    return v.split(tr.apply(frame.lazy()).collect())


def test_validator_queues_implausible_rows_with_the_rule():
    frame = pl.DataFrame({
        "id": [1, 2, 3, 4, 5, 6],
        "name": ["Ann", "test", "Bob", "Cid", "Dee", "Eve"],
        "born": ["1980-01-01", "1981-01-01", "2031-01-01", "1970-01-01", "1970-01-01", "1970-01-01"],
        "pct": ["10", "20", "30", "130", "-5", "50"],
        "age": ["40", "40", "40", "40", "40", "999"],  # semantic off: 999 is not checked
        "email": ["a@x.io", "b@x.io", "c@x.io", "d@x.io", "e@x.io", "not an email"],  # no semantic type: not checked
    })
    valid, errors, _ = _split(PLAN, frame)
    assert valid["id"].to_list() == [1, 6]
    got = {int(k.split(":")[1].rstrip("}")): (c, cls, rule_name_of(r)) for k, c, cls, r in
           errors.select("primary_key", "column_name", "error_class", "reason").iter_rows()}
    assert got == {
        2: ("name", ERROR_CLASS, "person_name.not_placeholder"),
        3: ("born", ERROR_CLASS, "birth_date.not_future"),
        4: ("pct", ERROR_CLASS, "percentage.at_most_100"),
        5: ("pct", "range.out_of_bounds", None),  # the plan's own rule comes first
    }


def test_off_and_untyped_columns_get_no_semantic_checks():
    tp = TablePlan.model_validate(PLAN)
    by = {c.source: c for c in TableTransform(tp).columns}
    n_sem = lambda col: sum(1 for ck in column_checks(by[col], tp, Settings())  # noqa: E731
                            if "semantic" in str(ck.error_class))
    assert n_sem("age") == 0 and n_sem("email") == 0 and n_sem("id") == 0
    assert n_sem("born") == 2 and n_sem("name") == 2


def test_types_resolve_once_per_table_not_per_batch(monkeypatch):
    calls = []
    real = runtime._explicit
    monkeypatch.setattr(runtime, "_explicit", lambda *a, **k: calls.append(1) or real(*a, **k))
    tp = TablePlan.model_validate(PLAN)
    tr = TableTransform(tp)
    for _ in range(5):  # a validator per batch would be far more than the workers ever build
        for c in tr.columns:
            column_checks(c, tp, Settings())
    assert len(calls) == 1


def test_without_the_model_explicit_types_still_apply_and_kora_says_so(monkeypatch, caplog):
    import checks.semantic.encoder as enc

    monkeypatch.setattr(enc, "unavailable_reason", lambda: "semantic model unavailable (torch not installed)")
    monkeypatch.setattr(runtime, "_SAID_RULES_ONLY", False)
    monkeypatch.setattr(runtime, "_SAID_NO_MODEL", False)
    plan = _plan_obj()
    with caplog.at_level(logging.INFO, logger="kora.semantic"):
        ts = runtime.prime_table(plan, "people", use_library=False)
    assert ts.model.startswith("unavailable: semantic model unavailable")
    assert ts.columns["born"].semantic_type == "birth_date" and ts.columns["email"].semantic_type is None
    assert any("torch not installed" in r.getMessage() for r in caplog.records)
    runtime.clear()
    with caplog.at_level(logging.INFO, logger="kora.semantic"):
        runtime.plan_only(plan.tables["people"])
    assert any("plausibility rules run" in r.getMessage() for r in caplog.records)


def test_library_rules_compile_like_builtins():
    tp = TablePlan.model_validate({"columns": {"total": {"type": "numeric(12,2)"}}})
    tr = TableTransform(tp)
    rule = Rule.make("library#7", "max", "above 10000 (library rule money_nonnegative.max_10000)", builtin=False,
                     value=10000)
    ck = plausibility_checks(tr.columns[0], "money_nonnegative", TODAY, (rule,))[0]
    df = tr.apply(pl.DataFrame({"total": ["9999.99", "10000.01"]}).lazy()).collect()
    assert df.select(ck.fails).to_series().to_list() == [False, True]
    assert rule_name_of(df.select(ck.reason).to_series()[1]) == "library#7"
    with pytest.raises(ValueError, match="unknown rule kind"):
        Rule.make("x", "python_eval", code="1")


def _plan_obj():
    from kora_assets.plan.loader import parse_plan

    text = """
version: 1
name: sem
source: {url: "sqlite:///nowhere.db"}
target: {url: "sqlite:///nowhere-target.db"}
tables:
  people:
    primary_key: [id]
    columns:
      id: {type: integer, nullable: false}
      born: {type: date, semantic: birth_date}
      email: {type: varchar(80)}
"""
    return parse_plan(text, require_env=False)


def test_checks_compiled_for_the_batch_schema_agree_with_the_untyped_ones():
    """The schema-aware presence test (a null test on the column, no cast to text) must give the
    same failures and classes as the cast-based one, for dates, floats and text (bytes get an
    encoding check of their own: see the next test). A float too large for its decimal is
    queued, not a crash."""
    tp = TablePlan.model_validate({"primary_key": ["id"], "columns": {
        "id": {"type": "integer", "nullable": False},
        "d": {"type": "date", "nullable": False},
        "n": {"type": "numeric(6,2)"},
        "s": {"type": "varchar(3)", "nullable": False}}})
    frame = pl.DataFrame({
        "id": [1, 2, 3, 4, 5],
        "d": [dt.date(2020, 1, 1), None, dt.date(2020, 1, 3), dt.date(2020, 1, 4), dt.date(2020, 1, 5)],
        "n": [1.5, 2.25, None, 123456.0, 3.0],
        "s": ["ab", "cd", "toolong", "gh", None]})
    tr = TableTransform(tp)
    v = RecordValidator(tr, Settings())
    df = tr.apply(frame.lazy()).collect()
    typed = v.checks_for(df.schema)
    assert typed is v.checks_for(df.schema)  # compiled once per schema
    assert len(typed) == len(v.checks)
    fails = lambda checks: df.select([ck.fails.fill_null(False).alias(str(i)) for i, ck in enumerate(checks)])  # noqa: E731
    assert fails(typed).equals(fails(v.checks))
    valid, errors, _ = v.split(df)
    assert valid["id"].to_list() == [1]
    assert errors.select("column_name", "error_class").rows() == [
        ("d", "constraint.not_null"), ("s", "length.too_long"), ("n", "range.overflow"), ("s", "constraint.not_null")]


def test_bytes_that_are_not_utf8_are_queued_for_a_text_column_and_land_in_a_bytes_column():
    """A text column fed bytes that are not UTF-8 queues that row with the bytes in hex (polars
    raised on them, failing the whole partition); a bytes column takes any bytes."""
    tp = TablePlan.model_validate({"primary_key": ["id"], "columns": {
        "id": {"type": "integer", "nullable": False},
        "t": {"type": "text"},
        "raw": {"type": "bytes"}}})
    frame = pl.DataFrame({"id": [1, 2, 3], "t": [b"ok", b"\xff\xfe", None], "raw": [b"\x00\xff", b"ok", b"\xc3"]})
    tr = TableTransform(tp)
    valid, errors, _ = RecordValidator(tr, Settings()).split(tr.apply(frame.lazy()).collect())
    assert valid.rows() == [(1, "ok", b"\x00\xff"), (3, None, b"\xc3")]
    assert errors.select("primary_key", "column_name", "error_class", "reason", "value").rows() == [
        ('{"id":2}', "t", "encoding.invalid_utf8", "bytes 0xfffe are not valid UTF-8 text for column t", "fffe")]
    assert errors["row"].to_list() == ['{"id":2,"t":"fffe","raw":"6f6b"}']


def test_bytes_that_are_not_utf8_in_a_column_with_a_semantic_rule_are_queued_not_a_failed_chunk():
    """The reason of a semantic rule showed the source value cast to text, which raised on bytes
    that are not UTF-8 (polars, even non-strict) and failed the whole chunk, though another check
    (encoding.invalid_utf8) already queued the row."""
    tp = TablePlan.model_validate({"primary_key": ["id"], "columns": {
        "id": {"type": "integer", "nullable": False},
        "mail": {"type": "varchar(60)", "semantic": "email"}}})
    frame = pl.DataFrame({"id": [1, 2, 3], "mail": [b"a@example.com", b"\xff\xfe", b"not an address"]})
    tr = TableTransform(tp)
    valid, errors, _ = RecordValidator(tr, Settings()).split(tr.apply(frame.lazy()).collect())
    assert valid.rows() == [(1, "a@example.com")]
    assert sorted(errors.select("primary_key", "error_class").rows()) == [
        ('{"id":2}', "encoding.invalid_utf8"), ('{"id":3}', "semantic.implausible")]
