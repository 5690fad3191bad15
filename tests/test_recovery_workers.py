"""Workers apply learned fixes inline (from the library, and from signed Redis broadcasts), and
the Dagster side of recovery: the error-queue sensor (cursor, run keys with an attempt counter)
and the recovery job with its per-table metadata."""
from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid

import dagster as dg
import psycopg
import pytest
import redis

from kora_assets.dbio.connections import Database
from kora_assets.dbio.ddl import ensure_target_schema
from kora_assets.plan.model import Plan
from kora_assets.recovery.broadcast import channel, publish
from kora_assets.recovery.classify import Signature
from kora_assets.recovery.library import FixLibrary, LibraryFix
from kora_assets.transforms.operators import ParseDate
from kora_assets.workers.partition_task import PartitionTask, TableRunner

REDIS = os.environ.get("KORA_REC_REDIS", "redis://127.0.0.1:6379/14")
ROWS = [("1", "1990-01-01"), ("2", "21.10.1969"), ("3", "05.03.1980"), ("4", "13/01/2001"), ("5", "02/01/2001"),
        ("6", "03-04-2001")]


def source(tmp_path) -> str:
    path = tmp_path / "src.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE t (id TEXT, born TEXT)")
    con.executemany("INSERT INTO t VALUES (?, ?)", ROWS)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def plan_for(src: str, target: str, name: str = "wrk") -> Plan:
    return Plan.model_validate({"name": name, "source": {"url": src}, "target": {"url": target},
                                "settings": {"max_fix_attempts": 2},
                                "tables": {"t": {"primary_key": ["id"], "columns": {
                                    "id": {"type": "integer", "nullable": False}, "born": {"type": "date"}}}}})


def test_worker_loads_library_fixes_and_applies_signed_broadcasts_inline(tmp_path, monkeypatch):
    from kora_assets.workers.actor import MigrationWorker

    monkeypatch.setenv("KORA_FIX_HMAC_KEY", "k-" + uuid.uuid4().hex)
    plan = plan_for(source(tmp_path), f"sqlite:///{tmp_path / 'tgt.db'}", name=f"wrk{uuid.uuid4().hex[:6]}")
    target = Database(plan.target.url, "target")
    ensure_target_schema(target, plan)
    worker = MigrationWorker(plan.dump(), "w1")
    assert worker._runner("t").fixes == []

    lib = FixLibrary.for_plan(plan)
    fid = lib.save(Signature("parse.date", "t", "born", "dd.dd.dddd"), [ParseDate(formats=["%d.%m.%Y"])], origin="rules")
    runner = worker._runner("t")  # the library changed: the runner is rebuilt with the fix
    assert [f.fix_id for f in runner.fixes] == [fid]
    res = runner.run(PartitionTask("t", "all", "r1"), worker.source, target, worker="w1")
    assert (res.landed, res.queued, res.fixed_inline) == (3, 3, 2)  # the d/m/Y values are not its shape

    # a signed broadcast reaches the worker and the next chunk applies it
    worker.fixes.listen(REDIS)
    assert worker.fixes.subscriber is not None
    fix2 = LibraryFix(fid + 100, Signature("parse.date", "t", "born", "dd/dd/dddd"), [ParseDate(formats=["%d/%m/%Y"])])
    r = redis.Redis.from_url(REDIS)
    r.publish(channel(plan), json.dumps({"payload": "{}", "sig": "forged"}))  # dropped: bad signature
    assert publish(REDIS, plan, "t", fix2, lib.hmac_key()) >= 1
    for _ in range(50):
        if worker.fixes.subscriber.received and worker.fixes.subscriber.rejected:
            break
        time.sleep(0.1)
    assert worker.fixes.subscriber.rejected == 1 and worker.fixes.subscriber.received == 1
    assert fid + 100 in [f.fix_id for f in worker.runners["t"].fixes]  # hot-swapped into the warm runner
    res = worker.runners["t"].run(PartitionTask("t", "all", "r2"), worker.source, target, worker="w1")
    assert (res.landed, res.queued) == (5, 1)
    with sqlite3.connect(tmp_path / "tgt.db") as con:
        got = dict(con.execute("SELECT id, born FROM t").fetchall())
        audits = con.execute("SELECT primary_key, before, after, fix_id FROM kora__fix_audit WHERE run_id = 'r2' "
                             "ORDER BY primary_key").fetchall()
    assert got == {1: "1990-01-01", 2: "1969-10-21", 3: "1980-03-05", 4: "2001-01-13", 5: "2001-01-02"}
    assert ('{"id":"4"}', "13/01/2001", "2001-01-13", fid + 100) in audits
    worker.fixes.subscriber.stop()


def test_sensor_requests_recovery_runs_with_attempts_and_the_job_recovers(tmp_path, pg_db, monkeypatch):
    from kora_assets.sensors import TAG_KEY, build_recovery_defs
    from resources.databases import DatabaseResource
    from resources.llm import LLMResource
    from resources.redis_bus import RedisResource

    monkeypatch.setenv("KORA_REDIS_URL", REDIS)
    plan = plan_for(source(tmp_path), pg_db, name=f"sen{uuid.uuid4().hex[:6]}")
    target = Database(plan.target.url, "target")
    ensure_target_schema(target, plan)
    res = TableRunner(plan, "t").run(PartitionTask("t", "all", "r0"), Database(plan.source.url, "source"), target)
    assert res.queued == 5

    sensors, jobs = build_recovery_defs(plan)
    sensor, job = sensors[0], jobs[0]
    (tmp_path / "dg").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp_path / "dg")) as inst:
        ctx = dg.build_sensor_context(instance=inst)
        reqs = sensor(ctx)
        assert len(reqs) == 1 and reqs[0].run_key.endswith(":attempt-0") and reqs[0].tags["kora/table"] == "t"
        cursor = ctx.cursor
        again = sensor(dg.build_sensor_context(instance=inst, cursor=cursor))
        assert isinstance(again, dg.SkipReason)  # nothing changed, nothing failed
        # the run for that state failed: the next tick retries with the attempt counter raised
        from dagster._core.storage.dagster_run import DagsterRun, DagsterRunStatus

        inst.add_run(DagsterRun(job_name=job.name, run_id=str(uuid.uuid4()), status=DagsterRunStatus.FAILURE,
                                tags={TAG_KEY: reqs[0].tags[TAG_KEY]}))
        ctx3 = dg.build_sensor_context(instance=inst, cursor=cursor)
        retry = sensor(ctx3)
        assert len(retry) == 1 and retry[0].run_key.endswith(":attempt-1")

        result = job.execute_in_process(
            run_config=retry[0].run_config, instance=inst,
            resources={"source_db": DatabaseResource(role="source"), "target_db": DatabaseResource(role="target"),
                       "redis": RedisResource(url=REDIS), "llm": LLMResource(kind="none")})
        assert result.success
        obs = [e.event_specific_data.asset_observation for e in result.all_events
               if e.event_type_value == "ASSET_OBSERVATION"]
        md = obs[0].metadata
        assert md["recovery/fixed"].value == 4 and md["recovery/quarantined"].value == 1
        assert "parse_date" in md["recovery/fixes_learned_ops"].value
        assert md["recovery/recovery_rate"].value == 0.8
    with psycopg.connect(pg_db) as c:
        statuses = dict(c.execute("SELECT value, status FROM kora.error_queue").fetchall())
        reason = c.execute("SELECT reason FROM kora.error_queue WHERE status = 'quarantined'").fetchone()[0]
        landed = dict(c.execute("SELECT id, born::text FROM t").fetchall())
    # 21 decides day-first for dd.dd.dddd, 13 for dd/dd/dddd; nothing decides 03-04-2001
    assert statuses == {"21.10.1969": "fixed", "05.03.1980": "fixed", "13/01/2001": "fixed", "02/01/2001": "fixed",
                        "03-04-2001": "quarantined"}
    assert "ambiguous date order" in reason
    assert landed == {1: "1990-01-01", 2: "1969-10-21", 3: "1980-03-05", 4: "2001-01-13", 5: "2001-01-02"}


def test_one_agent_per_signature():
    from kora_assets.recovery.broadcast import SignatureLock

    plan = plan_for("sqlite:///s.db", "sqlite:///t.db", name=f"lock{uuid.uuid4().hex[:6]}")
    sig = Signature("parse.date", "t", "born", "dd.dd.dddd")
    a, b = SignatureLock(REDIS, plan, sig), SignatureLock(REDIS, plan, sig)
    assert a.acquire() and not b.acquire()
    a.release()
    assert b.acquire()
    b.release()


def test_openai_compatible_client_asks_for_schema_constrained_json():
    """The request a vLLM server gets: chat messages and a json_schema response format."""
    import http.server
    import threading

    from kora_assets.recovery.llm import answer_schema, parse_answer
    from resources.llm import LLMResource

    seen = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            seen["path"] = self.path
            seen["auth"] = self.headers.get("Authorization")
            seen["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            out = json.dumps({"choices": [{"message": {"content": '{"ops": [{"op": "trim"}]}'}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *a):
            pass

    srv = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        client = LLMResource(kind="openai", base_url=f"http://127.0.0.1:{srv.server_port}/v1", model="m",
                             api_key="tok").client()
        text = client.complete([{"role": "user", "content": "fix"}], answer_schema())
    finally:
        srv.shutdown()
    assert parse_answer(text)[0].op == "trim" and client.calls == 1
    assert seen["path"] == "/v1/chat/completions" and seen["auth"] == "Bearer tok"
    rf = seen["body"]["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"]["required"] == ["ops"]
    assert LLMResource(kind="none").client() is None


# -- a cross-column fix through the recovery path, on PostgreSQL ----------------------------------

BREW_STATES = ["CA", "CO", "OR", "WA", "MO", "TX", "NC", "WI"]
BREW_SPLIT = {61: ("Bend OR", "Bend", "OR"), 62: ("San Francisco CA", "San Francisco", "CA"),
              63: ("Kansas City, MO", "Kansas City", "MO"), 64: ("Winston-Salem  NC ", "Winston-Salem", "NC"),
              65: ("Bend OR", "Bend", "OR")}


def brew_source(tmp_path) -> str:
    path = tmp_path / "brew.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE brew (id TEXT, name TEXT, city TEXT, state TEXT)")
    rows = [(str(i), f"Brewery {i}", f"Town {i}", BREW_STATES[i % len(BREW_STATES)]) for i in range(1, 61)]
    rows += [(str(i), f"Brewery {i}", city, None) for i, (city, _, _) in BREW_SPLIT.items()]
    con.executemany("INSERT INTO brew VALUES (?, ?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_recovery_splits_a_state_out_of_the_city_and_audits_both_columns(tmp_path, pg_db, monkeypatch):
    from kora_assets.recovery.loop import run_until_stable

    monkeypatch.delenv("KORA_FIX_LIBRARY_URL", raising=False)
    plan = Plan.model_validate({
        "name": f"brew{uuid.uuid4().hex[:6]}", "source": {"url": brew_source(tmp_path)}, "target": {"url": pg_db},
        "tables": {"brew": {"primary_key": ["id"], "columns": {
            "id": {"type": "integer", "nullable": False}, "name": {"type": "text"},
            "city": {"type": "varchar(40)"}, "state": {"type": "char(2)", "nullable": False}}}}})
    target = Database(plan.target.url, "target")
    ensure_target_schema(target, plan)
    res = TableRunner(plan, "brew").run(PartitionTask("brew", "all", "r0"), Database(plan.source.url, "source"), target)
    assert (res.landed, res.queued) == (60, len(BREW_SPLIT))

    report = run_until_stable(plan, llm=None, redis_url=REDIS, report_to_dagster=False)
    (learned,) = report.tables["brew"].fixes_learned
    assert learned["signature"] == "constraint.not_null|brew.state|*"
    assert learned["ops_json"][0]["op"] == "split_from_sibling" and learned["ops_json"][0]["sibling"] == "city"
    assert sorted(learned["ops_json"][0]["values"]) == sorted(BREW_STATES)
    with psycopg.connect(pg_db) as c:
        landed = {r[0]: (r[1], r[2], r[3]) for r in c.execute("SELECT id, name, city, state FROM brew")}
        queue = dict(c.execute("SELECT (primary_key->>'id')::int, status FROM kora.error_queue").fetchall())
        audits = c.execute("SELECT (primary_key->>'id')::int, column_name, before, after, fix_id "
                           "FROM kora.fix_audit ORDER BY 1, 2").fetchall()
        fix_id = c.execute("SELECT id FROM kora.fix_library WHERE status = 'active'").fetchone()[0]
    assert len(landed) == 60 + len(BREW_SPLIT)  # none lost
    for i in range(1, 61):  # rows that passed are exactly as read
        assert landed[i] == (f"Brewery {i}", f"Town {i}", BREW_STATES[i % len(BREW_STATES)])
    for i, (raw, city, state) in BREW_SPLIT.items():
        assert landed[i] == (f"Brewery {i}", city, state), (i, landed[i])
        assert queue[i] == "fixed"
    # every changed value keeps its original, for both columns the fix touched
    assert audits == [row for i, (raw, city, state) in sorted(BREW_SPLIT.items())
                      for row in ((i, "city", raw, city, fix_id), (i, "state", None, state, fix_id))]
