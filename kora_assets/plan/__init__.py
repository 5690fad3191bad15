"""The migration plan: typed model, YAML loader with line-precise errors, load order."""
from kora_assets.plan.loader import (PlanError, load_order, load_plan, parents, parse_plan,
                                     resolve_env)
from kora_assets.plan.model import (ColumnPlan, ForeignKey, Index, Partitioning, Plan, Rules,
                                    Settings, TablePlan)
from kora_assets.plan.types import KoraType, parse_type

__all__ = ["ColumnPlan", "ForeignKey", "Index", "KoraType", "Partitioning", "Plan", "PlanError",
           "Rules", "Settings", "TablePlan", "load_order", "load_plan", "parents", "parse_plan",
           "parse_type", "resolve_env"]
