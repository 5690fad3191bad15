"""The persistent fix library: fixes that worked, keyed by signature, with success counts.

A durable table (``kora.fix_library``) in the target by default, or in the database named by
``KORA_FIX_LIBRARY_URL`` so fixes carry across migrations and fresh targets. It also
remembers verdicts (``status = 'rejected'``: ambiguous, unfixable, lossy without consent) so a
later run does not ask the LLM again about what it already could not fix.

Operators are stored as JSON and read back through ``parse_operator``: a library row is
untrusted data like any other.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
from dataclasses import dataclass, field

from kora_assets.dbio.connections import Database
from kora_assets.naming import KORA_SCHEMA
from kora_assets.plan.model import Plan
from kora_assets.recovery.classify import Signature, guarded, shape_kind
from kora_assets.transforms.compiler import LearnedFix
from kora_assets.transforms.operators import (OPERATOR_LIST_ADAPTER, PLACEHOLDERS, MapValues, NullIf, _Op, check_chain,
                                              cross_column_ops)

log = logging.getLogger("kora.recovery")
ZERO_DATES = ("0000-00-00", "0000-00-00 00:00:00", "0000-00-00 00:00:00.000000", "00/00/0000", "00.00.0000")

_PG = f"""
CREATE SCHEMA IF NOT EXISTS {KORA_SCHEMA};
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.fix_library (
    id bigserial PRIMARY KEY,
    signature text NOT NULL,
    error_class text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    shape_kind text NOT NULL,
    shape text NOT NULL,
    ops json NOT NULL,
    ops_key text NOT NULL,
    lossy boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rejected', 'retired')),
    origin text NOT NULL,
    reason text,
    success_count bigint NOT NULL DEFAULT 0,
    failure_count bigint NOT NULL DEFAULT 0,
    rows_fixed bigint NOT NULL DEFAULT 0,
    plan_name text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (signature, ops_key)
);
CREATE INDEX IF NOT EXISTS fix_library_table ON {KORA_SCHEMA}.fix_library (table_name, status);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.fix_library_secret (
    id integer PRIMARY KEY CHECK (id = 1),
    hmac_key text NOT NULL
)
"""

_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__fix_library (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    signature TEXT NOT NULL,
    error_class TEXT NOT NULL,
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    shape_kind TEXT NOT NULL,
    shape TEXT NOT NULL,
    ops TEXT NOT NULL,
    ops_key TEXT NOT NULL,
    lossy INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'rejected', 'retired')),
    origin TEXT NOT NULL,
    reason TEXT,
    success_count INTEGER NOT NULL DEFAULT 0,
    failure_count INTEGER NOT NULL DEFAULT 0,
    rows_fixed INTEGER NOT NULL DEFAULT 0,
    plan_name TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (signature, ops_key)
);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__fix_library_secret (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    hmac_key TEXT NOT NULL
)
"""

REJECTED_KEY = "<verdict>"


def library_url(plan: Plan) -> str:
    """Where the library lives: ``KORA_FIX_LIBRARY_URL``, else the plan's target."""
    return os.environ.get("KORA_FIX_LIBRARY_URL") or plan.target.url


def ops_to_json(ops) -> list[dict]:
    return [op.model_dump(mode="json") for op in ops]


def ops_key(ops) -> str:
    return json.dumps(ops_to_json(ops), sort_keys=True, ensure_ascii=False)


def parse_ops(data) -> list[_Op]:
    """Untrusted operator JSON (library, LLM, broadcast) into operators of the closed set."""
    if isinstance(data, str):
        data = json.loads(data)
    ops = list(OPERATOR_LIST_ADAPTER.validate_python(data))
    check_chain(ops)
    return ops


def is_lossy(ops) -> bool:
    """Lossy: an operator that may lose information (truncate, default, round), or one that
    turns non-placeholder data into NULL (null_if / map_values to None on real values)."""
    sentinels = {p.lower() for p in PLACEHOLDERS} | set(ZERO_DATES)
    for op in ops:
        if getattr(op, "lossy", False):
            return True
        if isinstance(op, NullIf) and any(v.strip().lower() not in sentinels for v in op.values):
            return True
        if isinstance(op, MapValues) and any(v is None and k.strip().lower() not in sentinels
                                             for k, v in op.mapping.items()):
            return True
    return False


def describe_ops(ops) -> str:
    parts = []
    for op in ops:
        d = op.model_dump(mode="json", exclude={"op"}, exclude_defaults=True)
        args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)[:60]}" for k, v in d.items())
        parts.append(f"{op.op}({args})")
    return " -> ".join(parts) or "(none)"


@dataclass
class LibraryFix:
    id: int
    signature: Signature
    ops: list = field(default_factory=list)
    lossy: bool = False
    status: str = "active"
    origin: str = "rules"
    reason: str | None = None
    success_count: int = 0
    rows_fixed: int = 0

    def learned(self, plan: Plan, table: str) -> LearnedFix | None:
        """This fix as a worker applies it inline (None if the column is not in the plan)."""
        tp = plan.tables[table]
        src = next((s for s in tp.columns if tp.target_column(s) == self.signature.column), None)
        if src is None:
            return None
        if any(x.sibling not in tp.columns or x.sibling == src for x in cross_column_ops(self.ops)):
            return None  # a cross-column fix whose other column this plan does not have
        return LearnedFix(self.id, src, self.signature.error_class,
                          guarded(self.ops, self.signature.kind, self.signature.shape))


class FixLibrary:
    def __init__(self, url: str):
        self.db = Database(url, "fix library")
        self._ready = False

    @classmethod
    def for_plan(cls, plan: Plan) -> FixLibrary:
        return cls(library_url(plan))

    @property
    def table(self) -> str:
        return f"{KORA_SCHEMA}__fix_library" if self.db.dialect == "sqlite" else f"{KORA_SCHEMA}.fix_library"

    def _sql(self, sql: str) -> str:
        return sql.replace("%s", "?") if self.db.dialect == "sqlite" else sql

    def ensure(self) -> None:
        if self._ready:
            return
        text = _SQLITE if self.db.dialect == "sqlite" else _PG
        with self.db.engine.begin() as c:
            if self.db.dialect == "postgresql":
                c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.fix_library.ddl'))")
            for stmt in [s.strip() for s in text.split(";") if s.strip()]:
                c.exec_driver_sql(stmt)
        self._ready = True

    # -- reading -----------------------------------------------------------------------------
    _COLS = "id, signature, ops, lossy, status, origin, reason, success_count, rows_fixed"

    def _row(self, r) -> LibraryFix | None:
        try:
            ops = parse_ops(r[2]) if r[4] == "active" else (parse_ops(r[2]) if r[2] not in (None, "", "[]") else [])
        except Exception as exc:  # a tampered or outdated row is skipped, loudly
            log.warning("fix library row %s has invalid operators (%s); ignored", r[0], str(exc).splitlines()[0])
            return None
        return LibraryFix(int(r[0]), Signature.parse(r[1]), ops, bool(r[3]), r[4], r[5], r[6], int(r[7]), int(r[8]))

    def lookup(self, sig: Signature) -> tuple[list[LibraryFix], LibraryFix | None]:
        """(active fixes for the signature, best first; the recorded verdict if any)."""
        self.ensure()
        with self.db.engine.connect() as c:
            rows = c.exec_driver_sql(self._sql(
                f"SELECT {self._COLS} FROM {self.table} WHERE signature = %s AND status IN ('active', 'rejected') "
                "ORDER BY success_count DESC, id"), (str(sig),)).fetchall()
        fixes = [f for f in map(self._row, rows) if f is not None]
        return [f for f in fixes if f.status == "active"], next((f for f in fixes if f.status == "rejected"), None)

    def active_for_table(self, target_table: str) -> list[LibraryFix]:
        self.ensure()
        with self.db.engine.connect() as c:
            rows = c.exec_driver_sql(self._sql(
                f"SELECT {self._COLS} FROM {self.table} WHERE table_name = %s AND status = 'active' "
                "ORDER BY success_count DESC, id"), (target_table,)).fetchall()
        out, seen = [], set()
        for f in filter(None, map(self._row, rows)):
            if str(f.signature) not in seen:  # one fix per signature: the most successful
                seen.add(str(f.signature))
                out.append(f)
        return out

    def learned_fixes(self, plan: Plan, table: str) -> list[LearnedFix]:
        """The active fixes of a plan table, as ``LearnedFix``es for a ``TableRunner``."""
        out = []
        for f in self.active_for_table(plan.target_name(table)):
            lf = f.learned(plan, table)
            if lf is not None:
                out.append(lf)
        return out

    def version(self, target_table: str) -> tuple:
        """Changes whenever the table's active fixes change (cheap; workers poll it per task)."""
        self.ensure()
        with self.db.engine.connect() as c:
            r = c.exec_driver_sql(self._sql(
                f"SELECT COUNT(*), MAX(id), MAX(updated_at) FROM {self.table} WHERE table_name = %s AND status = 'active'"),
                (target_table,)).fetchone()
        return tuple(str(x) for x in r)

    def all(self) -> list[dict]:
        self.ensure()
        with self.db.engine.connect() as c:
            rows = c.exec_driver_sql(
                f"SELECT id, signature, ops, lossy, status, origin, reason, success_count, failure_count, rows_fixed "
                f"FROM {self.table} ORDER BY id").fetchall()
        keys = ["id", "signature", "ops", "lossy", "status", "origin", "reason", "success_count", "failure_count", "rows_fixed"]
        return [dict(zip(keys, r)) for r in rows]

    # -- writing -----------------------------------------------------------------------------
    def save(self, sig: Signature, ops, *, origin: str, plan_name: str | None = None, reason: str | None = None) -> int:
        """Store a proven fix (or re-activate it); returns its id, the ``fix_id`` of audits."""
        self.ensure()
        ops = list(ops)
        params = (str(sig), sig.error_class, sig.table, sig.column, shape_kind(sig.error_class), sig.shape,
                  json.dumps(ops_to_json(ops), ensure_ascii=False), ops_key(ops), is_lossy(ops), origin, reason, plan_name)
        with self.db.engine.begin() as c:
            r = c.exec_driver_sql(self._sql(
                f"INSERT INTO {self.table} (signature, error_class, table_name, column_name, shape_kind, shape, ops, "
                "ops_key, lossy, status, origin, reason, plan_name) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,'active',%s,%s,%s) "
                "ON CONFLICT (signature, ops_key) DO UPDATE SET status = 'active', updated_at = "
                f"{'CURRENT_TIMESTAMP' if self.db.dialect == 'sqlite' else 'now()'} RETURNING id"), params).fetchone()
            # a fix supersedes an earlier verdict on the same signature
            c.exec_driver_sql(self._sql(f"DELETE FROM {self.table} WHERE signature = %s AND ops_key = %s"),
                              (str(sig), REJECTED_KEY))
        return int(r[0])

    def save_verdict(self, sig: Signature, reason: str, best_ops=None, *, plan_name: str | None = None) -> None:
        """Remember that a signature could not be fixed (and why, with the best rejected candidate)."""
        self.ensure()
        ops = list(best_ops or [])
        now = "CURRENT_TIMESTAMP" if self.db.dialect == "sqlite" else "now()"
        params = (str(sig), sig.error_class, sig.table, sig.column, shape_kind(sig.error_class), sig.shape,
                  json.dumps(ops_to_json(ops), ensure_ascii=False), REJECTED_KEY, is_lossy(ops), reason[:2000], plan_name)
        with self.db.engine.begin() as c:
            c.exec_driver_sql(self._sql(
                f"INSERT INTO {self.table} (signature, error_class, table_name, column_name, shape_kind, shape, ops, "
                "ops_key, lossy, status, origin, reason, plan_name) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,'rejected','verdict',%s,%s) "
                f"ON CONFLICT (signature, ops_key) DO UPDATE SET reason = EXCLUDED.reason, ops = EXCLUDED.ops, "
                f"failure_count = {self.table}.failure_count + 1, updated_at = {now}"), params)

    def record_success(self, fix_id: int, rows: int) -> None:
        self.ensure()
        now = "CURRENT_TIMESTAMP" if self.db.dialect == "sqlite" else "now()"
        with self.db.engine.begin() as c:
            c.exec_driver_sql(self._sql(
                f"UPDATE {self.table} SET success_count = success_count + 1, rows_fixed = rows_fixed + %s, "
                f"updated_at = {now} WHERE id = %s"), (int(rows), int(fix_id)))

    def record_failure(self, fix_id: int) -> None:
        self.ensure()
        with self.db.engine.begin() as c:
            c.exec_driver_sql(self._sql(f"UPDATE {self.table} SET failure_count = failure_count + 1 WHERE id = %s"),
                              (int(fix_id),))

    def hmac_key(self) -> bytes:
        """The broadcast signing key: ``KORA_FIX_HMAC_KEY``, else one generated once per library."""
        env = os.environ.get("KORA_FIX_HMAC_KEY")
        if env:
            return env.encode()
        self.ensure()
        secret_table = self.table.replace("fix_library", "fix_library_secret")
        conflict = "ON CONFLICT (id) DO NOTHING"
        with self.db.engine.begin() as c:
            c.exec_driver_sql(self._sql(f"INSERT INTO {secret_table} (id, hmac_key) VALUES (1, %s) {conflict}"),
                              (secrets.token_hex(32),))
            key = c.exec_driver_sql(f"SELECT hmac_key FROM {secret_table} WHERE id = 1").scalar()
        return str(key).encode()
