"""``kora init``: reflect a live source schema into a complete, commented plan.

SQLAlchemy's inspector reads tables, columns, keys, foreign keys and indexes from MySQL /
MariaDB, PostgreSQL and SQLite alike; types are translated into kora's portable
vocabulary, and big tables get key-range partitions cut at key quantiles so every
partition is one index range of similar size.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import sqlalchemy as sa
import yaml
from sqlalchemy.dialects import mysql

from kora_assets.dbio.connections import Database, reflect_columns
from kora_assets.errors import explain
from kora_assets.plan.defaults import is_generated, on_update_clock, plan_default
from kora_assets.plan.model import Settings
from kora_assets.plan.types import MAX_DECIMAL_DIGITS, parse_type

PARTITION_ROWS = 250_000


def kora_type(t: sa.types.TypeEngine) -> tuple[str, list[str] | None]:
    """(kora type, allowed values for enums) for a reflected column type."""
    if isinstance(getattr(t, "data_type", None), sa.types.TypeEngine):  # a PostgreSQL domain: its base type
        return kora_type(t.data_type)
    if isinstance(t, mysql.SET):  # any combination of its values, comma-separated: no allowed list
        vals = list(t.values)
        return f"varchar({max(1, sum(len(v) for v in vals) + len(vals) - 1)})", None
    if isinstance(t, sa.Enum):
        vals = list(t.enums)
        return f"varchar({max((len(v) for v in vals), default=1)})", vals
    if isinstance(t, mysql.BIT):  # the bits as bytes (connectorx reads them so), not text
        return "bytes", None
    if isinstance(t, mysql.TINYINT) and getattr(t, "display_width", None) == 1:
        return "boolean", None
    if isinstance(t, mysql.YEAR):
        return "smallint", None
    if isinstance(t, sa.Boolean):
        return "boolean", None
    if isinstance(t, sa.BigInteger):
        return "bigint", None
    if isinstance(t, sa.SmallInteger) or isinstance(t, (mysql.TINYINT, mysql.MEDIUMINT)):
        # MEDIUMINT, and SMALLINT UNSIGNED (up to 65535), need an integer; a TINYINT UNSIGNED fits a smallint
        wide = isinstance(t, mysql.MEDIUMINT) or (getattr(t, "unsigned", False) and not isinstance(t, mysql.TINYINT))
        return ("integer" if wide else "smallint"), None
    if isinstance(t, sa.Integer):
        return ("bigint" if getattr(t, "unsigned", False) else "integer"), None
    if isinstance(t, (sa.Float, sa.REAL)) or isinstance(t, sa.Double):
        # MySQL's FLOAT is single precision (up to FLOAT(24)): as a double it would show its binary noise (0.1 -> 0.10000000149011612)
        single = isinstance(t, mysql.FLOAT) and not isinstance(t, mysql.DOUBLE) and (t.precision or 0) <= 24
        return ("real" if single or (isinstance(t, sa.REAL) and not isinstance(t, sa.Double)) else "double"), None
    if isinstance(t, sa.Numeric):
        if t.precision and t.precision <= MAX_DECIMAL_DIGITS:
            return f"numeric({t.precision},{t.scale or 0})", None
        return "numeric", None  # unconstrained, or wider than a 38-digit decimal (MySQL's DECIMAL(65,30)): exact as text
    if isinstance(t, sa.DateTime):
        return ("timestamptz" if getattr(t, "timezone", False) else "timestamp"), None
    if isinstance(t, sa.Date):
        return "date", None
    if isinstance(t, sa.Time):  # a time with a zone has no kora type: its text keeps the offset
        return ("text" if getattr(t, "timezone", False) else "time"), None
    if isinstance(t, sa.JSON):
        return "json", None
    if isinstance(t, sa.Uuid):
        return "uuid", None
    if isinstance(t, (sa.LargeBinary, sa.types._Binary)):
        return "bytes", None
    if isinstance(t, sa.String):
        if isinstance(t, sa.CHAR) and t.length:
            return f"char({t.length})", None
        if t.length and not isinstance(t, sa.Text):
            return f"varchar({t.length})", None
        return "text", None
    return "text", None


def _fk_action(v: str | None) -> str:
    v = (v or "no action").lower()
    return v if v in ("no action", "restrict", "cascade", "set null", "set default") else "no action"


def _bounds(db: Database, table: str, col: str, rows: int, partition_rows: int, schema: str | None) -> list[int]:
    """Lower bounds of partitions 2..n at key quantiles: the minima of ``NTILE(n) OVER (ORDER BY
    key)``, found without the window (``_keys_at_ranks``)."""
    n = max(1, -(-rows // partition_rows))
    if n <= 1:
        return []
    q, t = db.quote(col), db.qualified(table, schema)
    try:
        with db.engine.connect() as c:
            lo, hi, total = c.exec_driver_sql(f"SELECT MIN({q}), MAX({q}), COUNT({q}) FROM {t}").one()
            if not total:
                return []
            size, extra = divmod(int(total), n)  # NTILE: the first `extra` groups hold one row more
            ranks = [b * size + min(b, extra) for b in range(1, min(n, int(total)))]
            mins = _keys_at_ranks(c, db, q, t, int(lo), int(hi), ranks)
    except Exception:  # e.g. key differences beyond 64 bits: equal-width ranges over [min, max]
        with db.engine.connect() as c:
            lo, hi = c.exec_driver_sql(f"SELECT MIN({q}), MAX({q}) FROM {t}").one()
        step = max(1, (int(hi) - int(lo) + 1) // n)
        mins = [int(lo) + i * step for i in range(n)]
    return sorted(set(mins) - {int(lo)})


_BUCKETS = 1024  # key histogram resolution per level of ``_keys_at_ranks``
_OFFSET_ROWS = 50_000  # a bucket this small is read with ORDER BY ... OFFSET


def _keys_at_ranks(c, db: Database, q: str, t: str, lo: int, hi: int, ranks: list[int]) -> list[int]:
    """The non-null key at each 0-based rank of the ordered keys within ``[lo, hi]``.

    A window over the whole table (``NTILE``) made MariaDB materialise and sort it: 28 s for
    TPC-H SF1 lineitem at ``kora init``. Here a histogram of the key in ``_BUCKETS`` equal-width
    buckets (one ``GROUP BY`` over the key's index, ~3 s there) places each rank in a bucket,
    which a short ``ORDER BY ... LIMIT 1 OFFSET`` reads when it is small and the same search
    narrows otherwise (skewed keys: each level divides the width by ``_BUCKETS``).
    """
    width = max(1, -(-(hi - lo + 1) // _BUCKETS))
    div = "DIV" if db.dialect == "mysql" else "/"
    hist = sorted((int(b), int(k)) for b, k in c.exec_driver_sql(
        f"SELECT ({q} - {lo}) {div} {width}, COUNT(*) FROM {t} WHERE {q} >= {lo} AND {q} <= {hi} GROUP BY 1"))
    out, before, todo = [], 0, sorted(ranks)
    for b, count in hist:
        here = [r - before for r in todo if before <= r < before + count]
        if here:
            b_lo, b_hi = lo + b * width, min(hi, lo + (b + 1) * width - 1)
            if width == 1:
                out += [b_lo] * len(here)
            elif count <= _OFFSET_ROWS:
                out += [int(c.exec_driver_sql(f"SELECT {q} FROM {t} WHERE {q} >= {b_lo} AND {q} <= {b_hi} "
                                              f"ORDER BY {q} LIMIT 1 OFFSET {r}").scalar()) for r in here]
            else:
                out += _keys_at_ranks(c, db, q, t, b_lo, b_hi, here)
        before += count
    return out


def infer_plan(source: Database, target_url: str, *, schema: str | None = None, target_schema: str | None = None,
               partition_rows: int = PARTITION_ROWS, tables: list[str] | None = None) -> tuple[dict[str, Any], dict[str, int]]:
    """The plan as data, and row counts per table (for the comments)."""
    insp = sa.inspect(source.engine)
    names = [t for t in insp.get_table_names(schema=schema) if not t.startswith(("sqlite_", "kora__"))]
    if tables:
        names = [t for t in names if t in tables]
    counts, out, semantic, column_notes = {}, {}, {}, {}
    for name in names:
        with source.engine.connect() as c:
            counts[name] = int(c.exec_driver_sql(f"SELECT COUNT(*) FROM {source.qualified(name, schema)}").scalar())
        cols: dict[str, Any] = {}
        notes = column_notes.setdefault(name, {})
        for col in reflect_columns(insp, name, schema):
            ktype, allowed = kora_type(col["type"])
            if ktype == "real" and source.dialect == "sqlite":  # SQLite's REAL is an 8-byte double
                ktype = "double"
            spec: dict[str, Any] = {"type": ktype}
            if not col.get("nullable", True):
                spec["nullable"] = False
            if allowed:
                spec["rules"] = {"allowed": allowed}
            if isinstance(col["type"], sa.types.NullType):
                notes[col["name"]] = "the source type is one SQLAlchemy does not know: its values travel as text"
            spec.update(_default_spec(col, ktype, source.dialect, notes))
            cols[col["name"]] = spec
        pk = insp.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
        for k in pk:
            cols[k]["nullable"] = False
        if _sqlite_autoincrement(source, name, pk) and cols[pk[0]]["type"] in ("integer", "bigint"):
            cols[pk[0]]["identity"] = True
        t: dict[str, Any] = {"target": name}
        if pk:
            t["primary_key"] = pk
        # The leading key column cuts ranges (one index range each) even for a composite key.
        if pk and cols[pk[0]]["type"] in ("smallint", "integer", "bigint"):
            bounds = _bounds(source, name, pk[0], counts[name], partition_rows, schema)
            t["partitioning"] = {"kind": "key_range", "column": pk[0], "bounds": bounds} if bounds else {"kind": "none"}
        else:
            t["partitioning"] = {"kind": "none"}
        t["columns"] = cols
        semantic[name] = _infer_semantic(source, name, cols, schema)
        fks = [{"columns": fk["constrained_columns"], "references": fk["referred_table"],
                "ref_columns": fk["referred_columns"],
                "on_delete": _fk_action((fk.get("options") or {}).get("ondelete")),
                "on_update": _fk_action((fk.get("options") or {}).get("onupdate"))}
               for fk in insp.get_foreign_keys(name, schema=schema) if fk["referred_table"] in names]
        if fks:
            t["foreign_keys"] = fks
        uniques = [u["column_names"] for u in insp.get_unique_constraints(name, schema=schema)]
        idx = []
        for ix in insp.get_indexes(name, schema=schema):
            cols_ = [c for c in ix["column_names"] if c]
            if not cols_ or cols_ == pk:
                continue
            if ix.get("unique") and cols_ not in uniques:
                uniques.append(cols_)
            elif not ix.get("unique"):
                idx.append({"columns": cols_})
        if uniques:
            t["unique"] = uniques
        if idx:
            t["indexes"] = idx
        out[name] = t
    target: dict[str, Any] = {"url": target_url}
    if target_schema:
        target["schema"] = target_schema
    source_ep: dict[str, Any] = {"url": source.template}
    if schema:
        source_ep["schema"] = schema
    plan = {"version": 1, "name": "kora", "source": source_ep, "target": target,
            "settings": {"chunk_rows": Settings().chunk_rows, "workers": 2, "lossy_fixes_allowed": False},
            "tables": out}
    if any(semantic.values()):
        plan[SEMANTIC_NOTES] = semantic  # turned into comments by render_plan
    if any(column_notes.values()):
        plan[COLUMN_NOTES] = column_notes
    return plan, counts


def _sqlite_autoincrement(db: Database, table: str, pk: list[str]) -> bool:
    """Is the SQLite table's key declared AUTOINCREMENT (only an INTEGER PRIMARY KEY can be)?
    SQLAlchemy does not reflect it; the table's own SQL says it."""
    if db.dialect != "sqlite" or len(pk) != 1:
        return False
    with db.engine.connect() as c:
        sql = c.exec_driver_sql("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).scalar()
    return bool(sql) and "AUTOINCREMENT" in sql.upper()


def _default_spec(col: dict, ktype: str, dialect: str, notes: dict[str, str]) -> dict[str, Any]:
    """The column's ``identity`` or ``default`` for the plan; why a source default is not
    carried goes into ``notes`` (a comment in the plan)."""
    kt = parse_type(ktype)
    if is_generated(col, dialect):
        if kt.is_integer:
            return {"identity": True}
        notes[col["name"]] = (f"not carried over from the source: it generates the values "
                              f"({col.get('default') or 'auto-increment'}), and a {ktype} cannot be an identity")
        return {}
    value, why = plan_default(col.get("default"), kt)
    if why:
        notes[col["name"]] = f"not carried over from the source: {why}"
    spec: dict[str, Any] = {} if value is None else {"default": value}
    if clock := on_update_clock(col.get("default"), kt):
        spec["on_update"] = clock
    return spec


#: Keys of ``infer_plan``'s result holding per-column semantic inferences and other notes
#: (a source default not carried over, an unknown type), for ``render_plan``'s comments.
SEMANTIC_NOTES = "_semantic_inference"
COLUMN_NOTES = "_column_notes"


class Inference(NamedTuple):
    """What the classifier said about a column at ``kora init``."""

    semantics: Any  # checks.semantic.runtime.ColumnSemantics
    written: bool  # became the column's ``semantic:`` field
    note: str


def _infer_semantic(db: Database, table: str, cols: dict[str, Any], schema: str | None,
                    rows: int = 500) -> dict[str, Inference]:
    """Semantic types the classifier infers from a sample: writes ``semantic:`` into confident
    columns; every column's answer, empty without the model."""
    try:
        import polars as pl

        from checks.semantic.runtime import suggest_types

        q = ", ".join(db.quote(c) for c in cols)
        with db.engine.connect() as c:
            rs = c.exec_driver_sql(f"SELECT {q} FROM {db.qualified(table, schema)} LIMIT {rows}").all()
        sample = pl.DataFrame({c: pl.Series([None if r[i] is None else str(r[i]) for r in rs], dtype=pl.String)
                               for i, c in enumerate(cols)})
        found = suggest_types(table, cols, sample)
    except Exception as exc:  # inference is advice; a failure must not stop init
        import logging

        logging.getLogger("kora.semantic").warning("kora: semantic types of %s not inferred: %s", table, explain(exc))
        return {}
    out = {}
    for col, cs in (found or {}).items():
        if not cs.inferred:
            continue
        write = cs.origin == "inferred" and bool(cs.rules)
        if write:
            cols[col]["semantic"] = cs.inferred
        note = cs.note or ("this type has no plausibility rules" if cs.origin == "inferred" and not cs.rules else "")
        out[col] = Inference(cs, write, note)
    return out


HEADER = """\
# kora migration plan, written by `kora init` from {source}.
# Edit freely: rename tables (target:) and columns (columns.<name>.target:), change target
# types (e.g. a text column of dates -> date), add transforms (trim, lower, map_values,
# null_if, parse_date, parse_number, ...) and rules (min, max, regex, allowed).
# URLs may reference environment variables as ${{VAR}}; keep passwords there.
# Types: smallint integer bigint boolean real double numeric(p,s) varchar(n) char(n) text
#        date timestamp timestamptz time bytes json uuid
"""


def render_plan(plan: dict[str, Any], counts: dict[str, int], source_display: str) -> str:
    """YAML with a comment per table (rows, partitions) above its entry."""
    notes = plan.get(SEMANTIC_NOTES) or {}
    column_notes = plan.get(COLUMN_NOTES) or {}
    head = {k: v for k, v in plan.items() if k not in ("tables", SEMANTIC_NOTES, COLUMN_NOTES)}
    text = HEADER.format(source=source_display) + yaml.safe_dump(head, sort_keys=False, width=120) + "tables:\n"
    if notes:
        text = text.replace("tables:\n", SEMANTIC_HEADER + "tables:\n", 1)
    for name, t in plan["tables"].items():
        parts = len(t["partitioning"].get("bounds", [])) + 1
        text += f"  # {name}: {counts[name]:,} rows, {parts} partition(s)\n"
        body = yaml.safe_dump({name: t}, sort_keys=False, width=120, allow_unicode=True)
        lines = _column_comments(body.splitlines(), notes.get(name) or {}, column_notes.get(name) or {})
        text += "".join("  " + line + "\n" for line in lines)
    return text


SEMANTIC_HEADER = """\
# semantic: the column's meaning, inferred by kora's classifier from a sample (confidence in the
# comment). It switches on plausibility rules (birth date not in the future, percentage 0-100, ...);
# confirm it, change it, or write `semantic: "off"` (quoted: YAML reads a bare off as false).
"""


def _column_comments(lines: list[str], notes: dict, column_notes: dict[str, str]) -> list[str]:
    """Annotate each column's block with its inferred semantic type and confidence, and with
    what else ``kora init`` has to say about it."""
    if not notes and not column_notes:
        return lines
    out, in_columns, col_indent = [], False, None
    for line in lines:
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if stripped == "columns:":
            in_columns, col_indent = True, indent + 2
            out.append(line)
            continue
        if in_columns and indent < (col_indent or 0):
            in_columns = False
        if in_columns and indent == col_indent and stripped.endswith(":"):
            col = stripped[:-1].strip("'\"")
            out.append(line)
            if col in column_notes:
                out.append(f"{' ' * (indent + 2)}# {column_notes[col]}")
            if col in notes:
                n = notes[col]
                stype, conf, written, note = n.semantics.inferred, n.semantics.confidence, n.written, n.note
                pad = " " * (indent + 2)
                if written:
                    out.append(f"{pad}# semantic type inferred: {stype} (confidence {conf:.2f})")
                else:
                    why = f"; {note}" if note else ("; below the confidence to apply" if conf < 0.7 else "")
                    out.append(f"{pad}# semantic: {stype}  # suggestion (confidence {conf:.2f}{why})")
            continue
        out.append(line)
    return out
