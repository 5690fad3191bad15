"""The code location as Dagster sees it: loadable definitions, FK lineage, partitions, and a
single partition materialized through Dagster's own API."""
from __future__ import annotations

import dagster as dg
import pytest

from kora_assets.definitions import build_definitions
from kora_assets.plan.loader import parse_plan
from tests import shop_fixture as shop


@pytest.fixture
def plan(tmp_path, pg_db):
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    return parse_plan(shop.plan_yaml(src, pg_db), require_env=False)


def test_definitions_load_validate_and_follow_fks(plan):
    defs = build_definitions(plan)
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    clients, orders = dg.AssetKey(["shop", "clients"]), dg.AssetKey(["shop", "orders"])
    assert graph.get(orders).parent_keys == {clients}
    assert graph.get(clients).parent_keys == set()
    assert graph.get(clients).partitions_def.get_partition_keys() == ["..20", "20.."]
    assert graph.get(dg.AssetKey(["shop", "employees"])).parent_keys == set()  # a self-reference is no edge
    checks = {k.name for k in defs.resolve_asset_graph().asset_check_keys}
    assert checks == {"completeness", "structural", "statistical", "referential", "semantic"}


def test_code_location_loads_from_env(plan, tmp_path, monkeypatch):
    """What `dagster dev -w workspace.yaml` does: import the module with KORA_PLAN set."""
    import kora_assets.definitions as mod

    path = tmp_path / "plan.yaml"
    path.write_text(plan.model_dump_json())  # JSON is YAML
    monkeypatch.setenv("KORA_PLAN", str(path))
    defs = mod.defs()
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "shop/clients", "shop/orders", "shop/employees"}
    monkeypatch.delenv("KORA_PLAN")
    with pytest.raises(RuntimeError, match="KORA_PLAN is not set"):
        mod.defs()


@pytest.mark.usefixtures("ray_local", "redis_url")
def test_materialize_one_partition(plan, pg_db, dagster_instance):
    defs = build_definitions(plan)
    clients = dg.AssetKey(["shop", "clients"])
    result = dg.materialize([defs.get_assets_def(clients)], partition_key="20..", resources=defs.resources,
                            instance=dagster_instance)
    assert result.success
    [mat] = result.get_asset_materialization_events()
    assert mat.partition == "20.."
    assert mat.materialization.metadata["rows_landed"].value == 21
    evals = {ev.check_name: ev for ev in result.get_asset_check_evaluations()}
    ev = evals["completeness"]
    assert ev.passed and ev.partition == "20.." and ev.metadata["source_rows"].value == 21
    assert evals["statistical"].partition == "20.."  # judged for this partition alone
    assert evals["structural"].metadata["status"].value == "deferred"  # partition ..20 has not landed
    from kora_assets.dbio.connections import Database

    with Database(pg_db, "target").engine.connect() as c:
        ids = [r[0] for r in c.exec_driver_sql("SELECT id FROM public.clients ORDER BY id")]
    assert ids == list(range(20, 41))  # only that partition's rows
