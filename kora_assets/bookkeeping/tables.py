"""kora's durable bookkeeping in the target: the error queue, the partition ledger, the fix
library and the audit trail. Redis only coordinates; these tables remember.

``unique_conflicts`` names the rows whose unique values an earlier row holds
(``kora_assets.dbio.unique``): their partitions queue them on every load.

``fix_audit`` keeps the original of every value a fix changed (table, key, column, before,
after, fix id), so every fix is reversible.

The error queue is a contract other tools read (see README): one row per source row that did
not land, with the source key and values, the failing column, an error class and a reason.
``row`` and ``primary_key`` are ``json`` rather than ``jsonb`` on PostgreSQL because legacy
values may hold NUL characters, which ``jsonb`` refuses and a steward still needs to see.
"""
from __future__ import annotations

import re

from kora_assets.dbio.connections import Database
from kora_assets.naming import KORA_SCHEMA

ERROR_STATUSES = ("pending", "fixed", "quarantined")

_PG = f"""
CREATE SCHEMA IF NOT EXISTS {KORA_SCHEMA};
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.error_queue (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    partition_key text NOT NULL,
    primary_key json NOT NULL,
    "row" json NOT NULL,
    column_name text,
    error_class text NOT NULL,
    reason text NOT NULL,
    value text,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fixed', 'quarantined')),
    attempts integer NOT NULL DEFAULT 0,
    fix_id bigint,
    proposed_fix json,
    run_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS error_queue_partition ON {KORA_SCHEMA}.error_queue (table_name, partition_key);
CREATE INDEX IF NOT EXISTS error_queue_status ON {KORA_SCHEMA}.error_queue (status, error_class);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.partition_ledger (
    table_name text NOT NULL,
    partition_key text NOT NULL,
    source_rows bigint NOT NULL,
    landed_rows bigint NOT NULL,
    queued_rows bigint NOT NULL,
    seconds double precision NOT NULL,
    run_id text,
    worker text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, partition_key)
);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.fix_audit (
    id bigserial PRIMARY KEY,
    table_name text NOT NULL,
    partition_key text NOT NULL,
    primary_key json NOT NULL,
    column_name text NOT NULL,
    before text,
    after text,
    fix_id bigint,
    run_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS fix_audit_partition ON {KORA_SCHEMA}.fix_audit (table_name, partition_key);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.unique_conflicts (
    table_name text NOT NULL,
    primary_key text NOT NULL,
    unique_set integer NOT NULL,
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, primary_key, unique_set)
);
"""

_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__error_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    "row" TEXT NOT NULL,
    column_name TEXT,
    error_class TEXT NOT NULL,
    reason TEXT NOT NULL,
    value TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'fixed', 'quarantined')),
    attempts INTEGER NOT NULL DEFAULT 0,
    fix_id INTEGER,
    proposed_fix TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now'))
);
CREATE INDEX IF NOT EXISTS {KORA_SCHEMA}__error_queue_partition ON {KORA_SCHEMA}__error_queue (table_name, partition_key);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__partition_ledger (
    table_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    source_rows INTEGER NOT NULL,
    landed_rows INTEGER NOT NULL,
    queued_rows INTEGER NOT NULL,
    seconds REAL NOT NULL,
    run_id TEXT,
    worker TEXT,
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (table_name, partition_key)
);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__fix_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    table_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    primary_key TEXT NOT NULL,
    column_name TEXT NOT NULL,
    before TEXT,
    after TEXT,
    fix_id INTEGER,
    run_id TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now'))
);
"""


def bookkeeping_table(db: Database, name: str) -> str:
    """Qualified name of a bookkeeping table (a ``kora`` schema, or a prefix on SQLite)."""
    return f"{KORA_SCHEMA}__{name}" if db.dialect == "sqlite" else f"{KORA_SCHEMA}.{name}"


def bookkeeping_ddl(db: Database) -> list[str]:
    text = _SQLITE if db.dialect == "sqlite" else _PG
    return [s.strip() for s in text.split(";") if s.strip()]


def bookkeeping_relations(db: Database) -> list[str]:
    """Every table and index ``bookkeeping_ddl`` creates, as names ``to_regclass`` (PostgreSQL)
    or ``sqlite_master`` (SQLite) knows them: an index lives in its table's schema."""
    names = []
    for stmt in bookkeeping_ddl(db):
        if m := re.match(r"CREATE INDEX IF NOT EXISTS (\S+) ON (?:(\w+)\.)?", stmt):
            names.append(f"{m[2]}.{m[1]}" if m[2] else m[1])
        elif m := re.match(r"CREATE TABLE IF NOT EXISTS (\S+)", stmt):
            names.append(m[1])
    return names
