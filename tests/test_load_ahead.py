"""``kora migrate`` loads a table's partitions ahead of its Dagster run, under that run's id,
and takes them out again when a parent's run fails (real PostgreSQL, Redis and Ray)."""
from __future__ import annotations

import time

import pytest

from kora_assets.definitions import build_resources
from kora_assets.migrate import migrate, run_order
from kora_assets.naming import asset_key
from kora_assets.plan.loader import load_order, parse_plan
from kora_assets.workers import load_ahead
from tests import shop_fixture as shop
from tests.test_migrate_e2e import _rows

pytestmark = pytest.mark.usefixtures("ray_local", "redis_url")


def _plan(tmp_path, pg_db):
    """The shop without customers' unique e-mail: under a parent with unique columns a child
    waits for the parent's run (which may still queue a repeat), not only for its rows."""
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    text = shop.plan_yaml(src, pg_db)
    assert "    unique: [[email]]\n" in text
    return parse_plan(text.replace("    unique: [[email]]\n", ""), require_env=False)


def test_run_order_puts_the_smallest_ready_table_first(tmp_path, pg_db):
    plan = _plan(tmp_path, pg_db)
    assert load_order(plan) == ["customers", "orders", "employees"]
    assert run_order(plan, load_order(plan)) == ["employees", "customers", "orders"]  # 1 partition before 2


def test_partitions_land_before_their_run_starts_under_its_run_id(tmp_path, pg_db, dagster_instance):
    plan = _plan(tmp_path, pg_db)
    outcome = migrate(plan, dagster_instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
    ledger = _rows(pg_db, "SELECT table_name, run_id, extract(epoch FROM updated_at) FROM kora.partition_ledger")
    assert {t for t, *_ in ledger} == {"customers", "orders", "employees"}
    started_before = {}
    for table, run_id, landed_at in ledger:
        mat = dagster_instance.get_latest_materialization_event(asset_key(plan.name, plan.target_name(table)))
        assert run_id == mat.run_id, table  # the partition carries the id of its own table's Dagster run
        started = dagster_instance.get_run_record_by_id(run_id).start_time
        started_before.setdefault(table, []).append(float(landed_at) < started)
    # employees runs first; customers loaded meanwhile, orders once customers had landed
    assert all(started_before["customers"]) and all(started_before["orders"]), started_before


def test_a_failed_parent_run_takes_out_what_its_children_loaded_ahead(tmp_path, pg_db):
    plan = _plan(tmp_path, pg_db)
    order = run_order(plan, load_order(plan))
    ahead, run_ids = load_ahead.start(plan, order, build_resources())
    assert ahead is not None and set(run_ids) == set(order)
    try:
        deadline = time.monotonic() + 120
        while not ahead._landed("orders") and time.monotonic() < deadline:  # released once customers landed
            time.sleep(0.1)
        assert ahead._landed("orders")
        assert _rows(pg_db, "SELECT COUNT(*) FROM public.orders")[0][0] > 0
        assert _rows(pg_db, "SELECT COUNT(*) FROM kora.error_queue WHERE table_name = 'orders'")[0][0] > 0
        ahead.run_done("customers", ok=False)  # e.g. its structural check failed
    finally:
        load_ahead.finish()
    assert _rows(pg_db, "SELECT COUNT(*) FROM public.orders") == [(0,)]
    assert _rows(pg_db, "SELECT table_name, COUNT(*) FROM kora.partition_ledger GROUP BY 1 ORDER BY 1") == [
        ("customers", 2), ("employees", 1)]
    assert _rows(pg_db, "SELECT DISTINCT table_name FROM kora.error_queue ORDER BY 1") == [("customers",), ("employees",)]
