"""Applying fixes to queued rows: re-validate, land, audit, and update the queue, atomically.

The pending rows of a table are re-run through the same transform and *full* record
validation a worker runs, with every active learned fix, and with the foreign keys and the
primary key checked against the target as it is now. In one target transaction:

- rows that now pass land in the target table, their queue rows become ``fixed`` (with the
  fix id), and every value a fix changed gets an audit row (table, key, column, before,
  after, fix id) in ``kora.fix_audit``;
- rows that still fail get their new first error, and, where the group's verdict says so,
  ``quarantined`` with the reason and the proposed or best rejected fix in ``proposed_fix``;
  retryable failures (an orphan whose parent may still land) count an attempt and are
  quarantined after ``settings.max_fix_attempts``.

The partitions involved are locked the same way the partition writer locks them, and the
queue rows are re-read under the lock: a partition re-run meanwhile wins, nothing lands twice.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
from dataclasses import dataclass, field

import polars as pl

from checks.record import FK_OK
from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.target import _csv_ready
from kora_assets.plan.model import Plan
from kora_assets.recovery.classify import UNFIXABLE, shape_kind
from kora_assets.recovery.sandbox import TableSandbox, dumps, shape_by_class
from kora_assets.transforms.compiler import LearnedFix

log = logging.getLogger("kora.recovery")


@dataclass
class Verdict:
    """What recovery concluded about one signature in this pass."""

    kind: str  # fixed | quarantine | retry
    reason: str = ""
    proposed_ops: list | None = None  # a lossy or the best rejected candidate, as JSON
    scores: list = field(default_factory=list)


@dataclass
class ApplyResult:
    landed: int = 0
    quarantined: int = 0
    retried: int = 0
    requeued: int = 0  # rows whose first error moved on (another column/class)
    unchanged: int = 0
    audits: int = 0
    fixed_by: dict = field(default_factory=dict)  # fix_id -> rows landed
    quarantine_reasons: dict = field(default_factory=dict)  # signature -> rows

    @property
    def changed(self) -> int:
        return self.landed + self.quarantined + self.retried + self.requeued


def _split_landable(df: pl.DataFrame, tr, tp, val, keys, sandbox) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series, list]:
    """Landable rows (valid, no row flag), the rest, the validation mask and the row flags."""
    vmask = sandbox.valid_mask(df, val)
    flags = row_flags(df, tr, tp, keys, sandbox)
    ok = vmask
    for f in flags:
        ok = ok & ~f[0]
    return df.filter(ok), df.filter(~ok), vmask, flags


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def apply_table(plan: Plan, table: str, sandbox: TableSandbox, pending: pl.DataFrame, fixes: list[LearnedFix],
                verdicts: dict[str, Verdict], target: Database, run_id: str) -> ApplyResult:
    """Land what passes, update what does not (see module doc). ``pending`` has the source
    columns plus ``__qid``, ``__partition``, ``__attempts``, ``__history``."""
    if target.dialect != "postgresql":
        return _apply_sqlite(plan, table, sandbox, pending, fixes, verdicts, target, run_id)
    import psycopg

    res = ApplyResult()
    if pending.height == 0:
        return res
    tp = plan.tables[table]
    tgt_table = target.qualified(plan.target_name(table), plan.target.schema_)
    q = bookkeeping_table(target, "error_queue")
    with psycopg.connect(target.psycopg_conninfo(), autocommit=False) as conn:
        cur = conn.cursor()
        cur.execute("SET CONSTRAINTS ALL DEFERRED")
        for part in sorted(pending["__partition"].unique().to_list()):
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"kora:{tgt_table}:{part}",))
        cur.execute(f"SELECT id FROM {q} WHERE id = ANY(%s) AND status = 'pending' FOR UPDATE",
                    (pending["__qid"].to_list(),))
        still = {r[0] for r in cur.fetchall()}
        frame = pending.filter(pl.col("__qid").is_in(list(still)))
        if frame.height == 0:
            conn.rollback()
            return res
        df, tr, val = sandbox.run(frame, fixes, fk_ok=False)
        df = _flag_parents(df, plan, table, sandbox, cur, target)
        landed_pk = _landed_keys(df, plan, table, sandbox, cur, target)
        good, bad, vmask, flags = _split_landable(df, tr, tp, val, landed_pk, sandbox)
        valid = tr.output_frame(good)
        if valid.height:
            _copy(cur, tgt_table, valid.columns, valid, target.quote)
            res.landed = valid.height
        audits = _audits(good, tr, tp, run_id, table)
        if audits.height:
            _copy(cur, bookkeeping_table(target, "fix_audit"), audits.columns, audits, target.quote)
            res.audits = audits.height
        fixed_cols = [c for c in tr.columns if c.fixed_by in good.columns]
        fix_id = (pl.coalesce([pl.col(c.fixed_by) for c in fixed_cols]) if fixed_cols
                  else pl.lit(None, dtype=pl.Int64))
        updates = [good.select(pl.col("__qid").alias("id"), pl.lit("fixed").alias("status"),
                               pl.lit(None, dtype=pl.String).alias("column_name"),
                               pl.lit(None, dtype=pl.String).alias("error_class"),
                               pl.lit(None, dtype=pl.String).alias("reason"), pl.lit(None, dtype=pl.String).alias("value"),
                               pl.col("__attempts").alias("attempts"), fix_id.cast(pl.Int64).alias("fix_id"),
                               pl.lit(None, dtype=pl.String).alias("proposed_fix"))]
        for fid, n in good.select(fix_id.alias("f")).group_by("f").len().iter_rows():
            if fid is not None:
                res.fixed_by[int(fid)] = n
        if bad.height:
            updates.append(_failed_updates(error_frame(df, vmask, flags, val), verdicts, plan, table, res))
        upd = pl.concat(updates, how="vertical_relaxed")
        _update_queue(cur, q, upd, target.quote)
        conn.commit()
    return res


_CARRY = ["__qid", "__attempts", "__history", "__prev_class", "__prev_column", "__prev_value"]


def error_frame(df: pl.DataFrame, ok: pl.Series, flags: list, val) -> pl.DataFrame:
    """One error row per failing row (aligned with the queue ids): the validator's first
    failure, else the first row flag ``(mask, column, class, reason)`` that holds: a key that
    already landed, an implausible value."""
    badv = df.filter(~ok)
    parts = []
    if badv.height:
        _, errors, _ = val.split(badv)
        parts.append(errors.select("column_name", "error_class", "reason", "value")
                     .with_columns([pl.Series(c, badv[c]) for c in _CARRY]))
    taken = ~ok
    for mask, col, cls, reason in flags:
        sel = ~taken & mask
        rows = df.filter(sel)
        if rows.height:
            parts.append(rows.select(pl.lit(col.target).alias("column_name"), pl.lit(cls).alias("error_class"),
                                     pl.lit(reason).alias("reason"),
                                     pl.col(col.source).cast(pl.String, strict=False).alias("value"), *_CARRY))
        taken = taken | mask
    return pl.concat(parts, how="vertical_relaxed") if parts else pl.DataFrame()


def row_flags(df: pl.DataFrame, tr, tp, dup: pl.Series, sandbox: TableSandbox) -> list:
    """Reasons not to land a row that passes validation: its key already landed, or a value
    is implausible against the column's profile (a future date in a column of past dates)."""
    flags = []
    if tp.primary_key and dup.any():
        flags.append((dup, tr.by_source[tp.primary_key[0]], "constraint.unique",
                      "a row with this key has already landed in the target"))
    today = dt.date.today()
    for c in tr.columns:
        p = sandbox.profiles.get(c.source)
        if not c.ktype.is_temporal or p is None or not p.past_column:
            continue
        o = df[c.o]
        x = o.dt.date() if isinstance(o.dtype, pl.Datetime) else o
        mask = (x > today).fill_null(False)
        if mask.any():
            flags.append((mask, c, "range.out_of_bounds",
                          f"implausible: {c.target} is in the future, in a column of past dates "
                          f"({p.future_share:.1%} of its passing values are after today)"))
    return flags


def _failed_updates(errors: pl.DataFrame, verdicts: dict[str, Verdict], plan: Plan, table: str,
                    res: ApplyResult) -> pl.DataFrame:
    """Queue updates for rows that still fail: their new error, and quarantine or an attempt."""
    errors = errors.with_columns(shape_by_class(pl.col("value"), pl.col("error_class")).alias("__shape"))
    target_table = plan.target_name(table)
    max_attempts = plan.settings.max_fix_attempts
    rows = []
    for key, grp in errors.group_by("error_class", "column_name", "__shape", maintain_order=True):
        cls, col, shape = key
        sig = f"{cls}|{target_table}.{col}|{shape}"
        v = verdicts.get(sig)
        if cls == "fk_orphan" and v is None:
            v = Verdict("retry", "the parent row has not landed (yet)")
        elif cls in UNFIXABLE and v is None:
            v = Verdict("quarantine", UNFIXABLE[cls])
        moved = ((grp["error_class"] != grp["__prev_class"]) | (grp["column_name"] != grp["__prev_column"])
                 | (grp["value"].ne_missing(grp["__prev_value"])))
        for r, mv in zip(grp.iter_rows(named=True), moved.to_list()):
            hist = json.loads(r["__history"]) if r["__history"] else {}
            history = list(hist.get("history", []))
            status, attempts, proposed = "pending", r["__attempts"], r["__history"]
            reason = r["reason"]
            if v is None:
                if mv:
                    res.requeued += 1
                else:
                    res.unchanged += 1
                    continue
            elif v.kind == "quarantine":
                status = "quarantined"
                reason = f"{r['reason']} | quarantined: {v.reason}"
                history.append({"at": _now(), "attempt": attempts + 1, "outcome": v.reason})
                proposed = dumps({"signature": sig, "verdict": "quarantined", "why": v.reason,
                                  "proposed_ops": v.proposed_ops, "candidates": v.scores[:5], "history": history})
                attempts += 1
                res.quarantined += 1
                res.quarantine_reasons[sig] = res.quarantine_reasons.get(sig, 0) + 1
            elif v.kind == "retry":
                attempts += 1
                history.append({"at": _now(), "attempt": attempts, "outcome": v.reason})
                if attempts >= max_attempts:
                    status = "quarantined"
                    reason = f"{r['reason']} | quarantined after {attempts} attempt(s): {v.reason}"
                    res.quarantined += 1
                    res.quarantine_reasons[sig] = res.quarantine_reasons.get(sig, 0) + 1
                else:
                    res.retried += 1
                proposed = dumps({"signature": sig, "verdict": status, "why": v.reason,
                                  "proposed_ops": v.proposed_ops, "history": history})
            else:  # a fix exists for the signature but this row still fails with it: count an attempt
                attempts += 1
                history.append({"at": _now(), "attempt": attempts, "outcome": "the learned fix did not repair this value"})
                if attempts >= max_attempts:
                    status = "quarantined"
                    reason = f"{r['reason']} | quarantined after {attempts} attempt(s): no fix repairs this value"
                    res.quarantined += 1
                else:
                    res.retried += 1
                proposed = dumps({"signature": sig, "verdict": status, "history": history})
            rows.append({"id": r["__qid"], "status": status, "column_name": r["column_name"],
                         "error_class": r["error_class"], "reason": reason, "value": r["value"],
                         "attempts": attempts, "fix_id": None, "proposed_fix": proposed})
    schema = {"id": pl.Int64, "status": pl.String, "column_name": pl.String, "error_class": pl.String,
              "reason": pl.String, "value": pl.String, "attempts": pl.Int64, "fix_id": pl.Int64, "proposed_fix": pl.String}
    return pl.DataFrame(rows, schema=schema)


def _flag_parents(df: pl.DataFrame, plan: Plan, table: str, sandbox: TableSandbox, cur, target: Database) -> pl.DataFrame:
    """FK flags as the worker computes them, against the target as it is now (parents that
    landed since, e.g. because recovery fixed them, count)."""
    tp, flags = plan.tables[table], []
    by_source = {c.source: c for c in sandbox.compiled([])[0].columns}
    for i, fk in enumerate(tp.foreign_keys):
        if len(fk.columns) != 1:
            flags.append(pl.lit(True).alias(FK_OK.format(i)))
            continue
        col = by_source[fk.columns[0]].o
        values = df.get_column(col).drop_nulls().unique().to_list()
        parent = plan.tables[fk.references]
        ptable = target.qualified(plan.target_name(fk.references), plan.target.schema_)
        pcol = target.quote(parent.target_column(fk.ref_columns[0]))
        found = set()
        if values:
            cur.execute(f"SELECT DISTINCT {pcol} FROM {ptable} WHERE {pcol} = ANY(%s)", (values,))
            found = {r[0] for r in cur.fetchall()}
        flags.append(pl.col(col).is_in(pl.Series(list(found), dtype=df.schema[col])).alias(FK_OK.format(i)))
    return df.with_columns(flags) if flags else df


def _landed_keys(df: pl.DataFrame, plan: Plan, table: str, sandbox: TableSandbox, cur, target: Database) -> pl.Series:
    """Rows whose primary key is already in the target (a duplicate of a landed row)."""
    tp = plan.tables[table]
    if len(tp.primary_key) != 1 or df.height == 0:
        return pl.Series("dup", [False] * df.height)
    c = {x.source: x for x in sandbox.compiled([])[0].columns}[tp.primary_key[0]]
    values = df.get_column(c.o).drop_nulls().unique().to_list()
    tgt = target.qualified(plan.target_name(table), plan.target.schema_)
    found = set()
    if values:
        cur.execute(f"SELECT {target.quote(c.target)} FROM {tgt} WHERE {target.quote(c.target)} = ANY(%s)", (values,))
        found = {r[0] for r in cur.fetchall()}
    return df.select(pl.col(c.o).is_in(pl.Series(list(found), dtype=df.schema[c.o])).fill_null(False).alias("dup"))["dup"]


def _audits(good: pl.DataFrame, tr, tp, run_id: str, table: str) -> pl.DataFrame:
    key = pl.struct([pl.col(k) for k in (tp.primary_key or tr.source_columns)]).struct.json_encode()
    parts = [good.filter(pl.col(c.fixed_by).is_not_null()).select(
        pl.lit(table).alias("table_name"), pl.col("__partition").alias("partition_key"), key.alias("primary_key"),
        pl.lit(c.target).alias("column_name"),
        pl.col(c.source).cast(pl.String, strict=False).str.replace_all("\x00", "\u2400", literal=True).alias("before"),
        pl.col(c.o).cast(pl.String, strict=False).alias("after"), pl.col(c.fixed_by).cast(pl.Int64).alias("fix_id"),
        pl.lit(run_id).alias("run_id"))
        for c in tr.columns if c.fixed_by in good.columns]
    parts = [p for p in parts if p.height]
    return pl.concat(parts) if parts else pl.DataFrame()


def _copy(cur, table: str, cols: list[str], df: pl.DataFrame, quote) -> None:
    if df.height == 0:
        return
    buf = io.BytesIO()
    _csv_ready(df).write_csv(buf, include_header=False, null_value="", quote_style="necessary", time_format="%H:%M:%S%.f")
    with cur.copy(f"COPY {table} ({', '.join(quote(c) for c in cols)}) FROM STDIN WITH (FORMAT csv)") as cp:
        cp.write(buf.getbuffer())


def _update_queue(cur, q: str, upd: pl.DataFrame, quote) -> None:
    if upd.height == 0:
        return
    upd = upd.with_columns(pl.col("reason").str.replace_all("\x00", "\u2400", literal=True),
                           pl.col("value").str.replace_all("\x00", "\u2400", literal=True))
    cur.execute("CREATE TEMP TABLE kora_queue_upd (id bigint, status text, column_name text, error_class text, "
                "reason text, value text, attempts integer, fix_id bigint, proposed_fix text) ON COMMIT DROP")
    _copy(cur, "kora_queue_upd", upd.columns, upd, quote)
    cur.execute(
        f"UPDATE {q} AS e SET status = u.status, column_name = COALESCE(u.column_name, e.column_name), "
        "error_class = COALESCE(u.error_class, e.error_class), reason = COALESCE(u.reason, e.reason), "
        "value = CASE WHEN u.status = 'fixed' THEN e.value ELSE u.value END, attempts = u.attempts, "
        "fix_id = u.fix_id, proposed_fix = COALESCE(u.proposed_fix::json, e.proposed_fix), updated_at = now() "
        "FROM kora_queue_upd u WHERE e.id = u.id")
    cur.execute("DROP TABLE kora_queue_upd")


def _apply_sqlite(plan, table, sandbox, pending, fixes, verdicts, target, run_id) -> ApplyResult:
    """The embedded target: the same steps over sqlite3 (no advisory locks: one writer at a time)."""
    res = ApplyResult()
    if pending.height == 0:
        return res
    tp = plan.tables[table]
    q = bookkeeping_table(target, "error_queue")
    tgt_table = target.qualified(plan.target_name(table), None)
    con = target.sqlite_connect()
    try:
        con.execute("BEGIN IMMEDIATE")
        ids = pending["__qid"].to_list()
        still = {r[0] for r in con.execute(
            f"SELECT id FROM {q} WHERE status = 'pending' AND id IN (SELECT value FROM json_each(?))",
            (json.dumps(ids),)).fetchall()}
        frame = pending.filter(pl.col("__qid").is_in(list(still)))
        df, tr, val = sandbox.run(frame, fixes, fk_ok=False)
        flags = []
        for i, fk in enumerate(tp.foreign_keys):
            col = tr.by_source[fk.columns[0]].o
            ptable = target.qualified(plan.target_name(fk.references), None)
            pcol = target.quote(plan.tables[fk.references].target_column(fk.ref_columns[0]))
            vals = df.get_column(col).drop_nulls().unique().to_list()
            found = {r[0] for r in con.execute(f"SELECT {pcol} FROM {ptable} WHERE {pcol} IN (SELECT value FROM json_each(?))",
                                               (json.dumps(vals, default=str),)).fetchall()} if vals else set()
            flags.append(pl.col(col).is_in(pl.Series(list(found), dtype=df.schema[col])).alias(FK_OK.format(i)))
        if flags:
            df = df.with_columns(flags)
        dup = pl.Series("dup", [False] * df.height)
        good, bad, vmask, flags = _split_landable(df, tr, tp, val, dup, sandbox)
        valid = tr.output_frame(good)
        from kora_assets.dbio.target import _sqlite_ready

        if valid.height:
            cols = ", ".join(target.quote(c) for c in valid.columns)
            con.executemany(f"INSERT INTO {tgt_table} ({cols}) VALUES ({', '.join('?' for _ in valid.columns)})",
                            _sqlite_ready(valid).iter_rows())
            res.landed = valid.height
        audits = _audits(good, tr, tp, run_id, table)
        if audits.height:
            con.executemany(f"INSERT INTO {bookkeeping_table(target, 'fix_audit')} ({', '.join(audits.columns)}) "
                            f"VALUES ({', '.join('?' for _ in audits.columns)})", audits.iter_rows())
            res.audits = audits.height
        fixed_cols = [c for c in tr.columns if c.fixed_by in good.columns]
        fid = pl.coalesce([pl.col(c.fixed_by) for c in fixed_cols]) if fixed_cols else pl.lit(None, dtype=pl.Int64)
        con.executemany(f"UPDATE {q} SET status = 'fixed', fix_id = ?, updated_at = datetime('now') WHERE id = ?",
                        good.select(fid.alias("f"), pl.col("__qid")).iter_rows())
        if bad.height:
            upd = _failed_updates(error_frame(df, vmask, flags, val), verdicts, plan, table, res)
            con.executemany(
                f"UPDATE {q} SET status = ?, column_name = COALESCE(?, column_name), error_class = COALESCE(?, error_class), "
                "reason = COALESCE(?, reason), value = ?, attempts = ?, proposed_fix = COALESCE(?, proposed_fix), "
                "updated_at = datetime('now') WHERE id = ?",
                upd.select("status", "column_name", "error_class", "reason", "value", "attempts", "proposed_fix", "id").iter_rows())
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return res


__all__ = ["ApplyResult", "Verdict", "apply_table", "shape_kind"]
