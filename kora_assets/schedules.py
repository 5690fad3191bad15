"""Keeping growing tables in sync until cut-over.

Each time-partitioned table gets a schedule that re-materializes its newest windows: the
one still filling up and the one just closed (late rows). Re-runs merge idempotently, so
running often is safe.
"""
from __future__ import annotations

import dagster as dg

from kora_assets.naming import asset_key, dagster_name
from kora_assets.partitions import partitions_def
from kora_assets.plan.model import Plan


def build_sync_schedules(plan: Plan) -> tuple[list[dg.ScheduleDefinition], list[dg.JobDefinition]]:
    schedules, jobs = [], []
    for table, tp in plan.tables.items():
        if tp.partitioning.kind != "time":
            continue
        pdef = partitions_def(tp)
        name = dagster_name(plan.target_name(table))
        job = dg.define_asset_job(f"sync_{name}", selection=[asset_key(plan.name, plan.target_name(table))],
                                  partitions_def=pdef)
        cron = "0 * * * *" if tp.partitioning.granularity == "daily" else "0 2 * * *"

        @dg.schedule(name=f"sync_{name}_schedule", job=job, cron_schedule=cron,
                     default_status=dg.DefaultScheduleStatus.STOPPED,
                     description=f"Re-materialize the two newest {tp.partitioning.granularity} partitions of {table}.")
        def _sync(context: dg.ScheduleEvaluationContext, _pdef=pdef, _job=job):
            keys = _pdef.get_partition_keys(current_time=context.scheduled_execution_time)[-2:]
            tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else "now"
            for k in keys:
                yield dg.RunRequest(run_key=f"{k}@{tick}", partition_key=k)

        schedules.append(_sync)
        jobs.append(job)
    return schedules, jobs
