"""Creating the target schema from the plan, idempotently and in an order that loads cleanly.

On PostgreSQL a table is created bare (columns, types, NOT NULL, defaults) and loaded; once
every one of its partitions has landed, ``finalize_table`` adds its primary key, unique
constraints, indexes and foreign keys, as pgloader and every fast loader do: building an
index once is far cheaper than maintaining it row by row, and an FK validated by one join is
far cheaper than a trigger per row. Rows are still checked inline while loading (duplicate
keys, orphans), so nothing the constraints would reject ever lands. Foreign keys are
DEFERRABLE, so later incremental loads (schedules, re-runs) of a self-referencing table commit
cleanly inside kora's partition transaction. SQLite gets its constraints at CREATE TABLE.
"""
from __future__ import annotations

import hashlib

from kora_assets.bookkeeping.tables import bookkeeping_ddl, bookkeeping_relations
from kora_assets.dbio.connections import Database, use_wal
from kora_assets.plan.loader import load_order
from kora_assets.plan.model import Plan, TablePlan


def _ident_name(prefix: str, *parts: str) -> str:
    """Constraint names that fit PostgreSQL's 63 bytes and never collide."""
    base = "_".join([prefix, *parts])
    if len(base) <= 60:
        return base
    return base[:48] + "_" + hashlib.sha1(base.encode()).hexdigest()[:10]


def sql_literal(v) -> str:
    """A Python value as an SQL literal (defaults, key lists)."""
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
            col += f" DEFAULT {sql_literal(cp.default)}"
        cols.append(col)
    if db.dialect == "sqlite":
        cols += [f"CONSTRAINT {q(n)} {c}" for n, c in _key_constraints(db, plan, name)]
        cols += [_fk_clause(db, plan, t, fk) for fk in t.foreign_keys]
    return f"CREATE TABLE IF NOT EXISTS {db.qualified(tgt, plan.target.schema_)} (\n  " + ",\n  ".join(cols) + "\n)"


def _cols(db: Database, t: TablePlan, cols: list[str]) -> str:
    return ", ".join(db.quote(t.target_column(c)) for c in cols)


def _fk_clause(db: Database, plan: Plan, t: TablePlan, fk) -> str:
    parent = plan.tables[fk.references]
    ref = db.qualified(plan.target_name(fk.references), plan.target.schema_ if db.dialect != "sqlite" else None)
    return (f"FOREIGN KEY ({_cols(db, t, fk.columns)}) REFERENCES {ref} ({_cols(db, parent, fk.ref_columns)})"
            f" ON DELETE {fk.on_delete.upper()} ON UPDATE {fk.on_update.upper()}")


def _index_name(t: TablePlan, tgt: str, ix) -> str:
    return ix.name or _ident_name("ix", tgt, *[t.target_column(c) for c in ix.columns])


def index_sql(db: Database, plan: Plan, name: str) -> list[str]:
    t, tgt = plan.tables[name], plan.target_name(name)
    out = []
    for ix in t.indexes:
        ix_name = _index_name(t, tgt, ix)
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


def _key_constraints(db: Database, plan: Plan, name: str) -> list[tuple[str, str]]:
    t, tgt = plan.tables[name], plan.target_name(name)
    out = [(_ident_name("pk", tgt), f"PRIMARY KEY ({_cols(db, t, t.primary_key)})")] if t.primary_key else []
    out += [(_ident_name("uq", tgt, *u), f"UNIQUE ({_cols(db, t, u)})") for u in t.unique]
    return out


def ensure_target_schema(db: Database, plan: Plan) -> None:
    """Create whatever of the plan's tables and kora's bookkeeping is missing.

    Every table run asks, while the workers load other tables, so what exists is looked up
    first, without a lock: ``CREATE INDEX IF NOT EXISTS`` takes its SHARE lock on the table
    before it finds the index there, and on the error queue that lock waited for every open
    partition transaction (each deletes its old queue rows), while the workers' next ones
    waited behind it (TPC-H SF1: 0.4-3.5 s per table run, workers stalled meanwhile).
    """
    if _all_present(db, plan):
        return
    if db.dialect == "sqlite":  # before any worker opens it (see ``use_wal``)
        with db.engine.connect() as c:
            use_wal(c.connection.driver_connection)
    with db.engine.begin() as c:
        if db.dialect == "postgresql":
            c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.ddl'))")
            if plan.target.schema_:
                c.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {db.quote(plan.target.schema_)}")
        for stmt in bookkeeping_ddl(db):
            c.exec_driver_sql(stmt)
        for name in load_order(plan):
            c.exec_driver_sql(create_table_sql(db, plan, name))
            if db.dialect == "sqlite":
                for stmt in index_sql(db, plan, name):
                    c.exec_driver_sql(stmt)


def _all_present(db: Database, plan: Plan) -> bool:
    """Do the plan's tables and kora's bookkeeping tables and indexes all exist already?"""
    schema = plan.target.schema_
    tables = [db.qualified(plan.target_name(t), schema) for t in plan.tables]
    with db.engine.connect() as c:
        if db.dialect == "postgresql":
            return bool(c.exec_driver_sql("SELECT bool_and(to_regclass(x) IS NOT NULL) FROM unnest(%s::text[]) x",
                                          (bookkeeping_relations(db) + tables,)).scalar())
        if db.dialect == "sqlite":  # the plan's indexes too: SQLite gets them with its tables
            have = {r[0] for r in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
            indexes = [_index_name(tp, plan.target_name(t), ix) for t, tp in plan.tables.items() for ix in tp.indexes]
            return {*bookkeeping_relations(db), *(plan.target_name(t) for t in plan.tables), *indexes} <= have
    return False


def _constraint_names(c, db: Database, plan: Plan) -> set[str]:
    schema = plan.target.schema_ or "public"
    rows = c.exec_driver_sql("SELECT conname FROM pg_constraint k JOIN pg_namespace n ON n.oid = k.connamespace "
                             "WHERE n.nspname = %s", (schema,))
    return {r[0] for r in rows}


def has_key_constraints(db: Database, plan: Plan, name: str) -> bool:
    """Has ``finalize_table`` given this table its primary key (SQLite: always)?"""
    if db.dialect != "postgresql" or not plan.tables[name].primary_key:
        return True
    with db.engine.connect() as c:
        return _ident_name("pk", plan.target_name(name)) in _constraint_names(c, db, plan)


def finalize_table(db: Database, plan: Plan, name: str) -> list[str]:
    """Add the table's keys and indexes, and every FK whose both ends are finalized.

    Idempotent; returns the names of what it added (for the run's log and metadata).
    """
    return finalize_keys(db, plan, name) + finalize_indexes_and_fks(db, plan, name)


def finalize_keys(db: Database, plan: Plan, name: str) -> list[str]:
    """The primary key and unique constraints, then fresh statistics; committed on return.

    A separate transaction from the rest because ``ADD CONSTRAINT`` locks the table against
    readers until commit; the indexes and FKs that follow do not, so the checks can read the
    rows while they build (on TPC-H lineitem ~12 s of index and FK builds).
    """
    if db.dialect != "postgresql":
        return []
    added = []
    table = db.qualified(plan.target_name(name), plan.target.schema_)
    with db.engine.begin() as c:
        c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.ddl'))")
        existing = _constraint_names(c, db, plan)
        for cname, clause in _key_constraints(db, plan, name):
            if cname not in existing:
                c.exec_driver_sql(f"ALTER TABLE {table} ADD CONSTRAINT {db.quote(cname)} {clause}")
                existing.add(cname)
                added.append(cname)
        if added:  # fresh statistics: a bulk-loaded table has none, and the planner then guesses
            c.exec_driver_sql(f"ANALYZE {table}")  # badly (FK validation, checks, the users' first queries)
    return added


def finalize_indexes_and_fks(db: Database, plan: Plan, name: str) -> list[str]:
    """Every FK whose both ends have their keys (``finalize_keys``), then the secondary indexes.

    ``ADD FOREIGN KEY`` and ``CREATE INDEX`` let readers of the table in while they run. The
    FKs go first: validating one is a single-threaded join, which leaves room for the checks
    that run meanwhile, while an index build takes every core it may (parallel workers)."""
    if db.dialect != "postgresql":
        return []
    added = []
    with db.engine.begin() as c:
        c.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext('kora.ddl'))")
        existing = _constraint_names(c, db, plan)
        finalized = {t for t in plan.tables if not plan.tables[t].primary_key
                     or _ident_name("pk", plan.target_name(t)) in existing}
        for child in plan.tables:
            if child not in finalized:
                continue
            for fk, (cname, stmt) in zip(plan.tables[child].foreign_keys, fk_sql(db, plan, child)):
                ends = {child, fk.references}
                if name in ends and ends <= finalized and cname not in existing:
                    c.exec_driver_sql(stmt)
                    existing.add(cname)
                    added.append(cname)
        for stmt in index_sql(db, plan, name):
            c.exec_driver_sql(stmt)
    return added
