"""The three table validators (structural, statistical, referential) against real databases.

A MariaDB source (``kora_val_src_<pid>``) and a faithful PostgreSQL target
(``kora_val_tgt_<pid>``) are built once; each planted defect runs on a fresh copy of the target
(``CREATE DATABASE ... TEMPLATE``), so defects never leak into each other. The acceptance rule is "caught by the right
check and only by it": for every defect we run all three checks on both tables and assert the
exact set of checks that fail.

What "only by the right check" means for the widened-then-truncated varchar: that defect has
two faces. The schema face (``varchar(60)`` where the plan says ``varchar(40)``) is the
structural check's; the data face (every value cut to 10 characters) is a distribution change
the statistical check exists to see, and a statistical check that stayed silent there would be
broken. So both fire, each for its own reason (rule ``type`` and rule ``length``), and the
referential check, which has no business with it, must not. Every other defect has a single
face and exactly one check fails.
"""
from __future__ import annotations

import datetime as dt
import os
import random
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from checks.outcome import CheckOutcome, to_markdown_table
from checks.referential import check_references
from checks.statistical import check_statistics
from checks.structural import check_structure
from kora_assets.plan import parse_plan

MY_ROOT = "mysql+pymysql://root@127.0.0.1:3306"
PG_ROOT = "postgresql+psycopg://postgres@127.0.0.1:5432"
# Per-process names: two sessions running this suite at once must not drop each other's data.
SRC_DB, TGT_DB = f"kora_val_src_{os.getpid()}", f"kora_val_tgt_{os.getpid()}"
N_CUSTOMERS, N_ORDERS = 1000, 5000
STATUSES = [("new", 0.15), ("paid", 0.25), ("shipped", 0.30), ("delivered", 0.25), ("cancelled", 0.05)]

PLAN_YAML = f"""
name: validators
source: {{url: "{MY_ROOT}/{SRC_DB}"}}
target: {{url: "{PG_ROOT}/{TGT_DB}", schema: public}}
tables:
  customers:
    primary_key: [id]
    unique: [[email]]
    columns:
      id: {{type: integer, nullable: false}}
      email:
        type: varchar(80)
        nullable: false
        transform: [{{op: trim}}, {{op: lower}}]
      name: {{type: varchar(40), nullable: false}}
      tier:
        type: varchar(10)
        nullable: false
        transform: [{{op: trim}}, {{op: lower}}]
      vip: {{type: boolean, nullable: false, default: false}}
      created: {{type: timestamp, nullable: false}}
  orders:
    primary_key: [id]
    indexes:
      - {{columns: [status, ordered_at], name: ix_orders_status_date}}
    foreign_keys:
      - {{columns: [customer_id], references: customers, ref_columns: [id], on_delete: cascade,
         name: fk_orders_customer}}
    columns:
      id: {{type: integer, nullable: false}}
      customer_id: {{type: integer, nullable: false}}
      amount: {{type: "numeric(12,2)", nullable: false, default: 0}}
      status: {{type: varchar(20), nullable: false, default: new}}
      note: {{type: varchar(40)}}
      ordered_at: {{type: timestamp, nullable: false}}
"""

MY_DDL = """
CREATE TABLE customers (
  id INT PRIMARY KEY,
  email VARCHAR(80) NOT NULL,
  name VARCHAR(40) NOT NULL,
  tier VARCHAR(10) NOT NULL,
  vip TINYINT(1) NOT NULL DEFAULT 0,
  created DATETIME NOT NULL,
  UNIQUE KEY uq_customers_email (email),
  CONSTRAINT ck_customers_name CHECK (CHAR_LENGTH(name) > 0)
) ENGINE=InnoDB;
CREATE TABLE orders (
  id INT PRIMARY KEY,
  customer_id INT NOT NULL,
  amount DECIMAL(12,2) NOT NULL DEFAULT 0.00,
  status VARCHAR(20) NOT NULL DEFAULT 'new',
  note VARCHAR(40) NULL,
  ordered_at DATETIME NOT NULL,
  KEY ix_orders_status_date (status, ordered_at),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE,
  CONSTRAINT ck_orders_amount CHECK (amount >= 0)
) ENGINE=InnoDB;
"""

PG_DDL = """
CREATE TABLE customers (
  id integer PRIMARY KEY,
  email varchar(80) NOT NULL,
  name varchar(40) NOT NULL,
  tier varchar(10) NOT NULL,
  vip boolean NOT NULL DEFAULT false,
  created timestamp NOT NULL,
  CONSTRAINT uq_customers_email UNIQUE (email),
  CONSTRAINT ck_customers_name CHECK (char_length(name) > 0)
);
CREATE TABLE orders (
  id integer PRIMARY KEY,
  customer_id integer NOT NULL,
  amount numeric(12,2) NOT NULL DEFAULT 0,
  status varchar(20) NOT NULL DEFAULT 'new',
  note varchar(40),
  ordered_at timestamp NOT NULL,
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id) ON DELETE CASCADE,
  CONSTRAINT ck_orders_amount CHECK (amount >= 0)
);
CREATE INDEX ix_orders_status_date ON orders (status, ordered_at);
"""


# --- data ------------------------------------------------------------------------------------

def _data():
    """Deterministic rows; the source keeps messy emails/tiers the plan's transforms clean up."""
    rnd = random.Random(7)
    words = ["amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "heron", "indigo", "juniper"]
    t0 = dt.datetime(2023, 1, 1)
    customers = []
    for i in range(1, N_CUSTOMERS + 1):
        email = f"user{i}@example.com"
        messy = (email.upper() if i % 7 == 0 else email) + (" " if i % 5 == 0 else "")
        name = " ".join(rnd.choice(words).title() for _ in range(rnd.randint(2, 5)))[:40]
        tier = rnd.choices(["gold", "silver", "bronze"], [0.1, 0.3, 0.6])[0]
        messy_tier = (tier.upper() if i % 3 == 0 else tier) + (" " if i % 4 == 0 else "")
        customers.append((i, messy, name, messy_tier, int(rnd.random() < 0.2),
                          t0 + dt.timedelta(minutes=rnd.randint(0, 500_000))))
    orders = []
    for i in range(1, N_ORDERS + 1):
        cust = rnd.randint(1, N_CUSTOMERS)
        amount = Decimal(rnd.randint(100, 3200)) / 100  # mean ~16.5: a round-up adds ~3%
        status = rnd.choices([s for s, _ in STATUSES], [w for _, w in STATUSES])[0]
        note = None if rnd.random() < 0.2 else " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 6)))[:40]
        orders.append((i, cust, amount, status, note, t0 + dt.timedelta(minutes=rnd.randint(0, 700_000))))
    return customers, orders


def _clean(customers):
    """What a correct migration writes: the plan's trim+lower on email and tier, booleans."""
    return [(i, e.strip().lower(), n, t.strip().lower(), bool(v), c) for i, e, n, t, v, c in customers]


@pytest.fixture(scope="session")
def data():
    return _data()


@pytest.fixture(scope="session")
def source(data):
    customers, orders = data
    root = sa.create_engine(MY_ROOT, isolation_level="AUTOCOMMIT")
    with root.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {SRC_DB}")
        c.exec_driver_sql(f"CREATE DATABASE {SRC_DB} CHARACTER SET utf8mb4")
    root.dispose()
    eng = sa.create_engine(f"{MY_ROOT}/{SRC_DB}")
    with eng.begin() as c:
        for stmt in filter(str.strip, MY_DDL.split(";")):
            c.exec_driver_sql(stmt)
        c.exec_driver_sql("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s)", customers)
        c.exec_driver_sql("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)", orders)
        c.exec_driver_sql("ANALYZE TABLE customers, orders")
    yield eng
    eng.dispose()
    with sa.create_engine(MY_ROOT, isolation_level="AUTOCOMMIT").connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {SRC_DB}")


def _pg_admin(sql: str) -> None:
    eng = sa.create_engine(f"{PG_ROOT}/postgres", isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.exec_driver_sql(sql)
    eng.dispose()


@pytest.fixture(scope="session")
def clean_target(data):
    """The faithful target, built once; it is also the template every defect copies."""
    customers, orders = data
    _pg_admin(f"DROP DATABASE IF EXISTS {TGT_DB} WITH (FORCE)")
    _pg_admin(f"CREATE DATABASE {TGT_DB}")
    eng = sa.create_engine(f"{PG_ROOT}/{TGT_DB}")
    with eng.begin() as c:
        c.exec_driver_sql(PG_DDL)
        c.exec_driver_sql("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s)", _clean(customers))
        c.exec_driver_sql("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)", orders)
    with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("ANALYZE")
    eng.dispose()  # a template database must have no open connections
    yield f"{PG_ROOT}/{TGT_DB}"
    _pg_admin(f"DROP DATABASE IF EXISTS {TGT_DB} WITH (FORCE)")


_copies = iter(range(1, 10_000))


@pytest.fixture
def target_copy(clean_target):
    """A factory: a fresh copy of the clean target with the given SQL applied to it."""
    made = []

    def make(*statements: str) -> sa.Engine:
        name = f"{TGT_DB}_{next(_copies)}"
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        _pg_admin(f"CREATE DATABASE {name} TEMPLATE {TGT_DB}")
        eng = sa.create_engine(f"{PG_ROOT}/{name}")
        with eng.begin() as c:
            for s in statements:
                c.exec_driver_sql(s)
        made.append((name, eng))
        return eng

    yield make
    for name, eng in made:
        eng.dispose()
        _pg_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def plan():
    return parse_plan(PLAN_YAML, require_env=False)


CHECKS = {"structural": check_structure, "statistical": check_statistics, "referential": check_references}


def run_all(plan, source, target) -> dict[tuple[str, str], CheckOutcome]:
    return {(table, name): fn(plan, table, source, target) for table in plan.tables for name, fn in CHECKS.items()}


def failing(outcomes) -> set[tuple[str, str]]:
    return {k for k, o in outcomes.items() if not o.passed}


def explain(outcomes) -> str:
    return "\n".join(f"{k}: {o.summary} {o.failures}" for k, o in outcomes.items() if not o.passed)


# --- the acceptance cases --------------------------------------------------------------------

def test_clean_migration_passes_all_three(plan, source, clean_target):
    target = sa.create_engine(clean_target)
    try:
        outcomes = run_all(plan, source, target)
    finally:
        target.dispose()
    assert not failing(outcomes), explain(outcomes)
    stats = outcomes[("orders", "statistical")]
    assert stats.metadata["rows_source"] == stats.metadata["rows_target"] == N_ORDERS
    assert stats.metadata["columns_checked"] == 6
    assert isinstance(stats.metadata["amount.shift"], float) and stats.metadata["amount.shift"] == 0
    assert "| amount |" in stats.metadata["report"]
    # The transformed columns (email, tier) were compared after the plan's trim+lower.
    cust = outcomes[("customers", "statistical")]
    assert "FLAGGED" not in cust.metadata["report"]
    ref = outcomes[("orders", "referential")]
    assert ref.metadata["orphans_target"] == 0
    # Both trials (source MariaDB, target PostgreSQL) deleted a customer and saw its orders go.
    assert "| cascade / blocked | cascade / blocked |" in ref.metadata["report"]
    assert outcomes[("orders", "structural")].metadata["indexes_expected"] == 1


DEFECTS = {
    # name: (SQL applied to the target copy, checks expected to fail on `orders`, rules expected)
    "dropped_index": (["DROP INDEX ix_orders_status_date"], {"structural"}, {"index_missing"}),
    "varchar_widened_then_truncated": (
        ["ALTER TABLE orders ALTER COLUMN note TYPE varchar(60)", "UPDATE orders SET note = left(note, 10)"],
        {"structural", "statistical"}, {"type", "length"}),
    "not_null_lost": (["ALTER TABLE orders ALTER COLUMN ordered_at DROP NOT NULL"], {"structural"}, {"nullable"}),
    # A rounding transform gone wrong (round half up to whole units became a round-up): amounts
    # are ~U(1, 32), mean ~16.5, so every value gains ~0.5 on average: a +3% shift of the mean.
    "rounding_shifts_mean_3pct": (["UPDATE orders SET amount = ceil(amount)"], {"statistical"}, {"mean"}),
    # The same column with +-0.01% multiplicative noise (re-rounded to cents): must stay quiet.
    "noise_0_01pct": (["SELECT setseed(0.42)",
                       "UPDATE orders SET amount = round((amount * (1 + (random() - 0.5) * 0.0002))::numeric, 2)"],
                      set(), set()),
    "category_remapped": (["UPDATE orders SET status = 'sent' WHERE status = 'shipped'"], {"statistical"},
                          {"categories"}),
    "orphaned_child_row": (["SET LOCAL session_replication_role = replica",
                            "UPDATE orders SET customer_id = 1001 WHERE id = 4242"], {"referential"}, {"orphans"}),
    "cascade_lost": (["ALTER TABLE orders DROP CONSTRAINT fk_orders_customer",
                      "ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) "
                      "REFERENCES customers (id)"], {"referential"}, {"fk_action", "cascade_trial"}),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_planted_defect_is_caught_by_the_right_check_only(defect, plan, source, target_copy):
    statements, expected_checks, expected_rules = DEFECTS[defect]
    target = target_copy(*statements)
    outcomes = run_all(plan, source, target)
    assert failing(outcomes) == {("orders", c) for c in expected_checks}, explain(outcomes)
    rules = {f["rule"] for o in outcomes.values() for f in o.failures}
    assert expected_rules <= rules, explain(outcomes)


def test_defect_details_are_specific(plan, source, target_copy):
    """The findings point at the column and carry the numbers a steward needs."""
    target = target_copy("UPDATE orders SET amount = ceil(amount)",
                         "SET LOCAL session_replication_role = replica",
                         "UPDATE orders SET customer_id = 1001 WHERE id IN (17, 4242)")
    stats = check_statistics(plan, "orders", source, target)
    mean = next(f for f in stats.failures if f["rule"] == "mean")
    assert mean["column"] == "amount" and 0.025 < mean["shift"] < 0.035
    assert stats.severity == "warn" and stats.metadata["amount.shift"] > 0.025
    assert {f["column"] for f in stats.failures} == {"amount"}
    ref = check_references(plan, "orders", source, target)
    orphans = next(f for f in ref.failures if f["rule"] == "orphans")
    assert orphans["count"] == 2 and orphans["sample_keys"] == [17, 4242]
    assert ref.metadata["orphans_target"] == 2 and ref.severity == "error"


def test_source_orphans_are_dirt_not_migration_errors(plan, source, target_copy):
    """An orphan the source already had is reported, carried over or not, and fails nothing."""
    with source.begin() as c:
        c.exec_driver_sql("SET foreign_key_checks = 0")
        c.exec_driver_sql("INSERT INTO orders VALUES (9001, 5555, 10.00, 'new', NULL, '2023-02-01')")
        c.exec_driver_sql("INSERT INTO orders VALUES (9002, 5556, 12.00, 'new', NULL, '2023-02-01')")
        c.exec_driver_sql("SET foreign_key_checks = 1")
    try:
        # 9001 was carried into the target (inherited dirt); 9002 went to the error queue.
        target = target_copy("SET LOCAL session_replication_role = replica",
                             "INSERT INTO orders VALUES (9001, 5555, 10.00, 'new', NULL, '2023-02-01')")
        out = check_references(plan, "orders", source, target)
    finally:
        with source.begin() as c:
            c.exec_driver_sql("DELETE FROM orders WHERE id IN (9001, 9002)")
    assert out.passed, out.failures
    by_rule = {f["rule"]: f for f in out.warnings}
    assert by_rule["source_orphans"]["count"] == 2 and by_rule["source_orphans"]["sample_keys"] == [9001, 9002]
    assert by_rule["orphans_inherited"]["count"] == 1
    assert out.metadata["orphans_source"] == 2 and out.metadata["orphans_target"] == 0


def test_source_dirt_is_read_from_the_error_queue_when_the_target_has_no_orphans(plan, source, target_copy):
    """No target orphan to judge: the source is not scanned, the dirt reported is what the
    workers queued as fk_orphan. The source's own orphan (9003) is not in the queue, so a scan
    would be seen in the count."""
    from kora_assets.bookkeeping.tables import bookkeeping_ddl
    from kora_assets.dbio.connections import Database

    queued = ("INSERT INTO kora.error_queue (table_name, partition_key, primary_key, \"row\", column_name, "
              "error_class, reason) VALUES "
              "('orders', 'all', '{\"id\": 9101}', '{}', 'customer_id', 'fk_orphan', 'no parent'), "
              "('orders', 'all', '{\"id\": 9102}', '{}', 'customer_id', 'fk_orphan', 'no parent'), "
              "('orders', 'all', '{\"id\": 9103}', '{}', 'amount', 'cast.numeric', 'not a number')")
    with source.begin() as c:
        c.exec_driver_sql("SET foreign_key_checks = 0")
        c.exec_driver_sql("INSERT INTO orders VALUES (9003, 5557, 10.00, 'new', NULL, '2023-02-01')")
        c.exec_driver_sql("SET foreign_key_checks = 1")
    try:
        target = target_copy(*bookkeeping_ddl(Database(PG_ROOT + "/postgres", "target")), queued)
        out = check_references(plan, "orders", source, target)
        scanned = check_references(plan, "orders", source, target_copy())  # no error queue: the source is scanned
    finally:
        with source.begin() as c:
            c.exec_driver_sql("DELETE FROM orders WHERE id = 9003")
    assert out.passed, out.failures
    dirt = {f["rule"]: f for f in out.warnings}["source_orphans"]
    assert dirt["count"] == 2 and dirt["sample_keys"] == [9101, 9102] and "queued" in dirt["message"]
    assert out.metadata["orphans_source"] == 2 and "2 (queued)" in out.metadata["report"]
    assert {f["rule"]: f for f in scanned.warnings}["source_orphans"]["sample_keys"] == [9003]

def test_a_constraint_validated_in_this_step_is_not_scanned_again(plan, source, target_copy):
    """A foreign key PostgreSQL validated over every row when this step created it needs no
    second anti-join; one left NOT VALID is scanned all the same, and its orphan is found."""
    fresh = check_references(plan, "orders", source, target_copy(),
                             validated_by_target=frozenset({"fk_orders_customer"}))
    assert fresh.passed, fresh.failures
    assert "| 0 (validated on creation) |" in fresh.metadata["report"]
    not_valid = target_copy("ALTER TABLE orders DROP CONSTRAINT fk_orders_customer",
                            "UPDATE orders SET customer_id = 1001 WHERE id = 4242",
                            "ALTER TABLE orders ADD CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) "
                            "REFERENCES customers (id) ON DELETE CASCADE NOT VALID")
    out = check_references(plan, "orders", source, not_valid, validated_by_target=frozenset({"fk_orders_customer"}))
    assert not out.passed and out.metadata["orphans_target"] == 1
    assert "validated on creation" not in out.metadata["report"]


def test_transformed_category_remap_is_caught(plan, source, target_copy):
    """Columns with a transform are compared after it: a remap in one of them is still seen."""
    target = target_copy("UPDATE customers SET tier = 'platinum' WHERE tier = 'gold'")
    out = check_statistics(plan, "customers", source, target)
    assert [(f["column"], f["rule"]) for f in out.failures] == [("tier", "categories")], out.failures


def test_thresholds_are_per_column(plan, source, target_copy):
    target = target_copy("UPDATE orders SET amount = ceil(amount)")
    loose = {"amount": {"mean_rel_shift": 0.05, "mean_std_shift": 0.5, "distinct_rel": 1.0, "ks_d_min": 0.5}}
    assert check_statistics(plan, "orders", source, target, thresholds=loose).passed
    with pytest.raises(ValueError, match="unknown threshold"):
        check_statistics(plan, "orders", source, target, thresholds={"amount": {"mean_shift": 1}})


def test_partition_where_and_sampling(plan, source, clean_target):
    """A partition predicate restricts both sides; a small sample is drawn from the same keys."""
    target = sa.create_engine(clean_target)
    try:
        t0 = time.perf_counter()
        out = check_statistics(plan, "orders", source, target, where_source="id <= 2500",
                               where_target="id <= 2500", sample_rows=500)
        elapsed = time.perf_counter() - t0
    finally:
        target.dispose()
    assert out.passed, out.failures
    assert out.metadata["rows_source"] == out.metadata["rows_target"] == 2500
    assert out.metadata["sampling"].startswith("paired: ") and "of id" in out.metadata["sampling"]
    assert out.metadata["sample_rows_source"] == out.metadata["sample_rows_target"] < 2500
    assert elapsed < 10


@pytest.mark.parametrize("defect, flagged", [
    ("clean", set()), ("rounding_shifts_mean_3pct", {"mean"}), ("noise_0_01pct", set()),
    ("category_remapped", {"categories"}), ("varchar_widened_then_truncated", {"length"})])
def test_large_table_path_on_paired_samples(defect, flagged, plan, source, target_copy):
    """Above ``exact_max_rows`` distinct counts, lengths and categories come from paired
    samples; the verdicts must not change. Forced here on the small table with a small sample."""
    target = target_copy(*(DEFECTS[defect][0] if defect != "clean" else []))
    out = check_statistics(plan, "orders", source, target, sample_rows=1000, exact_max_rows=0)
    assert out.metadata["sampling"].startswith("paired: ")
    assert 500 < out.metadata["sample_rows_source"] == out.metadata["sample_rows_target"] < 2000
    assert {f["rule"] for f in out.failures} >= flagged and bool(out.failures) == bool(flagged), out.failures
    # the means too: from the paired samples, not a pushed-down AVG over the table
    assert "| amount | numeric | paired sample |" in out.metadata["report"]
    if defect == "rounding_shifts_mean_3pct":
        [f] = [f for f in out.failures if f["rule"] == "mean"]
        assert 0.02 < f["shift"] < 0.04 and f["column"] == "amount"


@pytest.mark.parametrize("exact_max_rows", [250_000, 0])
@pytest.mark.parametrize("defect, flagged", [("clean", set()), ("rounding_shifts_mean_3pct", {"mean"}),
                                             ("category_remapped", {"categories"})])
def test_tables_without_integer_key_use_independent_samples(defect, flagged, exact_max_rows, plan, source,
                                                            target_copy, monkeypatch):
    """No integer key to pair on: independent random samples, and no false alarms from them."""
    import checks.statistical as st

    monkeypatch.setattr(st, "_sample_key", lambda *a: None)
    target = target_copy(*(DEFECTS[defect][0] if defect != "clean" else []))
    out = check_statistics(plan, "orders", source, target, sample_rows=1500, exact_max_rows=exact_max_rows)
    assert out.metadata["sampling"] == "independent random samples"
    assert {f["rule"] for f in out.failures} >= flagged and bool(out.failures) == bool(flagged), out.failures


def test_sparse_keys_fall_back_to_a_scrambled_modulo_sample(plan, source, clean_target, monkeypatch):
    """Key ranges that catch (almost) nothing, as with very sparse keys: one scan, still paired."""
    import checks.statistical as st

    real = st._plan_sampling
    monkeypatch.setattr(st, "_plan_sampling", lambda key, *a: st._Sampling("blocks", key, ranges=[(10**9, 10**9 + 1)])
                        if key else real(key, *a))
    target = sa.create_engine(clean_target)
    try:
        out = check_statistics(plan, "orders", source, target, sample_rows=1000, exact_max_rows=0)
    finally:
        target.dispose()
    assert out.passed, out.failures
    assert out.metadata["sampling"] == "paired: 1 in 5 by scrambled id"
    assert 500 < out.metadata["sample_rows_source"] == out.metadata["sample_rows_target"] < 2000


def test_markdown_table_escapes_cells():
    md = to_markdown_table([["a|b", 1.23456789, None]], ["x", "y", "z"])
    assert md.splitlines() == ["| x | y | z |", "| --- | --- | --- |", "| a\\|b | 1.23457 |  |"]
