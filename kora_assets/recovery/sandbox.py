"""Proving a candidate fix before anything lands: the sandbox.

For one group (signature) and one candidate chain the sandbox

1. applies the chain, exactly as a worker would apply it inline (a ``LearnedFix``, shape
   guarded), to *every distinct failing value* of the group and runs the full record
   validation: the *fixed fraction* is the share of those values that then pass;
2. applies it to a sample of source rows that pass today and compares: a row that stops
   passing or whose landed values change is a *regression* (there must be none);
3. inserts fixed values and fully valid fixed rows into scratch tables of the target inside
   a transaction that is rolled back, so the target's own types and constraints agree;
4. compares the candidate's outputs with the column's profile (the values that pass), which
   decides between readings that differ only in scale or letter case, and flags implausible
   results (dates after today in a column whose values are all in the past).

``decide`` then picks a winner only if exactly one reading survives; otherwise the group is
ambiguous and waits for a steward.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import logging
from dataclasses import dataclass, field

import polars as pl

from checks.record import FK_OK, RecordValidator, _any, _first_class, column_checks
from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.source import SourceReader
from kora_assets.dbio.unique import denied_rows, flag_unique_conflicts
from kora_assets.dbio.target import _csv_ready
from kora_assets.plan.model import Plan
from kora_assets.recovery.candidates import Candidate
from kora_assets.recovery.classify import (Signature, case_shape_expr, classify_exception, guarded, shape_expr,
                                           shape_kind)
from kora_assets.transforms.casting import ZERO_DATE
from kora_assets.transforms.compiler import CompiledColumn, LearnedFix, TableTransform
from kora_assets.recovery.siblings import apply_sibling_writes, has_cross_column
from kora_assets.transforms.operators import PLACEHOLDERS, check_chain, cross_column_ops

log = logging.getLogger("kora.recovery")
SAMPLE_ROWS = 2000
SCRATCH_ROWS = 200
PROFILE_MIN = 20

_JSON_SAFE = (pl.Decimal, pl.Date, pl.Datetime, pl.Time, pl.Duration, pl.Binary)


def decode_rows(texts: pl.Series, schema: dict[str, pl.DataType], columns: list[str]) -> pl.DataFrame:
    """Queued ``row`` JSON back into a source-typed frame (inverse of the validator's JSON-safe encoding)."""
    dec = {c: (pl.String if isinstance(schema.get(c, pl.String), _JSON_SAFE) or schema.get(c) is None
               else schema[c]) for c in columns}
    df = texts.str.json_decode(dtype=pl.Struct(dec)).struct.unnest() if texts.len() else pl.DataFrame(schema=dec)
    conv = []
    for c in columns:
        t = schema.get(c)
        if t is None or not isinstance(t, _JSON_SAFE):
            continue
        e = pl.col(c)
        if isinstance(t, pl.Binary):
            conv.append(e.str.decode("hex").alias(c))
        elif isinstance(t, pl.Datetime):
            conv.append(e.str.to_datetime(time_unit=t.time_unit, time_zone=t.time_zone, strict=False).alias(c))
        elif isinstance(t, pl.Date):
            conv.append(e.str.to_date(strict=False).alias(c))
        elif isinstance(t, pl.Time):
            conv.append(e.str.to_time(strict=False).alias(c))
        else:
            conv.append(e.cast(t, strict=False).alias(c))
    return df.with_columns(conv) if conv else df


def source_sample(plan: Plan, table: str, source: Database, n: int = SAMPLE_ROWS) -> pl.DataFrame:
    """Up to ``n`` source rows of the table (their dtypes are what the workers read)."""
    tp = plan.tables[table]
    reader = SourceReader(source, plan.source.schema_)
    sql = reader.select_sql(table, list(tp.columns), None) + f" LIMIT {int(n)}"
    try:
        import connectorx as cx

        return pl.from_arrow(cx.read_sql(source.connectorx_url, sql, return_type="arrow"))  # type: ignore[return-value]
    except Exception:
        frames = list(reader._sqlalchemy(sql, list(tp.columns), n))
        return frames[0] if frames else pl.DataFrame(schema={c: pl.String for c in tp.columns})


@dataclass
class Profile:
    """What the passing values of a column look like."""

    n: int = 0
    lo: float | None = None  # 1st percentile (numbers; dates as days)
    hi: float | None = None  # 99th percentile
    vmin: float | None = None
    vmax: float | None = None
    case_shapes: dict = field(default_factory=dict)  # case shape -> share (text)
    future_share: float | None = None  # dates: share of passing values after today

    @property
    def past_column(self) -> bool:
        """A column of past dates (birth, order, signup): a future value there is implausible."""
        return self.n >= PROFILE_MIN and self.future_share is not None and self.future_share <= 0.05

    def numeric_conformance(self, x: pl.Series, temporal: bool = False) -> float | None:
        """Share of ``x`` in the range of the passing values: on a log scale for positive
        numbers (half a decade of margin, so a reading off by a factor of 100 stands out),
        linearly with one span of margin for dates and signed numbers."""
        if self.n < PROFILE_MIN or self.lo is None or x.len() == 0:
            return None
        if not temporal and self.lo > 0:
            lx = x.abs().log10()
            ok = (x == 0) | lx.is_between(float(pl.Series([self.lo]).log10()[0]) - 0.5,
                                           float(pl.Series([self.hi]).log10()[0]) + 0.5)
            return float(ok.fill_null(False).mean())
        span = max(self.hi - self.lo, 1e-9)
        return float(x.is_between(self.lo - span, self.hi + span).mean())

    def text_conformance(self, s: pl.Series) -> float | None:
        if self.n < PROFILE_MIN or not self.case_shapes or s.len() == 0:
            return None
        shapes = pl.DataFrame({"s": s}).select(case_shape_expr(pl.col("s")))["s"]
        common = [k for k, v in self.case_shapes.items() if v >= 0.01]
        return float(shapes.is_in(common).mean())


@dataclass
class Score:
    candidate: Candidate
    fixed_fraction: float = 0.0
    regressions: int = 0
    implausible: int = 0
    db_error: str | None = None
    conformance: float | None = None
    outputs: tuple = ()
    nulled: int = 0  # real (non-placeholder) values the chain turned into NULL

    @property
    def lossy(self) -> bool:
        """A lossy operator, or a chain that 'fixes' real data by deleting it."""
        return self.candidate.lossy or self.nulled > 0

    @property
    def viable(self) -> bool:
        return self.fixed_fraction == 1.0 and self.regressions == 0 and not self.db_error and not self.implausible

    def summary(self) -> dict:
        from kora_assets.recovery.library import ops_to_json

        return {"ops": ops_to_json(self.candidate.ops), "origin": self.candidate.origin,
                "fixed_fraction": round(self.fixed_fraction, 4), "regressions": self.regressions,
                "implausible": self.implausible, "db_error": self.db_error, "nulled": self.nulled,
                "conformance": None if self.conformance is None else round(self.conformance, 3)}


@dataclass
class Decision:
    winner: Score | None
    verdict: str  # accepted | ambiguous | no_fix | lossy
    reason: str
    scores: list[Score] = field(default_factory=list)

    @property
    def best_rejected(self) -> Score | None:
        rest = [s for s in self.scores if s is not self.winner]
        return max(rest, key=lambda s: (s.fixed_fraction, -s.regressions), default=None)


def _to_number(s: pl.Series) -> pl.Series:
    if s.dtype == pl.Date:
        return s.cast(pl.Int32).cast(pl.Float64)
    if isinstance(s.dtype, pl.Datetime):
        return s.dt.date().cast(pl.Int32).cast(pl.Float64)
    return s.cast(pl.Float64, strict=False)


class TableSandbox:
    """The sandbox of one table: its compiled plan, the passing sample and column profiles."""

    def __init__(self, plan: Plan, table: str, source: Database, target: Database, active: list[LearnedFix]):
        self.plan, self.table, self.source, self.target = plan, table, source, target
        self.tp = plan.tables[table]
        self.settings = plan.settings
        self.active = list(active)
        from kora_assets.workers.partition_task import load_semantics

        load_semantics(plan, table)  # re-validation applies the same semantic rules as the workers
        self.denied = denied_rows(target, plan, table)  # repeats of unique values: never landed
        self.sample = source_sample(plan, table, source)
        self.schema = dict(self.sample.schema)
        self._baseline()

    # -- compiled pieces ---------------------------------------------------------------------
    def compiled(self, fixes: list[LearnedFix]) -> tuple[TableTransform, RecordValidator]:
        tr = TableTransform(self.tp, [f for f in fixes if f.column in self.tp.columns])
        return tr, RecordValidator(tr, self.settings)

    def run(self, frame: pl.DataFrame, fixes: list[LearnedFix], fk_ok: bool = True) -> tuple[pl.DataFrame, TableTransform, RecordValidator]:
        tr, val = self.compiled(fixes)
        lf = val.apply_fixes(tr.apply(frame.lazy()))
        if has_cross_column(tr.fixes):  # both halves of a cross-column fix, or neither
            lf = apply_sibling_writes(lf, tr, self.settings)
        df = flag_unique_conflicts(lf.collect(), self.denied, self.tp, tr.by_source)
        if fk_ok:
            df = df.with_columns([pl.lit(True).alias(FK_OK.format(i)) for i in range(len(self.tp.foreign_keys))])
        return df, tr, val

    @staticmethod
    def valid_mask(df: pl.DataFrame, val: RecordValidator) -> pl.Series:
        return df.select(~_any([ck.fails for ck in val.checks]).alias("ok"))["ok"]

    def column(self, source_column: str) -> CompiledColumn:
        return TableTransform(self.tp).by_source[source_column]

    def set_active(self, active: list[LearnedFix]) -> None:
        self.active = list(active)
        self._baseline()

    def _baseline(self) -> None:
        df, tr, val = self.run(self.sample, self.active)
        self.base_ok = self.valid_mask(df, val)
        self.base_out = tr.output_frame(df)
        self.profiles: dict[str, Profile] = {}
        for c in tr.columns:
            ok = df.filter(~_any([ck.fails for ck in column_checks(c, self.tp, self.settings)]))[c.o].drop_nulls()
            p = Profile(n=ok.len())
            if ok.len():
                if c.ktype.is_numeric or c.ktype.is_temporal:
                    x = _to_number(ok).drop_nulls()
                    if x.len():
                        p.lo, p.hi = float(x.quantile(0.01)), float(x.quantile(0.99))
                        p.vmin, p.vmax = float(x.min()), float(x.max())
                        if c.ktype.is_temporal:
                            today = float((dt.date.today() - dt.date(1970, 1, 1)).days)
                            p.future_share = float((x > today).mean())
                elif c.ktype.is_text:
                    shapes = pl.DataFrame({"s": ok.cast(pl.String)}).select(case_shape_expr(pl.col("s")))["s"]
                    p.case_shapes = {k: v / shapes.len() for k, v in shapes.value_counts().iter_rows()}
            self.profiles[c.source] = p

    def passing_frame(self, source_column: str) -> pl.DataFrame:
        """Sample rows whose ``source_column`` passes its checks (with the active fixes): the source
        columns as read, plus ``__value``, the column's landed value as text."""
        c = self.column(source_column)
        df, _, _ = self.run(self.sample, self.active)
        ok = df.filter(~_any([ck.fails for ck in column_checks(c, self.tp, self.settings)]))
        return ok.select(*[pl.col(x) for x in self.tp.columns], pl.col(c.o).cast(pl.String, strict=False).alias("__value"))

    def passing_examples(self, source_column: str, n: int = 8) -> list:
        c = self.column(source_column)
        df, _, _ = self.run(self.sample.head(200), self.active)
        ok = df.filter(~_any([ck.fails for ck in column_checks(c, self.tp, self.settings)]))
        return ok[c.source].cast(pl.String, strict=False).drop_nulls().unique(maintain_order=True).head(n).to_list()

    # -- scoring -----------------------------------------------------------------------------
    def evaluate(self, sig: Signature, source_column: str, group_rows: pl.DataFrame, cand: Candidate) -> Score:
        """Score one candidate on every distinct failing value of the group and on the passing sample."""
        score = Score(cand)
        c = self.column(source_column)
        fix = LearnedFix(-1, source_column, sig.error_class, guarded(cand.ops, shape_kind(sig.error_class), sig.shape))
        fixes = self.active + [fix]
        try:
            check_chain(cand.ops)
            df, tr, val = self.run(group_rows, fixes)
            col_ok = df.select(~_any([ck.fails for ck in column_checks(c, self.tp, self.settings)]).alias("ok"))["ok"]
            score.fixed_fraction = float(col_ok.mean()) if col_ok.len() else 0.0
            outputs = df[c.o]
            score.outputs = tuple(outputs.cast(pl.String, strict=False).to_list())
            for x in cross_column_ops(cand.ops):  # the sibling's values are part of the reading
                if x.sibling in tr.by_source:
                    score.outputs += tuple(df[tr.by_source[x.sibling].o].cast(pl.String, strict=False).to_list())
            raw = df[source_column].cast(pl.String, strict=False)
            key = raw.str.strip_chars().str.to_lowercase()
            sentinel = key.is_in(list(PLACEHOLDERS)) | key.str.contains(ZERO_DATE)
            score.nulled = int((raw.is_not_null() & ~sentinel.fill_null(False) & outputs.is_null()).sum())
            sdf, str_, sval = self.run(self.sample, fixes)
            ok = self.valid_mask(sdf, sval)
            out = str_.output_frame(sdf)
            same = pl.DataFrame({"t": [True] * out.height}) if out.height else None
            if out.height:
                same = out.select(pl.all_horizontal([pl.col(x).eq_missing(self.base_out[x]) for x in out.columns]).alias("t"))
                score.regressions = int((self.base_ok & ~(ok & same["t"])).sum())
            score.implausible = self._implausible(c, outputs)
            score.conformance = self._conformance(c, outputs)
            if score.fixed_fraction == 1.0 and score.regressions == 0:
                valid = tr.output_frame(df.filter(self.valid_mask(df, val)))
                score.db_error = self.scratch_insert(c, outputs.drop_nulls().unique().head(SCRATCH_ROWS),
                                                     valid.head(SCRATCH_ROWS))
        except Exception as exc:  # a candidate that breaks the pipeline is a rejected candidate
            log.info("candidate %s failed in the sandbox: %s", [o.op for o in cand.ops], exc)
            score.db_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        return score

    def _implausible(self, c: CompiledColumn, outputs: pl.Series) -> int:
        if not c.ktype.is_temporal:
            return 0
        p = self.profiles.get(c.source)
        x = _to_number(outputs.drop_nulls())
        today = float((dt.date.today() - dt.date(1970, 1, 1)).days)
        bad = (x < -62_000).sum()  # before ~1800: a parse that took a day for a year
        if p and p.past_column:
            bad += (x > today).sum()  # a column of past dates; a future value is implausible
        return int(bad)

    def _conformance(self, c: CompiledColumn, outputs: pl.Series) -> float | None:
        p = self.profiles.get(c.source)
        if p is None:
            return None
        vals = outputs.drop_nulls()
        if c.ktype.is_numeric or c.ktype.is_temporal:
            return p.numeric_conformance(_to_number(vals).drop_nulls(), temporal=c.ktype.is_temporal)
        if c.ktype.is_text:
            return p.text_conformance(vals.cast(pl.String))
        return None

    def scratch_insert(self, c: CompiledColumn, values: pl.Series, rows: pl.DataFrame) -> str | None:
        """Insert into scratch copies of the target table in a rolled-back transaction; the error, if any."""
        if self.target.dialect != "postgresql":
            return None
        import psycopg

        table = self.target.qualified(self.plan.target_name(self.table), self.plan.target.schema_)
        q = self.target.quote
        try:
            with psycopg.connect(self.target.psycopg_conninfo(), autocommit=False) as conn:
                try:
                    cur = conn.cursor()
                    cur.execute(f"CREATE TEMP TABLE kora_scratch_col ON COMMIT DROP AS SELECT {q(c.target)} FROM {table} WITH NO DATA")
                    _copy(cur, "kora_scratch_col", [c.target], pl.DataFrame({c.target: values}), q)
                    if rows.height:
                        cur.execute(f"CREATE TEMP TABLE kora_scratch_row (LIKE {table} INCLUDING DEFAULTS "
                                    "INCLUDING CONSTRAINTS) ON COMMIT DROP")
                        _copy(cur, "kora_scratch_row", rows.columns, rows, q)
                finally:
                    conn.rollback()
        except Exception as exc:
            cls = classify_exception(exc)
            return f"the target refused the fixed values ({cls.error_class or 'unclassified'}): {str(exc).splitlines()[0][:200]}"
        return None


def _copy(cur, table: str, cols: list[str], df: pl.DataFrame, quote) -> None:
    if df.height == 0:
        return
    buf = io.BytesIO()
    _csv_ready(df).write_csv(buf, include_header=False, null_value="", quote_style="necessary", time_format="%H:%M:%S%.f")
    collist = ", ".join(quote(x) for x in cols)
    with cur.copy(f"COPY {table} ({collist}) FROM STDIN WITH (FORMAT csv)") as cp:
        cp.write(buf.getbuffer())


def decide(scores: list[Score], *, lossy_allowed: bool) -> Decision:
    """The winner among scored candidates, or why there is none."""
    viable = [s for s in scores if s.viable]
    if not viable:
        best = max(scores, key=lambda s: (s.fixed_fraction, -s.regressions), default=None)
        if best is None:
            return Decision(None, "no_fix", "no candidate fix", scores)
        bits = [f"best candidate fixes {best.fixed_fraction:.0%} of the values"]
        if best.regressions:
            bits.append(f"changes {best.regressions} passing row(s)")
        if best.implausible:
            bits.append(f"gives {best.implausible} implausible value(s)")
        if best.db_error:
            bits.append(best.db_error)
        return Decision(None, "no_fix", "no candidate passed the sandbox: " + "; ".join(bits), scores)
    if any(not s.lossy for s in viable):  # a lossless reading beats any lossy one
        viable = [s for s in viable if not s.lossy]
    readings: dict[tuple, list[Score]] = {}
    for s in viable:
        readings.setdefault(s.outputs, []).append(s)
    if len(readings) > 1:
        ranked = sorted(readings.values(), key=lambda g: -(max((x.conformance or 0.0) for x in g)))
        top = max((x.conformance or 0.0) for x in ranked[0])
        second = max((x.conformance or 0.0) for x in ranked[1])
        if not (top >= 0.9 and second <= top - 0.3):
            a, b = ranked[0][0], ranked[1][0]
            k = next((i for i, (x, y) in enumerate(zip(a.outputs, b.outputs)) if x != y), 0)
            return Decision(None, "ambiguous", (
                f"ambiguous: candidates disagree ({_ops(a)} gives {a.outputs[k]!r}, {_ops(b)} gives {b.outputs[k]!r}) "
                f"and the column's passing values do not decide it"), scores)
        viable = ranked[0]
    winner = sorted(viable, key=lambda s: (s.lossy, s.candidate.origin != "library",
                                           s.candidate.origin == "llm", len(s.candidate.ops)))[0]
    if winner.lossy and not lossy_allowed:
        what = (f"turns {winner.nulled} real value(s) into NULL" if winner.nulled and not winner.candidate.lossy
                else "is lossy")
        return Decision(winner, "lossy", (f"the fix {_ops(winner)} {what}; it applies only where the plan sets "
                                          "settings.lossy_fixes_allowed"), scores)
    return Decision(winner, "accepted", f"{_ops(winner)} fixes every value, changes no passing row", scores)


def _ops(s: Score) -> str:
    from kora_assets.recovery.library import describe_ops

    return describe_ops(s.candidate.ops)


def queue_table(target: Database) -> str:
    return bookkeeping_table(target, "error_queue")


def group_frame(long: pl.DataFrame) -> pl.DataFrame:
    """Failures (one row per row x column) grouped by signature."""
    return long.group_by("error_class", "column", "target_column", "shape", maintain_order=True).agg(
        pl.col("__qid").unique().alias("qids"), pl.col("raw").unique().alias("values"), pl.len().alias("rows"))


def column_failures(df: pl.DataFrame, transform: TableTransform, plan: Plan, table: str) -> pl.DataFrame:
    """Per row and column, the first failing check's class: every problem of a row, not only its first."""
    tp, settings = plan.tables[table], plan.settings
    parts = []
    for c in transform.columns:
        cls = _first_class(column_checks(c, tp, settings))
        parts.append(df.select(
            pl.col("__qid"), pl.lit(c.source).alias("column"), pl.lit(c.target).alias("target_column"),
            cls.alias("error_class"), pl.col(c.source).cast(pl.String, strict=False).alias("raw"))
            .filter(pl.col("error_class").is_not_null()))
    long = pl.concat(parts) if parts else pl.DataFrame()
    if long.height == 0:
        return long.with_columns(pl.lit("").alias("shape"))
    return long.with_columns(shape_by_class(pl.col("raw"), pl.col("error_class")).alias("shape"))


def shape_by_class(raw: pl.Expr, cls: pl.Expr) -> pl.Expr:
    from kora_assets.recovery.classify import _DATE_KIND, _NUMBER_KIND, _WORD_KIND

    return (pl.when(cls.is_in(list(_DATE_KIND))).then(shape_expr(raw, "date"))
            .when(cls.is_in(list(_NUMBER_KIND))).then(shape_expr(raw, "number"))
            .when(cls.is_in(list(_WORD_KIND))).then(shape_expr(raw, "word"))
            .otherwise(pl.lit("*")))


def dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
