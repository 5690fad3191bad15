"""The code location: Definitions assembled from the plan named by ``KORA_PLAN``.

Small per-domain builders contribute their part (table assets, sync schedules, asset checks,
recovery sensor); resources are declared once here.
"""
from __future__ import annotations

import os

import dagster as dg

from kora_assets.factory import build_table_asset
from kora_assets.plan.loader import load_order, load_plan
from kora_assets.plan.model import Plan
from kora_assets.schedules import build_sync_schedules
from kora_assets.sensors import build_recovery_defs
from resources.databases import DatabaseResource
from resources.llm import LLMResource
from resources.ray_cluster import RayResource
from resources.redis_bus import RedisResource


POST_MIGRATION_CHECKS = "kora_post_migration_checks"


def build_resources() -> dict:
    return {
        "source_db": DatabaseResource(role="source"),
        "target_db": DatabaseResource(role="target"),
        "ray_cluster": RayResource(),
        "redis": RedisResource(),
        "llm": LLMResource.from_env(),
    }


def build_asset_checks(plan: Plan) -> list[dg.AssetChecksDefinition]:
    """Whole-table checks that run after the migration (the per-partition checks are part
    of each table asset, or run with it: see ``build_partition_checks``)."""
    from checks.behavioral.assetchecks import build_behavioral_checks

    return [*build_behavioral_checks(plan)]


def build_partition_checks(plan: Plan) -> list[dg.AssetChecksDefinition]:
    """Checks evaluated per partition right after it lands (semantic plausibility, anomalies)."""
    from checks.semantic.assetcheck import build_semantic_checks

    return build_semantic_checks(plan)


def build_definitions(plan: Plan) -> dg.Definitions:
    assets = [build_table_asset(plan, t) for t in load_order(plan)]
    checks = build_asset_checks(plan)
    partition_checks = build_partition_checks(plan)
    schedules, jobs = build_sync_schedules(plan)
    sensors, recovery_jobs = build_recovery_defs(plan)
    if checks:
        jobs.append(dg.define_asset_job(POST_MIGRATION_CHECKS, selection=dg.AssetSelection.checks(*checks),
                                        description="Whole-table checks, once every table has landed."))
    return dg.Definitions(assets=assets, asset_checks=checks + partition_checks, schedules=schedules,
                          jobs=jobs + recovery_jobs,
                          sensors=sensors, resources=build_resources())


@dg.definitions
def defs() -> dg.Definitions:
    path = os.environ.get("KORA_PLAN")
    if not path:
        raise RuntimeError("KORA_PLAN is not set: point it at a migration plan (kora init writes one), "
                           "e.g. KORA_PLAN=plan.yaml dagster dev -w workspace.yaml")
    return build_definitions(load_plan(path))
