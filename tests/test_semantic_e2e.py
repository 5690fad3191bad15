"""Semantic validation on the real path: a migration through Dagster and Ray queues exactly the
planted implausible rows as ``semantic.implausible``; the per-partition semantic asset check
reports them; the validation pattern library learns a rule from one migration, a steward
confirms it with ``kora rules``, and it catches a differently named column of the same
semantic type in a second migration."""
from __future__ import annotations

import json
import sqlite3

import dagster as dg
import pytest
from click.testing import CliRunner

from checks.semantic import runtime
from checks.semantic.encoder import unavailable_reason
from checks.semantic.plausibility import ERROR_CLASS, rule_name_of
from kora_assets.dbio.connections import Database
from kora_assets.plan.loader import parse_plan

pytestmark = pytest.mark.usefixtures("ray_local", "redis_url")

FIRST = ["Ana", "Björn", "Chloé", "Dmitri", "Emma", "Fatima", "Günter", "Hiro", "Inès", "Jürgen", "Kofi", "Léa", "Mateo"]
LAST = ["García", "Müller", "Smith", "Núñez", "O'Brien", "Dubois", "Kowalski", "Rossi", "Nakamura", "Silva", "Brown"]
MASH = {39: "sdfghjkl", 40: "qwrtzp xcvbnm"}  # land (no rule can know), but the check flags them as anomalies
CLEAN = {i: (MASH.get(i, f"{FIRST[i % 13]} {LAST[(i * 7) % 11]}"), f"p{i}@example.com", f"19{50 + i % 40}-0{1 + i % 9}-1{i % 9}",
             str(18 + i % 60), f"{i * 13.5:.2f}", str(i % 50), ["US", "DE", "FR", "BR"][i % 4]) for i in range(1, 41)}
#: id -> (column, the row's implausible value, the rule that must fire)
PLANTED = {
    41: ("born", "2031-02-03", "birth_date.not_future"),
    42: ("balance", "-12.50", "money_nonnegative.not_negative"),
    43: ("discount_pct", "130", "percentage.at_most_100"),
    44: ("age", "142", "age.at_most_130"),
    45: ("email", "bob(at)example.com", "email.parses"),
    46: ("name", "test", "person_name.not_placeholder"),
    47: ("country", "XX", "country_code.exists"),
}
COLS = ["id", "name", "email", "born", "age", "balance", "discount_pct", "country"]


def _source(path) -> str:
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE people ({', '.join(c + (' INTEGER PRIMARY KEY' if c == 'id' else ' TEXT') for c in COLS)})")
    rows = {i: dict(zip(COLS, (i, *v))) for i, v in CLEAN.items()}
    for i, (col, value, _) in PLANTED.items():
        rows[i] = {**dict(zip(COLS, (i, *CLEAN[1 + i % 40]))), "id": i, col: value}
    con.executemany(f"INSERT INTO people VALUES ({', '.join('?' for _ in COLS)})",
                    [tuple(r[c] for c in COLS) for r in rows.values()])
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def _plan_text(src: str, tgt: str) -> str:
    return f"""
version: 1
name: sem
source: {{url: "{src}"}}
target: {{url: "{tgt}", schema: public}}
settings: {{chunk_rows: 16, workers: 2}}
tables:
  people:
    primary_key: [id]
    columns:
      id: {{type: integer, nullable: false, semantic: identifier}}
      name: {{type: varchar(40), semantic: person_name}}
      email: {{type: varchar(80), semantic: email}}
      born: {{type: date, semantic: birth_date}}
      age: {{type: integer, semantic: age}}
      balance: {{type: "numeric(12,2)", semantic: money_nonnegative}}
      discount_pct: {{type: "numeric(5,2)", semantic: percentage}}
      country: {{type: char(2), semantic: country_code}}
"""


def _queue(url: str) -> dict[int, tuple[str, str, str]]:
    db = Database(url, "target")
    with db.engine.connect() as c:
        rows = c.exec_driver_sql("SELECT primary_key, column_name, error_class, reason FROM kora.error_queue").all()
    db.engine.dispose()
    return {(pk if isinstance(pk, dict) else json.loads(pk))["id"]: (col, cls, reason) for pk, col, cls, reason in rows}


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    monkeypatch.setenv("KORA_TODAY", "2026-01-01")
    runtime.clear()
    yield
    runtime.clear()


def test_migration_queues_exactly_the_implausible_rows_and_the_check_reports_them(tmp_path, pg_db, dagster_instance):
    from checks.semantic.assetcheck import build_semantic_checks
    from kora_assets.definitions import build_definitions
    from kora_assets.migrate import migrate
    from kora_assets.naming import asset_key

    plan = parse_plan(_plan_text(_source(tmp_path / "legacy.db"), pg_db), require_env=False)
    outcome = migrate(plan, dagster_instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]

    queue = _queue(pg_db)
    assert set(queue) == set(PLANTED)
    for i, (col, value, rule) in PLANTED.items():
        qcol, cls, reason = queue[i]
        assert (qcol, cls, rule_name_of(reason)) == (col, ERROR_CLASS, rule), queue[i]
        assert value in reason
    db = Database(pg_db, "target")
    with db.engine.connect() as c:
        assert [r[0] for r in c.exec_driver_sql("SELECT id FROM public.people ORDER BY id")] == list(CLEAN)
    db.engine.dispose()

    # the per-partition semantic asset check, run by Dagster on the landed partition
    # (materializing the partition again with its check, as the UI does: the partition is idempotent)
    defs = build_definitions(plan)
    check = build_semantic_checks(plan)[0]
    result = dg.materialize([defs.get_assets_def(asset_key("sem", "people")), check], instance=dagster_instance,
                            resources=defs.resources, partition_key="all")
    assert _queue(pg_db).keys() == PLANTED.keys()
    ev = next(e for e in result.get_asset_check_evaluations() if e.check_name == "semantic")
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.WARN
    md = ev.metadata
    assert md["implausible_rows"].value == len(PLANTED)
    violations = md["rule_violations"].value
    for i, (col, _, rule) in PLANTED.items():
        assert f"| {col} | {rule} | 1 | {{\"id\":{i}}} |" in violations, violations
    anomalies = md["top_anomalies"].value
    if unavailable_reason() is None:  # anomaly scores need the model; without it the check says so
        for i, name in MASH.items():
            assert f"| name | `{name}` |" in anomalies and f'{{"id":{i}}}' in anomalies, anomalies
        assert md["anomalies"].value == len(MASH), anomalies
    else:
        assert md["anomalies"].value == 0
    types = md["semantic_types"].value
    assert "| born | birth_date | 1.00 | plan | birth_date.not_future, birth_date.not_before_1900 |" in types

    # what fired is in the validation library, with its counts
    from kora_assets.cli_rules import rules

    out = CliRunner().invoke(rules, ["list", "--url", pg_db, "--json"])
    assert out.exit_code == 0, out.output
    fired = {r["name"]: (r["fired_count"], r["status"], r["profile"]) for r in json.loads(out.output)}
    assert fired["birth_date.not_future"] == (1, "confirmed", "birth_date/date")
    assert fired["percentage.at_most_100"] == (1, "confirmed", "percentage/decimal")


LEDGER = """
version: 1
name: {name}
source: {{url: "{src}"}}
target: {{url: "{tgt}", schema: public}}
settings: {{chunk_rows: 50, workers: 1}}
tables:
  {table}:
    primary_key: [id]
    columns:
      id: {{type: integer, nullable: false}}
      {column}: {{type: "numeric(12,2)", semantic: money_nonnegative{rules}}}
"""


def _money_source(path, table: str, column: str, values: dict[int, str]) -> str:
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, {column} TEXT)")
    con.executemany(f"INSERT INTO {table} VALUES (?, ?)", list(values.items()))
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_library_applies_a_confirmed_rule_to_a_differently_named_column(tmp_path, pg_db, dagster_instance):
    from checks.semantic.assetcheck import semantic_report
    from kora_assets.cli_rules import rules
    from kora_assets.dbio.ddl import ensure_target_schema
    from kora_assets.migrate import migrate
    from kora_assets.workers.partition_task import PartitionTask, TableRunner

    # migration 1: the plan's own rule (max 10000) catches an implausible balance
    vals = {i: f"{i * 100:.2f}" for i in range(1, 31)} | {31: "25000.00"}
    src1 = _money_source(tmp_path / "crm.db", "accounts", "balance", vals)
    text1 = LEDGER.format(name="crm", src=src1, tgt=pg_db, table="accounts", column="balance",
                          rules=", rules: {max: 10000}")
    plan1 = parse_plan(text1, require_env=False)
    assert migrate(plan1, dagster_instance).ok
    report = semantic_report(plan1, "accounts", "all")
    assert report.recorded_rules >= 1
    (tmp_path / "crm.yaml").write_text(text1)

    cli = CliRunner()
    listed = json.loads(cli.invoke(rules, ["list", str(tmp_path / "crm.yaml"), "--json", "--status", "candidate"]).output)
    (cand,) = [r for r in listed if r["origin"] == "plan"]
    assert (cand["name"], cand["profile"], cand["fired_count"]) == ("money_nonnegative.max_10000",
                                                                    "money_nonnegative/decimal", 1)
    out = cli.invoke(rules, ["confirm", str(tmp_path / "crm.yaml"), str(cand["id"]), "--note", "balances never exceed 10k"])
    assert out.exit_code == 0 and "confirmed" in out.output, out.output

    # migration 2: another table, another column name, same semantic profile, no max in its plan
    vals2 = {i: f"{i * 50:.2f}" for i in range(1, 21)} | {21: "50000.00", 22: "-3.00"}
    src2 = _money_source(tmp_path / "erp.db", "ledger", "account_total", vals2)
    plan2 = parse_plan(LEDGER.format(name="erp", src=src2, tgt=pg_db, table="ledger", column="account_total", rules=""),
                       require_env=False)
    # A worker resolves a table's semantics when it compiles the table (TableRunner), then runs it.
    ts = runtime.prime_table(plan2, "ledger", use_model=False)
    assert any(r.name == f"library#{cand['id']}" for r in ts.columns["account_total"].rules)
    source, target = Database(plan2.source.url, "source"), Database(plan2.target.url, "target")
    ensure_target_schema(target, plan2)
    res = TableRunner(plan2, "ledger").run(PartitionTask("ledger", "all", "run-2"), source, target)
    assert (res.source_rows, res.landed, res.queued) == (22, 20, 2)
    with target.engine.connect() as c:
        got = {json.loads(pk)["id"] if isinstance(pk, str) else pk["id"]: (col, cls, rule_name_of(reason))
               for pk, col, cls, reason in c.exec_driver_sql(
                   "SELECT primary_key, column_name, error_class, reason FROM kora.error_queue "
                   "WHERE table_name = 'ledger'")}
    assert got == {21: ("account_total", ERROR_CLASS, f"library#{cand['id']}"),
                   22: ("account_total", ERROR_CLASS, "money_nonnegative.not_negative")}
    for db in (source, target):
        db.engine.dispose()

    # retiring it stops it for later migrations of the profile
    assert cli.invoke(rules, ["retire", str(cand["id"]), "--url", pg_db]).exit_code == 0
    runtime.clear()
    ts = runtime.prime_table(plan2, "ledger", use_model=False)
    assert not any(r.name.startswith("library#") for r in ts.columns["account_total"].rules)


def test_anomaly_values_of_a_large_table_come_from_a_repeatable_block_sample(pg_db, monkeypatch):
    """Large table: a block sample (the same blocks for the value counts and for the sample keys,
    so no full scan); a partition or a small table: its own rows, counted exactly."""
    from checks.semantic import assetcheck

    db = Database(pg_db, "target")
    with db.engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE big AS SELECT g AS id, 'v' || mod(g, 50) AS name FROM generate_series(1, 20000) g")
        c.exec_driver_sql("ANALYZE big")
    monkeypatch.setattr(assetcheck, "VALUE_SAMPLE_ROWS", 2000)
    rows_from, sampled = assetcheck._value_rows(db, '"public"."big"', None)
    assert sampled and "TABLESAMPLE SYSTEM" in rows_from and "REPEATABLE" in rows_from
    with db.engine.connect() as c:
        first = c.exec_driver_sql(f"SELECT id FROM {rows_from} ORDER BY id").scalars().all()
        again = c.exec_driver_sql(f"SELECT id FROM {rows_from} ORDER BY id").scalars().all()
    assert first == again and 0 < len(first) < 20000  # the same rows each time, not the whole table
    part_from, part_sampled = assetcheck._value_rows(db, '"public"."big"', "id <= 100")
    assert not part_sampled
    with db.engine.connect() as c:
        assert c.exec_driver_sql(f"SELECT COUNT(*) FROM {part_from}").scalar() == 100
    db.engine.dispose()


def test_an_early_scan_counts_in_the_library_only_once_its_check_takes_it(tmp_path, pg_db, dagster_instance):
    """``kora migrate`` scans a table's anomalies as soon as its rows land (checks.semantic.prefetch),
    before its run; if a parent's run then fails, those rows are taken out again, so what the
    scan saw must reach the validation library only when the table's own check takes the report."""
    import sqlalchemy as sa

    from checks.semantic import prefetch
    from checks.semantic.anomaly import DEFAULT_THRESHOLD
    from kora_assets.migrate import migrate

    src = _money_source(tmp_path / "crm.db", "accounts", "balance", {i: f"{i * 100:.2f}" for i in range(1, 31)}
                        | {31: "25000.00"})
    plan = parse_plan(LEDGER.format(name="crm", src=src, tgt=pg_db, table="accounts", column="balance",
                                    rules=", rules: {max: 10000}"), require_env=False)
    assert migrate(plan, dagster_instance).ok
    engine = Database(pg_db, "target").engine

    def hits() -> int:
        with engine.begin() as c:
            return c.execute(sa.text("SELECT COALESCE(SUM(fired), 0) FROM kora.validation_rule_hits "
                                     "WHERE table_name = 'accounts'")).scalar()

    assert hits() == 1  # the plan's max caught row 31
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM kora.validation_rule_hits"))
    prefetch.start(plan, "accounts", ["all"], "early-run", DEFAULT_THRESHOLD)
    prefetch._PENDING[("early-run", "crm", "accounts", ("all",), DEFAULT_THRESHOLD)].result()
    assert hits() == 0  # scanned, not yet counted
    report = prefetch.take(plan, "accounts", ["all"], "early-run", DEFAULT_THRESHOLD)
    assert report.recorded_rules >= 1 and hits() == 1
