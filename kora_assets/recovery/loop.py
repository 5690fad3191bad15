"""The recovery loop: pass over the error queue until it stops changing.

One pass, per table in load order (parents first, so an orphan whose parent was just fixed
finds it):

1. read the table's ``pending`` queue rows and re-run them through transform + active fixes;
2. group *every* failing value (row x column, not only each row's first failure) by
   signature, so one generation sees all values of a signature at once;
3. per group, under a Redis lock on the signature: a library fix that still proves itself,
   else one *generation* (rule candidates, plus the LLM when the rules have none and the
   library has no verdict), sandboxed and decided; a winner is saved to the library and
   broadcast to the workers;
4. ``apply_table``: land what now passes, audit, update or quarantine the rest.

``run_until_stable`` repeats passes until no queue row changes (orphans and failed groups
count an attempt per pass and are quarantined after ``settings.max_fix_attempts``).
"""
from __future__ import annotations

import logging
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.ddl import ensure_target_schema
from kora_assets.plan.loader import load_order
from kora_assets.plan.model import Plan
from kora_assets.recovery.apply import Verdict, apply_table
from kora_assets.recovery.broadcast import SignatureLock, publish
from kora_assets.recovery.candidates import Candidate, GroupContext, generate
from kora_assets.recovery.classify import UNFIXABLE, Signature, normalise_class
from kora_assets.recovery.library import FixLibrary, LibraryFix, describe_ops, ops_to_json
from kora_assets.recovery.llm import propose
from kora_assets.recovery.sandbox import TableSandbox, column_failures, decide, decode_rows, group_frame
from kora_assets.transforms.operators import cross_column_ops

log = logging.getLogger("kora.recovery")
progress = logging.getLogger("kora.progress")


@dataclass
class TableReport:
    table: str
    queued_before: int = 0
    fixed: int = 0
    quarantined: int = 0
    pending_after: int = 0
    audits: int = 0
    fixes_learned: list = field(default_factory=list)  # {fix_id, signature, ops, origin, note}
    library_hits: list = field(default_factory=list)  # signatures resolved from the library
    verdicts: dict = field(default_factory=dict)  # signature -> reason (not fixed)

    @property
    def recovery_rate(self) -> float:
        return self.fixed / self.queued_before if self.queued_before else 1.0


@dataclass
class RecoveryReport:
    tables: dict = field(default_factory=dict)
    generations: Counter = field(default_factory=Counter)  # signature -> generations in this run
    llm_calls: int = 0
    llm_rejections: list = field(default_factory=list)
    passes: int = 0
    seconds: float = 0.0
    run_id: str = ""

    @property
    def fixed(self) -> int:
        return sum(t.fixed for t in self.tables.values())

    @property
    def quarantined(self) -> int:
        return sum(t.quarantined for t in self.tables.values())

    @property
    def pending(self) -> int:
        return sum(t.pending_after for t in self.tables.values())

    def summary_lines(self) -> list[str]:
        out = []
        for t in self.tables.values():
            learned = ", ".join(f"{f['signature']}: {f['ops']}" for f in t.fixes_learned)
            out.append(f"recovery: {t.table}: {t.queued_before:,} queued -> {t.fixed:,} fixed and landed, "
                       f"{t.quarantined:,} quarantined, {t.pending_after:,} still pending; "
                       f"{len(t.fixes_learned)} fix(es) learned, {len(t.library_hits)} from the library"
                       + (f" [{learned}]" if learned else ""))
        out.append(f"recovery: {self.passes} pass(es), {sum(self.generations.values())} generation(s), "
                   f"{self.llm_calls} LLM call(s), {self.seconds:.1f}s")
        return out


class RecoveryAgent:
    def __init__(self, plan: Plan, *, llm=None, redis_url: str | None = None, library: FixLibrary | None = None,
                 run_id: str | None = None, partitions: list[str] | None = None):
        self.plan = plan
        self.partitions = list(partitions) if partitions else None
        self.source = Database(plan.source.url, "source")
        self.target = Database(plan.target.url, "target")
        self.library = library or FixLibrary.for_plan(plan)
        self._llm_arg = llm
        self._llm = None
        self.redis_url = redis_url
        self.run_id = run_id or f"recovery-{uuid.uuid4().hex[:8]}"
        self.report = RecoveryReport(run_id=self.run_id)
        self.cache: dict[str, Verdict] = {}
        self._key: bytes | None = None

    # -- resources -----------------------------------------------------------------------------
    def llm(self):
        if self._llm is None:
            arg = self._llm_arg
            if arg is None or arg == "env":
                from resources.llm import LLMResource

                arg = LLMResource.from_env()
            if hasattr(arg, "client") and not hasattr(arg, "complete"):
                try:
                    arg = arg.client()
                except Exception as exc:
                    log.warning("no LLM: %s; recovery runs on rules alone", exc)
                    arg = None
            self._llm = arg or False
        return self._llm or None

    def hmac_key(self) -> bytes:
        if self._key is None:
            self._key = self.library.hmac_key()
        return self._key

    # -- one pass ------------------------------------------------------------------------------
    def load_pending(self, table: str) -> pl.DataFrame:
        q = bookkeeping_table(self.target, "error_queue")
        if self.target.dialect == "postgresql":
            import psycopg

            with psycopg.connect(self.target.psycopg_conninfo()) as conn:
                rows = conn.execute(
                    f'SELECT id, partition_key, "row"::text, column_name, error_class, value, attempts, proposed_fix::text '
                    f"FROM {q} WHERE table_name = %s AND status = 'pending' ORDER BY id", (table,)).fetchall()
        else:
            with self.target.engine.connect() as c:
                rows = c.exec_driver_sql(
                    f'SELECT id, partition_key, "row", column_name, error_class, value, attempts, proposed_fix '
                    f"FROM {q} WHERE table_name = ? AND status = 'pending' ORDER BY id", (table,)).fetchall()
        if self.partitions:
            rows = [r for r in rows if r[1] in self.partitions]
        schema = {"__qid": pl.Int64, "__partition": pl.String, "row": pl.String, "__prev_column": pl.String,
                  "__prev_class": pl.String, "__prev_value": pl.String, "__attempts": pl.Int64, "__history": pl.String}
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

    def pass_table(self, table: str) -> int:
        """One pass over a table's pending rows; returns how many queue rows changed."""
        plan, tp = self.plan, self.plan.tables[table]
        raw = self.load_pending(table)
        rep = self.report.tables.setdefault(table, TableReport(table))
        if raw.height == 0:
            return 0
        if self.report.passes == 1 or not rep.queued_before:
            rep.queued_before = max(rep.queued_before, raw.height)
        sandbox = TableSandbox(plan, table, self.source, self.target, self.library.learned_fixes(plan, table))
        src = decode_rows(raw["row"], sandbox.schema, list(tp.columns))
        frame = pl.concat([src, raw.drop("row")], how="horizontal")
        df, tr, _ = sandbox.run(frame, sandbox.active)
        long = column_failures(df, tr, plan, table)
        verdicts: dict[str, Verdict] = {}
        if long.height:
            groups = group_frame(long).sort("rows", descending=True)
            for g in groups.iter_rows(named=True):
                cls = normalise_class(g["error_class"])
                if cls is None:
                    continue
                sig = Signature(cls, plan.target_name(table), g["target_column"], g["shape"])
                v = self.resolve(sandbox, table, sig, g, frame)
                if v is not None:
                    verdicts[str(sig)] = v
                    if v.kind != "fixed":
                        rep.verdicts[str(sig)] = v.reason
        res = apply_table(plan, table, sandbox, frame, sandbox.active, verdicts, self.target, self.run_id)
        rep.fixed += res.landed
        rep.quarantined += res.quarantined
        rep.audits += res.audits
        for fid, n in res.fixed_by.items():
            try:
                self.library.record_success(fid, n)
            except Exception as exc:
                log.warning("could not count the success of fix %s: %s", fid, exc)
        log.info("%s: pass %d: %d landed, %d quarantined, %d retried, %d re-queued with a new error",
                 table, self.report.passes, res.landed, res.quarantined, res.retried, res.requeued)
        return res.changed

    # -- one group -----------------------------------------------------------------------------
    def resolve(self, sandbox: TableSandbox, table: str, sig: Signature, g: dict, frame: pl.DataFrame) -> Verdict | None:
        key = str(sig)
        if key in self.cache:
            v = self.cache[key]
            return v if v.kind != "fixed" else Verdict("retry", "the learned fix does not repair these values")
        col = g["column"]
        cp = self.plan.tables[table].columns[col]
        group = frame.filter(pl.col("__qid").is_in(g["qids"]))
        rows = group.unique(subset=[col], keep="first", maintain_order=True)
        lock = SignatureLock(self.redis_url, self.plan, sig)
        if not lock.acquire():
            log.info("%s: another agent holds this signature; skipped this pass", sig)
            return None
        try:
            lib_fixes, lib_verdict = self.library.lookup(sig)
            for lf in lib_fixes:
                if lf.lossy and not self.plan.settings.lossy_fixes_allowed:
                    continue
                score = sandbox.evaluate(sig, col, eval_rows(group, rows, col, lf.ops),
                                         Candidate(tuple(lf.ops), "library", fix_id=lf.id))
                if score.viable and (not score.lossy or self.plan.settings.lossy_fixes_allowed):
                    self._activate(sandbox, table, lf, origin="library")
                    self.report.tables[table].library_hits.append(key)
                    log.info("%s: resolved from the library (fix %d: %s)", sig, lf.id, describe_ops(lf.ops))
                    v = self.cache[key] = Verdict("fixed", f"library fix {lf.id}")
                    return v
                self.library.record_failure(lf.id)
            v = self.generate(sandbox, table, sig, g, rows, cp, lib_verdict, group=group)
            self.cache[key] = v
            return v
        finally:
            lock.release()

    def generate(self, sandbox: TableSandbox, table: str, sig: Signature, g: dict, rows: pl.DataFrame, cp,
                 lib_verdict: LibraryFix | None, group: pl.DataFrame | None = None) -> Verdict:
        key, col = str(sig), g["column"]
        self.report.generations[key] += 1
        values = pl.Series("v", g["values"], dtype=pl.String)
        group = rows if group is None else group
        tp = self.plan.tables[table]
        ctx = GroupContext(sig, col, cp, values, self.plan.settings, table=tp,
                           rows=group.select([c for c in tp.columns if c in group.columns]),
                           passing_rows=sandbox.passing_frame(col) if sig.error_class == "constraint.not_null" else None)
        gen = generate(ctx)
        if gen.unfixable:
            log.info("generation %s: unfixable: %s", sig, gen.unfixable)
            self._save_verdict(sig, gen.unfixable)
            return Verdict("quarantine", gen.unfixable)
        scores = [sandbox.evaluate(sig, col, eval_rows(group, rows, col, c.ops), c) for c in gen.candidates]
        decision = decide(scores, lossy_allowed=self.plan.settings.lossy_fixes_allowed)
        asked = False
        if (decision.verdict == "no_fix" and not gen.ambiguous and gen.ask_llm and lib_verdict is None
                and self.llm() is not None):
            asked = True
            before = self.llm().calls
            cands, why = propose(self.llm(), ctx, reason=None, passing=sandbox.passing_examples(col))
            self.report.llm_calls += self.llm().calls - before
            if why:
                self.report.llm_rejections.append({"signature": key, "why": why})
            scores += [sandbox.evaluate(sig, col, eval_rows(group, rows, col, c.ops), c) for c in cands]
            decision = decide(scores, lossy_allowed=self.plan.settings.lossy_fixes_allowed)
        log.info("generation %s: %d rule candidate(s)%s -> %s: %s", sig, len(gen.candidates),
                 " + LLM" if asked else "", decision.verdict, decision.reason)
        summaries = [s.summary() for s in scores]
        if decision.verdict == "accepted":
            w = decision.winner.candidate
            fix_id = self.library.save(sig, w.ops, origin=w.origin, plan_name=self.plan.name, reason=decision.reason)
            lf = LibraryFix(fix_id, sig, list(w.ops), origin=w.origin)
            self._activate(sandbox, table, lf, origin=w.origin)
            self.report.tables[table].fixes_learned.append(
                {"fix_id": fix_id, "signature": key, "ops": describe_ops(w.ops), "ops_json": ops_to_json(w.ops),
                 "origin": w.origin, "note": w.note, "values": len(g["values"])})
            return Verdict("fixed", decision.reason)
        if gen.ambiguous and decision.verdict == "no_fix":
            self._save_verdict(sig, gen.ambiguous)
            return Verdict("quarantine", gen.ambiguous, None, summaries)
        if decision.verdict in ("ambiguous", "lossy"):
            proposed = ops_to_json(decision.winner.candidate.ops) if decision.winner else (
                ops_to_json(decision.best_rejected.candidate.ops) if decision.best_rejected else None)
            self._save_verdict(sig, decision.reason, decision.winner.candidate.ops if decision.winner else None)
            return Verdict("quarantine", decision.reason, proposed, summaries)
        best = decision.best_rejected
        self._save_verdict(sig, decision.reason, best.candidate.ops if best else None)
        return Verdict("retry", decision.reason, ops_to_json(best.candidate.ops) if best else None, summaries)

    def _save_verdict(self, sig: Signature, reason: str, ops=None) -> None:
        try:
            self.library.save_verdict(sig, reason, ops, plan_name=self.plan.name)
        except Exception as exc:
            log.warning("could not record the verdict on %s: %s", sig, exc)

    def _activate(self, sandbox: TableSandbox, table: str, fix: LibraryFix, origin: str) -> None:
        lf = fix.learned(self.plan, table)
        if lf is None:
            return
        if all(f.fix_id != lf.fix_id for f in sandbox.active):
            sandbox.set_active(sandbox.active + [lf])
        if origin != "library" and self.redis_url:
            try:
                n = publish(self.redis_url, self.plan, table, fix, self.hmac_key())
                log.info("broadcast fix %d (%s) to %d worker(s)", fix.id, fix.signature, n)
            except Exception as exc:  # the library still carries it to every worker
                log.warning("could not broadcast fix %d: %s", fix.id, exc)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, tables: list[str] | None = None, max_passes: int | None = None) -> RecoveryReport:
        t0 = time.perf_counter()
        order = [t for t in load_order(self.plan) if not tables or t in tables]
        ensure_target_schema(self.target, self.plan)
        limit = max_passes or self.plan.settings.max_fix_attempts + 3
        while self.report.passes < limit:
            self.report.passes += 1
            changed = sum(self.pass_table(t) for t in order)
            if changed == 0:
                break
        for t in order:
            rep = self.report.tables.setdefault(t, TableReport(t))
            rep.pending_after = int(self.load_pending(t).height)
        llm = self._llm or None
        if llm is not None and not self.report.llm_calls:
            self.report.llm_calls = getattr(llm, "calls", 0)
        self.report.seconds = time.perf_counter() - t0
        return self.report


def run_until_stable(plan: Plan, tables: list[str] | None = None, *, llm=None, redis_url: str | None = None,
                     library: FixLibrary | None = None, run_id: str | None = None, max_passes: int | None = None,
                     report_to_dagster: bool | None = None, partitions: list[str] | None = None) -> RecoveryReport:
    """Recover what can be recovered from the error queue; returns what happened.

    ``llm``: an ``LLMClient``, an ``LLMResource``, or None for ``KORA_LLM_*`` from the
    environment (default: no model). ``redis_url``: for the signature locks and fix broadcasts
    (default: ``KORA_REDIS_URL``, a local Redis, or none: then no broadcast, the library still
    carries every fix to the workers). ``partitions``: only queue rows of these partition keys.
    """
    if redis_url is None:
        redis_url = _default_redis()
    agent = RecoveryAgent(plan, llm=llm, redis_url=redis_url, library=library, run_id=run_id, partitions=partitions)
    report = agent.run(tables, max_passes)
    for line in report.summary_lines():
        progress.info(line)
    if report_to_dagster is None:
        report_to_dagster = bool(os.environ.get("DAGSTER_HOME"))
    if report_to_dagster:
        try:
            import dagster as dg

            from kora_assets.recovery.metadata import observations

            inst = dg.DagsterInstance.get()
            for obs in observations(plan, report, agent.target):
                inst.report_runless_asset_event(obs)
        except Exception as exc:
            log.warning("could not record recovery metadata in Dagster: %s", exc)
    return report


def eval_rows(group: pl.DataFrame, rows: pl.DataFrame, col: str, ops) -> pl.DataFrame:
    """The rows a candidate is proven on: one per distinct failing value of the column, or, for
    a cross-column chain, one per distinct (value, sibling value): its evidence is the sibling."""
    sibs = [x.sibling for x in cross_column_ops(ops) if x.sibling in group.columns and x.sibling != col]
    if not sibs:
        return rows
    return group.unique(subset=[col, *sibs], keep="first", maintain_order=True)


def _default_redis() -> str | None:
    from resources.redis_bus import DEFAULT_URL, _answers

    url = os.environ.get("KORA_REDIS_URL")
    if url:
        return url if _answers(url) else None
    return DEFAULT_URL if _answers(DEFAULT_URL) else None


__all__ = ["RecoveryAgent", "RecoveryReport", "TableReport", "run_until_stable", "UNFIXABLE"]
