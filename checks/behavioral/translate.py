"""Turning a statement the application sent to the source into the one it would send the target.

Two things change across a migration: the SQL dialect, and the names (the plan may rename
tables and columns). sqlglot handles the first; this module applies the second on the parsed
tree, resolving every column to the table it really belongs to (aliases, derived tables,
correlated subqueries) so that ``o.o_orderdate`` becomes ``o."order_date"`` and an unrelated
``o_orderdate`` alias stays as it is. Output column names are preserved with aliases, so the
application would read the same result columns.

Nothing here makes a query *behave* alike on both sides beyond what sqlglot does: a
difference in semantics (collation, rounding, NULL ordering) must survive translation, so the
replay can report it. A statement sqlglot cannot parse or express in the target dialect, or
one that lost its constants (``$1`` from pg_stat_statements, ``?`` from a prepared statement),
is *untranslatable*, with the reason.

The one deliberate repair is MySQL's implicit string-to-date conversion in
``DATE_ADD('2020-01-01', ...)``: MySQL reads the literal as a date, so the target gets an
explicit ``CAST(... AS DATE)`` that means what MySQL meant.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, ParseError, SqlglotError, UnsupportedError

#: ``{source_table: (target_table, {source_column: target_column})}``.
Renames = dict[str, tuple[str, dict[str, str]]]

_DIALECTS = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgres", "postgres": "postgres",
             "sqlite": "sqlite", "mssql": "tsql", "oracle": "oracle", "duckdb": "duckdb"}
_NONDETERMINISTIC = {"now", "sysdate", "rand", "random", "uuid", "uuid_short", "gen_random_uuid",
                     "currenttimestamp", "currentdate", "currenttime", "currentdatetime",
                     "localtime", "localtimestamp", "utc_timestamp", "utc_date", "utc_time",
                     "unix_timestamp", "clock_timestamp", "statement_timestamp", "timeofday"}


def sqlglot_dialect(name: str) -> str:
    """The sqlglot dialect for a SQLAlchemy backend name (``mariadb`` reads as ``mysql``)."""
    base = name.split("+", 1)[0].lower()
    return _DIALECTS.get(base, base)


def renames_from_plan(plan) -> Renames:
    """Every planned table with its target name and every column with its target name."""
    return {src: (plan.target_name(src), {c: tp.target_column(c) for c in tp.columns})
            for src, tp in plan.tables.items()}


@dataclass(frozen=True)
class OrderSpec:
    """The top-level ``ORDER BY`` of a query, as the comparison needs it.

    ``keys``: output positions of the sort keys, or None when a key is not an output column
    (then only a strict row-by-row comparison is possible). ``limit``: the LIMIT, if any: the
    last run of equal keys may then be cut differently on each side.
    """

    keys: tuple[int, ...] | None
    limit: int | None = None


@dataclass(frozen=True)
class Translation:
    """A statement in both dialects, what it touches, and how its result is ordered."""

    source_sql: str
    target_sql: str | None
    error: str | None = None
    source_tables: frozenset[str] = frozenset()
    target_tables: frozenset[str] = frozenset()
    written_tables: frozenset[str] = frozenset()  # source names of tables a DML statement writes
    columns: frozenset[tuple[str, str]] = frozenset()  # (source table, source column) referenced
    ordered: OrderSpec | None = None  # None: the result is a multiset
    limit: int | None = None
    nondeterministic: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.error is None and self.target_sql is not None


class _Names:
    """Case-insensitive lookups into the renames."""

    def __init__(self, renames: Renames | None):
        self.tables: dict[str, tuple[str, str, dict[str, str], dict[str, str]]] = {}
        for src, (tgt, cols) in (renames or {}).items():
            lower_cols = {c.lower(): t for c, t in cols.items()}
            canon = {c.lower(): c for c in cols}
            self.tables[src.lower()] = (src, tgt, lower_cols, canon)

    def table(self, name: str):
        return self.tables.get(name.lower())

    def source_name(self, name: str) -> str:
        t = self.table(name)
        return t[0] if t else name

    def target_name(self, name: str) -> str:
        t = self.table(name)
        return t[1] if t else name

    def has_column(self, table: str, column: str) -> bool:
        t = self.table(table)
        return bool(t) and column.lower() in t[2]

    def target_column(self, table: str, column: str) -> str | None:
        t = self.table(table)
        return t[2].get(column.lower()) if t else None

    def canonical_column(self, table: str, column: str) -> str:
        t = self.table(table)
        return t[3].get(column.lower(), column) if t else column

    def renames_columns(self, table: str) -> bool:
        t = self.table(table)
        return bool(t) and any(t[3][k] != v for k, v in t[2].items())


def _cte_names(tree: exp.Expression) -> set[str]:
    return {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}


def _real_tables(tree: exp.Expression) -> list[exp.Table]:
    ctes = _cte_names(tree)
    return [t for t in tree.find_all(exp.Table)
            if t.name and not (t.name.lower() in ctes and not t.args.get("db"))]


def _dml_tables(root: exp.Expression) -> list[exp.Table]:
    """Tables a DML root statement names outside its subqueries (target first)."""
    if not isinstance(root, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        return []
    target = root.this
    if isinstance(target, exp.Schema):
        target = target.this
    out = [target] if isinstance(target, exp.Table) else []
    for key in ("from", "using", "tables", "joins", "from_"):
        val = root.args.get(key)
        for v in (val if isinstance(val, list) else [val]):
            if not isinstance(v, exp.Expression):
                continue
            out.extend(t for t in v.find_all(exp.Table) if t not in out and
                       t.find_ancestor(exp.Select, exp.Subquery) is None)
    return out


def _written_tables(root: exp.Expression) -> list[exp.Table]:
    if isinstance(root, exp.Delete) and root.args.get("tables"):
        return [t for t in root.args["tables"] if isinstance(t, exp.Table)]
    return _dml_tables(root)[:1]


def _source_in_chain(scope, alias: str):
    s = scope
    while s is not None:
        for name, src in s.sources.items():
            if name.lower() == alias.lower():
                return src
        s = s.parent
    return None


def _resolve_columns(tree: exp.Expression, names: _Names, *, only_qualified: bool
                     ) -> list[tuple[exp.Column, exp.Table]]:
    """Each column of ``tree`` that belongs to a base table, with that table's node."""
    from sqlglot.optimizer.scope import Scope, traverse_scope

    found: list[tuple[exp.Column, exp.Table]] = []
    seen: set[int] = set()
    try:
        scopes = traverse_scope(tree)
    except Exception:  # scope building is best effort; the DML fallback below still runs
        scopes = []
    for scope in scopes:
        for col in scope.columns:
            if id(col) in seen or not col.name:
                continue
            if col.table:
                src = _source_in_chain(scope, col.table)
                if src is not None:  # else: maybe the DML statement's own table, below
                    seen.add(id(col))
                    if isinstance(src, exp.Table):
                        found.append((col, src))
                continue
            seen.add(id(col))
            if only_qualified:
                continue
            s = scope
            while s is not None:
                hits, derived = [], False
                for _, src in s.sources.items():
                    if isinstance(src, exp.Table) and names.has_column(src.name, col.name):
                        hits.append(src)
                    elif isinstance(src, Scope) and col.name.lower() in {
                            n.lower() for n in getattr(src.expression, "named_selects", [])}:
                        derived = True
                if hits or derived:
                    if len(hits) == 1 and not derived:
                        found.append((col, hits[0]))
                    break
                s = s.parent
    dml = _dml_tables(tree)
    if dml:
        for col in tree.find_all(exp.Column):
            if id(col) in seen or not col.name:
                continue
            if col.table:
                match = [t for t in dml if t.alias_or_name.lower() == col.table.lower()]
            else:
                match = [t for t in dml if names.has_column(t.name, col.name)] or dml[:1]
            if len(match) >= 1:
                found.append((col, match[0]))
    return found


def _in_exists_projection(col: exp.Column) -> bool:
    """``EXISTS (SELECT * ...)`` reads no column through its (star-expanded) select list."""
    select = col.find_ancestor(exp.Select)
    if select is None or not isinstance(select.parent, exp.Exists):
        return False
    node = col
    while node.parent is not select:
        node = node.parent
    return node in select.expressions


def _order_spec(root: exp.Expression) -> tuple[OrderSpec | None, int | None]:
    limit = None
    lim = root.args.get("limit")
    if isinstance(lim, exp.Limit):
        val = lim.expression if lim.expression is not None else lim.this
        if isinstance(val, exp.Literal) and val.is_int:
            limit = int(val.this)
    order = root.args.get("order")
    if not isinstance(order, exp.Order) or not order.expressions:
        return None, limit
    first = root
    while isinstance(first, exp.SetOperation):
        first = first.this
    projections = list(first.expressions) if isinstance(first, exp.Select) else []
    if any(isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))
           for p in projections):
        projections = []
    keys: list[int] = []
    for ordered in order.expressions:
        key = ordered.this
        idx = None
        if isinstance(key, exp.Literal) and key.is_int:
            idx = int(key.this) - 1
        else:
            for i, p in enumerate(projections):
                inner = p.this if isinstance(p, exp.Alias) else p
                if isinstance(key, exp.Column) and not key.table and p.alias_or_name.lower() == key.name.lower():
                    idx = i
                elif inner == key:
                    idx = i
                elif (isinstance(key, exp.Column) and isinstance(inner, exp.Column)
                      and inner.name.lower() == key.name.lower() and not isinstance(p, exp.Alias)):
                    idx = i
                if idx is not None:
                    break
        if idx is None or idx < 0 or (projections and idx >= len(projections)):
            return OrderSpec(keys=None, limit=limit), limit
        keys.append(idx)
    return OrderSpec(keys=tuple(keys), limit=limit), limit


def _fix_mysql_string_dates(tree: exp.Expression) -> None:
    """MySQL reads ``DATE_ADD('2020-01-01', ...)``'s string as a date; say so explicitly."""
    for node in list(tree.find_all(exp.DateAdd, exp.DateSub)):
        arg = node.this
        if isinstance(arg, exp.Literal) and arg.is_string:
            text = arg.this.strip()
            if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
                node.set("this", exp.cast(arg.copy(), exp.DataType.build("date")))
            elif re.fullmatch(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", text):
                node.set("this", exp.cast(arg.copy(), exp.DataType.build("timestamp")))


def _unqualify_set_targets(tree: exp.Expression) -> None:
    """``UPDATE t AS c SET c.x = ...`` is MySQL; PostgreSQL and SQLite only allow ``SET x = ...``."""
    if not isinstance(tree, exp.Update) or not isinstance(tree.this, exp.Table):
        return
    names = {tree.this.alias_or_name.lower(), tree.this.name.lower()}
    for assignment in tree.expressions:
        col = assignment.this if isinstance(assignment, exp.EQ) else None
        if isinstance(col, exp.Column) and col.table and col.table.lower() in names:
            col.set("table", None)
            col.set("db", None)
            col.set("catalog", None)


def _nondeterministic(tree: exp.Expression) -> tuple[str, ...]:
    hits = set()
    for node in tree.find_all(exp.Func):
        name = (node.name if isinstance(node, exp.Anonymous) else type(node).__name__).lower()
        if name in _NONDETERMINISTIC:
            hits.add(name.upper())
    return tuple(sorted(hits))


def _quoted(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _rename(tree: exp.Expression, names: _Names, target_schema: str | None, *, qualified: bool) -> None:
    """Apply the plan's table and column renames to ``tree`` in place."""
    resolved = _resolve_columns(tree, names, only_qualified=qualified)
    real = _real_tables(tree)
    insert_targets = set()
    if isinstance(tree, exp.Insert):
        tgt = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        insert_targets.add(id(tgt))
        if isinstance(tree.this, exp.Schema):  # INSERT INTO t (col, ...)
            table = tgt.name
            for ident in tree.this.expressions:
                new = names.target_column(table, ident.name) if isinstance(ident, exp.Identifier) else None
                if new is not None and new != ident.name:
                    ident.replace(_quoted(new))
    for col, table in resolved:
        new = names.target_column(table.name, col.name)
        if new is None:
            continue
        if new != col.name:
            old = col.name
            col.set("this", _quoted(new))
            parent = col.parent
            if isinstance(parent, exp.Select) and col in parent.expressions:
                col.replace(exp.alias_(col.copy(), old, quoted=False))
        if col.table and not table.alias and col.table.lower() == table.name.lower():
            new_table = names.target_name(table.name)
            if new_table != table.name:
                col.set("table", _quoted(new_table))
    for t in real:
        entry = names.table(t.name)
        if entry is None:
            continue
        new = entry[1]
        if new != t.name:
            t.set("this", _quoted(new))
        if t.args.get("db") is not None or target_schema:
            t.set("db", _quoted(target_schema) if target_schema else None)
            t.set("catalog", None)


def translate(sql: str, source_dialect: str, target_dialect: str, renames: Renames | None = None,
              *, target_schema: str | None = None) -> Translation:
    """Translate one statement; never raises for a bad statement, reports it in ``error``."""
    try:
        return _translate(sql, source_dialect, target_dialect, renames, target_schema)
    except Exception as exc:  # a statement that trips sqlglot is untranslatable, not a crash
        return Translation(sql, None, error=f"translation failed: {type(exc).__name__}: {_first_line(exc)}")


def _translate(sql: str, source_dialect: str, target_dialect: str, renames: Renames | None,
               target_schema: str | None) -> Translation:
    src_d, tgt_d = sqlglot_dialect(source_dialect), sqlglot_dialect(target_dialect)
    names = _Names(renames)
    try:
        parsed = [e for e in sqlglot.parse(sql, read=src_d, error_level=ErrorLevel.RAISE) if e is not None]
    except (ParseError, SqlglotError, ValueError) as exc:
        return Translation(sql, None, error=f"cannot parse as {src_d}: {_first_line(exc)}")
    if len(parsed) != 1:
        return Translation(sql, None, error=f"expected one statement, found {len(parsed)}")
    tree = parsed[0]
    if isinstance(tree, exp.Command):
        return Translation(sql, None, error=f"sqlglot does not understand this {tree.name.upper()} statement")
    params = [n for n in tree.find_all(exp.Placeholder, exp.Parameter)]
    if params:
        what = params[0].sql(dialect=src_d)
        why = ("its constants were replaced by placeholders (pg_stat_statements or a prepared "
               "statement), so the values the application used are unknown")
        if isinstance(params[0], exp.Parameter) and not re.fullmatch(r"\$?\d+", what):
            why = "it reads a session variable, whose value in the application's session is unknown"
        return Translation(sql, None, error=f"not replayable: {what}: {why}")

    # locks change nothing in the result, but would take locks (or fail read-only on PostgreSQL)
    source_sql = sql
    if any(s.args.get("locks") for s in tree.find_all(exp.Select)):
        for s in tree.find_all(exp.Select):
            s.set("locks", None)
        source_sql = tree.sql(dialect=src_d)

    tables = _real_tables(tree)
    source_tables = frozenset(names.source_name(t.name) for t in tables)
    target_tables = frozenset(names.target_name(t.name) for t in tables)
    written = frozenset(names.source_name(t.name) for t in _written_tables(tree))
    ordered, limit = _order_spec(tree)
    nondet = _nondeterministic(tree)

    schema = {src: {c: "text" for c in names.tables[key][3].values()}
              for key, (src, _, _, _) in names.tables.items()}
    qualified_tree = None
    try:
        from sqlglot.optimizer.qualify import qualify

        qualified_tree = qualify(tree.copy(), schema=schema or None, dialect=src_d,
                                 validate_qualify_columns=False, identify=False,
                                 quote_identifiers=False, expand_stars=True)
    except Exception:  # qualification is an aid; without it the own resolver still works
        qualified_tree = None
    analysis = qualified_tree if qualified_tree is not None else tree
    columns = frozenset((names.source_name(t.name), names.canonical_column(t.name, c.name))
                        for c, t in _resolve_columns(analysis, names, only_qualified=qualified_tree is not None)
                        if not _in_exists_projection(c))

    needs_columns = any(names.renames_columns(t) for t in source_tables)
    if needs_columns and qualified_tree is not None:
        work, qualified = qualified_tree, True
    else:
        work, qualified = tree.copy(), False
    if src_d == "mysql":
        _fix_mysql_string_dates(work)
    _rename(work, names, target_schema, qualified=qualified)
    if tgt_d != "mysql":
        _unqualify_set_targets(work)
    try:
        target_sql = work.sql(dialect=tgt_d, unsupported_level=ErrorLevel.RAISE)
    except (UnsupportedError, SqlglotError, ValueError) as exc:
        return Translation(source_sql, None, error=f"cannot express in {tgt_d}: {_first_line(exc)}",
                           source_tables=source_tables, target_tables=target_tables,
                           written_tables=written, columns=columns, ordered=ordered, limit=limit,
                           nondeterministic=nondet)
    return Translation(source_sql, target_sql, None, source_tables, target_tables, written, columns,
                       ordered, limit, nondet)


def _first_line(exc: Exception) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__
