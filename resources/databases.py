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
