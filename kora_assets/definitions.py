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
from resources.databases import DatabaseResource
from resources.ray_cluster import RayResource
from resources.redis_bus import RedisResource


def build_resources() -> dict:
    return {
        "source_db": DatabaseResource(role="source"),
        "target_db": DatabaseResource(role="target"),
        "ray_cluster": RayResource(),
        "redis": RedisResource(),
    }


def build_definitions(plan: Plan) -> dg.Definitions:
    assets = [build_table_asset(plan, t) for t in load_order(plan)]
    schedules, jobs = build_sync_schedules(plan)
    return dg.Definitions(assets=assets, schedules=schedules, jobs=jobs, resources=build_resources())


@dg.definitions
def defs() -> dg.Definitions:
    path = os.environ.get("KORA_PLAN")
    if not path:
        raise RuntimeError("KORA_PLAN is not set: point it at a migration plan (kora init writes one), "
                           "e.g. KORA_PLAN=plan.yaml dagster dev -w workspace.yaml")
    return build_definitions(load_plan(path))
