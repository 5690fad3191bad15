"""The error-queue sensor and the recovery job: under ``dagster dev`` the daemon drives recovery.

The sensor polls ``kora.error_queue`` for pending rows, per table: when a table's pending
state (count, newest id, attempts spent) differs from what its cursor last saw, it requests a
recovery run for that table's affected partitions. The run key carries an attempt counter:
if the run for a state failed (a database went away, a model timed out), the next tick asks
again with ``attempt + 1``, up to ``settings.max_fix_attempts``; a finished run changes the
state itself (rows fixed, quarantined, or an attempt counted), so nothing loops.

The job's one op runs ``run_until_stable`` for the table and records, per table asset, what
recovery did (queued, fixed, quarantined, fixes learned with their operators, recovery rate)
as asset observations, so the numbers plot over runs in the UI.
"""

import json

import dagster as dg

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.plan.model import Plan
from resources.databases import DatabaseResource, bind_plan
from resources.llm import LLMResource
from resources.redis_bus import RedisResource

TAG_KEY = "kora/recovery_key"


class RecoveryConfig(dg.Config):
    tables: list[str] = []
    partitions: list[str] = []
    attempt: int = 0


def pending_state(target: Database) -> dict[str, dict]:
    """table -> {state, partitions} over pending queue rows (one aggregate query)."""
    q = bookkeeping_table(target, "error_queue")
    out: dict[str, dict] = {}
    try:
        with target.engine.connect() as c:
            rows = c.exec_driver_sql(
                f"SELECT table_name, partition_key, COUNT(*), MAX(id), SUM(attempts) FROM {q} "
                "WHERE status = 'pending' GROUP BY 1, 2 ORDER BY 1, 2").fetchall()
    except Exception:  # nothing migrated yet
        return out
    for table, part, n, max_id, attempts in rows:
        t = out.setdefault(table, {"n": 0, "max_id": 0, "attempts": 0, "partitions": []})
        t["n"] += int(n)
        t["max_id"] = max(t["max_id"], int(max_id))
        t["attempts"] += int(attempts or 0)
        t["partitions"].append(part)
    for t in out.values():
        t["state"] = f"{t['n']}-{t['max_id']}-{t['attempts']}"
    return out


def build_recovery_defs(plan: Plan) -> tuple[list[dg.SensorDefinition], list[dg.JobDefinition]]:
    job_name = f"{plan.name}_recovery"

    @dg.op(name=f"{plan.name}_recover", description="Recover queued rows: classify, reuse or find a fix, prove it, land it.")
    def recover(context: dg.OpExecutionContext, config: RecoveryConfig, source_db: DatabaseResource,
                target_db: DatabaseResource, redis: RedisResource, llm: LLMResource):
        from kora_assets.recovery.loop import run_until_stable
        from kora_assets.recovery.metadata import observations

        bound = bind_plan(plan, source_db, target_db)
        report = run_until_stable(bound, config.tables or None, llm=llm, redis_url=redis.resolved_url(),
                                  run_id=context.run_id, partitions=config.partitions or None,
                                  report_to_dagster=False)
        for line in report.summary_lines():
            context.log.info(line)
        for obs in observations(bound, report, Database(bound.target.url, "target")):
            context.log_event(obs)

    @dg.job(name=job_name, description="Error-queue recovery for the tables a sensor names.",
            tags={"kora/kind": "recovery"})
    def recovery_job():
        recover()

    max_attempts = plan.settings.max_fix_attempts

    @dg.sensor(name=f"{plan.name}_error_queue_sensor", job=recovery_job, minimum_interval_seconds=30,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Launches a recovery run for a table when its pending error-queue rows change.")
    def error_queue_sensor(context: dg.SensorEvaluationContext):
        target = Database(plan.target.url, "target")
        cursor = json.loads(context.cursor) if context.cursor else {}
        requests = []
        for table, st in pending_state(target).items():
            if table not in plan.tables:
                continue
            prev = cursor.get(table) or {}
            attempt = 0
            if prev.get("state") == st["state"]:
                runs = context.instance.get_runs(
                    filters=dg.RunsFilter(tags={TAG_KEY: f"{table}:{st['state']}"}), limit=1)
                failed = runs and runs[0].status in (dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
                if not failed or prev.get("attempt", 0) + 1 >= max_attempts:
                    continue
                attempt = prev.get("attempt", 0) + 1
            requests.append(dg.RunRequest(
                run_key=f"recovery:{table}:{st['state']}:attempt-{attempt}",
                run_config={"ops": {recover.name: {"config": {"tables": [table], "partitions": st["partitions"],
                                                               "attempt": attempt}}}},
                tags={TAG_KEY: f"{table}:{st['state']}", "kora/recovery_attempt": str(attempt), "kora/table": table}))
            cursor[table] = {"state": st["state"], "attempt": attempt}
        context.update_cursor(json.dumps(cursor, sort_keys=True))
        if not requests:
            return dg.SkipReason("no change in the error queue's pending rows")
        return requests

    return [error_queue_sensor], [recovery_job]
