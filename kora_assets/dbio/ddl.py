"""Creating the target schema from the plan, idempotently and in an order that loads cleanly.

Tables first (columns, primary key, unique constraints), then indexes, then foreign keys in
load order. Foreign keys are DEFERRABLE so a partition that loads a self-referencing table
(an employee and their manager in one batch) commits cleanly; kora's own loader defers them
inside its partition transaction, every other writer sees them as immediate.
"""
from __future__ import annotations

import hashlib

from kora_assets.bookkeeping.tables import bookkeeping_ddl
from kora_assets.dbio.connections import Database
from kora_assets.plan.loader import load_order
from kora_assets.plan.model import Plan, TablePlan


def _ident_name(prefix: str, *parts: str) -> str:
    """Constraint names that fit PostgreSQL's 63 bytes and never collide."""
    base = "_".join([prefix, *parts])
    if len(base) <= 60:
        return base
    return base[:48] + "_" + hashlib.sha1(base.encode()).hexdigest()[:10]


def _literal(v) -> str:
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def create_table_sql(db: Database, plan: Plan, name: str) -> str:
    t = plan.tables[name]
    q, tgt = db.quote, plan.target_name(name)
    cols = []
    for src, cp in t.columns.items():
        col = f"{q(t.target_column(src))} {cp.ktype.ddl(db.dialect)}"
        if not cp.nullable:
            col += " NOT NULL"
        if cp.default is not None:
            col += f" DEFAULT {_literal(cp.default)}"
        cols.append(col)
    if t.primary_key:
        cols.append(f"CONSTRAINT {q(_ident_name('pk', tgt))} PRIMARY KEY ({_cols(db, t, t.primary_key)})")
    for u in t.unique:
        cols.append(f"CONSTRAINT {q(_ident_name('uq', tgt, *u))} UNIQUE ({_cols(db, t, u)})")
    if db.dialect == "sqlite":
        cols += [_fk_clause(db, plan, t, fk) for fk in t.foreign_keys]
    return f"CREATE TABLE IF NOT EXISTS {db.qualified(tgt, plan.target.schema_)} (\n  " + ",\n  ".join(cols) + "\n)"


def _cols(db: Database, t: TablePlan, cols: list[str]) -> str:
    return ", ".join(db.quote(t.target_column(c)) for c in cols)


def _fk_clause(db: Database, plan: Plan, t: TablePlan, fk) -> str:
    parent = plan.tables[fk.references]
    ref = db.qualified(plan.target_name(fk.references), plan.target.schema_ if db.dialect != "sqlite" else None)
    return (f"FOREIGN KEY ({_cols(db, t, fk.columns)}) REFERENCES {ref} ({_cols(db, parent, fk.ref_columns)})"
            f" ON DELETE {fk.on_delete.upper()} ON UPDATE {fk.on_update.upper()}")


def index_sql(db: Database, plan: Plan, name: str) -> list[str]:
    t, tgt = plan.tables[name], plan.target_name(name)
    out = []
    for ix in t.indexes:
        ix_name = ix.name or _ident_name("ix", tgt, *[t.target_column(c) for c in ix.columns])
        uq = "UNIQUE " if ix.unique else ""
        out.append(f"CREATE {uq}INDEX IF NOT EXISTS {db.quote(ix_name)} ON "
                   f"{db.qualified(tgt, plan.target.schema_)} ({_cols(db, t, ix.columns)})")
    return out


def fk_sql(db: Database, plan: Plan, name: str) -> list[tuple[str, str]]:
    """(constraint name, ALTER TABLE statement) for each foreign key (PostgreSQL)."""
    t, tgt = plan.tables[name], plan.target_name(name)
    out = []
    for fk in t.foreign_keys:
        cname = fk.name or _ident_name("fk", tgt, *[t.target_column(c) for c in fk.columns])
        out.append((cname, f"ALTER TABLE {db.qualified(tgt, plan.target.schema_)} ADD CONSTRAINT "
                           f"{db.quote(cname)} {_fk_clause(db, plan, t, fk)} DEFERRABLE INITIALLY IMMEDIATE"))
    return out


def ensure_target_schema(db: Database, plan: Plan) -> None:
    """Create whatever of the plan's target schema and kora's bookkeeping is missing."""
    order = load_order(plan)
    with db.engine.begin() as c:
        if db.dialect == "postgresql":
            c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.ddl'))")
            if plan.target.schema_:
                c.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {db.quote(plan.target.schema_)}")
        for stmt in bookkeeping_ddl(db):
            c.exec_driver_sql(stmt)
        for name in order:
            c.exec_driver_sql(create_table_sql(db, plan, name))
            for stmt in index_sql(db, plan, name):
                c.exec_driver_sql(stmt)
        if db.dialect == "postgresql":
            existing = {r[0] for r in c.exec_driver_sql("SELECT conname FROM pg_constraint WHERE contype = 'f'")}
            for name in order:
                for cname, stmt in fk_sql(db, plan, name):
                    if cname not in existing:
                        c.exec_driver_sql(stmt)
