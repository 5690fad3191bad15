"""The validation pattern library: rules that caught real errors, kept, counted and curated.

A durable table ``kora.validation_rules`` (``kora__validation_rules`` on SQLite) in the target,
or in the database named by ``KORA_VALIDATION_RULES_URL`` so rules carry across migrations and
fresh targets. Each rule is keyed by a *semantic profile* (``semantic type/storage kind``, e.g.
``money_nonnegative/decimal``), not by a column name, so it applies to every later column with
the same profile whatever it is called.

Where rules come from (recorded by the semantic asset check after each partition):

* **built-in plausibility rules** that fired (``[rule birth_date.not_future]`` in a queued
  row's reason): stored ``confirmed`` with their hit counts; a steward may retire one for a
  profile, and later migrations then skip it;
* **plan rules** (``min``/``max``/``regex``/``allowed``) on a semantically typed column that
  queued rows: stored as ``candidate`` rules of the profile;
* **anomalies** the asset check flagged in a text column: a ``candidate`` deny rule per value.

Candidates apply nowhere until a steward confirms them (``kora rules confirm ID``); confirmed
rules apply inline, in every later migration, to every column of the same profile. Hit counts
are kept per (rule, plan, table, column, partition) in ``validation_rule_hits``, so recording
a partition twice does not count twice. Rules are data (a kind from a closed set with JSON
parameters), read back through ``Rule.make``: a library row is never executed as code.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

import sqlalchemy as sa

from checks.semantic.plausibility import BUILTIN_RULES, KINDS, Rule
from kora_assets.dbio.connections import Database
from kora_assets.naming import KORA_SCHEMA

log = logging.getLogger("kora.semantic")
STATUSES = ("candidate", "confirmed", "retired")

_PG = f"""
CREATE SCHEMA IF NOT EXISTS {KORA_SCHEMA};
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.validation_rules (
    id bigserial PRIMARY KEY,
    profile text NOT NULL,
    semantic_type text NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    params json NOT NULL,
    params_key text NOT NULL,
    description text,
    origin text NOT NULL,
    status text NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'confirmed', 'retired')),
    fired_count bigint NOT NULL DEFAULT 0,
    confirmed_count bigint NOT NULL DEFAULT 0,
    first_seen text,
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (profile, kind, params_key)
);
CREATE INDEX IF NOT EXISTS validation_rules_profile ON {KORA_SCHEMA}.validation_rules (profile, status);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.validation_rule_hits (
    rule_id bigint NOT NULL REFERENCES {KORA_SCHEMA}.validation_rules (id) ON DELETE CASCADE,
    plan_name text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    partition_key text NOT NULL,
    fired bigint NOT NULL,
    sample_keys json,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, plan_name, table_name, column_name, partition_key)
)
"""

_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__validation_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    profile TEXT NOT NULL,
    semantic_type TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    params_key TEXT NOT NULL,
    description TEXT,
    origin TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'candidate' CHECK (status IN ('candidate', 'confirmed', 'retired')),
    fired_count INTEGER NOT NULL DEFAULT 0,
    confirmed_count INTEGER NOT NULL DEFAULT 0,
    first_seen TEXT,
    note TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    UNIQUE (profile, kind, params_key)
);
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__validation_rule_hits (
    rule_id INTEGER NOT NULL,
    plan_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    partition_key TEXT NOT NULL,
    fired INTEGER NOT NULL,
    sample_keys TEXT,
    updated_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (rule_id, plan_name, table_name, column_name, partition_key)
)
"""


def library_url(plan) -> str:
    """Where the library lives: ``KORA_VALIDATION_RULES_URL``, else the plan's target."""
    return os.environ.get("KORA_VALIDATION_RULES_URL") or plan.target.url


@dataclass(frozen=True)
class LibraryRule:
    id: int
    profile: str
    semantic_type: str
    name: str
    kind: str
    params: dict
    description: str
    origin: str
    status: str
    fired_count: int
    confirmed_count: int
    first_seen: str | None = None

    def as_rule(self) -> Rule:
        """The rule as the compiler applies it; its reason tag names the library row."""
        desc = self.description or self.name
        return Rule.make(f"library#{self.id}", self.kind, f"{desc} (library rule {self.name})", builtin=False,
                         **self.params)


class RuleLibrary:
    def __init__(self, url: str):
        self.db = Database(url, "validation rule library")
        self.sqlite = self.db.dialect == "sqlite"
        self.rules_t = f"{KORA_SCHEMA}__validation_rules" if self.sqlite else f"{KORA_SCHEMA}.validation_rules"
        self.hits_t = f"{KORA_SCHEMA}__validation_rule_hits" if self.sqlite else f"{KORA_SCHEMA}.validation_rule_hits"
        self._ready = False

    @classmethod
    def for_plan(cls, plan) -> RuleLibrary:
        return cls(library_url(plan))

    def ensure(self) -> None:
        if self._ready:
            return
        with self.db.engine.begin() as c:
            if not self.sqlite:  # concurrent workers may race to create the schema
                c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.validation_rules'))")
            for stmt in (_SQLITE if self.sqlite else _PG).split(";"):
                if stmt.strip():
                    c.exec_driver_sql(stmt)
        self._ready = True

    # -- reading ------------------------------------------------------------------------------

    def _rows(self, where: str = "", params: dict | None = None) -> list[LibraryRule]:
        self.ensure()
        sql = (f"SELECT id, profile, semantic_type, name, kind, params, description, origin, status, fired_count, "
               f"confirmed_count, first_seen FROM {self.rules_t} {where} ORDER BY id")
        with self.db.engine.connect() as c:
            rows = c.execute(sa.text(sql), params or {}).all()
        out = []
        for r in rows:
            p = r[5] if isinstance(r[5], dict) else json.loads(r[5])
            out.append(LibraryRule(int(r[0]), r[1], r[2], r[3], r[4], p, r[6] or "", r[7], r[8], int(r[9]),
                                   int(r[10]), r[11]))
        return out

    def list(self, *, status: str | None = None, profile: str | None = None) -> list[LibraryRule]:
        conds, params = [], {}
        if status:
            conds.append("status = :status")
            params["status"] = status
        if profile:
            conds.append("profile = :profile")
            params["profile"] = profile
        return self._rows(("WHERE " + " AND ".join(conds)) if conds else "", params)

    def get(self, rule_id: int) -> LibraryRule | None:
        rows = self._rows("WHERE id = :id", {"id": int(rule_id)})
        return rows[0] if rows else None

    def applicable(self, profile: str) -> tuple[list[Rule], set[str]]:
        """(confirmed learned rules to apply, built-in rule names retired) for a profile."""
        rows = self._rows("WHERE profile = :p AND status IN ('confirmed', 'retired')", {"p": profile})
        extra = [r.as_rule() for r in rows if r.status == "confirmed" and r.origin != "builtin" and r.kind in KINDS]
        retired = {r.name for r in rows if r.status == "retired" and r.origin == "builtin"}
        return extra, retired

    # -- writing ------------------------------------------------------------------------------

    def upsert_rule(self, *, profile: str, semantic_type: str, name: str, kind: str, params: dict, description: str,
                    origin: str, status: str, first_seen: str | None = None) -> int:
        """The id of the rule with this profile, kind and parameters (created if new)."""
        Rule.make(name, kind, **params)  # validates the kind
        self.ensure()
        key = json.dumps(params, sort_keys=True, ensure_ascii=False)
        ins = (f"INSERT INTO {self.rules_t} (profile, semantic_type, name, kind, params, params_key, description, "
               f"origin, status, first_seen) VALUES (:profile, :st, :name, :kind, :params, :key, :desc, :origin, "
               f":status, :first) ON CONFLICT (profile, kind, params_key) DO NOTHING")
        with self.db.engine.begin() as c:
            c.execute(sa.text(ins), {"profile": profile, "st": semantic_type, "name": name, "kind": kind,
                                     "params": key, "key": key, "desc": description, "origin": origin,
                                     "status": status, "first": first_seen})
            rid = c.execute(sa.text(f"SELECT id FROM {self.rules_t} WHERE profile = :p AND kind = :k AND "
                                    f"params_key = :key"), {"p": profile, "k": kind, "key": key}).scalar_one()
        return int(rid)

    def builtin_id(self, profile: str, semantic_type: str, rule_name: str) -> int | None:
        for r in BUILTIN_RULES.get(semantic_type, ()):
            if r.name == rule_name:
                return self.upsert_rule(profile=profile, semantic_type=semantic_type, name=r.name, kind=r.kind,
                                        params=r.p, description=r.description, origin="builtin", status="confirmed")
        return None

    def record_hits(self, rule_id: int, *, plan_name: str, table: str, column: str, partition_key: str, fired: int,
                    sample_keys: list | None = None) -> None:
        """Set the hits of a rule for one partition (idempotent) and refresh its fired count."""
        self.ensure()
        up = (f"INSERT INTO {self.hits_t} (rule_id, plan_name, table_name, column_name, partition_key, fired, "
              f"sample_keys) VALUES (:id, :plan, :t, :c, :pk, :n, :keys) ON CONFLICT (rule_id, plan_name, "
              f"table_name, column_name, partition_key) DO UPDATE SET fired = excluded.fired, "
              f"sample_keys = excluded.sample_keys, updated_at = {self._now()}")
        with self.db.engine.begin() as c:
            c.execute(sa.text(up), {"id": rule_id, "plan": plan_name, "t": table, "c": column, "pk": partition_key,
                                    "n": int(fired), "keys": json.dumps(sample_keys or [], ensure_ascii=False)})
            c.execute(sa.text(f"UPDATE {self.rules_t} SET fired_count = (SELECT COALESCE(SUM(fired), 0) FROM "
                              f"{self.hits_t} WHERE rule_id = :id), updated_at = {self._now()} WHERE id = :id"),
                      {"id": rule_id})

    def set_status(self, rule_id: int, status: str, note: str | None = None) -> LibraryRule:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        self.ensure()
        bump = ", confirmed_count = confirmed_count + 1" if status == "confirmed" else ""
        with self.db.engine.begin() as c:
            n = c.execute(sa.text(f"UPDATE {self.rules_t} SET status = :s{bump}, note = COALESCE(:note, note), "
                                  f"updated_at = {self._now()} WHERE id = :id"),
                          {"s": status, "note": note, "id": int(rule_id)}).rowcount
        if not n:
            raise KeyError(f"no validation rule with id {rule_id}")
        return self.get(rule_id)

    def confirm(self, rule_id: int, note: str | None = None) -> LibraryRule:
        return self.set_status(rule_id, "confirmed", note)

    def retire(self, rule_id: int, note: str | None = None) -> LibraryRule:
        return self.set_status(rule_id, "retired", note)

    def _now(self) -> str:
        return "datetime('now')" if self.sqlite else "now()"


def plan_rule_candidates(column_plan) -> list[tuple[str, str, dict, str]]:
    """(error class, kind, params, description) of a column's plan rules, as library candidates."""
    r = column_plan.rules
    out = []
    if r.min is not None:
        out.append(("range.out_of_bounds", "min", {"value": r.min}, f"below {r.min:g}"))
    if r.max is not None:
        out.append(("range.out_of_bounds", "max", {"value": r.max}, f"above {r.max:g}"))
    if r.regex is not None:
        out.append(("rule.regex", "regex", {"pattern": r.regex}, f"does not match {r.regex}"))
    if r.allowed is not None:
        out.append(("enum.unknown_value", "in_set", {"values": sorted(r.allowed)}, "not one of the known values"))
    return out


# -- inferred types, stored once per plan table ---------------------------------------------------

_TYPES_PG = f"""
CREATE SCHEMA IF NOT EXISTS {KORA_SCHEMA};
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}.semantic_columns (
    plan_name text NOT NULL,
    table_name text NOT NULL,
    column_name text NOT NULL,
    spec_key text NOT NULL,
    semantic_type text,
    inferred text,
    confidence double precision NOT NULL,
    origin text NOT NULL,
    note text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_name, table_name, column_name)
)
"""
_TYPES_SQLITE = f"""
CREATE TABLE IF NOT EXISTS {KORA_SCHEMA}__semantic_columns (
    plan_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    column_name TEXT NOT NULL,
    spec_key TEXT NOT NULL,
    semantic_type TEXT,
    inferred TEXT,
    confidence REAL NOT NULL,
    origin TEXT NOT NULL,
    note TEXT,
    created_at TEXT NOT NULL DEFAULT (datetime('now')),
    PRIMARY KEY (plan_name, table_name, column_name)
)
"""


class TypeStore:
    """The semantic types inferred for a plan's columns, in the target (``kora.semantic_columns``).

    The first process that resolves a table (the run's driver, or the first worker) infers and
    stores; every other worker, the recovery loop and later runs read the same answer, so all of
    them apply the same rules and none of them needs the model. A row is reused only while the
    column's plan (type and transforms: ``spec_key``) is unchanged.
    """

    def __init__(self, url: str):
        self.db = Database(url, "target")
        self.sqlite = self.db.dialect == "sqlite"
        self.t = f"{KORA_SCHEMA}__semantic_columns" if self.sqlite else f"{KORA_SCHEMA}.semantic_columns"
        self._ready = False

    def usable(self) -> bool:
        if self.sqlite:  # never create a SQLite file as a side effect
            path = self.db.url.database
            return bool(path) and path != ":memory:" and os.path.exists(path)
        return True

    def ensure(self) -> None:
        if self._ready:
            return
        with self.db.engine.begin() as c:
            if not self.sqlite:
                c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.semantic_columns'))")
            for stmt in (_TYPES_SQLITE if self.sqlite else _TYPES_PG).split(";"):
                if stmt.strip():
                    c.exec_driver_sql(stmt)
        self._ready = True

    def load(self, plan_name: str, table: str) -> dict[str, dict]:
        self.ensure()
        with self.db.engine.connect() as c:
            rows = c.execute(sa.text(f"SELECT column_name, spec_key, semantic_type, inferred, confidence, origin, note "
                                     f"FROM {self.t} WHERE plan_name = :p AND table_name = :t"),
                             {"p": plan_name, "t": table}).all()
        return {r[0]: {"spec_key": r[1], "semantic_type": r[2], "inferred": r[3], "confidence": float(r[4]),
                       "origin": r[5], "note": r[6] or ""} for r in rows}

    def save(self, plan_name: str, table: str, rows: dict[str, dict]) -> None:
        """Store inferences; a column another process stored first keeps that answer."""
        self.ensure()
        up = (f"INSERT INTO {self.t} (plan_name, table_name, column_name, spec_key, semantic_type, inferred, "
              f"confidence, origin, note) VALUES (:p, :t, :c, :k, :st, :inf, :conf, :o, :n) "
              f"ON CONFLICT (plan_name, table_name, column_name) DO UPDATE SET spec_key = excluded.spec_key, "
              f"semantic_type = excluded.semantic_type, inferred = excluded.inferred, confidence = excluded.confidence, "
              f"origin = excluded.origin, note = excluded.note WHERE {self.t}.spec_key <> excluded.spec_key")
        with self.db.engine.begin() as c:
            for col, r in rows.items():
                c.execute(sa.text(up), {"p": plan_name, "t": table, "c": col, "k": r["spec_key"],
                                        "st": r["semantic_type"], "inf": r["inferred"], "conf": r["confidence"],
                                        "o": r["origin"], "n": r.get("note", "")})
