"""Referential check: do the target's foreign keys hold, and do they *behave* like the source's?

For every foreign key the plan declares on the table:

1. **Orphans in the target**: child rows whose (non-NULL) key has no parent, found by an
   anti-join (``NOT EXISTS``) pushed down to the target; count plus up to ten sample keys.
2. **Orphans in the source**: the same anti-join on the source. Orphans that already existed
   there are *source dirt*: reported (warning), never a migration error. A target orphan whose
   key is also a source orphan is "inherited"; only target orphans the source did not have
   fail the check (compared key by key up to ``max_compare_keys``, by counts beyond). The
   source is scanned only when the target has orphans to judge: otherwise the dirt reported
   is the rows the workers queued as ``fk_orphan`` (read from the error queue, when there is one).
   A PostgreSQL constraint that this same step created (``validated_by_target``) is not scanned
   again: ``ALTER TABLE ... ADD FOREIGN KEY`` has just run this anti-join over every row and
   would have failed on one orphan (``convalidated`` confirms it). An older constraint is
   scanned, since triggers can be bypassed (``session_replication_role = replica``).
3. **Declared actions**: ON DELETE / ON UPDATE read from each catalog (PostgreSQL
   ``pg_constraint``, MySQL ``information_schema.REFERENTIAL_CONSTRAINTS``, SQLite
   ``pragma foreign_key_list``). Expected is the plan's action where the plan sets one
   explicitly, else the source's, else the plan default (no action). ``RESTRICT`` and
   ``NO ACTION`` count as the same behaviour (both refuse, for non-deferred constraints).
4. **Observed actions** (the proof): inside a transaction that is *always rolled back*, delete
   one parent row that has children and look at the children: gone (cascade), key NULL (set
   null), key changed to something else (set default), delete refused by *this* constraint
   (no action/restrict) or children left orphaned (not enforced). With a single integer
   parent key the same is done for an UPDATE of the key. This runs on the target, and on the
   source when the source enforces foreign keys (PostgreSQL; MySQL InnoDB). A SQLite source is
   not tried (enforcement is a per-connection pragma there); the target's observed behaviour
   is compared to the source's declared action instead.

The trial takes row locks for its short transaction; ``lock_timeout_s`` bounds the wait and
``trial_source=False`` keeps the check read-only on a source that must not be touched.
"""
from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from checks.outcome import (SAMPLE_KEYS, CheckOutcome, finding, findings_markdown, is_mysql, mysql_schema,
                            outcome_from, plain, source_schema, table_ref, target_schema, to_markdown_table)
from kora_assets.naming import KORA_SCHEMA

_PG_ACTIONS = {"a": "no action", "r": "restrict", "c": "cascade", "n": "set null", "d": "set default"}
_BLOCKING = {"no action", "restrict"}


def _behaviour(action: str | None) -> str | None:
    """Declared actions as the behaviour they produce: RESTRICT and NO ACTION both refuse."""
    if action is None:
        return None
    a = action.lower()
    return "blocked" if a in _BLOCKING else a


@dataclass
class _Side:
    """One foreign key as it exists on one side (source or target)."""

    engine: sa.Engine
    schema: str | None
    child: str
    parent: str
    columns: list[str]
    ref_columns: list[str]
    child_key: list[str]  # child primary key (for sample keys and observing children)
    declared: dict[str, Any] | None = None
    orphans: int = 0
    orphan_keys: list[tuple] = field(default_factory=list)
    trial: dict[str, str] = field(default_factory=dict)
    counted_by: str = "scan"  # how ``orphans`` was found: a "scan", the "error queue" or the "constraint"

    @property
    def label_key(self) -> list[str]:
        return self.child_key or self.columns


def check_references(plan, table: str, source_engine: sa.Engine, target_engine: sa.Engine, *,
                     trial: bool = True, trial_source: bool = True, lock_timeout_s: int = 5,
                     max_compare_keys: int = 10_000, validated_by_target: frozenset[str] = frozenset()) -> CheckOutcome:
    """Orphans, source dirt and cascade behaviour of the table's foreign keys (module doc).

    ``validated_by_target``: names of target FK constraints created (and so checked over every
    row by PostgreSQL) in the calling step.
    """
    tp = plan.tables[table]
    ctx = _Ctx(plan, table, source_engine, target_engine, trial, trial_source, lock_timeout_s, max_compare_keys,
               validated_by_target)
    rows = [_check_fk(ctx, fk) for fk in tp.foreign_keys]
    report = "\n\n".join([
        f"### References of `{plan.target_name(table)}`",
        to_markdown_table(rows, ["foreign key", "expected on delete/update", "source declared", "target declared",
                                 "source trial", "target trial", "target orphans", "source orphans (dirt)"]),
        "#### Findings", findings_markdown(ctx.findings)])
    meta = {"foreign_keys": len(tp.foreign_keys), **ctx.totals, "report": report}
    return outcome_from(ctx.findings, what=f"references of {plan.target_name(table)}", metadata=meta)


class _Ctx:
    """What every foreign key of one table shares: engines, catalogs, options, the findings."""

    def __init__(self, plan, table, source_engine, target_engine, trial, trial_source, lock_timeout_s,
                 max_compare_keys, validated_by_target: frozenset[str] = frozenset()):
        self.plan, self.table = plan, table
        self.src_engine, self.tgt_engine = source_engine, target_engine
        self.trial, self.lock_timeout_s, self.max_compare_keys = trial, lock_timeout_s, max_compare_keys
        self.src_schema = source_schema(plan, source_engine)
        self.tgt_schema = target_schema(plan, target_engine)
        self.src_fks = _declared_fks(source_engine, self.src_schema, table)
        self.tgt_fks = _declared_fks(target_engine, self.tgt_schema, plan.target_name(table))
        self.trial_source = trial_source and _enforces(source_engine, self.src_schema, table)
        self.validated_by_target = validated_by_target
        self.findings: list[dict] = []
        self.totals = {"orphans_target": 0, "orphans_source": 0, "orphans_inherited": 0}

    def sides(self, fk) -> tuple[_Side, _Side]:
        """The foreign key as the source names it and as the target names it."""
        plan, tp = self.plan, self.plan.tables[self.table]
        ptp = plan.tables[fk.references]
        s = _Side(self.src_engine, self.src_schema, self.table, fk.references, list(fk.columns),
                  list(fk.ref_columns), list(tp.primary_key))
        t = _Side(self.tgt_engine, self.tgt_schema, plan.target_name(self.table), plan.target_name(fk.references),
                  [tp.target_column(c) for c in fk.columns], [ptp.target_column(c) for c in fk.ref_columns],
                  [tp.target_column(c) for c in tp.primary_key])
        s.declared, t.declared = _match(self.src_fks, s), _match(self.tgt_fks, t)
        return s, t


def _check_fk(ctx: _Ctx, fk) -> list:
    """Everything about one foreign key; returns its row of the report."""
    label = fk.name or f"{ctx.table}({','.join(fk.columns)})->{fk.references}({','.join(fk.ref_columns)})"
    s, t = ctx.sides(fk)
    with ThreadPoolExecutor(max_workers=2) as pool:  # two servers: run both sides at once
        target_scan = None if _just_validated(ctx, t) else pool.submit(_orphans, t, ctx.max_compare_keys)
        jobs = []
        if ctx.trial:
            jobs.append(pool.submit(_trial, t, ctx.lock_timeout_s))
            if s.declared is not None and ctx.trial_source:
                jobs.append(pool.submit(_trial, s, ctx.lock_timeout_s))
        if target_scan is not None:
            target_scan.result()
        if t.orphans or not _orphans_from_queue(ctx, fk, s):  # target orphans are judged against the source's
            _orphans(s, ctx.max_compare_keys)
        for f in jobs:
            f.result()
    _judge_orphans(label, s, t, ctx.findings, ctx.totals)
    expected = _expected_actions(fk, s.declared, label, ctx.findings)
    if t.declared is None:
        ctx.findings.append(finding("fk_missing", f"{label}: the target has no such foreign key constraint",
                                    column=",".join(t.columns)))
    else:
        _judge_declared(label, expected, t, ctx.findings)
    if ctx.trial:
        _judge_trials(label, expected, s, t, ctx.findings)
    return _report_row(label, expected, s, t)


# --- catalogs --------------------------------------------------------------------------------

def _declared_fks(engine: sa.Engine, schema: str | None, table: str) -> list[dict[str, Any]]:
    """Foreign keys of ``table`` with their actions, straight from the catalog."""
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            rows = conn.execute(sa.text(_PG_FKS), {"t": table, "s": schema or "public"}).mappings().all()
            return [{"name": r["name"], "columns": list(r["cols"]), "ref_table": r["ref_table"],
                     "ref_columns": list(r["ref_cols"]), "on_delete": _PG_ACTIONS[r["del"]],
                     "on_update": _PG_ACTIONS[r["upd"]], "validated": r["validated"]} for r in rows]
        if is_mysql(engine):
            rows = conn.execute(sa.text(_MY_FKS), {"t": table, "s": mysql_schema(conn, schema)}).mappings().all()
            out: dict[str, dict] = {}
            for r in rows:
                d = out.setdefault(r["name"], {"name": r["name"], "columns": [], "ref_table": r["ref_table"],
                                               "ref_columns": [], "on_delete": r["del"].lower(),
                                               "on_update": r["upd"].lower(), "validated": True})
                d["columns"].append(r["col"])
                d["ref_columns"].append(r["ref_col"])
            return list(out.values())
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({_sqlite_quote(table)})").mappings().all()
            out = {}
            for r in rows:
                d = out.setdefault(r["id"], {"name": None, "columns": [], "ref_table": r["table"], "ref_columns": [],
                                             "on_delete": r["on_delete"].lower(), "on_update": r["on_update"].lower(),
                                             "validated": True})
                d["columns"].append(r["from"])
                d["ref_columns"].append(r["to"])
            return list(out.values())
    fks = sa.inspect(engine).get_foreign_keys(table, schema=schema)
    return [{"name": f.get("name"), "columns": f["constrained_columns"], "ref_table": f["referred_table"],
             "ref_columns": f["referred_columns"], "on_delete": (f["options"].get("ondelete") or "no action").lower(),
             "on_update": (f["options"].get("onupdate") or "no action").lower(), "validated": True} for f in fks]


_PG_FKS = """
SELECT con.conname AS name, con.confdeltype AS del, con.confupdtype AS upd, con.convalidated AS validated,
       fc.relname AS ref_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS cols,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_cols
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class fc ON fc.oid = con.confrelid
WHERE con.contype = 'f' AND c.relname = :t AND n.nspname = :s
"""

_MY_FKS = """
SELECT rc.CONSTRAINT_NAME AS name, rc.DELETE_RULE AS del, rc.UPDATE_RULE AS upd,
       rc.REFERENCED_TABLE_NAME AS ref_table, k.COLUMN_NAME AS col, k.REFERENCED_COLUMN_NAME AS ref_col
FROM information_schema.REFERENTIAL_CONSTRAINTS rc
JOIN information_schema.KEY_COLUMN_USAGE k
  ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME
 AND k.TABLE_NAME = rc.TABLE_NAME
WHERE rc.CONSTRAINT_SCHEMA = :s AND rc.TABLE_NAME = :t AND k.TABLE_SCHEMA = :s AND k.TABLE_NAME = :t
ORDER BY rc.CONSTRAINT_NAME, k.ORDINAL_POSITION
"""


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _match(fks: list[dict], side: _Side) -> dict | None:
    """The catalog FK with the plan FK's columns and parent (names are not portable)."""
    for fk in fks:
        if fk["columns"] == side.columns and fk["ref_table"] == side.parent and fk["ref_columns"] == side.ref_columns:
            return fk
    return None


def _enforces(engine: sa.Engine, schema: str | None, table: str) -> bool:
    """Whether the database itself enforces this table's FKs, so a trial there means something."""
    if engine.dialect.name == "postgresql":
        return True
    if is_mysql(engine):
        with engine.connect() as conn:
            eng = conn.execute(sa.text("SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_NAME = :t "
                                       "AND TABLE_SCHEMA = :s"), {"t": table, "s": mysql_schema(conn, schema)}).scalar()
            checks = conn.execute(sa.text("SELECT @@foreign_key_checks")).scalar()
        return str(eng).lower() == "innodb" and bool(checks)
    return False


# --- orphans ---------------------------------------------------------------------------------

def _orphans(side: _Side, max_keys: int) -> None:
    """Count child rows without a parent (anti-join) and keep up to ``max_keys`` of their keys."""
    if is_mysql(side.engine) and _no_orphans_by_counting(side):
        side.orphans, side.orphan_keys = 0, []
        return
    key_cols = list(dict.fromkeys(side.label_key + side.columns))
    c = table_ref(side.child, key_cols, side.schema).alias("c")
    p = table_ref(side.parent, side.ref_columns, side.schema).alias("p")
    parent_exists = sa.exists().select_from(p).where(
        sa.and_(*[p.c[r] == c.c[f] for f, r in zip(side.columns, side.ref_columns)]))
    stmt = (sa.select(*[c.c[k] for k in side.label_key], sa.func.count().over().label("n_orphans"))
            .where(*[c.c[f].is_not(None) for f in side.columns], ~parent_exists)
            .order_by(*[c.c[k] for k in side.label_key]).limit(max_keys))
    with side.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    side.orphans = int(rows[0][-1]) if rows else 0
    side.orphan_keys = [tuple(plain(v) for v in r[:-1]) for r in rows]


def _just_validated(ctx: _Ctx, t: _Side) -> bool:
    """No target orphans by construction: the constraint was added, validated, in this step."""
    d = t.declared
    if d is None or not d.get("validated") or d.get("name") not in ctx.validated_by_target:
        return False
    t.orphans, t.orphan_keys, t.counted_by = 0, [], "constraint"
    return True


def _orphans_from_queue(ctx: _Ctx, fk, s: _Side) -> bool:
    """Source dirt read from the error queue, when the target has no orphan to judge against it.

    The source scan only serves to tell inherited target orphans from new ones; with none in
    the target, what a steward needs is which rows were held back, and the workers queued
    each of them as ``fk_orphan`` (source orphans, and children of parents that were queued
    themselves). Reading that is milliseconds; the scan is seconds to minutes on a large
    child (TPC-H lineitem in MariaDB: 6.5 s at SF1, 21 s at SF3). False when there is no
    error queue to read (a target kora did not load), and the source is scanned.
    """
    eng = ctx.tgt_engine
    queue = f"{KORA_SCHEMA}__error_queue" if eng.dialect.name == "sqlite" else f"{KORA_SCHEMA}.error_queue"
    sql = (f"SELECT primary_key, count(*) OVER () FROM {queue} WHERE table_name = :t AND error_class = 'fk_orphan' "
           f"AND column_name = :c ORDER BY id LIMIT {int(SAMPLE_KEYS)}")
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.text(sql), {"t": ctx.table, "c": ",".join(_target_columns(ctx, fk))}).all()
    except sa.exc.DBAPIError:
        return False
    pk = ctx.plan.tables[ctx.table].primary_key
    keys = [json.loads(r[0]) if isinstance(r[0], str) else (r[0] or {}) for r in rows]
    s.orphans = int(rows[0][1]) if rows else 0
    s.orphan_keys = [tuple(k.get(c) for c in pk) for k in keys]
    s.counted_by = "error queue"
    return True


def _target_columns(ctx: _Ctx, fk) -> list[str]:
    tp = ctx.plan.tables[ctx.table]
    return [tp.target_column(c) for c in fk.columns]


def _no_orphans_by_counting(side: _Side) -> bool:
    """MySQL fast path: child rows with a key == child rows that join their (unique) parent.

    MariaDB runs the anti-join as a subquery materialisation that spills to disk on large
    parents (20-35 s on TPC-H SF1 lineitem); joining parent-first walks both primary keys in
    order (~4 s, with the row count beside it on a second connection). The parent is forced onto
    its primary key: left alone, MariaDB scans a smaller covering index (``o_orderdate``) and
    probes the child's clustered key in random order, 155 s instead of 4 s on lineitem. Only valid when the
    parent key is unique, and only worth it when the child is the larger table; the anti-join
    still runs whenever the counts differ, for the keys.
    """
    insp = sa.inspect(side.engine)
    pk = insp.get_pk_constraint(side.parent, schema=side.schema).get("constrained_columns") or []
    uniques = [u["column_names"] for u in insp.get_unique_constraints(side.parent, schema=side.schema)]
    if not any(set(u) == set(side.ref_columns) for u in [pk, *uniques]):
        return False
    by_pk = set(pk) == set(side.ref_columns)
    with side.engine.connect() as conn:
        sizes = dict(conn.execute(sa.text(
            "SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = :s "
            "AND TABLE_NAME IN (:c, :p)"),
            {"s": mysql_schema(conn, side.schema), "c": side.child, "p": side.parent}).all())
        if (sizes.get(side.child) or 0) < (sizes.get(side.parent) or 0):
            return False
    c = table_ref(side.child, side.columns, side.schema).alias("c")
    p = table_ref(side.parent, side.ref_columns, side.schema).alias("p")
    keyed = sa.select(sa.func.count()).select_from(c).where(*[c.c[f].is_not(None) for f in side.columns])
    on = sa.and_(*[p.c[r] == c.c[f] for f, r in zip(side.columns, side.ref_columns)])
    joined = sa.select(sa.func.count()).select_from(p.join(c, on)).prefix_with("STRAIGHT_JOIN", dialect="mysql")
    if by_pk:  # walk the parent in key order: a covering secondary index would visit keys in random order
        joined = joined.with_hint(p, "FORCE INDEX (PRIMARY)", dialect_name="mysql")
    with ThreadPoolExecutor(max_workers=2) as pool:  # two independent scans: two connections
        n_keyed, n_joined = pool.map(lambda stmt: _scalar(side.engine, stmt), [keyed, joined])
    return n_keyed == n_joined


def _scalar(engine: sa.Engine, stmt):
    with engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def _judge_orphans(label: str, s: _Side, t: _Side, findings: list, totals: dict) -> None:
    src_keys = set(s.orphan_keys)
    complete = len(s.orphan_keys) == s.orphans and len(t.orphan_keys) == t.orphans
    if complete:
        new = [k for k in t.orphan_keys if k not in src_keys]
        inherited = t.orphans - len(new)
        n_new = len(new)
    else:  # too many to compare key by key: the counts bound what is new
        new = [k for k in t.orphan_keys if k not in src_keys]
        n_new = max(t.orphans - s.orphans, len(new) if len(t.orphan_keys) == t.orphans else 0)
        inherited = t.orphans - n_new
    totals["orphans_target"] += n_new
    totals["orphans_source"] += s.orphans
    totals["orphans_inherited"] += inherited
    fmt = lambda keys: [k[0] if len(k) == 1 else list(k) for k in keys[:SAMPLE_KEYS]]  # noqa: E731
    if n_new:
        findings.append(finding("orphans", f"{label}: {n_new} target row(s) reference a missing parent "
                                f"(key {', '.join(t.label_key)})", column=",".join(t.columns), count=n_new,
                                sample_keys=fmt(new)))
    if inherited:
        findings.append(finding("orphans_inherited", f"{label}: {inherited} target orphan(s) were already orphans in "
                                "the source (source dirt carried over)", column=",".join(t.columns), level="warn",
                                count=inherited, sample_keys=fmt([k for k in t.orphan_keys if k in src_keys])))
    if s.orphans and s.counted_by == "error queue":
        findings.append(finding("source_orphans", f"{label}: {s.orphans} source row(s) were queued because their "
                                "parent is not in the target (source orphans, or children of queued parents; "
                                "not a migration error)", column=",".join(s.columns), level="warn", count=s.orphans,
                                sample_keys=fmt(s.orphan_keys)))
    elif s.orphans:
        findings.append(finding("source_orphans", f"{label}: the source has {s.orphans} orphan row(s) (source dirt, "
                                "not a migration error)", column=",".join(s.columns), level="warn", count=s.orphans,
                                sample_keys=fmt(s.orphan_keys)))


# --- actions: declared -----------------------------------------------------------------------

def _expected_actions(fk, src_declared: dict | None, label: str, findings: list) -> dict[str, str]:
    out = {}
    for what in ("on_delete", "on_update"):
        planned = getattr(fk, what)
        explicit = what in fk.model_fields_set
        source = src_declared[what] if src_declared else None
        if explicit:
            out[what] = planned
            if source is not None and _behaviour(source) != _behaviour(planned):
                findings.append(finding("plan_changes_action", f"{label}: the plan sets {what.replace('_', ' ')} "
                                        f"{planned!r}, the source has {source!r}", level="warn"))
        else:
            out[what] = source or planned
    if src_declared is None:
        findings.append(finding("fk_not_in_source", f"{label}: the source catalog does not declare this foreign key; "
                                "expectations come from the plan", level="info"))
    return out


def _judge_declared(label: str, expected: dict, t: _Side, findings: list) -> None:
    for what in ("on_delete", "on_update"):
        got = t.declared[what]
        if _behaviour(got) != _behaviour(expected[what]):
            findings.append(finding("fk_action", f"{label}: target {what.replace('_', ' ').upper()} is {got!r}, "
                                    f"expected {expected[what]!r}", column=",".join(t.columns),
                                    expected=expected[what], actual=got))
    if not t.declared.get("validated", True):
        findings.append(finding("fk_not_validated", f"{label}: the target constraint is NOT VALID (existing rows "
                                "were never checked)", level="warn"))


# --- actions: observed -----------------------------------------------------------------------

def _trial(side: _Side, lock_timeout_s: int) -> None:
    """Delete (and re-key) one parent with children in a transaction that is always rolled back."""
    engine = side.engine
    with engine.connect() as conn:
        restore = _begin_trial(conn, lock_timeout_s)
        trans = conn.get_transaction() or conn.begin()
        try:
            key = _parent_with_children(conn, side)
            if key is None:
                side.trial = {"on_delete": "untested (no parent has children)",
                              "on_update": "untested (no parent has children)"}
                return
            side.trial["on_delete"] = _try(conn, side, key, "delete")
            if len(side.ref_columns) == 1 and isinstance(key[0], int):
                side.trial["on_update"] = _try(conn, side, key, "update")
            else:
                side.trial["on_update"] = "untested (needs a single integer key)"
        except sa.exc.DBAPIError as exc:
            side.trial = {"on_delete": f"error: {_first_line(exc)}", "on_update": f"error: {_first_line(exc)}"}
        finally:
            trans.rollback()
            if restore:
                conn.exec_driver_sql(restore)
                conn.commit()


def _begin_trial(conn, lock_timeout_s: int) -> str | None:
    """Bound lock waits, and make deferred constraints fire inside the trial (PostgreSQL)."""
    d = conn.engine.dialect.name
    if d == "postgresql":
        conn.begin()
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_timeout_s)}s'")
        conn.exec_driver_sql("SET CONSTRAINTS ALL IMMEDIATE")
        return None
    if d in ("mysql", "mariadb"):
        old = conn.exec_driver_sql("SELECT @@innodb_lock_wait_timeout").scalar()
        conn.exec_driver_sql(f"SET SESSION innodb_lock_wait_timeout = {int(lock_timeout_s)}")
        conn.commit()
        conn.begin()
        return f"SET SESSION innodb_lock_wait_timeout = {int(old)}"
    conn.begin()
    return None


def _parent_with_children(conn, side: _Side) -> tuple | None:
    c = table_ref(side.child, side.columns, side.schema).alias("c")
    p = table_ref(side.parent, side.ref_columns, side.schema).alias("p")
    has_child = sa.exists().select_from(c).where(
        sa.and_(*[c.c[f] == p.c[r] for f, r in zip(side.columns, side.ref_columns)]))
    row = conn.execute(sa.select(*[p.c[r] for r in side.ref_columns]).where(has_child).limit(1)).first()
    return tuple(row) if row else None


def _try(conn, side: _Side, key: tuple, how: str) -> str:
    """One trial inside a savepoint: what happened to the children of ``key``."""
    key_cols = list(dict.fromkeys(side.child_key + side.columns))
    c = table_ref(side.child, key_cols, side.schema)
    p = table_ref(side.parent, side.ref_columns, side.schema)
    is_key = sa.and_(*[p.c[r] == v for r, v in zip(side.ref_columns, key)])
    of_key = sa.and_(*[c.c[f] == v for f, v in zip(side.columns, key)])
    ident = side.child_key
    before = conn.execute(sa.select(*[c.c[k] for k in ident] or [sa.literal(1)]).where(of_key).limit(50)).all()
    sp = conn.begin_nested()
    try:
        if how == "delete":
            conn.execute(sa.delete(p).where(is_key))
            new_key = None
        else:
            new_key = conn.execute(sa.select(sa.func.max(p.c[side.ref_columns[0]]))).scalar() + 1
            conn.execute(sa.update(p).where(is_key).values({side.ref_columns[0]: new_key}))
    except sa.exc.DBAPIError as exc:
        sp.rollback()
        blocker = _blocking_constraint(exc)
        mine = (side.declared or {}).get("name")
        if blocker is None and "foreign key" not in str(exc.orig).lower():
            return f"error: {_first_line(exc)}"
        if blocker is not None and mine is not None and blocker != mine:
            return f"inconclusive (blocked by another constraint: {blocker})"
        return "blocked"
    try:
        return _observe(conn, side, c, of_key, ident, before, new_key)
    finally:
        sp.rollback()


def _observe(conn, side: _Side, c, of_key, ident: list[str], before: list, new_key) -> str:
    still = conn.execute(sa.select(sa.func.count()).select_from(c).where(of_key)).scalar_one()
    if still:
        return "not enforced"
    if not ident:  # no child key to follow the rows by: only "gone from the key" is known
        return "cascade" if new_key is None else "changed"
    ids = sa.tuple_(*[c.c[k] for k in ident]).in_([tuple(r) for r in before]) if len(ident) > 1 \
        else c.c[ident[0]].in_([r[0] for r in before])
    rows = conn.execute(sa.select(*[c.c[f] for f in side.columns]).where(ids)).all()
    if not rows:
        return "cascade"
    vals = [tuple(r) for r in rows]
    if all(all(v is None for v in r) for r in vals):
        return "set null"
    if new_key is not None and all(r == (new_key,) for r in vals):
        return "cascade"
    return "set default"


def _blocking_constraint(exc: sa.exc.DBAPIError) -> str | None:
    orig = exc.orig
    diag = getattr(orig, "diag", None)
    if diag is not None and getattr(diag, "constraint_name", None):
        return diag.constraint_name
    m = re.search(r"CONSTRAINT [`\"]([^`\"]+)[`\"]", str(orig))
    return m.group(1) if m else None


def _first_line(exc: Exception) -> str:
    return str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]


def _judge_trials(label: str, expected: dict, s: _Side, t: _Side, findings: list) -> None:
    for what in ("on_delete", "on_update"):
        got = t.trial.get(what, "")
        want = _behaviour(expected[what])
        if not _conclusive(got):
            if got.startswith(("inconclusive", "error")):
                findings.append(finding("trial_inconclusive", f"{label}: target {what.replace('_', ' ')} trial: {got}",
                                        level="warn"))
            continue
        if got != want:
            findings.append(finding("cascade_trial", f"{label}: deleting/re-keying a parent in the target gave "
                                    f"{got!r} for {what.replace('_', ' ')}, the source behaviour is {want!r}",
                                    column=",".join(t.columns), expected=want, actual=got))
        src = s.trial.get(what, "")
        if _conclusive(src) and s.declared and src != _behaviour(s.declared[what]):
            findings.append(finding("source_behaviour", f"{label}: the source declares {s.declared[what]!r} for "
                                    f"{what.replace('_', ' ')} but behaves as {src!r}", level="warn"))


def _conclusive(obs: str) -> bool:
    return obs in ("blocked", "cascade", "set null", "set default", "not enforced")


def _report_row(label: str, expected: dict, s: _Side, t: _Side) -> list:
    def acts(d):
        return f"{d['on_delete']} / {d['on_update']}" if d else "—"

    def trial(x):
        return f"{x.get('on_delete', '—')} / {x.get('on_update', '—')}" if x else "not run"

    dirt = f"{s.orphans} (queued)" if s.counted_by == "error queue" else s.orphans
    held = "0 (validated on creation)" if t.counted_by == "constraint" else t.orphans
    return [label, acts(expected), acts(s.declared), acts(t.declared), trial(s.trial), trial(t.trial),
            held, dirt]
