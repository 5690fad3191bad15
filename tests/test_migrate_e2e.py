"""End-to-end migrations through Dagster and Ray against the real databases: exact landed rows,
exact queued rows with reasons, idempotency, and conservation proven by the blocking check."""
from __future__ import annotations

import json

import pytest

from kora_assets.dbio.connections import Database
from kora_assets.migrate import migrate
from kora_assets.plan.loader import parse_plan
from tests import shop_fixture as shop

pytestmark = pytest.mark.usefixtures("ray_local", "redis_url")


def _rows(url: str, sql: str) -> list[tuple]:
    db = Database(url, "target")
    with db.engine.connect() as c:
        rows = [tuple(r) for r in c.exec_driver_sql(sql)]
    db.engine.dispose()
    return rows


def _queue(url: str) -> dict[tuple[str, int], tuple[str, str]]:
    q = "kora__error_queue" if url.startswith("sqlite") else "kora.error_queue"
    out = {}
    for table, pk, col, cls, status, reason in _rows(url, f"SELECT table_name, primary_key, column_name, error_class, status, reason FROM {q}"):
        key = json.loads(pk) if isinstance(pk, str) else pk
        assert status == "pending" and reason, (table, key, reason)
        out[(table, key["id"])] = (col, cls)
    return out


def _expected_queue() -> dict:
    exp = {("customers", k): v for k, v in shop.EXPECTED_CUSTOMER_ERRORS.items()}
    exp.update({("orders", k): v for k, v in shop.EXPECTED_ORDER_ERRORS.items()})
    exp.update({("employees", k): v for k, v in shop.EXPECTED_EMPLOYEE_ERRORS.items()})
    # the target names columns: the plan renames customers.name -> full_name
    return {k: ("full_name" if col == "name" else col, cls) for k, (col, cls) in exp.items()}


def _assert_exact_target(target_url: str, schema: str = "public") -> None:
    p = "" if target_url.startswith("sqlite") else f"{schema}."
    clients = _rows(target_url, f"SELECT id, full_name, email, born, balance, status FROM {p}clients ORDER BY id")
    orders = _rows(target_url, f"SELECT id, customer_id, amount, ordered_at FROM {p}orders ORDER BY id")
    employees = _rows(target_url, f"SELECT id, name, manager_id FROM {p}employees ORDER BY id")
    if target_url.startswith("sqlite"):  # SQLite keeps dates as text and numbers as REAL
        assert [r[0] for r in clients] == shop.LANDED_CUSTOMERS
        assert [(r[0], r[1]) for r in clients] == [(r[0], r[1]) for r in shop.expected_clients()]
        assert [r[0] for r in orders] == [r[0] for r in shop.expected_orders()]
    else:
        assert clients == shop.expected_clients()
        assert orders == shop.expected_orders()
    assert employees == [(1, "Boss", None), (2, "Mid", 1), (3, "Low", 2)]
    assert _queue(target_url) == _expected_queue()


def _snapshot(target_url: str) -> dict:
    p = "" if target_url.startswith("sqlite") else "public."
    q = "kora__error_queue" if target_url.startswith("sqlite") else "kora.error_queue"
    return {t: _rows(target_url, f"SELECT * FROM {p}{t} ORDER BY 1") for t in ("clients", "orders", "employees")} | {
        "queue": sorted(_rows(target_url, f"SELECT table_name, partition_key, CAST(primary_key AS TEXT), column_name, "
                                          f"error_class, reason, value, status FROM {q}"))}


def _run(plan_text: str, instance):
    plan = parse_plan(plan_text, require_env=False)
    outcome = migrate(plan, instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
    return plan, outcome


def test_mariadb_to_postgres_exact_and_idempotent(mysql_db, pg_db, dagster_instance):
    shop.build_source(mysql_db)
    text = shop.plan_yaml(mysql_db, pg_db)
    _run(text, dagster_instance)
    _assert_exact_target(pg_db)
    first = _snapshot(pg_db)
    _run(text, dagster_instance)  # again, over landed data
    assert _snapshot(pg_db) == first


def test_postgres_to_postgres(pg_db2, pg_db, dagster_instance):
    shop.build_source(pg_db2)
    _run(shop.plan_yaml(pg_db2, pg_db), dagster_instance)
    _assert_exact_target(pg_db)


def test_sqlite_to_postgres(tmp_path, pg_db, dagster_instance):
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    _run(shop.plan_yaml(src, pg_db), dagster_instance)
    _assert_exact_target(pg_db)


def test_sqlite_to_sqlite_idempotent(tmp_path, dagster_instance):
    src, tgt = f"sqlite:///{tmp_path / 'legacy.db'}", f"sqlite:///{tmp_path / 'target.db'}"
    shop.build_source(src)
    text = shop.plan_yaml(src, tgt, schema=None)
    _run(text, dagster_instance)
    _assert_exact_target(tgt)
    first = _snapshot(tgt)
    _run(text, dagster_instance)
    assert _snapshot(tgt) == first


def test_completeness_check_per_partition_and_ledger(tmp_path, pg_db, dagster_instance):
    import dagster as dg

    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    _run(shop.plan_yaml(src, pg_db), dagster_instance)
    key = dg.AssetCheckKey(dg.AssetKey(["shop", "clients"]), "completeness")
    history = dagster_instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    per_partition = {r.partition: r.status.value for r in history if r.partition}
    assert per_partition == {"..20": "SUCCEEDED", "20..": "SUCCEEDED"}
    ledger = _rows(pg_db, "SELECT table_name, partition_key, source_rows, landed_rows, queued_rows "
                          "FROM kora.partition_ledger ORDER BY 1, 2")
    assert ledger == [("customers", "..20", 19, 11, 8), ("customers", "20..", 21, 21, 0),
                      ("employees", "all", 4, 3, 1), ("orders", "..30", 29, 29, 0), ("orders", "30..", 34, 31, 3)]


def test_conservation_check_catches_a_lost_row(tmp_path, pg_db, dagster_instance):
    """The completeness check must be able to fail: delete a landed row behind kora's back."""
    from checks.completeness import check_partition

    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    plan, _ = _run(shop.plan_yaml(src, pg_db), dagster_instance)
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    assert check_partition(plan, "customers", "20..", source, target).passed
    with target.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM public.clients WHERE id = 25")
    verdict = check_partition(plan, "customers", "20..", source, target)
    assert not verdict.passed and verdict.missing_n == 1 and verdict.missing == ['{"id":25}']


def test_conservation_by_power_sums_then_by_keys(pg_db2, pg_db, dagster_instance):
    """Between two servers integer keys are compared by pushed-down power sums. A landed key
    changed behind kora's back into a queued one keeps every count equal; the sums still fail,
    and the key comparison then names the lost key and the doubled one."""
    from checks.completeness import check_partition

    shop.build_source(pg_db2)
    plan, _ = _run(shop.plan_yaml(pg_db2, pg_db), dagster_instance)
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    ok = check_partition(plan, "customers", "..20", source, target)
    assert (ok.passed, ok.method, ok.source_rows, ok.landed_rows, ok.queued_rows) == (True, "power sums", 19, 11, 8)
    with target.engine.begin() as c:  # replica role: no FK triggers, so the parent key can move
        c.exec_driver_sql("SET LOCAL session_replication_role = replica")
        landed = c.exec_driver_sql("SELECT min(id) FROM public.clients WHERE id < 20").scalar()
        queued = c.exec_driver_sql("SELECT min((primary_key->>'id')::int) FROM kora.error_queue "
                                   "WHERE table_name = 'customers' AND partition_key = '..20'").scalar()
        c.exec_driver_sql(f"UPDATE public.clients SET id = {queued} WHERE id = {landed}")
    bad = check_partition(plan, "customers", "..20", source, target)
    assert (bad.source_rows, bad.landed_rows, bad.queued_rows) == (19, 11, 8)  # the counts balance
    assert not bad.passed and bad.method == "key multisets"
    assert (bad.missing, bad.extra) == ([f'{{"id":{landed}}}'], [f'{{"id":{queued}}}'])


def test_conservation_of_a_whole_table_from_one_scan_per_side(pg_db2, pg_db, dagster_instance):
    """A run over every partition of a key-range table sums each side once (the target grouped
    by partition); equal sums prove every partition, and a row lost behind kora's back makes
    the table sums differ, so each partition is checked on its own and the lost key named."""
    from checks.completeness import check_partition, check_table

    shop.build_source(pg_db2)
    plan, _ = _run(shop.plan_yaml(pg_db2, pg_db), dagster_instance)
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    verdicts = check_table(plan, "customers", ["20..", "..20"], source, target)
    assert [(v.partition_key, v.passed, v.method, v.source_rows, v.landed_rows, v.queued_rows) for v in verdicts] == [
        ("20..", True, "table power sums", 21, 21, 0), ("..20", True, "table power sums", 19, 11, 8)]
    assert check_table(plan, "customers", ["..20"], source, target) is None  # one partition: checked on its own
    with target.engine.begin() as c:
        c.exec_driver_sql("DELETE FROM public.clients WHERE id = 25")
    assert check_table(plan, "customers", ["..20", "20.."], source, target) is None
    assert check_partition(plan, "customers", "..20", source, target).passed
    lost = check_partition(plan, "customers", "20..", source, target)
    assert not lost.passed and lost.missing == ['{"id":25}']


def test_table_checks_run_with_the_asset_and_block_children(tmp_path, pg_db, dagster_instance):
    """Structural/referential/statistical checks evaluate inside the asset's run; a failed
    blocking check stops the tables downstream of it."""
    import dagster as dg

    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    plan, _ = _run(shop.plan_yaml(src, pg_db), dagster_instance)
    history = dagster_instance.event_log_storage
    for table, checks in {"clients": ["structural", "statistical"], "orders": ["structural", "referential", "statistical"]}.items():
        for name in checks:
            key = dg.AssetCheckKey(dg.AssetKey(["shop", table]), name)
            [latest] = history.get_asset_check_execution_history(key, limit=1)
            assert latest.status.value == "SUCCEEDED", (table, name)
    # Orders 61 (child of a queued customer) and 62 (a source orphan) were queued as fk_orphan: with no
    # orphan in the target, that is the dirt the referential check reports, read from the error queue.
    key = dg.AssetCheckKey(dg.AssetKey(["shop", "orders"]), "referential")
    [ref] = history.get_asset_check_execution_history(key, limit=1)
    meta = ref.event.dagster_event.event_specific_data.metadata
    assert meta["orphans_source"].value == 2 and meta["orphans_target"].value == 0
    # The FK was created, and so checked over every row by PostgreSQL, in that same step: not scanned again.
    assert "| 0 (validated on creation) | 2 (queued) |" in meta["report"].value
    with Database(pg_db, "target").engine.begin() as c:  # a defect behind kora's back
        c.exec_driver_sql("ALTER TABLE public.clients ALTER COLUMN email TYPE text")
    outcome = migrate(plan, dagster_instance)
    status = {t.table: (t.status, t.detail) for t in outcome.tables}
    assert status["customers"][0] == "check_failed" and "structure of clients" in status["customers"][1]
    assert status["orders"] == ("skipped", "parent customers did not complete")
    assert status["employees"][0] == "ok"


def _one_table_plan(source_url: str, target_url: str, columns: dict[str, str], *, chunk_rows: int = 50_000) -> str:
    """A plan for one table ``t`` keyed by an integer ``id``; ``columns``: name -> its type and options."""
    cols = "".join(f"\n      {name}: {{type: {spec}}}" for name, spec in columns.items())
    return f"""
version: 1
name: one
source: {{url: "{source_url}"}}
target: {{url: "{target_url}", schema: public}}
settings: {{chunk_rows: {chunk_rows}}}
tables:
  t:
    primary_key: [id]
    partitioning: {{kind: none}}
    columns:
      id: {{type: integer, nullable: false}}{cols}
"""


def test_unconstrained_numeric_lands_every_digit(pg_db2, pg_db, dagster_instance):
    """PostgreSQL's unconstrained numeric: each value has its own scale and may hold more digits
    than a float or a 38-digit decimal. It once panicked the reader ("decimal scale is not equal
    to expected scale") and, read as text, went through a float (1234567890.123456789012345 ->
    1234567890.1234567). Every value now lands as its exact text, the checks pass, and a double
    beside it lands as the same double."""
    import sqlalchemy as sa

    values = {1: "1234567890.123456789012345", 2: "0.1", 3: "12345678901234567890123456789", 4: "NaN",
              5: "-0.000000000000000000001", 6: "Infinity", 7: None, 8: "7"}
    src = Database(pg_db2, "source")
    with src.engine.begin() as c:
        c.execute(sa.text("CREATE TABLE t (id integer PRIMARY KEY, x numeric, y double precision)"))
        for k, v in values.items():
            c.execute(sa.text("INSERT INTO t VALUES (:k, CAST(:v AS numeric), :y)"), {"k": k, "v": v, "y": k / 3})
    src.engine.dispose()
    _run(_one_table_plan(pg_db2, pg_db, {"x": 'numeric, semantic: "off"', "y": 'double, semantic: "off"'}),
         dagster_instance)
    landed = _rows(pg_db, "SELECT id, x::text, y FROM public.t ORDER BY id")
    assert landed == [(k, v, k / 3) for k, v in values.items()]
    assert _rows(pg_db, "SELECT count(*) FROM kora.error_queue") == [(0,)]


def _migrate_inferred(source_url: str, target_url: str, instance, tmp_path) -> str:
    """``kora init``'s plan for the source, then a migration through Dagster; the plan's text."""
    from kora_assets.plan.infer import infer_plan, render_plan

    src = Database(source_url, "source")
    plan, counts = infer_plan(src, target_url, target_schema="public")
    plan_text = render_plan(plan, counts, src.display)
    src.engine.dispose()
    _run(plan_text, instance)
    return plan_text


def test_mariadb_auto_increment_defaults_and_an_odd_table_name_carry_over(mysql_db, pg_db, dagster_instance,
                                                                          tmp_path):
    """What the application relies on after cut-over: an AUTO_INCREMENT key becomes an identity
    whose sequence continues past the migrated keys, literal and clock defaults carry over, ON
    UPDATE CURRENT_TIMESTAMP becomes a trigger that kora's own re-runs do not fire (uuid()
    cannot carry, and the plan says so). Before, the blocking structural check
    failed every such table (the target had no default) and skipped its children; a table
    named with a space failed to load as a Dagster asset; a TINYINT(1) holding 2 landed as true."""
    import sqlalchemy as sa

    src = Database(mysql_db, "source")
    with src.engine.begin() as c:
        c.execute(sa.text(
            "CREATE TABLE `order items` (id INT AUTO_INCREMENT PRIMARY KEY, status VARCHAR(10) NOT NULL DEFAULT 'new', "
            "qty INT DEFAULT 0, price DECIMAL(8,2) DEFAULT '9.90', active TINYINT(1) DEFAULT 1, "
            "created DATETIME DEFAULT CURRENT_TIMESTAMP, "
            "updated TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP, "
            "u VARCHAR(36) DEFAULT (uuid()))"))
        c.execute(sa.text("INSERT INTO `order items` (status, active, updated) VALUES ('a', 1, '2020-01-01'), "
                          "('b', 0, '2020-01-01'), ('c', 2, '2020-01-01')"))
        c.execute(sa.text("INSERT INTO `order items` (id, status, updated) VALUES (100, 'd', '2020-01-01')"))
    src.engine.dispose()
    plan_text = _migrate_inferred(mysql_db, pg_db, dagster_instance, tmp_path)
    assert "identity: true" in plan_text and "default: CURRENT_TIMESTAMP" in plan_text
    assert "on_update: CURRENT_TIMESTAMP" in plan_text and "ON UPDATE" not in plan_text
    assert "# not carried over from the source: default uuid()" in plan_text
    assert "      status:\n" in plan_text  # a re-run with a new transform changes rows: the trigger keeps their time
    _run(plan_text.replace("      status:\n", "      status:\n        transform: [{op: upper}]\n"), dagster_instance)
    assert _rows(pg_db, 'SELECT id, status, active, updated::text FROM public."order items" ORDER BY id') == [
        (1, "A", True, "2020-01-01 00:00:00"), (2, "B", False, "2020-01-01 00:00:00"),
        (100, "D", True, "2020-01-01 00:00:00")]
    with Database(pg_db, "target").engine.begin() as c:  # the application's update stamps the row
        c.execute(sa.text("""UPDATE public."order items" SET status = 'z' WHERE id = 1"""))
    assert _rows(pg_db, 'SELECT id FROM public."order items" WHERE updated > now() - interval \'1 hour\'') == [(1,)]
    assert _rows(pg_db, "SELECT primary_key->>'id', column_name, error_class, value FROM kora.error_queue") == [
        ("3", "active", "parse.boolean", "2")]
    assert _rows(pg_db, 'INSERT INTO public."order items" (u) VALUES (NULL) RETURNING id, status, qty, price::text, '
                        "active, created IS NOT NULL, updated IS NOT NULL") == [(101, "new", 0, "9.90", True, True, True)]


def test_sqlite_autoincrement_real_and_defaults(tmp_path, pg_db, dagster_instance):
    """SQLite's REAL is an 8-byte double: kora init mapped it to ``real`` (4 bytes), and
    123456.789 landed as 123456.79, 1e308 as Infinity. Its AUTOINCREMENT key continues in the
    target; its defaults carry over."""
    import sqlite3

    path = tmp_path / "app.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL DEFAULT 'x', "
                  "price REAL DEFAULT 1.5, made DATETIME DEFAULT CURRENT_TIMESTAMP)")
        c.executemany("INSERT INTO items (name, price) VALUES (?, ?)", [("a", 123456.789), ("b", 1e308)])
    plan_text = _migrate_inferred(f"sqlite:///{path}", pg_db, dagster_instance, tmp_path)
    assert "type: double" in plan_text and "identity: true" in plan_text
    assert _rows(pg_db, "SELECT id, name, price FROM public.items ORDER BY id") == [(1, "a", 123456.789), (2, "b", 1e308)]
    assert _rows(pg_db, "INSERT INTO public.items DEFAULT VALUES RETURNING id, name, price, made IS NOT NULL") == [
        (3, "x", 1.5, True)]


def test_mysql_geometries_travel_as_wkt(mysql_db, pg_db, dagster_instance, tmp_path):
    """MySQL's geometries arrived as its internal bytes (SRID + WKB) and every row holding one
    was queued as invalid UTF-8; they are read as their WKT text."""
    import sqlalchemy as sa

    src = Database(mysql_db, "source")
    with src.engine.begin() as c:
        c.execute(sa.text("CREATE TABLE places (id INT PRIMARY KEY, p POINT, g GEOMETRY)"))
        c.execute(sa.text("INSERT INTO places VALUES (1, POINT(1, 2), ST_GeomFromText('LINESTRING(0 0,1 1)')), "
                          "(2, NULL, NULL)"))
    src.engine.dispose()
    _migrate_inferred(mysql_db, pg_db, dagster_instance, tmp_path)
    assert _rows(pg_db, "SELECT id, p, g FROM public.places ORDER BY id") == [
        (1, "POINT(1 2)", "LINESTRING(0 0,1 1)"), (2, None, None)]
    assert _rows(pg_db, "SELECT count(*) FROM kora.error_queue") == [(0,)]


def test_postgres_identity_serial_domain_and_json_keep_their_meaning(pg_db2, pg_db, dagster_instance, tmp_path):
    """An identity and a serial column continue past the migrated keys; a domain lands as its
    base type (it was text); jsonb keeps its numbers as written (connectorx re-serialized
    them: 2.50 landed as 2.5)."""
    import sqlalchemy as sa

    src = Database(pg_db2, "source")
    with src.engine.begin() as c:
        c.execute(sa.text("CREATE DOMAIN posint AS integer CHECK (VALUE > 0)"))
        c.execute(sa.text("CREATE TABLE u (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n serial, p posint, "
                          "jb jsonb, made timestamptz NOT NULL DEFAULT now(), kind text DEFAULT 'x'::text)"))
        c.execute(sa.text("""INSERT INTO u (p, jb) VALUES (7, '{"z": [1, 2.50, "é"]}'), (8, NULL)"""))
    src.engine.dispose()
    plan_text = _migrate_inferred(pg_db2, pg_db, dagster_instance, tmp_path)
    assert "default: CURRENT_TIMESTAMP" in plan_text and "default: x" in plan_text
    assert _rows(pg_db, "SELECT id, n, p, jb::text FROM public.u ORDER BY id") == [
        (1, 1, 7, '{"z": [1, 2.50, "é"]}'), (2, 2, 8, None)]
    assert _rows(pg_db, "SELECT data_type FROM information_schema.columns WHERE table_name = 'u' AND column_name = 'p'"
                 ) == [("integer",)]
    assert _rows(pg_db, "INSERT INTO public.u (p) VALUES (9) RETURNING id, n, kind, made IS NOT NULL") == [
        (3, 3, "x", True)]


def test_mysql_values_the_columnar_reader_cannot_decode_are_queued_one_by_one(mysql_db, pg_db, dagster_instance,
                                                                              tmp_path):
    """A zero date in a DATE column, a TIME beyond a day (MySQL's TIME is a duration) and a
    DECIMAL wider than 28 digits each made connectorx panic: the whole partition failed and
    nothing of it landed. Now the partition is read again with its dates as text (zero dates
    and impossible dates queued with their class), TIME and wide decimals always come as text
    (every digit lands), FLOAT is a real (0.1, not 0.10000000149011612) and SET a varchar."""
    import sqlalchemy as sa

    src = Database(mysql_db, "source")
    with src.engine.begin() as c:
        c.exec_driver_sql("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")  # zero and impossible dates, as legacy servers allowed
        c.exec_driver_sql("CREATE TABLE t (id INT PRIMARY KEY, d DATE, tm TIME, wide DECIMAL(65,30), fl FLOAT, "
                          "st SET('x','y'))")
        c.execute(sa.text("INSERT INTO t VALUES (1, '2024-02-29', '12:34:56', "
                          "12345678901234567890123456789012345.123456789012345678901234567890, 0.1, 'x,y'), "
                          "(2, '0000-00-00', '01:00:00', 1, 1, 'y'), (3, '2024-02-30', '01:00:00', 1, 1, ''), "
                          "(4, '2024-01-01', '838:59:59', 1, 1, 'x')"))
    src.engine.dispose()
    _migrate_inferred(mysql_db, pg_db, dagster_instance, tmp_path)
    assert _rows(pg_db, "SELECT id, d::text, tm::text, wide::text, fl, st FROM public.t ORDER BY id") == [
        (1, "2024-02-29", "12:34:56", "12345678901234567890123456789012345.123456789012345678901234567890", 0.1, "x,y")]
    assert sorted(_rows(pg_db, "SELECT primary_key->>'id', column_name, error_class FROM kora.error_queue")) == [
        ("2", "d", "sentinel.zero_date"), ("3", "d", "parse.date"), ("4", "tm", "parse.time")]


def test_postgres_types_the_columnar_reader_cannot_decode(pg_db2, pg_db, dagster_instance, tmp_path):
    """interval, money, inet, arrays and timetz (connectorx panicked: "not implemented:
    interval") travel as their text; an 'infinity' date, which connectorx silently reads as
    +262142-12-31, is queued as it is, and a BC date read again as text beside it still lands;
    numeric(30,0) beyond 28 digits lands whole."""
    import sqlalchemy as sa

    src = Database(pg_db2, "source")
    with src.engine.begin() as c:
        c.execute(sa.text("CREATE TABLE p (id int PRIMARY KEY, d date, n30 numeric(30,0), iv interval, m money, "
                          "ip inet, arr int[], ttz timetz)"))
        c.execute(sa.text("INSERT INTO p VALUES (1, '2024-02-29', 123456789012345678901234567890, '1 day 02:03:04', "
                          "12.34, '10.0.0.1/8', '{1,2,3}', '12:00:00+02'), (2, 'infinity', 1, NULL, NULL, NULL, "
                          "NULL, NULL), (3, '4713-01-01 BC', 2, NULL, NULL, NULL, NULL, NULL)"))
    src.engine.dispose()
    _migrate_inferred(pg_db2, pg_db, dagster_instance, tmp_path)
    assert _rows(pg_db, "SELECT id, d::text, n30::text, iv, m, ip, arr, ttz FROM public.p ORDER BY id") == [
        (1, "2024-02-29", "123456789012345678901234567890", "1 day 02:03:04", "$12.34", "10.0.0.1/8", "{1,2,3}",
         "12:00:00+02"), (3, "4713-01-01 BC", "2", None, None, None, None, None)]
    assert _rows(pg_db, "SELECT primary_key->>'id', column_name, error_class, value FROM kora.error_queue") == [
        ("2", "d", "parse.date", "infinity")]


def test_sqlite_values_unlike_their_declared_type_are_queued(tmp_path, pg_db, dagster_instance):
    """SQLite types values, not columns: 'abc' in an INTEGER column, past the first chunk,
    stopped connectorx ("InvalidColumnType") and failed the partition. It is read again
    through the DBAPI, and only that row is queued."""
    import sqlite3

    path = tmp_path / "mixed.db"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER, d DATE)")
        c.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, i * 10, "2024-01-01") for i in range(1, 31)])
        c.execute("UPDATE t SET n = 'abc' WHERE id = 25")
    _run(_one_table_plan(f"sqlite:///{path}", pg_db, {"n": 'integer, semantic: "off"', "d": "date"}, chunk_rows=10),
         dagster_instance)
    assert _rows(pg_db, "SELECT id, n FROM public.t ORDER BY id") == [(i, i * 10) for i in range(1, 31) if i != 25]
    assert _rows(pg_db, "SELECT primary_key->>'id', column_name, error_class, value FROM kora.error_queue") == [
        ("25", "n", "parse.number", "abc")]
