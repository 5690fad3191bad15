"""Recovery building blocks without services: shapes and classes, rule candidates and their
ambiguity verdicts, strict parsing of LLM answers, signed broadcasts, the fix library (SQLite)."""
from __future__ import annotations

import json

import polars as pl
import pytest

from kora_assets.plan.model import ColumnPlan, Plan, Settings
from kora_assets.recovery.broadcast import RejectedBroadcast, decode_fix, encode_fix, sign
from kora_assets.recovery.candidates import GroupContext, generate
from kora_assets.recovery.classify import (Signature, classify_db_error, guarded, nearest_example, shape_expr,
                                           value_shape)
from kora_assets.recovery.library import FixLibrary, LibraryFix, is_lossy
from kora_assets.recovery.llm import RejectedAnswer, answer_schema, parse_answer, propose
from kora_assets.recovery.sandbox import Profile, Score, decide
from kora_assets.recovery.candidates import Candidate
from kora_assets.transforms.operators import (Default, MapValues, NullIf, ParseDate, ParseNumber, Scale, Trim,
                                              Truncate)
from resources.llm import CallableClient


def gen(cls, values, type_="date", **col):
    cp = ColumnPlan(type=type_, **col)
    return generate(GroupContext(Signature(cls, "t", "c", "x"), "c", cp, pl.Series(values, dtype=pl.String), Settings()))


# -- shapes and classes -----------------------------------------------------------------------

def test_shapes_abstract_values_by_class():
    assert value_shape("12.03.1990", "date") == "dd.dd.dddd"
    assert value_shape("March 5, 1990", "date") == "a d, dddd"
    assert value_shape("$1,234.56", "number") == "$d,d.d"
    assert value_shape("1.234,56 €", "number") == "d.d,d €"
    assert value_shape(" N/A ", "word") == "n/a"
    assert str(Signature("parse.date", "people", "birth_date", "dd.dd.dddd")) == "parse.date|people.birth_date|dd.dd.dddd"
    assert Signature.parse("parse.number|t.c|$d,d.d") == Signature("parse.number", "t", "c", "$d,d.d")


def test_database_errors_map_to_classes_by_sqlstate_and_rules():
    assert classify_db_error("anything", "22001").error_class == "length.too_long"
    assert classify_db_error("x", "23505").error_class == "constraint.unique"
    assert classify_db_error("Data too long for column 'country' at row 1").error_class == "length.too_long"
    assert classify_db_error('invalid input syntax for type date: "21.10.1969"').error_class == "parse.date"
    assert classify_db_error("Cannot add or update a child row: a foreign key constraint fails").error_class == "fk_orphan"
    c = classify_db_error("Column balance: value is negative but must be >= 0 (balance_nonnegative)")
    assert c.how.startswith("nearest") and c.error_class == "range.out_of_bounds"
    assert nearest_example("").error_class is None


def test_shape_guard_keeps_a_fix_to_its_shape():
    """A decimal-comma fix must never read '$1,234.56' (its comma is a thousands separator)."""
    (g,) = guarded([ParseNumber(decimal=",", thousands=".")], "number", "d.d,d €")
    out = pl.select(g.expr(pl.lit(pl.Series(["1.234,56 €", "$1,234.56"])))).to_series().to_list()
    assert out == ["1234.56", "$1,234.56"]


# -- rule candidates ------------------------------------------------------------------------------

def test_date_format_decided_by_the_columns_values():
    g = gen("parse.date", ["01/02/2003", "05/26/2001"])
    assert [c.ops for c in g.candidates] == [(ParseDate(formats=["%m/%d/%Y"]),)]
    assert gen("parse.date", ["21.10.1969"]).candidates[0].ops == (ParseDate(formats=["%d.%m.%Y"]),)
    assert gen("parse.date", ["March 5, 1990"]).candidates[0].ops == (ParseDate(formats=["%B %d, %Y"]),)


def test_undecided_day_month_order_is_ambiguous_and_not_asked_to_an_llm():
    g = gen("parse.date", ["01/02/2003", "05/06/2001"])
    assert not g.candidates and "ambiguous date order" in g.ambiguous and not g.ask_llm


def test_a_format_matching_only_part_of_the_sample_abstains():
    g = gen("parse.date", ["21.10.1969", "10/21/1969"])
    assert not g.candidates and "fits 1 of 2" in g.ambiguous


def test_number_conventions_and_ambiguity():
    assert gen("parse.number", ["$1,234.56", "$12.00"], "numeric(12,2)").candidates[0].ops == (ParseNumber(),)
    g = gen("parse.number", ["123,45 €", "9,99 €"], "numeric(12,2)")
    assert g.candidates[0].ops == (ParseNumber(decimal=",", thousands="."),)
    g = gen("parse.number", ["1,234"], "numeric(12,2)")
    assert not g.candidates and "ambiguous number format" in g.ambiguous
    g = gen("parse.number", ["12.5%", "5%"], "numeric(5,2)")  # keep or /100: the profile decides later
    assert [c.ops for c in g.candidates] == [(ParseNumber(percent=True),), (ParseNumber(percent=True), Scale(factor=0.01))]


def test_placeholders_null_only_where_the_column_allows_null():
    assert gen("sentinel.placeholder", ["N/A", ""]).candidates[0].ops == (NullIf(values=["", "n/a"]),)
    g = gen("sentinel.placeholder", ["N/A"], nullable=False)
    assert not g.candidates and "NOT NULL" in g.unfixable
    g = gen("sentinel.placeholder", ["N/A"], "varchar(3)", nullable=False, default="?")
    assert g.candidates[0].lossy  # a default invents a value


def test_implausible_and_unfixable_classes_get_no_candidate():
    for cls in ("range.out_of_bounds", "range.overflow", "constraint.unique"):
        g = gen(cls, ["-5"], "numeric(12,2)")
        assert g.unfixable and not g.candidates and not g.ask_llm


def test_lossiness():
    assert is_lossy([Truncate(length=3)]) and is_lossy([Default(value="x")])
    assert is_lossy([NullIf(values=["bob"])]) and not is_lossy([NullIf(values=["n/a", "0000-00-00"])])
    assert is_lossy([MapValues(mapping={"bob": None})]) and not is_lossy([Trim()])


def test_decide_abstains_when_readings_disagree_and_the_profile_cannot_tell():
    a = Score(Candidate((ParseNumber(percent=True),)), 1.0, outputs=("12.5",), conformance=1.0)
    b = Score(Candidate((ParseNumber(percent=True), Scale(factor=0.01))), 1.0, outputs=("0.125",), conformance=0.0)
    assert decide([a, b], lossy_allowed=False).winner is a
    b.conformance = 0.95
    d = decide([a, b], lossy_allowed=False)
    assert d.verdict == "ambiguous" and d.winner is None
    lossy = Score(Candidate((Trim(), Truncate(length=2))), 1.0, outputs=("ab",))
    assert decide([lossy], lossy_allowed=False).verdict == "lossy"
    assert decide([lossy], lossy_allowed=True).verdict == "accepted"


def test_profile_conformance_is_log_scaled_for_positive_numbers():
    p = Profile(n=100, lo=5.0, hi=50.0)
    assert p.numeric_conformance(pl.Series([12.5, 20.0])) == 1.0
    assert p.numeric_conformance(pl.Series([0.125, 0.2])) == 0.0


# -- the LLM answer: accepted only as operators ----------------------------------------------------

def test_llm_answer_in_the_operator_schema_is_accepted():
    ops = parse_answer('{"ops": [{"op": "trim"}, {"op": "parse_date", "formats": ["%d.%m.%Y"]}]}')
    assert ops == (Trim(), ParseDate(formats=["%d.%m.%Y"]))
    assert parse_answer('```json\n{"op": "trim"}\n```') == (Trim(),)
    schema = answer_schema()
    assert schema["properties"]["ops"]["items"]["oneOf"] and "$defs" in schema
    json.dumps(schema)


@pytest.mark.parametrize("answer", [
    "",
    "Sure! Here is how to fix it: use strptime.",
    "I cannot help with that {maybe}",
    '{"ops": [{"op": "parse_date", "formats": ["%d.%m.%Y"]}',  # truncated JSON
])
def test_garbage_llm_answer_is_rejected(answer):
    with pytest.raises(RejectedAnswer):
        parse_answer(answer)


@pytest.mark.parametrize("answer", [
    "import os\nos.system('rm -rf /')",
    "```python\ndef fix(v):\n    return eval(v)\n```",
    '{"ops": [{"op": "map_values", "mapping": {"x": "__import__(\'os\').system(\'id\')"}}]}',
    '{"ops": [{"op": "map_values", "mapping": {"x": "lambda v: v"}}]}',
])
def test_code_in_an_llm_answer_is_rejected(answer):
    with pytest.raises(RejectedAnswer):
        parse_answer(answer)


@pytest.mark.parametrize("answer", [
    "DROP TABLE people;",
    "UPDATE people SET balance = 0; --",
    '{"ops": [{"op": "map_values", "mapping": {"ACTV": "active\'; DROP TABLE people; --"}}]}',
    '{"ops": [{"op": "default", "value": "1); DELETE FROM people WHERE (1=1"}]}',
])
def test_sql_in_an_llm_answer_is_rejected(answer):
    with pytest.raises(RejectedAnswer):
        parse_answer(answer)


@pytest.mark.parametrize("answer", [
    '{"ops": [{"op": "exec", "code": "print(1)"}]}',
    '{"ops": [{"op": "regex_replace", "pattern": ".*", "to": ""}]}',
    '{"ops": [{"op": "trim", "then": "python"}]}',  # unknown field
    '{"ops": [{"op": "truncate", "length": -1}]}',  # wrong value
    '{"ops": [], "note": "x"}',
])
def test_unknown_operator_in_an_llm_answer_is_rejected(answer):
    with pytest.raises(RejectedAnswer):
        parse_answer(answer)


def test_propose_turns_a_rejection_into_no_candidate():
    ctx = GroupContext(Signature("enum.unknown_value", "t", "status", "*"), "status",
                       ColumnPlan(type="varchar(12)", rules={"allowed": ["active"]}), pl.Series(["ACTV"]), Settings())
    seen = []
    bad = CallableClient(lambda m, s: seen.append(m) or "DROP TABLE t;")
    cands, why = propose(bad, ctx)
    assert cands == [] and "rejected" in why and bad.calls == 1
    assert "ACTV" in seen[0][1]["content"] and "Never" not in seen[0][1]["content"]
    good = CallableClient(lambda m, s: '{"ops": [{"op": "map_values", "mapping": {"ACTV": "active"}}]}')
    cands, why = propose(good, ctx)
    assert why is None and cands[0].ops == (MapValues(mapping={"ACTV": "active"}),) and cands[0].origin == "llm"
    boom = CallableClient(lambda m, s: (_ for _ in ()).throw(TimeoutError("slow")))
    assert propose(boom, ctx)[0] == []


# -- broadcasts -----------------------------------------------------------------------------------

def _plan() -> Plan:
    return Plan.model_validate({"name": "p", "source": {"url": "sqlite:///s.db"}, "target": {"url": "sqlite:///t.db"},
                                "tables": {"people": {"primary_key": ["id"], "columns": {
                                    "id": {"type": "integer"}, "born": {"type": "date"}}}}})


def test_broadcast_roundtrip_and_rejections():
    plan, key = _plan(), b"secret"
    fix = LibraryFix(7, Signature("parse.date", "people", "born", "dd.dd.dddd"), [ParseDate(formats=["%d.%m.%Y"])])
    msg = encode_fix(key, plan, "people", fix)
    table, lf = decode_fix(key, plan, msg)
    assert table == "people" and lf.fix_id == 7 and lf.column == "born" and lf.error_class == "parse.date"
    assert lf.ops[0].shape == "dd.dd.dddd"  # shape-guarded
    with pytest.raises(RejectedBroadcast, match="signature"):
        decode_fix(b"other key", plan, msg)
    env = json.loads(msg)
    payload = json.loads(env["payload"])
    payload["ops"] = [{"op": "exec", "code": "import os"}]
    forged = json.dumps(payload)
    with pytest.raises(RejectedBroadcast, match="operators"):  # signed, but not in the operator schema
        decode_fix(key, plan, json.dumps({"payload": forged, "sig": sign(key, forged)}))
    with pytest.raises(RejectedBroadcast):
        decode_fix(key, plan, b"not json")


# -- the library ----------------------------------------------------------------------------------

def test_library_saves_counts_and_remembers_verdicts(tmp_path):
    lib = FixLibrary(f"sqlite:///{tmp_path / 'lib.db'}")
    sig = Signature("parse.date", "people", "born", "dd.dd.dddd")
    fid = lib.save(sig, [ParseDate(formats=["%d.%m.%Y"])], origin="rules")
    assert lib.save(sig, [ParseDate(formats=["%d.%m.%Y"])], origin="rules") == fid
    lib.record_success(fid, 12)
    fixes, verdict = lib.lookup(sig)
    assert verdict is None and fixes[0].success_count == 1 and fixes[0].rows_fixed == 12
    bad = Signature("parse.date", "people", "born", "dd/dd/dddd")
    lib.save_verdict(bad, "ambiguous date order")
    fixes, verdict = lib.lookup(bad)
    assert fixes == [] and verdict.reason == "ambiguous date order"
    lf = lib.learned_fixes(_plan(), "people")
    assert [f.fix_id for f in lf] == [fid]
    # a fresh library object (a restart) sees the same
    assert FixLibrary(f"sqlite:///{tmp_path / 'lib.db'}").lookup(sig)[0][0].id == fid
    assert len(lib.hmac_key()) >= 32


def test_a_chain_that_deletes_real_values_is_lossy():
    nulls = Score(Candidate((ParseDate(formats=["%d.%m.%Y"]),), origin="llm"), 1.0, outputs=(None, None), nulled=2)
    d = decide([nulls], lossy_allowed=False)
    assert d.verdict == "lossy" and "into NULL" in d.reason
    good = Score(Candidate((ParseNumber(),)), 1.0, outputs=("1", "2"))
    assert decide([nulls, good], lossy_allowed=False).winner is good  # a lossless reading beats a lossy one


# -- the cross-column operator: split_from_sibling ------------------------------------------------

STATES = ["CA", "CO", "OR", "WA", "MO", "TX"]


def _split(**kw):
    from kora_assets.transforms.operators import parse_operator

    return parse_operator({"op": "split_from_sibling", "sibling": "city", "separators": [",", " "],
                           "values": STATES, **kw})


def test_split_from_sibling_moves_a_known_suffix_only_into_an_empty_column():
    op = _split()
    df = pl.DataFrame({"state": [None, None, "WA", None, " ", None, None, None],
                       "city": ["Bend, OR", "San Francisco CA", "Seattle OR", "Kansas City MO", "Eugene ,OR ",
                                "Portland", "Nowhere ZZ", "OR"]})
    out = df.select(op.expr(pl.col("state")).alias("state"), op.sibling_expr(pl.col("state")).alias("city"))
    assert out["state"].to_list() == ["OR", "CA", "WA", "MO", "OR", None, None, None]
    assert out["city"].to_list() == ["Bend", "San Francisco", "Seattle OR", "Kansas City", "Eugene", "Portland",
                                     "Nowhere ZZ", "OR"]
    # a value with regex metacharacters is matched literally
    dash = pl.DataFrame({"s": [None, None], "c": ["Somewhere X-1", "Elsewhere XX1"]})
    from kora_assets.transforms.operators import SplitFromSibling

    op2 = SplitFromSibling(sibling="c", separators=[" "], values=["X-1", "X.1"])
    assert dash.select(op2.expr(pl.col("s")).alias("s"))["s"].to_list() == ["X-1", None]


@pytest.mark.parametrize("bad", [
    {"sibling": ""},  # no sibling
    {"separators": ["x"]},  # not a separator of the closed set
    {"separators": []},
    {"separators": [",", ","]},
    {"values": []},
    {"values": ["A,B"]},  # a value containing a separator
    {"values": [" CA"]},  # padded value
    {"values": ["x" * 65]},
    {"code": "import os"},  # unknown field
    {"sibling": "city\x00; DROP TABLE t"},
])
def test_split_from_sibling_schema_rejects_bad_parameters(bad):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        _split(**bad)


def test_split_from_sibling_is_a_fix_operator_alone_and_not_a_plan_transform():
    from pydantic import ValidationError

    from kora_assets.recovery.library import parse_ops
    from kora_assets.transforms.operators import OPERATOR_NAMES

    good = {"op": "split_from_sibling", "sibling": "city", "separators": [" "], "values": ["CA"]}
    assert parse_ops([good])[0].sibling == "city"
    assert parse_answer(json.dumps({"ops": [good]}))[0].op == "split_from_sibling"
    with pytest.raises(RejectedAnswer, match="only operator"):
        parse_answer(json.dumps({"ops": [good, {"op": "upper"}]}))
    with pytest.raises(ValueError, match="only operator"):
        parse_ops([{"op": "trim"}, good])
    with pytest.raises(ValidationError):  # a plan's transform cannot write another column
        ColumnPlan(type="char(2)", transform=[good])
    assert "split_from_sibling" not in OPERATOR_NAMES
    assert "split_from_sibling" in json.dumps(answer_schema())


def _split_plan(city_type="varchar(40)"):
    return Plan.model_validate({"name": "sp", "source": {"url": "sqlite:///s.db"}, "target": {"url": "sqlite:///t.db"},
                                "tables": {"b": {"primary_key": ["id"], "columns": {
                                    "id": {"type": "integer", "nullable": False}, "city": {"type": city_type},
                                    "state": {"type": "char(2)", "nullable": False}}}}})


def _split_ctx(plan, failing: list[str], passing: list[tuple[str, str]]):
    tp = plan.tables["b"]
    rows = pl.DataFrame({"id": [str(i) for i in range(len(failing))], "city": failing, "state": [None] * len(failing)},
                        schema={"id": pl.String, "city": pl.String, "state": pl.String})
    ok = pl.DataFrame({"id": [str(100 + i) for i in range(len(passing))], "city": [c for c, _ in passing],
                       "state": [s for _, s in passing]}).with_columns(pl.col("state").alias("__value"))
    return GroupContext(Signature("constraint.not_null", "b", "state", "*"), "state", tp.columns["state"],
                        pl.Series([None] * len(failing), dtype=pl.String), Settings(), rows=rows, passing_rows=ok,
                        table=tp)


PASSING = [(f"Town{i}", STATES[i % len(STATES)]) for i in range(60)]


def test_rules_propose_a_split_only_on_evidence_from_every_row():
    from kora_assets.transforms.operators import SplitFromSibling

    plan = _split_plan()
    g = generate(_split_ctx(plan, ["Bend, OR", "San Francisco CA", "Kansas City MO"], PASSING))
    (cand,) = g.candidates
    assert cand.ops == (SplitFromSibling(sibling="city", separators=[",", " "], values=sorted(STATES)),)
    assert not g.unfixable and not g.ask_llm
    # one failing row without a known suffix: no candidate, the NULL stays unfixable
    g = generate(_split_ctx(plan, ["Bend, OR", "Springfield"], PASSING))
    assert not g.candidates and "NOT NULL" in g.unfixable
    g = generate(_split_ctx(plan, ["Bend, OR", "Nowhere ZZ"], PASSING))
    assert not g.candidates
    # the sibling's passing values end in such codes anyway: the suffix is part of the city
    usual = [(f"Town{i} {s}", s) for i, (_, s) in enumerate(PASSING)]
    assert not generate(_split_ctx(plan, ["Bend, OR"], usual)).candidates
    # a free-text column (every value distinct) is not a code to split off
    names = [(f"Town{i}", f"S{i:02d}") for i in range(60)]
    assert not generate(_split_ctx(plan, ["Bend S01"], names)).candidates


def test_split_fix_applies_to_both_columns_or_to_neither():
    from checks.record import RecordValidator
    from kora_assets.recovery.siblings import apply_sibling_writes
    from kora_assets.transforms.compiler import LearnedFix, TableTransform
    from kora_assets.transforms.operators import FixMojibake, SplitFromSibling

    plan = _split_plan("varchar(12)")
    tp = plan.tables["b"]
    split = LearnedFix(7, "state", "constraint.not_null", (SplitFromSibling(sibling="city", separators=[","],
                                                                            values=["OR", "MO"]),))
    moji = LearnedFix(8, "city", "encoding.mojibake", (FixMojibake(),))
    src = pl.DataFrame({"id": ["1", "2", "3", "4", "5"],
                        "city": ["Bend, OR", "Salem", "MÃ¼nster, MO", "Hood River Valley, OR", "Kansas City, MO"],
                        "state": [None, "OR", None, None, "MO"]})
    tr = TableTransform(tp, [moji, split])
    val = RecordValidator(tr, plan.settings)
    df = apply_sibling_writes(val.apply_fixes(tr.apply(src.lazy())), tr, plan.settings).collect()
    by = {c.source: c for c in tr.columns}
    out = df.select(pl.col(by["city"].o).alias("city"), pl.col(by["state"].o).alias("state"),
                    pl.col(by["city"].fixed_by).alias("fc"), pl.col(by["state"].fixed_by).alias("fs"))
    assert out.rows() == [
        ("Bend", "OR", 7, 7),  # both halves, both audited with the fix id
        ("Salem", "OR", None, None),  # passing row untouched
        ("Münster, MO", None, 8, None),  # the city was fixed otherwise: no half split
        ("Hood River Valley, OR", None, None, None),  # 'Hood River Valley' is too long for varchar(12): neither
        ("Kansas City, MO", "MO", None, None),  # the state is there: nothing moves
    ]


def test_cross_column_fix_broadcast_and_worker_filter(tmp_path, monkeypatch):
    from kora_assets.recovery.broadcast import WorkerFixes, inline_ok
    from kora_assets.transforms.operators import SplitFromSibling

    plan, key = _split_plan(), b"secret"
    op = SplitFromSibling(sibling="city", separators=[" "], values=["OR"])
    fix = LibraryFix(3, Signature("constraint.not_null", "b", "state", "*"), [op])
    table, lf = decode_fix(key, plan, encode_fix(key, plan, "b", fix))
    assert table == "b" and lf.ops == (op,) and not inline_ok(lf)
    other = LibraryFix(4, Signature("constraint.not_null", "b", "state", "*"),
                       [SplitFromSibling(sibling="town", separators=[" "], values=["OR"])])
    with pytest.raises(RejectedBroadcast, match="column"):  # names a sibling the plan does not have
        decode_fix(key, plan, encode_fix(key, plan, "b", other))
    env = json.loads(encode_fix(key, plan, "b", fix))
    payload = json.loads(env["payload"])
    payload["ops"] = [{"op": "split_from_sibling", "sibling": "city", "separators": [" "], "values": []}]
    forged = json.dumps(payload)
    with pytest.raises(RejectedBroadcast, match="operators"):  # signed, but the parameters do not validate
        decode_fix(key, plan, json.dumps({"payload": forged, "sig": sign(key, forged)}))
    # workers leave cross-column fixes to recovery (half a split must never land)
    monkeypatch.setenv("KORA_FIX_LIBRARY_URL", f"sqlite:///{tmp_path / 'lib.db'}")
    lib = FixLibrary.for_plan(plan)
    fid = lib.save(Signature("constraint.not_null", "b", "state", "*"), [op], origin="rules")
    assert [f.fix_id for f in lib.learned_fixes(plan, "b")] == [fid]
    wf = WorkerFixes(plan)
    assert wf.for_table("b") == []
    wf._received("b", lf)
    assert wf.for_table("b", refresh=False) == []
