"""One partition, end to end: read chunks -> transform -> validate -> write, in one transaction.

This is the unit a worker pulls from the queue. Everything in the hot loop is polars
expressions over whole chunks; Python runs once per chunk, never once per row.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

import polars as pl

from checks.record import FK_OK, UNIQUE_DENIED, RecordValidator
from kora_assets.dbio.binary_copy import binary_schema
from kora_assets.dbio.connections import Database
from kora_assets.dbio.ddl import has_key_constraints
from kora_assets.dbio.source import SourceReader, SourceValuesUndecodable
from kora_assets.dbio.target import partition_writer
from kora_assets.dbio.unique import denied_rows, flag_unique_conflicts
from kora_assets.partitions import key_range_keys, predicate
from kora_assets.plan.model import Plan
from kora_assets.timing import rss_mib
from kora_assets.transforms.compiler import LearnedFix, TableTransform
from kora_assets.workers.parent_keys import PROCESS_CACHE, ParentKeyCache
from kora_assets.workers.parent_keys import contains as held_contains
from kora_assets.workers.parent_keys import hits as held_hits

log = logging.getLogger("kora.worker")


@dataclass(frozen=True)
class PartitionTask:
    table: str  # source table name (the plan's key)
    partition_key: str
    run_id: str

    def encode(self) -> str:
        return f"{self.run_id}\t{self.table}\t{self.partition_key}"

    @classmethod
    def decode(cls, s: str | bytes) -> PartitionTask:
        run_id, table, pk = (s.decode() if isinstance(s, bytes) else s).split("\t")
        return cls(table, pk, run_id)


@dataclass
class PartitionResult:
    table: str
    partition_key: str
    source_rows: int = 0
    landed: int = 0
    queued: int = 0
    seconds: float = 0.0
    worker: str = ""
    error: str | None = None
    fixed_inline: int = 0  # values changed by learned fixes (each audited)
    worker_rss_mib: int = 0  # the worker's resident memory after the partition (memory stays bounded?)
    error_classes: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TableRunner:
    """A table's compiled transform and validator, kept warm by the worker that built it."""

    plan: Plan
    table: str
    fixes: list[LearnedFix] = field(default_factory=list)
    parent_keys: ParentKeyCache = field(default_factory=lambda: PROCESS_CACHE, compare=False)  # one per worker process

    def __post_init__(self):
        self.tp = self.plan.tables[self.table]
        self.transform = TableTransform(self.tp, [f for f in self.fixes if f.column in self.tp.columns])
        load_semantics(self.plan, self.table)
        self.validator = RecordValidator(self.transform, self.plan.settings)

    def run(self, task: PartitionTask, source: Database, target: Database, worker: str = "") -> PartitionResult:
        """The partition in one transaction. Values the columnar reader cannot decode (a MySQL
        zero date in a DATE column) stop it mid-partition: the transaction rolls back and the
        partition is read again with its dates, times and decimals as text, so that each such
        value is queued with its reason instead of the whole partition failing."""
        try:
            return self._run(task, source, target, worker)
        except SourceValuesUndecodable as exc:
            log.info("kora: %s %s: %s; reading its dates, times and decimals as text", self.table,
                     task.partition_key, exc)
            try:
                return self._run(task, source, target, worker, as_text_fallback=True)
            except SourceValuesUndecodable as again:
                raise SourceValuesUndecodable(f"source values that cannot be read even as text: {again}") from None

    def _run(self, task: PartitionTask, source: Database, target: Database, worker: str,
             as_text_fallback: bool = False) -> PartitionResult:
        t0 = time.perf_counter()
        plan, tp = self.plan, self.tp
        part_col = tp.partitioning.column
        src_where = predicate(tp, task.partition_key, part_col, source.quote) if part_col else None
        tgt_where = predicate(tp, task.partition_key, tp.target_column(part_col), target.quote) if part_col else None
        self.parent_keys.retain(target, {target.qualified(plan.target_name(fk.references), plan.target.schema_)
                                         for fk in tp.foreign_keys})
        reader = SourceReader(source, plan.source.schema_, as_text_fallback=as_text_fallback)
        result = PartitionResult(self.table, task.partition_key, worker=worker or _worker_name())
        chunk = tp.chunk_rows or plan.settings.chunk_rows
        writer = partition_writer(
            target, table=target.qualified(plan.target_name(self.table), plan.target.schema_),
            target_columns=[c.target for c in self.transform.columns],
            primary_key=[tp.target_column(k) for k in tp.primary_key],
            partition_key=task.partition_key, where=tgt_where, plan_table=self.table, run_id=task.run_id,
            keyed=(keyed := has_key_constraints(target, plan, self.table)),
            binary_schema=binary_schema([(c.target, c.ktype) for c in self.transform.columns]),
            plan_partitions=_static_partitions(tp))
        denied = denied_rows(target, plan, self.table)
        # a row's own older version is told apart by its key: without one, the constraint decides
        repeats = bool(tp.unique_sets() and tp.primary_key and (keyed or target.dialect == "sqlite"))
        with writer as tx, PipelinedWrites(tx) as w:
            for batch in reader.batches(self.table, self.transform.source_columns, src_where, chunk):
                result.source_rows += batch.height
                df = self.validator.apply_fixes(self.transform.apply(batch.lazy())).collect()
                df = self._flag_orphans(df, w, target)
                df = flag_unique_conflicts(df, denied, self.tp, self.validator.by_source)
                if repeats:
                    df = self._flag_repeats_of_landed(df, w, target)
                valid, errors, audits = self.validator.split(df)
                w.write_all(valid, errors, audits)
                result.fixed_inline += audits.height
                for cls, n in errors.group_by("error_class").len().iter_rows():
                    result.error_classes[cls] = result.error_classes.get(cls, 0) + n
            w.record_ledger(result.source_rows, time.perf_counter() - t0, result.worker)
        result.landed, result.queued = w.landed, w.queued
        result.seconds = time.perf_counter() - t0  # including the merge and the commit
        result.worker_rss_mib = rss_mib()
        return result

    def _flag_repeats_of_landed(self, df: pl.DataFrame, w, target: Database) -> pl.DataFrame:
        """A table that enforces its unique constraints while loading (SQLite declares them at
        CREATE TABLE; PostgreSQL once the table has its keys, e.g. a scheduled partition after
        cut-over): a row whose unique values another landed row, an earlier chunk of this
        partition or an earlier row of the chunk holds is queued, where its insert would fail
        the whole partition. A landed row with the same key is this row's own older version."""
        tp = self.tp
        table = target.qualified(self.plan.target_name(self.table), self.plan.target.schema_)
        pk_outs = [self.validator.by_source[k].o for k in tp.primary_key]
        pk_seen = [f"__pk_seen{j}" for j in range(len(pk_outs))]
        places = [table] + (["kora_stage"] if getattr(w, "merge", False) else [])
        for i, cols in enumerate(tp.unique_sets()):
            outs = [self.validator.by_source[c].o for c in cols]
            tcols = [tp.target_column(c) for c in cols] + [tp.target_column(k) for k in tp.primary_key]
            present = pl.all_horizontal([pl.col(o).is_not_null() for o in outs])
            keys = df.filter(present).select(outs).unique()
            schema = {**keys.schema, **dict(zip(pk_seen, df.select(pk_outs).dtypes))}
            found = [w.existing_rows(t, tcols, keys.get_column(outs[0]).to_list()) for t in places]
            held = pl.concat([pl.DataFrame(schema=schema)] + [f.rename(dict(zip(f.columns, schema))).cast(schema, strict=False)
                                                              for f in found if f.height])
            other = (df.select(outs + pk_outs).join(held, on=outs, how="inner", nulls_equal=False)
                     .filter(~pl.all_horizontal([pl.col(a).eq_missing(pl.col(b)) for a, b in zip(pk_outs, pk_seen)]))
                     .select(pk_outs).unique().with_columns(pl.lit(True).alias("__held")))
            repeat = present & (pl.col("__held").fill_null(False) | ~pl.struct(outs).is_first_distinct())
            flag = UNIQUE_DENIED.format(i)
            reason = f"duplicate value of unique ({', '.join(tcols[:len(cols)])}): held by an earlier row"
            df = (df.join(other, on=pk_outs, how="left", nulls_equal=False, maintain_order="left")
                  .with_columns(pl.coalesce(pl.col(flag), pl.when(repeat).then(pl.lit(reason))).alias(flag))
                  .drop("__held"))
        return df

    def _flag_orphans(self, df: pl.DataFrame, w, target: Database) -> pl.DataFrame:
        """Add a boolean per FK: does the parent key exist in the target (or in this chunk,
        for a self-reference)? A NULL in any FK column means no reference, as in SQL."""
        plan = self.plan
        for i, fk in enumerate(self.tp.foreign_keys):
            outs = [self.validator.by_source[c].o for c in fk.columns]
            flag = FK_OK.format(i)
            parent = plan.tables[fk.references]
            ref_cols = [parent.target_column(c) for c in fk.ref_columns]
            ptable = target.qualified(plan.target_name(fk.references), plan.target.schema_)
            held = None if fk.references == self.table else self.parent_keys.keys(target, fk.references, ptable, ref_cols)
            found = (held_contains(held, df.get_column(outs[0]), self.parent_keys.dense(target, ptable, ref_cols))
                     if held is not None and len(outs) == 1 else None)
            if found is not None:  # one integer key: a bitmap lookup or binary search per row, no join
                df = df.with_columns(found.fill_null(True).alias(flag))
                continue
            keys = df.select(outs).drop_nulls().unique()
            if held is not None:  # every parent key: look this chunk's few keys up in them
                hits = held_hits(held, keys, outs)
            else:  # a self-reference (this transaction's rows count), or a parent too large to hold
                hits = self._lookup_parents(df, w, fk, ptable, ref_cols, keys, outs)
            df = (df.join(hits.with_columns(pl.lit(True).alias(flag)), on=outs, how="left", nulls_equal=False, maintain_order="left")
                  .with_columns(pl.when(pl.any_horizontal([pl.col(o).is_null() for o in outs])).then(True)
                                .otherwise(pl.col(flag).fill_null(False)).alias(flag)))
        return df

    def _lookup_parents(self, df: pl.DataFrame, w, fk, ptable: str, ref_cols: list[str], keys: pl.DataFrame,
                        outs: list[str]) -> pl.DataFrame:
        """The chunk's keys whose parent is in the target (asked for these keys only) or in this chunk."""
        found = w.existing_rows(ptable, ref_cols, keys.get_column(outs[0]).unique().to_list())
        found = found.rename(dict(zip(found.columns, outs))) if found.width else pl.DataFrame(schema=keys.schema)
        if fk.references == self.table:  # a parent in the same chunk counts (deferred FK)
            own = df.select([pl.col(self.validator.by_source[c].o).alias(o) for c, o in zip(fk.ref_columns, outs)])
            found = pl.concat([found.cast(keys.schema, strict=False), own.cast(keys.schema, strict=False)])
        return keys.join(found.cast(keys.schema, strict=False).unique(), on=outs, how="semi")


class PipelinedWrites:
    """The partition's writer with each chunk's COPYs on a thread, so the next chunk is read,
    transformed and validated while PostgreSQL takes this one (both release the GIL).

    One connection, one statement at a time: every other use of the writer (a parent lookup,
    the ledger) first waits for the chunk in flight, and so does leaving the block, before the
    transaction commits or rolls back; an error of the COPY surfaces at that wait.
    """

    def __init__(self, writer):
        self._w, self._pool, self._pending = writer, ThreadPoolExecutor(1, thread_name_prefix="kora-copy"), None

    def write_all(self, valid: pl.DataFrame, errors: pl.DataFrame, audits: pl.DataFrame) -> None:
        self._wait()
        if self._w.thread_safe:
            self._pending = self._pool.submit(self._write, valid, errors, audits)
        else:  # a SQLite connection belongs to the thread that opened it
            self._write(valid, errors, audits)

    def _write(self, valid, errors, audits) -> None:
        self._w.write(valid)
        self._w.write_errors(errors)
        self._w.write_audits(audits)

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def __getattr__(self, name: str):
        self._wait()
        return getattr(self._w, name)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                self._wait()
            elif self._pending is not None:  # already failing: let the COPY end, keep the first error
                self._pending.exception()
        finally:
            self._pool.shutdown(wait=True)
        return False


def _static_partitions(tp) -> frozenset[str]:
    """The table's partition keys when the plan fixes them (key ranges, one partition); time
    windows grow with the calendar (and would need Dagster in the worker): empty."""
    return frozenset() if tp.partitioning.kind == "time" else frozenset(key_range_keys(tp))


def load_semantics(plan: Plan, table: str) -> None:
    """Read the semantic types the coordinator stored (no model is loaded in a worker)."""
    try:
        from checks.semantic.runtime import prime_table

        prime_table(plan, table, use_model=False)
    except Exception:  # without stored types the plan's explicit `semantic:` fields still apply
        pass


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
