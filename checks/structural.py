"""Structural check: is the target table built the way the plan says the source maps onto it?

Deterministic and exact: it reads both catalogs (SQLAlchemy reflection) and compares them
through the plan, never the data. What it compares, and what "expected" means for each:

* **columns**: every plan column exists in the source and, under its target name, in the
  target. Target columns the plan does not know are a warning (kora never writes them).
* **types**: the target column's type equals the plan's ``type`` as the target dialect spells
  it (``varchar(40)`` is not ``varchar(60)``: a widened column is a defect too, it hides
  truncation upstream). Dialect aliases are folded (MariaDB ``JSON`` is ``LONGTEXT``,
  ``tinyint(1)`` is ``boolean``, SQLite compares type affinity only).
* **nullability**: the plan's ``nullable`` when the plan sets it explicitly (a mismatch fails);
  when the plan is silent the source's nullability is expected and a mismatch only warns,
  because the plan's default (nullable) may be what its author meant.
* **primary key**: the plan's ``primary_key``, else the source's, mapped to target names.
* **unique constraints**: ``plan.unique`` and unique plan indexes, plus the source's unique
  constraints/indexes unless the plan lists its own ``unique`` (then the plan is the whole
  truth and unlisted source uniques count as dropped by the plan). Uniqueness is a property
  of a column *set*: any target unique constraint, unique index or the PK on that set counts.
* **check constraints**: every source CHECK (on columns the plan keeps) has a target CHECK
  with the same canonical expression: both texts are parsed with sqlglot, implicit casts and
  parentheses removed, ``x = ANY(ARRAY[..])`` folded to ``x IN (..)``, BETWEEN expanded and
  columns renamed. Textual equivalence across dialects is not semantic equivalence, so a
  source check whose only counterpart differs textually on the same columns is a warning
  ("verify"), and a source check with no target check on its columns fails.
* **defaults**: the plan's ``default`` or ``identity`` if set (a mismatch fails), else the
  source's (a mismatch warns, as for nullability), compared after normalising quoting, casts,
  booleans, numbers and ``now()``/``CURRENT_TIMESTAMP`` spellings. Sequence/identity/
  auto-increment defaults are compared as "generated" only.
* **indexes**: every non-unique source index (on columns the plan keeps) has a target index
  whose leading columns are the mapped columns in the same order (the PK and unique
  constraints count). If the plan lists ``indexes``, that list replaces the source's; source
  indexes not in it are reported as dropped by the plan (info). MySQL's implicit index for a
  foreign key is not required.

Foreign keys and their ON DELETE/ON UPDATE actions are deliberately *not* compared here: the
referential check owns them (it also proves them with a trial delete), so a lost cascade
rule is reported once, by the check that can show its consequence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as st

from checks.outcome import (CheckOutcome, finding, findings_markdown, is_mysql, outcome_from,
                            source_schema, target_schema, to_markdown_table)
from kora_assets.dbio.connections import reflect_columns
from kora_assets.plan.defaults import clock_keyword, is_generated, unwrap
from kora_assets.plan.types import KoraType

GENERATED = "<generated>"


@dataclass
class _Shape:
    """The parts of one table's catalog entry that the comparison needs, dialect-neutral."""

    columns: dict[str, dict[str, Any]]
    pk: list[str]
    uniques: list[tuple[str, ...]]
    indexes: list[dict[str, Any]]
    checks: list[dict[str, Any]]
    fk_names: set[str] = field(default_factory=set)


def check_structure(plan, table: str, source_engine: sa.Engine, target_engine: sa.Engine) -> CheckOutcome:
    """Compare the source and target catalogs of one plan table; see the module docstring."""
    tp = plan.tables[table]
    tgt_name = plan.target_name(table)
    src = _shape(source_engine, source_schema(plan, source_engine), table)
    tgt = _shape(target_engine, target_schema(plan, target_engine), tgt_name)
    if src is None or tgt is None:
        side = "source" if src is None else "target"
        f = [finding("table_missing", f"{side} table {table if src is None else tgt_name!r} not found")]
        return outcome_from(f, what=f"structure of {tgt_name}")
    rename = {c: tp.target_column(c) for c in tp.columns}
    ctx = _Ctx(plan, tp, rename, src, tgt, source_engine, target_engine)
    findings: list[dict] = []
    col_rows = _compare_columns(ctx, findings)
    _compare_pk(ctx, findings)
    n_uq = _compare_uniques(ctx, findings)
    n_ix = _compare_indexes(ctx, findings)
    n_ck = _compare_checks(ctx, findings)
    report = "\n\n".join([
        f"### Structure of `{tgt_name}` (source `{table}`)",
        to_markdown_table(col_rows, ["column", "plan type", "target type", "nullable (expected)",
                                     "nullable (target)", "default (expected)", "default (target)", "verdict"]),
        "#### Findings", findings_markdown(findings)])
    meta = {"columns_expected": len(tp.columns), "columns_in_target": len(tgt.columns),
            "uniques_expected": n_uq, "indexes_expected": n_ix, "checks_expected": n_ck,
            "report": report}
    return outcome_from(findings, what=f"structure of {tgt_name}", metadata=meta)


@dataclass
class _Ctx:
    plan: Any
    tp: Any
    rename: dict[str, str]
    src: _Shape
    tgt: _Shape
    src_engine: sa.Engine
    tgt_engine: sa.Engine

    def mapped(self, cols) -> tuple[str, ...] | None:
        """Source columns as target names, or None if the plan drops one of them."""
        if any(c not in self.rename for c in cols):
            return None
        return tuple(self.rename[c] for c in cols)


# --- reflection ----------------------------------------------------------------------------

def _shape(engine: sa.Engine, schema: str | None, table: str) -> _Shape | None:
    insp = sa.inspect(engine)
    if not insp.has_table(table, schema=schema):
        return None
    dialect = engine.dialect
    cols = {}
    for c in reflect_columns(insp, table, schema):
        cols[c["name"]] = {
            "type": _reflected_type(c["type"], dialect.name),
            "nullable": bool(c["nullable"]),
            "default": GENERATED if is_generated(c, dialect.name) else _norm_default(c.get("default")),
        }
    pk = list(insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or [])
    uniques = [tuple(u["column_names"]) for u in insp.get_unique_constraints(table, schema=schema)]
    indexes = []
    for ix in insp.get_indexes(table, schema=schema):
        names = ix.get("column_names") or []
        expr = bool(ix.get("expressions")) or any(n is None for n in names)
        indexes.append({"name": ix.get("name"), "columns": tuple(n for n in names if n),
                        "unique": bool(ix.get("unique")), "expression": expr})
        if ix.get("unique") and not expr:
            uniques.append(tuple(names))
    try:
        checks = [{"name": ck.get("name"), "sqltext": str(ck["sqltext"])}
                  for ck in insp.get_check_constraints(table, schema=schema)]
    except NotImplementedError:  # a dialect without check reflection: nothing to compare
        checks = []
    fk_names = {fk.get("name") for fk in insp.get_foreign_keys(table, schema=schema) if fk.get("name")}
    return _Shape(cols, pk, list(dict.fromkeys(uniques)), indexes, checks, fk_names)


def _reflected_type(t: st.TypeEngine, dialect: str) -> str:
    """A reflected column type in kora's vocabulary (``varchar(40)``, ``numeric(12,2)``, ...)."""
    name = type(t).__name__.upper()
    if dialect == "sqlite":
        return _sqlite_affinity(name)
    if isinstance(t, st.Boolean) or (name == "TINYINT" and getattr(t, "display_width", None) == 1):
        return "boolean"
    if isinstance(t, st.Integer):
        if isinstance(t, st.BigInteger):
            return "bigint"
        if isinstance(t, st.SmallInteger) or name in ("TINYINT", "SMALLINT"):
            return "smallint"
        return "integer"
    if isinstance(t, st.Float):
        precision = getattr(t, "precision", None)
        if isinstance(t, st.Double) or name in ("DOUBLE", "DOUBLE_PRECISION") or (precision or 0) > 24:
            return "double"
        return "real"
    if isinstance(t, st.Numeric):
        return str(KoraType("numeric", precision=t.precision, scale=t.scale if t.precision else None))
    if isinstance(t, st.Enum):
        return "enum"
    if isinstance(t, st.JSON):
        return "json"
    if isinstance(t, st.Uuid) or name == "UUID":
        return "uuid"
    if isinstance(t, (st.LargeBinary, st._Binary)):
        return "bytes"
    if isinstance(t, st.DateTime):
        return "timestamptz" if getattr(t, "timezone", False) else "timestamp"
    if isinstance(t, st.Date):
        return "date"
    if isinstance(t, st.Time):
        return "time"
    if isinstance(t, st.String):
        if isinstance(t, st.Text) or not t.length:
            return "text"
        return f"char({t.length})" if isinstance(t, st.CHAR) or name in ("CHAR", "NCHAR") else f"varchar({t.length})"
    return name.lower()


def _sqlite_affinity(declared: str) -> str:
    """SQLite's type affinity rules (section 3.1 of its datatype doc), as the DDL names kora uses."""
    d = declared.upper()
    if "INT" in d or d == "BOOLEAN":
        return "INTEGER"
    if any(s in d for s in ("CHAR", "CLOB", "TEXT", "STRING")):
        return "TEXT"
    if "BLOB" in d or "BINARY" in d or d == "NULLTYPE":
        return "BLOB"
    if any(s in d for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


#: SQLite stores any value in any column; what a declared type fixes is only its affinity, and
#: dates are legitimately declared DATE/DATETIME (NUMERIC affinity) or TEXT.
_SQLITE_OK = {"INTEGER": ("INTEGER", "NUMERIC"), "NUMERIC": ("NUMERIC", "REAL"), "REAL": ("REAL",),
              "TEXT": ("TEXT",), "BLOB": ("BLOB",), "TEMPORAL": ("TEXT", "NUMERIC", "REAL", "INTEGER")}


def _expected_type(kt: KoraType, dialect: str) -> str:
    """The plan's type as the target's catalog will show it."""
    if dialect == "sqlite":
        return "TEMPORAL" if kt.is_temporal else kt.ddl("sqlite")
    if dialect in ("mysql", "mariadb"):
        # kora's MySQL DDL: timestamps are DATETIME(6), uuid is CHAR(36), json may be LONGTEXT.
        # and REAL is a synonym of DOUBLE unless the server runs with REAL_AS_FLOAT.
        return {"timestamptz": "timestamp", "uuid": "char(36)", "real": "double"}.get(kt.name, str(kt))
    return str(kt)


def _types_match(expected: str, actual: str, dialect: str) -> bool:
    if expected == actual:
        return True
    if dialect == "sqlite":
        return actual in _SQLITE_OK.get(expected, ())
    # MariaDB implements JSON as LONGTEXT (+ a json_valid check); MySQL 8 reflects JSON.
    return dialect in ("mysql", "mariadb") and expected == "json" and actual == "text"


def _norm_default(v: Any) -> str | None:
    """A column default in one spelling whatever the dialect: ``'0.00'``, ``0::numeric``,
    ``false`` and ``0`` compare as the same thing; ``NULL`` means no default."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "1" if v else "0"
    s = unwrap(str(v))
    low = s.lower()
    if low == "null":
        return None
    if low.startswith("nextval("):
        return GENERATED
    if clock := clock_keyword(s):
        return clock.lower()
    if len(s) >= 2 and s[0] == s[-1] == "'":
        s = s[1:-1].replace("''", "'")
        low = s.lower()
    if low in ("true", "false"):
        return "1" if low == "true" else "0"
    try:
        return format(Decimal(s).normalize(), "f")
    except (InvalidOperation, ValueError):
        return s


# --- comparisons ---------------------------------------------------------------------------

def _compare_columns(ctx: _Ctx, findings: list[dict]) -> list[list]:
    """Presence, type, nullability and default of every plan column; returns the report rows."""
    rows = []
    dialect = ctx.tgt_engine.dialect.name
    plan_targets = set(ctx.rename.values())
    for src_col, cp in ctx.tp.columns.items():
        tcol = ctx.rename[src_col]
        s = ctx.src.columns.get(src_col)
        t = ctx.tgt.columns.get(tcol)
        if s is None:
            findings.append(finding("source_column_missing", f"plan column {src_col!r} is not in the source table",
                                    column=tcol))
        if t is None:
            findings.append(finding("column_missing", f"column {tcol!r} is missing from the target", column=tcol))
            rows.append([tcol, cp.type, "—", "", "", "", "", "missing"])
            continue
        bad = []
        exp_type = _expected_type(cp.ktype, dialect)
        if not _types_match(exp_type, t["type"], dialect):
            bad.append("type")
            findings.append(finding("type", f"target type {t['type']} differs from the plan's {exp_type}",
                                    column=tcol, expected=exp_type, actual=t["type"]))
        exp_null, explicit = _expected_nullable(cp, s)
        if exp_null != t["nullable"]:
            bad.append("nullable")
            why = "the plan says" if explicit else "the source says (the plan does not set nullable)"
            findings.append(finding(
                "nullable", f"target is {'NULL' if t['nullable'] else 'NOT NULL'}able but {why} "
                f"{'NULL' if exp_null else 'NOT NULL'}", column=tcol, level="fail" if explicit else "warn",
                expected=exp_null, actual=t["nullable"]))
        exp_def, explicit = _expected_default(cp, s, dialect)
        if not _defaults_match(exp_def, t["default"]):
            bad.append("default")
            why = "the plan's" if explicit else "the source's (the plan sets no default)"
            findings.append(finding("default", f"target default {t['default']!r} differs from {why} {exp_def!r}",
                                    column=tcol, level="fail" if explicit else "warn",
                                    expected=exp_def, actual=t["default"]))
        rows.append([tcol, cp.type, t["type"], exp_null, t["nullable"], exp_def, t["default"],
                     "ok" if not bad else ", ".join(bad)])
    for extra in sorted(set(ctx.tgt.columns) - plan_targets):
        findings.append(finding("column_extra", f"target column {extra!r} is not in the plan", column=extra,
                                level="warn"))
    return rows


def _expected_nullable(cp, src_col: dict | None) -> tuple[bool, bool]:
    """(expected nullability, whether the plan said so explicitly)."""
    if "nullable" in cp.model_fields_set or src_col is None:
        return cp.nullable, "nullable" in cp.model_fields_set
    return src_col["nullable"], False


def _expected_default(cp, src_col: dict | None, dialect: str) -> tuple[str | None, bool]:
    """(expected default, whether the plan says so): the plan's ``identity`` or ``default``,
    else the source's. A SQLite target has no identity columns (its integer key is the rowid)."""
    if cp.identity:
        return (GENERATED if dialect == "postgresql" else None), True
    if cp.default is not None:
        return _norm_default(cp.default), True
    return (src_col["default"] if src_col else None), False


def _defaults_match(expected: str | None, actual: str | None) -> bool:
    if expected == GENERATED or actual == GENERATED:
        # An identity/serial target for an auto-increment source is the faithful translation;
        # a plain column for one is a (warned) difference only if the source generated it.
        return expected == actual or expected is None
    return expected == actual


def _compare_pk(ctx: _Ctx, findings: list[dict]) -> None:
    expected = ctx.mapped(ctx.tp.primary_key) if ctx.tp.primary_key else ctx.mapped(ctx.src.pk)
    if not expected:
        if ctx.tgt.pk:
            findings.append(finding("primary_key", f"target has primary key {list(ctx.tgt.pk)} but none is expected",
                                    level="warn", actual=ctx.tgt.pk))
        return
    if set(expected) != set(ctx.tgt.pk):
        findings.append(finding("primary_key", f"target primary key {list(ctx.tgt.pk)} differs from {list(expected)}",
                                expected=list(expected), actual=ctx.tgt.pk))
    elif list(expected) != list(ctx.tgt.pk):
        findings.append(finding("primary_key", f"target primary key column order {list(ctx.tgt.pk)} differs from "
                                f"{list(expected)} (same uniqueness, different index order)", level="warn"))


def _compare_uniques(ctx: _Ctx, findings: list[dict]) -> int:
    tp = ctx.tp
    wanted: dict[frozenset, str] = {}
    for u in tp.unique:
        wanted[frozenset(ctx.rename[c] for c in u)] = "plan"
    for ix in tp.indexes:
        if ix.unique:
            wanted[frozenset(ctx.rename[c] for c in ix.columns)] = "plan"
    pk_set = frozenset(ctx.mapped(ctx.src.pk) or ())
    for u in ctx.src.uniques:
        m = ctx.mapped(u)
        if m is None:
            findings.append(finding("unique_dropped", f"source unique {list(u)} is on a column the plan drops",
                                    level="info"))
        elif frozenset(m) == pk_set or frozenset(m) in wanted:
            continue
        elif tp.unique:
            findings.append(finding("unique_dropped", f"source unique {list(u)} is not in the plan's unique list",
                                    level="info"))
        else:
            wanted[frozenset(m)] = "source"
    have = {frozenset(u) for u in ctx.tgt.uniques} | {frozenset(ctx.tgt.pk)}
    for cols, origin in wanted.items():
        if cols not in have:
            findings.append(finding("unique_missing", f"no unique constraint or index on {sorted(cols)} in the target "
                                    f"(expected from the {origin})", column=",".join(sorted(cols)),
                                    expected=sorted(cols)))
    expected_all = set(wanted) | ({pk_set} if pk_set else set())
    for extra in have - expected_all - {frozenset()}:
        findings.append(finding("unique_extra", f"target enforces uniqueness on {sorted(extra)}, which the plan does "
                                "not ask for (rows the source accepts may be rejected)", level="warn"))
    return len(wanted)


def _compare_indexes(ctx: _Ctx, findings: list[dict]) -> int:
    tp = ctx.tp
    wanted: dict[tuple[str, ...], str] = {}
    for ix in tp.indexes:
        if not ix.unique:
            wanted[tuple(ctx.rename[c] for c in ix.columns)] = ix.name or "plan"
    for ix in ctx.src.indexes:
        if ix["unique"]:
            continue  # uniqueness is compared as a constraint, order-free
        label = ix["name"] or ",".join(ix["columns"])
        m = ctx.mapped(ix["columns"])
        if ix["expression"]:
            findings.append(finding("index_unverified", f"source index {label} has expressions; not compared",
                                    level="warn"))
        elif m is None:
            findings.append(finding("index_dropped", f"source index {label} is on a column the plan drops",
                                    level="info"))
        elif is_mysql(ctx.src_engine) and ix["name"] in ctx.src.fk_names:
            findings.append(finding("index_implicit", f"source index {label} is MySQL's implicit foreign-key index; "
                                    "not required", level="info"))
        elif tp.indexes and m not in wanted:
            findings.append(finding("index_dropped", f"source index {label} is not in the plan's index list",
                                    level="info"))
        else:
            wanted.setdefault(m, label)
    have = [ix["columns"] for ix in ctx.tgt.indexes if not ix["expression"]]
    have += [tuple(ctx.tgt.pk)] + list(ctx.tgt.uniques)
    for cols, label in wanted.items():
        if not any(tuple(h[:len(cols)]) == cols for h in have):
            findings.append(finding("index_missing", f"no target index leads with {list(cols)} (source/plan index "
                                    f"{label})", column=",".join(cols), expected=list(cols)))
    return len(wanted)


def _compare_checks(ctx: _Ctx, findings: list[dict]) -> int:
    src_dialect = _sqlglot_dialect(ctx.src_engine)
    tgt_dialect = _sqlglot_dialect(ctx.tgt_engine)
    target = []
    for ck in ctx.tgt.checks:
        canon = _canonical_check(ck["sqltext"], tgt_dialect, {})
        if canon and not _is_json_valid(canon[0]):
            target.append(canon)
    unmatched = list(target)
    expected = 0
    for ck in ctx.src.checks:
        canon = _canonical_check(ck["sqltext"], src_dialect, ctx.rename)
        if canon is None or _is_json_valid(canon[0]):
            continue
        text, cols = canon
        if cols - set(ctx.rename.values()):
            findings.append(finding("check_dropped", f"source check {ck['name']} uses a column the plan drops",
                                    level="info"))
            continue
        expected += 1
        same = [t for t in unmatched if t[0] == text]
        if same:
            unmatched.remove(same[0])
            continue
        near = [t for t in unmatched if t[1] == cols]
        if near:
            unmatched.remove(near[0])
            findings.append(finding("check_differs", f"source check {ck['name']} ({text}) has a target counterpart "
                                    f"that reads differently ({near[0][0]}); verify they are equivalent",
                                    level="warn", column=",".join(sorted(cols))))
        else:
            findings.append(finding("check_missing", f"source check {ck['name']} ({text}) has no target counterpart",
                                    column=",".join(sorted(cols)), expected=text))
    for text, cols in unmatched:
        findings.append(finding("check_extra", f"target check ({text}) has no source counterpart", level="warn",
                                column=",".join(sorted(cols))))
    return expected


def _sqlglot_dialect(engine: sa.Engine) -> str:
    return {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "sqlite": "sqlite"}.get(
        engine.dialect.name, engine.dialect.name)


def _is_json_valid(text: str) -> bool:
    return text.startswith("json_valid(")


def _canonical_check(sql: str, dialect: str, rename: dict[str, str]) -> tuple[str, frozenset[str]] | None:
    """(canonical text, columns used) of a CHECK expression, with source columns renamed."""
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except Exception:
        return (" ".join(sql.lower().split()), frozenset())

    def strip(node):
        while isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
            node = node.this
        return node

    def tf(node):
        node = strip(node)
        if isinstance(node, exp.EQ) and isinstance(node.expression, exp.Any):
            inner = strip(node.expression.this)
            if isinstance(inner, exp.Array):
                return exp.In(this=strip(node.this), expressions=[strip(e) for e in inner.expressions])
        if isinstance(node, exp.Between):
            return exp.And(this=exp.GTE(this=node.this.copy(), expression=node.args["low"]),
                           expression=exp.LTE(this=node.this.copy(), expression=node.args["high"]))
        if isinstance(node, exp.Column):
            return exp.column(rename.get(node.name, node.name))
        return node

    for _ in range(4):  # replacements are not revisited by transform(); a few passes reach a fixpoint
        tree = tree.transform(tf)
    cols = frozenset(c.name for c in tree.find_all(exp.Column))
    return tree.sql().lower(), cols
