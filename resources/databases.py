"""Source and target databases as Dagster resources.

``url`` is optional: left unset, the resource uses the plan's URL template, so no secret
ever appears in Dagster's resource config. Set it (ideally with ``dg.EnvVar``) to point a
code location at another database without editing the plan.
"""
from __future__ import annotations

import dagster as dg
from pydantic import Field

from kora_assets.dbio.connections import Database


class DatabaseResource(dg.ConfigurableResource):
    """A database kora reads from or writes to."""

    role: str = Field(description="'source' or 'target'")
    url: str | None = Field(None, description="overrides the plan's URL; ${VAR} references are resolved at connect time")
    schema_name: str | None = Field(None, description="overrides the plan's schema")

    def database(self, plan_url: str) -> Database:
        return Database(self.url or plan_url, self.role)


def bind_plan(plan, source: DatabaseResource, target: DatabaseResource):
    """The plan as the resources configure it (URL/schema overrides): what every asset, check
    and sensor hands to workers and validators, so a resource override reaches all of them."""
    src = plan.source.model_copy(update={k: v for k, v in (("url", source.url), ("schema_", source.schema_name)) if v})
    tgt = plan.target.model_copy(update={k: v for k, v in (("url", target.url), ("schema_", target.schema_name)) if v})
    return plan.model_copy(update={"source": src, "target": tgt})
