"""Names shared by every layer: asset keys, the bookkeeping schema, display-safe URLs."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url

if TYPE_CHECKING:  # workers import this module; they never need Dagster loaded
    import dagster as dg

#: Schema (PostgreSQL) or table-name prefix (SQLite) holding kora's durable bookkeeping.
KORA_SCHEMA = "kora"


def asset_key(plan_name: str, target_table: str) -> "dg.AssetKey":
    """One asset per migrated table, prefixed by the plan name so plans can share a UI."""
    import dagster as dg

    return dg.AssetKey([plan_name, dagster_name(target_table)])


def dagster_name(name: str) -> str:
    """A table name as Dagster accepts it in keys, jobs and ops (``[A-Za-z0-9_]``): a legacy
    table called ``Order Items`` or ``order-lines`` is ``Order_Items``, ``order_lines`` there,
    and keeps its own name in both databases. The plan check refuses two that meet."""
    return DAGSTER_UNSAFE.sub("_", name)


DAGSTER_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def redact_url(url: str) -> str:
    """A URL safe for logs and metadata: the password never leaves the process."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable url>"
