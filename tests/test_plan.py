"""Plan loading: a bad plan names the file, the line, the place and the problem."""
from __future__ import annotations

import pytest

from kora_assets.plan import PlanError, load_order, parse_plan
from kora_assets.plan.types import parse_type

BASE = """\
source: {url: "sqlite:///src.db"}
target: {url: "postgresql://postgres@127.0.0.1/t"}
tables:
  customers:
    primary_key: [id]
    columns:
      id: {type: integer}
      name: {type: varchar(20)}
  orders:
    primary_key: [id]
    columns:
      id: {type: integer}
      customer_id: {type: integer}
    foreign_keys:
      - {columns: [customer_id], references: customers, ref_columns: [id]}
"""


def _error(text: str) -> str:
    with pytest.raises(PlanError) as ei:
        parse_plan(text, source="plan.yaml")
    return str(ei.value)


def test_valid_plan_orders_parents_first():
    plan = parse_plan(BASE)
    assert load_order(plan) == ["customers", "orders"]
    assert plan.tables["customers"].columns["name"].ktype.length == 20


def test_unknown_column_points_at_its_line_and_suggests():
    msg = _error(BASE.replace("columns: [customer_id]", "columns: [custmer_id]"))
    assert "plan.yaml:15: tables.orders.foreign_keys.0.columns.0: unknown column 'custmer_id' in table 'orders'; did you mean 'customer_id'?" in msg


def test_bad_type_names_the_known_types():
    msg = _error(BASE.replace("name: {type: varchar(20)}", "name: {type: varchr(20)}"))
    assert "plan.yaml:8: tables.customers.columns.name.type: unknown type 'varchr(20)'" in msg
    assert "numeric(p,s)" in msg


def test_fk_cycle_is_explained():
    text = BASE.replace("      name: {type: varchar(20)}\n", "      name: {type: varchar(20)}\n      last_order: {type: integer}\n    foreign_keys:\n      - {columns: [last_order], references: orders, ref_columns: [id]}\n")
    msg = _error(text)
    assert "foreign keys form a cycle that cannot be ordered: customers -> orders -> customers" in msg


def test_names_dagster_cannot_take_and_tables_that_would_meet_as_assets():
    msg = _error("name: my plan\n" + BASE.replace("    primary_key: [id]\n    columns:\n      id: {type: integer}\n      name",
                                                    "    group: sales-eu\n    primary_key: [id]\n    columns:\n"
                                                    "      id: {type: integer}\n      name", 1))
    assert "plan.yaml:1: name: a Dagster name takes only letters, digits and _ (e.g. 'my_plan')" in msg
    assert "tables.customers.group: a Dagster name takes only letters, digits and _ (e.g. 'sales_eu')" in msg
    msg = _error(BASE.replace("  orders:\n", "  orders:\n    target: order items\n") + "  order_items:\n"
                 "    columns:\n      id: {type: integer}\n")
    assert ("tables.order_items.target: target tables 'order_items' and 'order items' would both be the Dagster "
            "asset 'order_items'") in msg
    parse_plan(BASE.replace("  orders:\n", "  orders:\n    target: order items\n"))  # alone it is fine


def test_identity_needs_an_integer_and_no_default_and_on_update_a_timestamp():
    msg = _error(BASE.replace("name: {type: varchar(20)}", "name: {type: varchar(20), identity: true}"))
    assert "plan.yaml:8: tables.customers.columns.name: identity needs an integer type" in msg
    msg = _error(BASE.replace("id: {type: integer}", "id: {type: integer, identity: true, default: 1}", 1))
    assert "a column has either identity or a default, not both" in msg
    msg = _error(BASE.replace("name: {type: varchar(20)}", "name: {type: varchar(20), on_update: CURRENT_TIMESTAMP}"))
    assert "on_update needs a timestamp type, not varchar(20)" in msg


def test_missing_env_var(monkeypatch):
    monkeypatch.delenv("KORA_NOPE_PASSWORD", raising=False)
    msg = _error(BASE.replace("postgresql://postgres@", "postgresql://postgres:${KORA_NOPE_PASSWORD}@"))
    assert "plan.yaml:2: target.url: environment variable KORA_NOPE_PASSWORD is not set" in msg
    monkeypatch.setenv("KORA_NOPE_PASSWORD", "s3cret")
    assert parse_plan(BASE.replace("postgresql://postgres@", "postgresql://postgres:${KORA_NOPE_PASSWORD}@"))


def test_unknown_operator_and_field():
    msg = _error(BASE.replace("name: {type: varchar(20)}", "name: {type: varchar(20), transform: [{op: eval}], nulable: true}"))
    assert "unknown operator 'eval'" in msg and "nulable: unknown field" in msg


def test_unquoted_numeric_in_flow_mapping_gets_a_hint():
    msg = _error(BASE.replace("name: {type: varchar(20)}", "name: {type: numeric(12,2)}"))
    assert 'needs quotes, e.g. type: "numeric(12,2)"' in msg


def test_not_yaml():
    assert "plan.yaml:2: (top level): not valid YAML" in _error("a: [1,\nb: ]]")


@pytest.mark.parametrize("text,expected", [("varchar(10)", "varchar(10)"), ("DECIMAL(12, 2)", "numeric(12,2)"),
                                           ("int", "integer"), ("double precision", "double"), ("datetime", "timestamp")])
def test_type_aliases(text, expected):
    assert str(parse_type(text)) == expected


def test_numeric_columns_keep_their_decimals_on_a_mariadb_target(mysql_db):
    """A bare NUMERIC in MySQL/MariaDB DDL means DECIMAL(10,0); the translation must not say that."""
    from kora_assets.dbio.connections import Database

    db = Database(mysql_db, "target")
    cols = {"free": parse_type("numeric"), "fixed": parse_type("numeric(12,3)")}
    with db.engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE n (" + ", ".join(f"{k} {t.ddl('mysql')}" for k, t in cols.items()) + ")")
        c.exec_driver_sql("INSERT INTO n VALUES (123456789012.0000000001, 1234.5678)")
        row = c.exec_driver_sql("SELECT CAST(free AS CHAR), CAST(fixed AS CHAR) FROM n").one()
    db.engine.dispose()
    assert (row[0].rstrip("0"), row[1]) == ("123456789012.0000000001", "1234.568")


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
def test_partition_bounds_are_the_ntile_minima_without_the_window(dialect, tmp_path, mysql_db, pg_db, monkeypatch):
    """``kora init`` cuts key ranges at the minima of NTILE(n) groups; the histogram search
    (tiny buckets here, so skewed keys and duplicates take the narrowing path) finds the same."""
    import random

    from kora_assets.dbio.connections import Database
    from kora_assets.plan import infer

    url = {"sqlite": f"sqlite:///{tmp_path / 'k.db'}", "mysql": mysql_db, "postgresql": pg_db}[dialect]
    db = Database(url, "source")
    rng = random.Random(3)
    keys = ([-5_000_000 + i for i in range(300)] + [7] * 250 + [rng.randrange(0, 10**12) for _ in range(1200)]
            + [2**40 + i * i for i in range(400)])
    with db.engine.begin() as c:
        c.exec_driver_sql("CREATE TABLE kt (k BIGINT NOT NULL)")
        c.exec_driver_sql("INSERT INTO kt VALUES " + ", ".join(f"({k})" for k in keys))
    monkeypatch.setattr(infer, "_BUCKETS", 8)
    monkeypatch.setattr(infer, "_OFFSET_ROWS", 40)
    try:
        for rows_per_partition in (1075, 307, 86, 6):
            n = -(-len(keys) // rows_per_partition)
            with db.engine.connect() as c:
                mins = [int(r[0]) for r in c.exec_driver_sql(
                    f"SELECT MIN(k) FROM (SELECT k, NTILE({n}) OVER (ORDER BY k) AS b FROM kt) x GROUP BY b")]
            expected = sorted(set(mins))[1:]
            assert infer._bounds(db, "kt", "k", len(keys), rows_per_partition, None) == expected, n
    finally:
        with db.engine.begin() as c:
            c.exec_driver_sql("DROP TABLE kt")
        db.engine.dispose()


@pytest.mark.parametrize("raw, ktype, value", [
    ("'new'", "varchar(10)", "new"), ("'new'::character varying", "text", "new"), ("'it''s'", "text", "it's"),
    ("0", "integer", 0), ("'9.90'", "numeric(8,2)", "9.90"), ("(0)::numeric", "numeric(8,2)", 0),
    ("1", "boolean", True), ("'0'", "boolean", False), ("false", "boolean", False),
    ("current_timestamp()", "timestamp", "CURRENT_TIMESTAMP"), ("now()", "timestamptz", "CURRENT_TIMESTAMP"),
    ("CURRENT_TIMESTAMP", "timestamp", "CURRENT_TIMESTAMP"), ("curdate()", "date", "CURRENT_DATE"),
    ("'2000-01-01'::date", "date", "2000-01-01"), ("NULL", "text", None), (None, "text", None),
    ("current_timestamp() ON UPDATE current_timestamp()", "timestamp", "CURRENT_TIMESTAMP"),
    ("uuid()", "varchar(36)", None), ("'a' || 'b'", "text", None), ("'0000-00-00 00:00:00'", "timestamp", None), ("'2'", "boolean", None),
])
def test_source_defaults_in_the_plans_vocabulary(raw, ktype, value):
    from kora_assets.plan.defaults import plan_default

    got, why = plan_default(raw, parse_type(ktype))
    assert got == value and type(got) is type(value)
    assert (why is None) == (value is not None or raw in (None, "NULL")) or "ON UPDATE" in str(raw)


def test_mysql_integer_types_map_to_a_type_that_holds_their_range():
    """SMALLINT UNSIGNED (up to 65535) was planned as smallint: every value above 32767 was queued."""
    from sqlalchemy.dialects import mysql

    from kora_assets.plan.infer import kora_type

    got = {name: kora_type(t)[0] for name, t in {
        "tinyint unsigned": mysql.TINYINT(unsigned=True), "smallint": mysql.SMALLINT(),
        "smallint unsigned": mysql.SMALLINT(unsigned=True), "mediumint unsigned": mysql.MEDIUMINT(unsigned=True),
        "int unsigned": mysql.INTEGER(unsigned=True), "bigint": mysql.BIGINT(), "tinyint(1)": mysql.TINYINT(display_width=1),
    }.items()}
    assert got == {"tinyint unsigned": "smallint", "smallint": "smallint", "smallint unsigned": "integer",
                   "mediumint unsigned": "integer", "int unsigned": "bigint", "bigint": "bigint", "tinyint(1)": "boolean"}
