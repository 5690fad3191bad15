"""Behavioral validation: replay the application's log on source and target, compare answers.

This is the one place the pieces meet: the log (:mod:`querylog`) is grouped into replay units
(a query, or a transaction of writes), each unit is translated (:mod:`translate`), run on both
sides without leaving a trace (:mod:`replay`) and judged (:mod:`compare`); the outcomes form a
:class:`~checks.behavioral.report.ReplayReport`. Dagster stays out of it (see
:mod:`assetchecks`), so a CLI, a test or a notebook can call :func:`replay_log` directly.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable

from checks.behavioral.compare import compare_results
from checks.behavioral.querylog import OTHER, READ, SESSION, WRITE, LoggedStatement
from checks.behavioral.replay import ReplayError, ReplayRefused, ReplaySide, TableRef
from checks.behavioral.report import (ERROR, MATCHED, MISMATCHED, SKIPPED, UNTRANSLATABLE, ReplayOutcome,
                                      ReplayReport)
from checks.behavioral.translate import Renames, Translation, translate


def _side(obj, name: str, schema: str | None) -> tuple[ReplaySide, bool]:
    if isinstance(obj, ReplaySide):
        return obj, False
    return ReplaySide(obj, name=name, schema=schema), True


def _groups(statements: Iterable[LoggedStatement]) -> list[list[LoggedStatement]]:
    order: dict[str, list[LoggedStatement]] = {}
    for s in statements:
        order.setdefault(s.group_id, []).append(s)
    return list(order.values())


class _Replayer:
    def __init__(self, source: ReplaySide, target: ReplaySide, renames: Renames | None, *, timeout_s: float,
                 max_rows: int, max_table_rows: int, rel_tol: float, target_schema: str | None):
        self.source, self.target = source, target
        self.renames = renames or {}
        self.lower = {k.lower(): (k, v) for k, v in self.renames.items()}
        self.timeout_s, self.max_rows, self.max_table_rows = timeout_s, max_rows, max_table_rows
        self.rel_tol, self.target_schema = rel_tol, target_schema
        self._cache: dict[str, Translation] = {}

    def translate(self, sql: str) -> Translation:
        tr = self._cache.get(sql)
        if tr is None:
            tr = self._cache[sql] = translate(sql, self.source.sqlglot_dialect, self.target.sqlglot_dialect,
                                              self.renames, target_schema=self.target_schema)
        return tr

    # ------------------------------------------------------------------ queries

    def read(self, s: LoggedStatement, tr: Translation) -> ReplayOutcome:
        out = ReplayOutcome(title=s.title, kind=READ, status=MATCHED, source_sql=s.sql, target_sql=tr.target_sql,
                            tables=tr.target_tables, origin=s.origin)
        if not tr.ok:
            out.status, out.reason = UNTRANSLATABLE, tr.error or "no translation"
            return out
        try:
            src = self.source.run_read(tr.source_sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        except ReplayError as exc:
            out.status = ERROR
            out.reason = (f"the source timed out after {self.timeout_s:g}s" if exc.timeout
                          else f"the query fails on the source itself: {exc}")
            return out
        out.rows_source, out.seconds_source = len(src.rows), src.seconds
        try:
            tgt = self.target.run_read(tr.target_sql, timeout_s=self.timeout_s, max_rows=self.max_rows)
        except ReplayError as exc:
            out.replayed = True
            if exc.timeout:
                out.status, out.reason = ERROR, f"the target timed out after {self.timeout_s:g}s"
            else:
                out.status, out.reason = MISMATCHED, f"the target rejects the query: {exc}"
            return out
        out.replayed = True
        out.rows_target, out.seconds_target = len(tgt.rows), tgt.seconds
        if src.truncated or tgt.truncated:
            out.status = ERROR
            out.reason = f"more than {self.max_rows} rows; results were not compared"
            return out
        cmp = compare_results(src.rows, tgt.rows, tr.ordered, limit=tr.limit, rel_tol=self.rel_tol)
        out.status = MATCHED if cmp.equal else MISMATCHED
        out.reason, out.note = cmp.reason, cmp.note
        out.only_source, out.only_target = cmp.only_source, cmp.only_target
        if not cmp.equal and tr.nondeterministic:
            out.reason += f" (the query calls {', '.join(tr.nondeterministic)}: its answer may change between runs)"
        return out

    # ------------------------------------------------------------------ transactions

    def _refs(self, tables: Iterable[str]) -> tuple[list[TableRef], list[TableRef]]:
        src, tgt = [], []
        for t in sorted(tables):
            hit = self.lower.get(t.lower())
            if hit:
                name, (target, cols) = hit
                src.append(TableRef(name, tuple(cols)))
                tgt.append(TableRef(target, tuple(cols[c] for c in cols)))
            else:
                src.append(TableRef(t))
                tgt.append(TableRef(t))
        return src, tgt

    def transaction(self, group: list[LoggedStatement]) -> ReplayOutcome:
        runnable = [s for s in group if s.kind in (READ, WRITE)]
        first = runnable[0] if runnable else group[0]
        title = first.title if len(runnable) == 1 else f"transaction {first.group_id} ({len(runnable)} statements)"
        out = ReplayOutcome(title=title, kind=WRITE, status=MATCHED,
                            source_sql="; ".join(s.sql for s in runnable), statements=len(runnable),
                            origin=first.origin)
        trs = [self.translate(s.sql) for s in runnable]
        out.tables = frozenset().union(*(t.target_tables for t in trs)) if trs else frozenset()
        out.target_sql = "; ".join(t.target_sql or "?" for t in trs)
        ddl = [s for s in group if s.kind == OTHER]
        if ddl:
            out.status = SKIPPED
            out.reason = f"the transaction contains DDL ({ddl[0].sql[:60]}), which a replay must not run"
            return out
        bad = [(i, s, t) for i, (s, t) in enumerate(zip(runnable, trs)) if not t.ok]
        if bad:
            i, s, t = bad[0]
            out.status = UNTRANSLATABLE
            out.reason = f"statement {i + 1} ({s.origin}): {t.error}"
            return out
        session = [s for s in group if s.kind == SESSION]
        if session:
            out.note = f"{len(session)} session statement(s) in the transaction were not replayed"
        written = frozenset().union(*(t.written_tables for t in trs))
        src_refs, tgt_refs = self._refs(written)
        kw = dict(timeout_s=self.timeout_s, max_rows=self.max_rows, max_table_rows=self.max_table_rows)
        try:
            rs = self.source.run_transaction([t.source_sql for t in trs], tables=src_refs, **kw)
        except ReplayRefused as exc:
            out.status, out.reason = ERROR, f"not replayed on the source: {exc}"
            return out
        try:
            rt = self.target.run_transaction([t.target_sql for t in trs], tables=tgt_refs, **kw)
        except ReplayRefused as exc:
            out.status, out.reason = ERROR, f"not replayed on the target: {exc}"
            return out
        out.replayed = True
        out.seconds_source, out.seconds_target = rs.seconds, rt.seconds
        out.rows_source = sum(r.rowcount or 0 for r in rs.results if r.rowcount is not None)
        out.rows_target = sum(r.rowcount or 0 for r in rt.results if r.rowcount is not None)

        for i, (a, b, tr) in enumerate(zip(rs.results, rt.results, trs)):
            if a.rows is not None or b.rows is not None:
                cmp = compare_results(a.rows or [], b.rows or [], tr.ordered, limit=tr.limit, rel_tol=self.rel_tol)
                if not cmp.equal:
                    out.status = MISMATCHED
                    out.reason = f"statement {i + 1} (a query inside the transaction): {cmp.reason}"
                    out.rows_source, out.rows_target = cmp.rows_source, cmp.rows_target
                    out.only_source, out.only_target = cmp.only_source, cmp.only_target
                    return out
            elif a.rowcount != b.rowcount and a.rowcount != -1 and b.rowcount != -1:
                out.status = MISMATCHED
                out.reason = (f"statement {i + 1} affected {a.rowcount} row(s) on the source, "
                              f"{b.rowcount} on the target")
                out.rows_source, out.rows_target = a.rowcount, b.rowcount
                _sample_changes(out, rs, rt, self.rel_tol)
                return out
        ea, eb = rs.error, rt.error
        if ea or eb:
            if ea and eb and ea.index == eb.index and not (ea.timeout or eb.timeout):
                out.note = (f"both databases reject {_which(ea)} (source: {ea}; target: {eb})"
                            + (f"; {out.note}" if out.note else ""))
                return out
            if (ea and ea.timeout) or (eb and eb.timeout):
                out.status, out.reason = ERROR, f"timed out after {self.timeout_s:g}s"
                return out
            out.status = MISMATCHED
            if eb and not ea:
                out.reason = f"the target rejects {_which(eb)}, which the source accepts: {eb}"
            elif ea and not eb:
                out.reason = f"the target accepts {_which(ea)}, which the source rejects: {ea}"
            else:
                out.reason = f"the source rejects {_which(ea)} ({ea}), the target {_which(eb)} ({eb})"
            return out
        for sa, sb in zip(rs.tables, rt.tables):
            if sa.added is not None and sb.added is not None and sa.removed is not None and sb.removed is not None:
                for what, x, y in (("writes", sa.added, sb.added), ("removes", sa.removed, sb.removed)):
                    cmp = compare_results(x, y, None, rel_tol=self.rel_tol)
                    if not cmp.equal:
                        out.status = MISMATCHED
                        out.reason = (f"the transaction {what} different rows in {sb.table}: {cmp.reason}")
                        out.rows_source, out.rows_target = cmp.rows_source, cmp.rows_target
                        out.only_source, out.only_target = cmp.only_source, cmp.only_target
                        return out
                continue
            if sa.full is not None and sb.full is not None:
                cmp = compare_results(sa.full, sb.full, None, rel_tol=self.rel_tol)
                if not cmp.equal:
                    out.status = MISMATCHED
                    out.reason = f"{sb.table} differs after the transaction: {cmp.reason}"
                    out.rows_source, out.rows_target = cmp.rows_source, cmp.rows_target
                    out.only_source, out.only_target = cmp.only_source, cmp.only_target
                    return out
                continue
            if sa.count != sb.count:
                out.status = MISMATCHED
                out.reason = f"{sb.table} has {sa.count} rows on the source, {sb.count} on the target afterwards"
                out.rows_source, out.rows_target = sa.count, sb.count
                return out
            out.note = "; ".join(filter(None, [
                f"the change to {sb.table} exceeds {self.max_table_rows} rows: only row counts were compared",
                out.note]))
        return out


def _which(err: ReplayError) -> str:
    return f"statement {err.index + 1}" if err.index is not None else "the replay's own setup"


def _sample_changes(out: ReplayOutcome, rs, rt, rel_tol: float = 1e-9) -> None:
    """Show the steward the rows the two transactions changed differently, if any."""
    for sa, sb in zip(rs.tables, rt.tables):
        for x, y in ((sa.added, sb.added), (sa.removed, sb.removed)):
            if x is not None and y is not None:
                cmp = compare_results(x, y, None, rel_tol=rel_tol)
                if not cmp.equal:
                    out.only_source, out.only_target = cmp.only_source, cmp.only_target
                    return


def _guarded(run: Callable[[], ReplayOutcome], s: LoggedStatement, kind: str,
             tables: frozenset[str] = frozenset()) -> ReplayOutcome:
    """A lost connection or a driver failure ends one unit as inconclusive, not the replay."""
    try:
        return run()
    except (ReplayError, ReplayRefused) as exc:
        reason = str(exc)
    except Exception as exc:  # the driver's own words are the most specific reason there is
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return ReplayOutcome(title=s.title, kind=kind, status=ERROR, source_sql=s.sql, tables=tables,
                         reason=f"replay failed: {reason}", origin=s.origin)


def replay_log(statements: Iterable[LoggedStatement], source, target, renames: Renames | None = None, *,
               timeout_s: float = 30.0, max_rows: int = 100_000, max_table_rows: int = 200_000,
               rel_tol: float = 1e-9, only_tables: Iterable[str] | None = None,
               target_schema: str | None = None,
               on_outcome: Callable[[ReplayOutcome], None] | None = None) -> ReplayReport:
    """Replay ``statements`` on ``source`` and ``target`` and report how each one compared.

    ``source``/``target``: a :class:`ReplaySide`, a SQLAlchemy engine or URL, or a DBAPI
    connection. ``renames`` maps source names to target names (see
    :func:`~checks.behavioral.translate.renames_from_plan`). ``only_tables`` restricts the
    replay to units touching those *target* tables (units touching no known table stay in).
    Nothing is written to either database: queries run read-only, transactions are rolled back.
    A query that occurs again (same text) is replayed once; ``occurrences`` counts it.
    """
    src, close_src = _side(source, "source", None)
    tgt, close_tgt = _side(target, "target", target_schema)
    wanted = {t.lower() for t in only_tables} if only_tables is not None else None
    rp = _Replayer(src, tgt, renames, timeout_s=timeout_s, max_rows=max_rows, max_table_rows=max_table_rows,
                   rel_tol=rel_tol, target_schema=target_schema)
    report = ReplayReport()
    seen_reads: dict[str, ReplayOutcome] = {}

    def emit(o: ReplayOutcome) -> None:
        if wanted is not None and o.tables and not {t.lower() for t in o.tables} & wanted:
            return
        report.outcomes.append(o)
        if on_outcome:
            on_outcome(o)

    try:
        for group in _groups(statements):
            if any(s.kind == WRITE for s in group):
                if wanted is not None:
                    touched = frozenset().union(*(rp.translate(s.sql).target_tables for s in group
                                                  if s.kind in (READ, WRITE)))
                    if touched and not {t.lower() for t in touched} & wanted:
                        continue
                emit(_guarded(lambda: rp.transaction(group), group[0], WRITE))
                continue
            for s in group:
                if s.kind == READ:
                    key = " ".join(s.sql.split())
                    if key in seen_reads:  # an application repeats itself; one replay answers for all
                        seen_reads[key].occurrences += s.calls
                        continue
                    tr = rp.translate(s.sql)
                    if wanted is not None and tr.target_tables and not {t.lower() for t in tr.target_tables} & wanted:
                        continue
                    out = _guarded(lambda: rp.read(s, tr), s, READ, tr.target_tables)
                    out.occurrences = s.calls
                    seen_reads[key] = out
                    emit(out)
                else:
                    why = ("session or driver statement: it asks about the connection, not the data"
                           if s.kind == SESSION else "DDL or administration: a replay must not change the schema")
                    emit(ReplayOutcome(title=s.title, kind=s.kind, status=SKIPPED, source_sql=s.sql,
                                       reason=why, origin=s.origin))
    finally:
        if close_src:
            src.close()
        if close_tgt:
            tgt.close()
    return report
