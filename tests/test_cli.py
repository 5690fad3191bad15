"""The kora command as a user meets it: --help everywhere, init from a live MariaDB, and
specific one-line errors (exit 2) for a bad plan or an unreachable database."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests import shop_fixture as shop

KORA = [sys.executable, "-m", "kora_assets.cli"]


def kora(*args, cwd=None, env=None) -> subprocess.CompletedProcess:
    e = {**os.environ, **(env or {})}
    return subprocess.run([*KORA, *args], capture_output=True, text=True, cwd=cwd, env=e, timeout=300)


@pytest.mark.parametrize("cmd", [[], ["init"], ["migrate"], ["demo"], ["status"]])
def test_help(cmd):
    r = kora(*cmd, "--help")
    assert r.returncode == 0 and "Usage:" in r.stdout and len(r.stdout.splitlines()) > 5


def test_init_reflects_mariadb(mysql_db, tmp_path):
    shop.build_source(mysql_db)
    out = tmp_path / "plan.yaml"
    r = kora("init", "--source", mysql_db, "--target", "postgresql://postgres@127.0.0.1/x", "-o", str(out),
             "--partition-rows", "25")
    assert r.returncode == 0, r.stderr
    text = out.read_text()
    assert "# customers: 40 rows, 2 partition(s)" in text
    plan = yaml.safe_load(text)
    c = plan["tables"]["customers"]
    assert c["primary_key"] == ["id"] and c["columns"]["id"] == {"type": "integer", "nullable": False}
    assert c["columns"]["name"]["type"] == "varchar(255)"
    assert c["partitioning"] == {"kind": "key_range", "column": "id", "bounds": [21]}
    assert plan["tables"]["orders"]["indexes"] == [{"columns": ["customer_id"]}]
    r2 = kora("init", "--source", mysql_db, "--target", "postgresql://x/y", "-o", str(out))
    assert r2.returncode == 2 and "exists; pass --force" in r2.stderr


def test_bad_plan_is_one_specific_line(tmp_path):
    p = tmp_path / "plan.yaml"
    p.write_text(shop.plan_yaml("sqlite:///nowhere.db", "postgresql://postgres@127.0.0.1/x")
                 .replace("references: customers", "references: custmers"))
    r = kora("migrate", str(p))
    assert r.returncode == 2
    assert f"{p}:34: tables.orders.foreign_keys.0.references: unknown table 'custmers'" in r.stderr
    assert "Traceback" not in r.stderr


def test_unreachable_database(tmp_path):
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    p = tmp_path / "plan.yaml"
    p.write_text(shop.plan_yaml(src, "postgresql://postgres:hunter2@127.0.0.1:1/nowhere"))
    r = kora("migrate", str(p))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "cannot connect to the target database postgresql+psycopg://postgres:***@127.0.0.1:1/nowhere" in r.stderr
    assert "hunter2" not in r.stderr + r.stdout
    p.write_text(shop.plan_yaml("sqlite:///missing.db", "postgresql://postgres@127.0.0.1/x"))
    r = kora("migrate", str(p))
    assert r.returncode == 2 and "source SQLite file 'missing.db' does not exist" in r.stderr


@pytest.mark.usefixtures("redis_url")
def _live_processes_marked(mark: str) -> list[str]:
    """Processes (not zombies) whose environment carries ``mark``, i.e. started under a kora run."""
    import time

    import psutil

    for _ in range(20):  # a SIGKILLed process may take a moment to become a zombie
        found = []
        for p in psutil.process_iter(["environ", "status", "cmdline"]):
            env = p.info["environ"] or {}
            if env.get("KORA_TEST_PROCESS_MARK") == mark and p.info["status"] != psutil.STATUS_ZOMBIE:
                found.append(" ".join(p.info["cmdline"] or [])[:80])
        if not found:
            break
        time.sleep(0.1)
    return found


def test_migrate_and_status_json(tmp_path, pg_db):
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    p = tmp_path / "plan.yaml"
    p.write_text(shop.plan_yaml(src, pg_db))
    mark = f"mark-{os.getpid()}-{tmp_path.name}"
    r = kora("migrate", str(p), "--no-recover", env={"DAGSTER_HOME": "", "KORA_TEST_PROCESS_MARK": mark})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "migration complete" in r.stdout
    assert _live_processes_marked(mark) == []  # the local Ray it started went with it (a fast exit)
    # the summary's counts are the completeness check's, and agree with a live `kora status`
    assert re.search(r"^customers\s+ok\s+40\s+32\s+8\s", r.stdout, re.M), r.stdout
    assert (tmp_path / ".kora" / "dagster").is_dir()  # runs are kept for `dagster dev`
    s = kora("status", str(p), "--json")
    report = json.loads(s.stdout)
    cust = report["tables"]["customers"]
    assert (cust["source_rows"], cust["landed_rows"], cust["queued_rows"], cust["conserved"]) == (40, 32, 8, True)
    assert cust["partitions"]["..20"]["queued_rows"] == 8
    assert report["tables"]["orders"]["partitions"]["30.."] == {
        "source_rows": 34, "landed_rows": 31, "queued_rows": 3, "quarantined_rows": 0, "fixed_rows": 0, "conserved": True}


def test_migrate_with_recovery_prints_the_counts_kora_status_measures(tmp_path, pg_db):
    """After recovery the summary counts only the queue again; it must still agree with a live count."""
    src = f"sqlite:///{tmp_path / 'legacy.db'}"
    shop.build_source(src)
    p = tmp_path / "plan.yaml"
    p.write_text(shop.plan_yaml(src, pg_db))
    r = kora("migrate", str(p), env={"DAGSTER_HOME": ""})
    assert "migration complete" in r.stdout or "migration INCOMPLETE" in r.stdout, r.stdout + r.stderr
    live = json.loads(kora("status", str(p), "--json").stdout)["tables"]
    printed = {m[1]: tuple(int(x.replace(",", "")) for x in m.groups()[1:])
               for m in re.finditer(r"^(\w+)\s+\w+\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s", r.stdout, re.M)}
    assert printed == {t: (s["source_rows"], s["landed_rows"], s["queued_rows"]) for t, s in live.items()}
    assert sum(s["fixed_rows"] for s in live.values()) > 0  # recovery landed rows: the counts moved
