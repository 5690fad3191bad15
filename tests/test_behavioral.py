"""Behavioral validation: replaying the application's statements on source and target.

Real servers: MariaDB on 127.0.0.1:3306 (root) and PostgreSQL on 127.0.0.1:5432 (postgres).
Every database created here is named ``kora_bh_*`` and dropped afterwards.

The acceptance tests migrate TPC-H (``tpchgen-cli``, scale factor 0.02, the smallest at
which Q8 and Q17 return non-trivial answers) from MariaDB to PostgreSQL, with a few renames
so the translation has work to do, replay the 22 TPC-H queries written for MySQL, and then
plant a rounding defect on ``l_extendedprice``.
"""
from __future__ import annotations

import sqlite3
import textwrap
import uuid
from decimal import Decimal

import pymysql
import psycopg
import pytest
import sqlglot
from sqlglot import exp

from checks.behavioral import tpch
from checks.behavioral.compare import compare_results, numbers_equal
from checks.behavioral.querylog import (OTHER, READ, SESSION, WRITE, parse_mysql_general_log,
                                        parse_pg_stat_statements, parse_query_log, parse_sql_script,
                                        read_query_log)
from checks.behavioral.replay import ReplayError, ReplayRefused, ReplaySide, TableRef
from checks.behavioral.translate import OrderSpec, renames_from_plan, translate
from checks.behavioral.validator import replay_log

MYSQL = dict(host="127.0.0.1", port=3306, user="root")
PG = "host=127.0.0.1 port=5432 user=postgres"
SCALE = 0.02
RENAMES = {"orders": ("order_header", {"o_orderdate": "order_date", "o_totalprice": "total_price"}),
           "customer": ("customer", {"c_mktsegment": "market_segment"})}


# ----------------------------------------------------------------------------- database fixtures

def _servers_up() -> bool:
    try:
        pymysql.connect(**MYSQL, connect_timeout=3).close()
        psycopg.connect(PG + " dbname=postgres", connect_timeout=3).close()
        return True
    except Exception:
        return False


pytestmark = pytest.mark.skipif(not _servers_up(), reason="needs MariaDB on :3306 and PostgreSQL on :5432")


class Databases:
    """``kora_bh_*`` databases, all dropped at the end.

    MariaDB gets a database per use. PostgreSQL gets one database, and a schema per use
    (``db:schema``; TPC-H lives in ``public``): every ``DROP DATABASE`` forces a checkpoint,
    which takes long on a server busy with other work.
    """

    def __init__(self):
        self.tag = uuid.uuid4().hex[:8]
        self.mysql: list[str] = []
        self.pg: str | None = None

    def mariadb(self, role: str) -> str:
        name = f"kora_bh_{role}_{self.tag}"
        with pymysql.connect(**MYSQL) as c, c.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci")
        self.mysql.append(name)
        return name

    def postgres_database(self) -> str:
        """The PostgreSQL database of this test module (its ``public`` schema)."""
        if self.pg is None:
            name = f"kora_bh_{self.tag}"
            with psycopg.connect(PG + " dbname=postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}"')
                c.execute(f'CREATE DATABASE "{name}"')
            self.pg = name
        return self.pg

    def postgres(self, role: str) -> str:
        """A fresh schema ``role`` in the PostgreSQL database, as ``db:schema``."""
        db = self.postgres_database()
        with pg_conn(db) as c:
            c.execute(f'CREATE SCHEMA "{role}"')
        return f"{db}:{role}"

    def drop_all(self):
        with pymysql.connect(**MYSQL) as c, c.cursor() as cur:
            for name in self.mysql:
                cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        if self.pg:
            with psycopg.connect(PG + " dbname=postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.pg}" WITH (FORCE)')


@pytest.fixture(scope="module")
def dbs():
    d = Databases()
    yield d
    d.drop_all()


def mysql_url(db: str) -> str:
    return f"mysql://root@127.0.0.1:3306/{db}"


def pg_url(loc: str) -> str:
    """``db`` or ``db:schema`` (the schema first on the search path)."""
    db, _, schema = loc.partition(":")
    url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    return url + (f"?options=-csearch_path%3D{schema}%2Cpublic" if schema else "")


def mysql_conn(db: str, **kw):
    return pymysql.connect(**MYSQL, database=db, **kw)


def pg_conn(loc: str, **kw):
    db, _, schema = loc.partition(":")
    return psycopg.connect(PG + f" dbname={db}" + (f" options='-csearch_path={schema},public'" if schema else ""), **kw)


@pytest.fixture(scope="module")
def tpch_dbs(dbs, tmp_path_factory, ray_local, redis_url):
    """TPC-H in MariaDB (source), migrated to PostgreSQL (target, renamed) by kora itself."""
    import dagster as dg

    from kora_assets.migrate import migrate

    data = tpch.generate(tmp_path_factory.mktemp("tpch"), SCALE)
    src, tgt = dbs.mariadb("tpch_src"), dbs.postgres_database()
    plan = tpch.tpch_plan(mysql_url(src), pg_url(tgt), renames=RENAMES, query_log=str(tpch.QUERIES_FILE))
    with mysql_conn(src, local_infile=True) as c:
        counts = tpch.load_mysql(c, data, plan)
    outcome = migrate(plan, dg.DagsterInstance.ephemeral())
    assert outcome.ok, [(t.table, t.status, t.detail[:300]) for t in outcome.tables]
    replay = {c.asset: c.passed for c in outcome.checks if c.check == "behavioral_replay"}
    assert replay and all(replay.values()), replay  # the post-migration check ran and matched
    with pg_conn(tgt) as c:
        landed = {t: c.execute(f'SELECT COUNT(*) FROM "{plan.target_name(t)}"').fetchone()[0] for t in counts}
    assert landed == counts
    return plan, src, tgt, data


@pytest.fixture(scope="module")
def tpch_queries():
    statements = read_query_log(tpch.QUERIES_FILE)
    assert [s.label for s in statements] == [f"q{i:02d}" for i in range(1, 23)]
    assert all(s.kind == READ for s in statements)
    return statements


# ----------------------------------------------------------------------------- TPC-H acceptance

def test_tpch_queries_all_translate_and_match(tpch_dbs, tpch_queries):
    plan, src, tgt, _ = tpch_dbs
    report = replay_log(tpch_queries, plan.source.url, plan.target.url, renames_from_plan(plan))
    c = report.counts()
    assert c["untranslatable"] == 0, report.problems_markdown("untranslatable")
    assert c["mismatched"] == 0, report.mismatches_markdown()
    assert c["error"] == 0, report.problems_markdown("error")
    assert c["matched"] == c["replayed"] == 22
    by_title = {o.title: o for o in report.outcomes}
    assert "order_header" in by_title["q03"].tables and '"order_date"' in by_title["q03"].target_sql
    assert by_title["q08"].rows_source == 2 and by_title["q17"].rows_source == 1  # non-trivial answers


def _reads_column(sql: str, column: str) -> bool:
    return any(c.name.lower() == column for c in sqlglot.parse_one(sql, read="mysql").find_all(exp.Column))


def test_planted_rounding_defect_mismatches_exactly_the_queries_reading_the_column(dbs, tpch_dbs, tpch_queries):
    plan, src, tgt, _ = tpch_dbs
    broken = f"{tgt}:defect"  # the same migration, but its lineitem has the rounding defect
    with pg_conn(tgt) as c:
        c.execute("CREATE SCHEMA defect")
        c.execute("CREATE TABLE defect.lineitem (LIKE public.lineitem INCLUDING ALL)")
        c.execute("INSERT INTO defect.lineitem SELECT * FROM public.lineitem")
        c.execute("UPDATE defect.lineitem SET l_extendedprice = round(l_extendedprice, 0)")
        c.execute("ANALYZE defect.lineitem")
    expected = {s.label for s in tpch_queries if _reads_column(s.sql, "l_extendedprice")}
    assert expected == {"q01", "q03", "q05", "q06", "q07", "q08", "q09", "q10", "q14", "q15", "q17", "q19"}
    renames = renames_from_plan(plan)
    # the translator's own column analysis agrees with the plain sqlglot scan
    assert expected == {s.label for s in tpch_queries
                        if ("lineitem", "l_extendedprice") in translate(s.sql, "mysql", "postgres", renames).columns}

    report = replay_log(tpch_queries, plan.source.url, pg_url(broken), renames)
    mismatched = {o.title for o in report.by_status("mismatched")}
    assert mismatched == expected
    assert {o.title for o in report.by_status("matched")} == {s.label for s in tpch_queries} - expected
    q06 = next(o for o in report.outcomes if o.title == "q06")
    assert q06.rows_source == q06.rows_target == 1 and q06.only_source and q06.only_target
    md = report.mismatches_markdown()
    assert md.count("\n") >= len(expected) + 1 and "q06" in md and "l_extendedprice" in md


def test_asset_check_reports_per_table(tpch_dbs):
    import dagster as dg

    from checks.behavioral.assetchecks import build_behavioral_checks

    plan, _, _, _ = tpch_dbs
    checks = build_behavioral_checks(plan)  # reads plan.query_log, resolves the plan's URLs
    assert len(checks) == 1
    keys = set(checks[0].check_keys)
    assert {k.asset_key.path[-1] for k in keys} == {plan.target_name(t) for t in plan.tables}
    assert {k.name for k in keys} == {"behavioral_replay"}

    job = dg.define_asset_job("behavioral", selection=dg.AssetSelection.all_asset_checks())
    defs = dg.Definitions(assets=[dg.AssetSpec(k.asset_key) for k in keys], asset_checks=checks, jobs=[job])
    result = defs.resolve_job_def("behavioral").execute_in_process()
    assert result.success
    evaluations = {e.asset_key.path[-1]: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {k.asset_key.path[-1] for k in keys}
    line = evaluations["lineitem"]
    assert line.passed
    md = {k: v.value for k, v in line.metadata.items()}
    assert md["replayed"] == md["matched"] == 17 and md["mismatched"] == 0 and md["untranslatable"] == 0
    assert isinstance(md["replayed"], int) and "No mismatches" in md["mismatches"]
    assert evaluations["region"].metadata["matched"].value == 3  # q02, q05, q08


def test_asset_check_fails_with_a_readable_mismatch_table(dbs, tmp_path):
    import dagster as dg

    from checks.behavioral.assetchecks import build_behavioral_checks

    src, tgt = _people_dbs(dbs, "ac")
    log = tmp_path / "app.sql"
    log.write_text("-- name: find_alice\nselect id, name from people where name = 'alice';\n"
                   "-- name: all_ids\nselect id from people;\n"
                   "-- name: broken\nselect from where;\n")
    from kora_assets.plan.model import Plan

    plan = Plan.model_validate({
        "name": "app", "source": {"url": mysql_url(src)}, "target": {"url": pg_url(tgt)}, "query_log": str(log),
        "tables": {"people": {"target": "person", "columns": {
            "id": {"type": "integer"}, "name": {"type": "varchar(20)", "target": "full_name"},
            "score": {"type": "integer"}, "city": {"type": "char(10)"}}}}})
    with pg_conn(tgt) as c:
        c.execute('ALTER TABLE people RENAME TO person')
        c.execute('ALTER TABLE person RENAME COLUMN name TO full_name')
    checks = build_behavioral_checks(plan, lambda ep: ep.url, lambda ep: ep.url)
    [key] = checks[0].check_keys
    assert key.asset_key == dg.AssetKey(["app", "person"])
    result = dg.materialize([dg.AssetSpec(key.asset_key), *checks], raise_on_error=False,
                            selection=dg.AssetSelection.all_asset_checks())
    [ev] = result.get_asset_check_evaluations()
    assert not ev.passed and ev.severity == dg.AssetCheckSeverity.ERROR
    md = {k: v.value for k, v in ev.metadata.items()}
    assert (md["replayed"], md["matched"], md["mismatched"], md["untranslatable"]) == (2, 1, 1, 1)
    table = md["mismatches"]
    assert table.startswith("| query |") and "find_alice" in table and "'alice'" in table
    assert "| 2 | 1 |" in table  # rows source / target
    assert "broken" in md["untranslatable statements"]


# ----------------------------------------------------------------------------- writes leave no trace

WRITE_LOG = textwrap.dedent("""\
    /usr/sbin/mariadbd, Version: 10.11.19-MariaDB-0+deb12u1 (Debian 12). started with:
    Tcp port: 3306  Unix socket: /run/mysqld/mysqld.sock
    Time\t\t    Id Command\tArgument
    261127  3:10:00\t    21 Connect\tapp@10.0.0.5 on tpch using TCP/IP
    \t\t    21 Query\tSET NAMES utf8mb4
    \t\t    21 Query\tSET autocommit=0
    \t\t    21 Query\tUPDATE orders SET o_totalprice = o_totalprice * 1.1, o_orderstatus = 'P'
     WHERE o_orderdate < '1992-02-01'
    261127  3:10:01\t    22 Connect\tapp@10.0.0.5 on tpch using TCP/IP
    \t\t    22 Query\tSTART TRANSACTION
    \t\t    21 Query\tDELETE FROM orders WHERE o_orderdate < '1992-01-10' AND o_custkey IN (SELECT c_custkey FROM customer WHERE c_mktsegment = 'BUILDING')
    \t\t    22 Query\tINSERT INTO customer (c_custkey, c_name, c_address, c_nationkey, c_phone, c_acctbal, c_mktsegment, c_comment) VALUES (999001, 'Customer#999001', 'nowhere', 7, '17-000-000-0000', 100.00, 'BUILDING', 'new')
    \t\t    22 Query\tINSERT INTO audit_log (event) VALUES ('customer 999001 created')
    \t\t    22 Query\tUPDATE customer c SET c.c_acctbal = c.c_acctbal - 10 WHERE c.c_mktsegment = 'BUILDING' AND c.c_nationkey = 7
    \t\t    22 Query\tSELECT count(*), sum(c_acctbal) FROM customer WHERE c_mktsegment = 'BUILDING'
    \t\t    21 Query\tCOMMIT
    \t\t    22 Query\tCOMMIT
    261127  3:10:02\t    21 Query\tUPDATE customer SET c_comment = 'vip' WHERE c_name = 'customer#000000001'
    \t\t    21 Query\tINSERT INTO audit_log (event) VALUES ('vip')
    \t\t    21 Query\tROLLBACK
    \t\t    22 Query\tDELETE FROM region
    \t\t    22 Quit\t
    \t\t    21 Quit\t
    """)


def _mysql_state(db: str, tables: list[str]) -> dict:
    with mysql_conn(db) as c, c.cursor() as cur:
        state = {}
        for t in tables:
            cur.execute(f"SELECT COUNT(*) FROM `{t}`")
            count = cur.fetchone()[0]
            cur.execute(f"CHECKSUM TABLE `{t}`")
            state[t] = (count, cur.fetchone()[1])
        cur.execute("SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES "
                    "WHERE TABLE_SCHEMA = DATABASE() AND AUTO_INCREMENT IS NOT NULL")
        state["auto_increment"] = sorted(cur.fetchall())
    return state


def _pg_state(db: str, tables: list[str]) -> dict:
    with pg_conn(db) as c:
        state = {}
        for t in tables:
            state[t] = c.execute(f'SELECT COUNT(*), md5(coalesce(string_agg(md5(x::text), \',\' '
                                 f'ORDER BY md5(x::text)), \'\')) FROM "{t}" AS x').fetchone()
        state["sequences"] = c.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1").fetchall()
    return state


def test_write_log_replays_rolled_back_and_leaves_both_databases_unchanged(tpch_dbs):
    plan, src, tgt, _ = tpch_dbs
    with mysql_conn(src) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE audit_log (id INT AUTO_INCREMENT PRIMARY KEY, event VARCHAR(80)) ENGINE=InnoDB")
        cur.execute("INSERT INTO audit_log (event) VALUES ('created')")
        c.commit()
    with pg_conn(tgt) as c:
        c.execute("CREATE TABLE audit_log (id INT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, event VARCHAR(80))")
        c.execute("INSERT INTO audit_log (event) VALUES ('created')")
    src_tables = list(plan.tables) + ["audit_log"]
    tgt_tables = [plan.target_name(t) for t in plan.tables] + ["audit_log"]
    before = _mysql_state(src, src_tables), _pg_state(tgt, tgt_tables)

    statements = parse_mysql_general_log(WRITE_LOG)
    assert [s.kind for s in statements] == [SESSION, WRITE, WRITE, WRITE, WRITE, WRITE, READ, WRITE, WRITE, WRITE]
    groups = [s.group_id for s in statements if s.kind != SESSION]
    # thread 21 (autocommit off): UPDATE+DELETE, then UPDATE+INSERT; thread 22: 4 statements, then DELETE
    assert len(set(groups)) == 4
    assert groups[0] == groups[1] and groups[2] == groups[3] == groups[4] == groups[5] and groups[6] == groups[7]

    report = replay_log(statements, plan.source.url, plan.target.url, renames_from_plan(plan))
    after = _mysql_state(src, src_tables), _pg_state(tgt, tgt_tables)
    assert after == before  # row counts, checksums, AUTO_INCREMENT and sequences

    outcomes = [o for o in report.outcomes if o.kind == WRITE]
    assert [o.status for o in outcomes] == ["matched", "matched", "mismatched", "matched"], \
        [(o.title, o.status, o.reason) for o in outcomes]
    first, second, vip, delete_region = outcomes
    assert first.statements == 2 and first.rows_source == first.rows_target > 0
    assert second.statements == 4 and {"customer", "audit_log"} <= second.tables
    # MySQL's case-insensitive collation updates customer#000000001; PostgreSQL matches nothing
    assert "affected 1 row(s) on the source, 0 on the target" in vip.reason
    assert vip.only_source and vip.only_source[0][1] == "Customer#000000001" and vip.only_source[0][-1] == "vip"
    assert delete_region.rows_source == 5


def test_write_replay_refuses_non_transactional_tables(dbs):
    db = dbs.mariadb("myisam")
    with mysql_conn(db) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=MyISAM")
        cur.execute("INSERT INTO t VALUES (1)")
        c.commit()
    side = ReplaySide(mysql_url(db))
    with pytest.raises(ReplayRefused, match="non-transactional MyISAM"):
        side.run_transaction(["DELETE FROM t"], tables=[TableRef("t")])
    assert side.run_read("SELECT COUNT(*) FROM t").rows == [(1,)]
    side.close()


# ----------------------------------------------------------------------------- semantic traps

def _people_dbs(dbs, role: str) -> tuple[str, str]:
    src, tgt = dbs.mariadb(f"{role}_src"), dbs.postgres(f"{role}_tgt")
    rows = "(1, 'Alice', 10, 'Oslo'), (2, 'alice', NULL, 'oslo'), (3, 'Bob', 5, 'Rome'), (4, 'Émile', 7, 'Paris')"
    with mysql_conn(src) as c, c.cursor() as cur:
        cur.execute("CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(20), score INT NULL, "
                    "city CHAR(10))")
        cur.execute(f"INSERT INTO people VALUES {rows}")
        c.commit()
    with pg_conn(tgt) as c:
        c.execute("CREATE TABLE people (id INT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, name VARCHAR(20), "
                  "score INT NULL, city CHAR(10))")
        c.execute(f"INSERT INTO people VALUES {rows}")
        c.execute("SELECT setval(pg_get_serial_sequence('people', 'id'), 4)")
    return src, tgt


TRAPS = """
-- name: case_insensitive_equality
select count(*) from people where name = 'alice';
-- name: case_insensitive_like
select id from people where name like 'a%';
-- name: case_insensitive_group
select name, count(*) from people group by name;
-- name: trailing_space_equality
select id from people where name = 'Bob ';
-- name: collation_order
select name from people order by name;
-- name: float_rounding
select round(2.5e0);
-- name: null_ordering
select id, score from people order by score;
-- name: integer_division
select 5/2 as half, sum(score) / count(*) as mean from people;
-- name: char_padding
select city, count(*) from people where city = 'Rome' group by city;
-- name: not_sql
select name from people procedure analyse();
-- name: prepared
select * from people where id = ?;
"""


def test_semantic_differences_are_reported_not_translated_away(dbs):
    src, tgt = _people_dbs(dbs, "traps")
    report = replay_log(parse_sql_script(TRAPS), mysql_url(src), pg_url(tgt))
    status = {o.title: o.status for o in report.outcomes}
    assert status == {
        # MySQL's utf8mb4_general_ci collation vs PostgreSQL's deterministic C.UTF-8
        "case_insensitive_equality": "mismatched", "case_insensitive_like": "mismatched",
        "case_insensitive_group": "mismatched", "trailing_space_equality": "mismatched",
        "collation_order": "mismatched",
        # MySQL rounds a DOUBLE 2.5 to even (2); PostgreSQL reads 2.5e0 as numeric and gets 3
        "float_rounding": "mismatched",
        # sqlglot preserves these: NULLS FIRST is added, '/' becomes a non-integer division
        "null_ordering": "matched", "integer_division": "matched",
        # CHAR(n) blank padding is the type's, not a difference
        "char_padding": "matched",
        "not_sql": "untranslatable", "prepared": "untranslatable"}
    by = {o.title: o for o in report.outcomes}
    assert by["case_insensitive_equality"].only_source == [(2,)] and by["case_insensitive_equality"].only_target == [(1,)]
    assert "different order" in by["collation_order"].reason
    assert "placeholders" in by["prepared"].reason
    assert "NULLS FIRST" in by["null_ordering"].target_sql


def test_target_rejecting_a_query_is_a_mismatch_and_timeouts_are_inconclusive(dbs):
    src, tgt = _people_dbs(dbs, "reject")
    log = ("-- name: mysql_only\nselect group_concat(name separator 0x2c) from people;\n"
           "-- name: slow\nselect count(*) from people a, people b, people c, people d, people e, people f, "
           "people g, people h, people i, people j, people k, people l where a.id + b.id + c.id + d.id > 0;\n")
    report = replay_log(parse_sql_script(log), mysql_url(src), pg_url(tgt), timeout_s=0.5)
    by = {o.title: o for o in report.outcomes}
    assert by["mysql_only"].status == "mismatched" and "target rejects" in by["mysql_only"].reason
    assert by["slow"].status == "error" and "timed out" in by["slow"].reason


@pytest.mark.parametrize("kind", ["mariadb", "postgres", "sqlite"])
def test_replay_is_read_only_and_bounded_in_time(dbs, tmp_path, kind):
    if kind == "mariadb":
        db = dbs.mariadb("ro")
        with mysql_conn(db) as c, c.cursor() as cur:
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            cur.execute("INSERT INTO t VALUES (1), (2), (3)")
            c.commit()
        side = ReplaySide(mysql_url(db))
        slow = "SELECT COUNT(*) FROM t a, t b, t c, t d, t e, t f, t g, t h, t i, t j, t k, t l, t m, t n, t o, t p"
    elif kind == "postgres":
        db = dbs.postgres("ro")
        with pg_conn(db) as c:
            c.execute("CREATE TABLE t (id INT PRIMARY KEY)")
            c.execute("INSERT INTO t VALUES (1), (2), (3)")
        side = ReplaySide(pg_conn(db))  # a DBAPI connection works as well as a URL
        slow = "SELECT COUNT(*) FROM generate_series(1, 1000000000)"
    else:
        path = tmp_path / "ro.sqlite"
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        con.execute("INSERT INTO t VALUES (1), (2), (3)")
        con.commit()
        side = ReplaySide(con)
        slow = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
                "SELECT COUNT(*) FROM n")
    with side:
        for write in ("DELETE FROM t", "INSERT INTO t VALUES (9)", "UPDATE t SET id = id + 10"):
            with pytest.raises(ReplayError) as err:
                side.run_read(write)
            assert not err.value.timeout
        with pytest.raises(ReplayError) as err:
            side.run_read(slow, timeout_s=0.3)
        assert err.value.timeout
        assert side.run_read("SELECT id FROM t ORDER BY id").rows == [(1,), (2,), (3,)]
        tx = side.run_transaction(["DELETE FROM t WHERE id = 1", "SELECT COUNT(*) FROM t"],
                                  tables=[TableRef("t")])
        assert tx.error is None and tx.results[0].rowcount == 1 and tx.results[1].rows == [(2,)]
        assert (tx.tables[0].count, tx.tables[0].removed, tx.tables[0].added) == (2, [(1,)], [])
        assert side.run_read("SELECT COUNT(*) FROM t").rows == [(3,)]


def test_sqlite_source_against_postgres_target(dbs, tmp_path):
    path = tmp_path / "legacy.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score INTEGER)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", [(1, "Alice", 10), (2, "alice", None), (3, "Bob", 5)])
    con.commit()
    con.close()
    tgt = dbs.postgres("sqlite_tgt")
    with pg_conn(tgt) as c:
        c.execute("CREATE TABLE people (id INT PRIMARY KEY, name TEXT, score INT)")
        c.execute("INSERT INTO people VALUES (1, 'Alice', 10), (2, 'alice', NULL), (3, 'Bob', 5)")
    log = ("-- name: like\nselect id from people where name like 'a%';\n"
           "-- name: total\nselect sum(score), count(score), avg(score) from people;\n"
           "-- name: ordered\nselect id from people order by score desc, id;\n")
    report = replay_log(parse_sql_script(log), f"sqlite:///{path}", pg_url(tgt))
    assert {o.title: o.status for o in report.outcomes} == {"like": "mismatched", "total": "matched",
                                                            "ordered": "matched"}


def test_pg_stat_statements_export_replays_against_mariadb(dbs):
    src_pg, tgt_my = dbs.postgres("pgss_src"), dbs.mariadb("pgss_tgt")
    for conn, ddl in ((pg_conn(src_pg), "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20))"),
                      (mysql_conn(tgt_my), "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(20))")):
        with conn:
            cur = conn.cursor()
            cur.execute(ddl)
            cur.execute("INSERT INTO people VALUES (1, 'Alice'), (2, 'alice'), (3, 'Bob')")
            conn.commit()
    export = ('queryid,calls,query\n'
              '-411,12,"SELECT count(*) FROM people WHERE name = $1"\n'
              '7,3,"SELECT count(*) FROM people WHERE name = \'alice\'"\n'
              '8,1,"SELECT id, name\nFROM people\nORDER BY id"\n'
              '9,1,BEGIN\n'
              '10,1,"SET search_path TO public"\n')
    statements = parse_pg_stat_statements(export)
    assert [(s.kind, s.calls) for s in statements] == [(READ, 12), (READ, 3), (READ, 1), (SESSION, 1)]
    report = replay_log(statements, pg_url(src_pg), mysql_url(tgt_my))
    assert [o.status for o in report.outcomes] == ["untranslatable", "mismatched", "matched", "skipped"]
    assert report.outcomes[0].title == "queryid -411"


# ----------------------------------------------------------------------------- pure units

def test_sql_script_groups_transactions_and_keeps_labels():
    text = ("-- name: first\nselect 1;\nBEGIN;\ninsert into t values (1, ';');\n"
            "update t set a = 'it''s; fine' where b = \"x;y\";\nCOMMIT;\n"
            "/* block; comment */ delete from t;\ncreate table u (a int);\nDELIMITER //\n"
            "create procedure p() begin select 1; end//\nDELIMITER ;\nselect 2;\n")
    st = parse_sql_script(text, name="app.sql")
    assert [s.kind for s in st] == [READ, WRITE, WRITE, WRITE, OTHER, OTHER, READ]
    assert st[0].label == "first" and st[0].origin == "app.sql:2"
    assert st[1].group_id == st[2].group_id != st[3].group_id
    assert st[2].sql.endswith('"x;y"') and st[5].sql.endswith("end")
    assert parse_query_log(text).__len__() == 7


def test_general_log_entries_span_lines_and_sessions():
    st = parse_mysql_general_log(WRITE_LOG, name="g.log")
    assert st[1].sql.startswith("UPDATE orders") and st[1].sql.endswith("WHERE o_orderdate < '1992-02-01'")
    assert st[1].origin == "g.log:7 (thread 21)"


def test_mysql8_general_log_format():
    text = ("2024-03-15T10:21:33.123456Z\t   31 Connect\tapp@host on shop using TCP/IP\n"
            "2024-03-15T10:21:33.200000Z\t   31 Query\tSELECT *\nFROM t\n"
            "2024-03-15T10:21:33.300000Z\t   31 Execute\tINSERT INTO t VALUES (1)\n"
            "2024-03-15T10:21:33.400000Z\t   31 Quit\t\n")
    st = parse_query_log(text, name="mysql8.log")
    assert [(s.kind, s.sql) for s in st] == [(READ, "SELECT *\nFROM t"), (WRITE, "INSERT INTO t VALUES (1)")]
    assert st[0].group_id != st[1].group_id


def test_translation_applies_renames_through_aliases_and_subqueries():
    renames = {"orders": ("order_header", {"o_id": "id", "o_date": "placed_on", "o_cust": "o_cust"}),
               "customer": ("client", {"c_id": "c_id", "c_name": "full_name"})}
    tr = translate("select o.o_date, c_name, (select max(o_date) from orders o2 where o2.o_cust = c.c_id) "
                   "from orders o join customer c on o.o_cust = c.c_id where o_date > '2020-01-01' "
                   "order by o_date desc, 1", "mysql", "postgres", renames)
    assert tr.ok, tr.error
    sql = tr.target_sql
    assert '"order_header" AS o' in sql and '"client" AS c' in sql
    assert 'o."placed_on" AS o_date' in sql and 'c."full_name" AS c_name' in sql
    assert 'MAX(o2."placed_on")' in sql and "orders" not in sql.replace("order_header", "")
    assert tr.source_tables == {"orders", "customer"} and tr.target_tables == {"order_header", "client"}
    assert ("orders", "o_date") in tr.columns and ("customer", "c_name") in tr.columns
    assert tr.ordered == OrderSpec(keys=(0, 0), limit=None)

    up = translate("UPDATE orders SET o_date = '2021-01-01' WHERE o_cust IN (SELECT c_id FROM customer "
                   "WHERE c_name = 'x')", "mysql", "postgres", renames)
    assert up.ok and up.written_tables == {"orders"}
    assert up.target_sql.startswith('UPDATE "order_header" SET "placed_on" = ')
    ins = translate("INSERT INTO orders (o_id, o_date) VALUES (1, '2020-01-01')", "mysql", "postgres", renames)
    assert ins.target_sql == 'INSERT INTO "order_header" ("id", "placed_on") VALUES (1, \'2020-01-01\')'


def test_untranslatable_statements_say_why():
    assert "cannot parse" in translate("select from where", "mysql", "postgres").error
    assert "placeholders" in translate("select * from t where a = $1", "postgres", "mysql").error
    assert "session variable" in translate("select * from t where a = @v", "mysql", "postgres").error
    fixed = translate("select date_add('2020-01-31', interval 1 month)", "mysql", "postgres")
    assert "CAST('2020-01-31' AS DATE)" in fixed.target_sql
    locked = translate("select * from t where a = 1 for update", "mysql", "postgres")
    assert "FOR UPDATE" not in locked.source_sql.upper() and "FOR UPDATE" not in locked.target_sql.upper()


def test_comparison_tolerance_and_order():
    assert numbers_equal(Decimal("2.5000"), 2.5) and not numbers_equal(Decimal("2.5000"), 2)
    assert numbers_equal(Decimal("25.575155"), Decimal("25.5751546114546921"))
    assert not numbers_equal(Decimal("1234.56"), Decimal("1235.00"))
    assert numbers_equal(1995, Decimal("1995")) and numbers_equal(0.1 + 0.2, 0.3)
    assert compare_results([(1, None), (2, "a")], [(2, "a"), (1, None)]).equal
    assert not compare_results([(None,), (1,)], [(1,), (None,)], OrderSpec((0,))).equal
    # ties in the ORDER BY keys may come back in any order
    assert compare_results([(1, "a"), (1, "b"), (2, "c")], [(1, "b"), (1, "a"), (2, "c")], OrderSpec((0,))).equal
    # a tie cut by the LIMIT is compared on its keys only, and says so
    cut = compare_results([(3, "a"), (2, "b")], [(3, "a"), (2, "z")], OrderSpec((0,), limit=2))
    assert cut.equal and "LIMIT" in cut.note
    diff = compare_results([(1,), (2,)], [(1,), (2,), (2,)])
    assert not diff.equal and diff.reason == "row counts differ: source 2, target 3" and diff.only_target == [(2,)]
