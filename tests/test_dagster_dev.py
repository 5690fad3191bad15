"""`dagster dev` on the workspace, as a user starts it: the code location loads from KORA_PLAN
and the UI's GraphQL shows one asset per table, FK lineage and the partitions."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests import shop_fixture as shop

ROOT = Path(__file__).resolve().parents[1]
QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } partitionKeys } }"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  ... on PartitionBackfill { status } } }"""


def _gql(port: int, query: str, variables: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql",
                                 data=json.dumps({"query": query, "variables": variables}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.mark.slow
@pytest.mark.usefixtures("redis_url")
def test_dagster_dev_lineage_partitions_and_ui_backfill(tmp_path, pg_db):
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    plan = tmp_path / "plan.yaml"
    plan.write_text(shop.plan_yaml(src, pg_db))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, "KORA_PLAN": str(plan), "DAGSTER_HOME": str(home)}
    dagster = str(Path(sys.executable).with_name("dagster"))
    # dagster dev started from a script ignores SIGINT/SIGTERM unless signals are reset to default
    proc = subprocess.Popen(["env", "--default-signal=INT,TERM", dagster, "dev", "-w", str(ROOT / "workspace.yaml"),
                             "-p", str(port), "-h", "127.0.0.1"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        nodes, deadline = None, time.time() + 180
        while time.time() < deadline:
            try:
                data = _graphql(port, QUERY)
                nodes = data.get("data", {}).get("assetNodes")
                if nodes:
                    break
            except Exception:
                pass
            time.sleep(2)
        assert nodes, "dagster dev did not serve the asset graph"
        by_key = {"/".join(n["assetKey"]["path"]): n for n in nodes}
        assert set(by_key) == {"shop/clients", "shop/orders", "shop/employees"}
        assert [d["path"] for d in by_key["shop/orders"]["dependencyKeys"]] == [["shop", "clients"]]
        assert by_key["shop/clients"]["partitionKeys"] == ["..20", "20.."]
        # A backfill of every partition of every table, as the UI launches it; the daemon
        # must run parents before children (orders would otherwise queue every row as fk_orphan).
        launched = _gql(port, BACKFILL, {"p": {"allPartitions": True, "assetSelection": [
            {"path": ["shop", t]} for t in ("orders", "clients", "employees")]}})
        backfill_id = launched["data"]["launchPartitionBackfill"]["backfillId"]
        status, deadline = None, time.time() + 420
        while time.time() < deadline and status not in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "CANCELED",
                                                          "COMPLETED_FAILED"):
            time.sleep(3)
            status = _gql(port, STATUS, {"id": backfill_id})["data"]["partitionBackfillOrError"].get("status")
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
        # The recovery sensor runs too (it is on by default), so some queued rows may have been
        # fixed meanwhile: every clean row landed exactly, and every source row is accounted for.
        from kora_assets.plan.loader import load_plan
        from kora_assets.status import migration_status
        from tests.test_migrate_e2e import _rows

        landed = _rows(pg_db, "SELECT id, full_name, email, born, balance, status FROM public.clients ORDER BY id")
        assert set(shop.expected_clients()) <= set(landed)
        report = migration_status(load_plan(plan))
        assert all(t["conserved"] for t in report["tables"].values()), report
        assert report["tables"]["orders"]["landed_rows"] >= 60
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
