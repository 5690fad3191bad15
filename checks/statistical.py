"""Statistical check: does each target column hold the distribution the plan says it should?

The source side is "what the target should hold": for a column without a ``transform`` that
is the source column itself; for a transformed column it is the source sample passed through
the plan's operator chain (``apply_chain``) and cast to the column's polars dtype, exactly as
a worker would write it. ``char(n)`` values are compared without their blank padding.

How the numbers are obtained (no full-table pulls; source and target run concurrently):

* **Exact aggregates the rules lean on, always pushed down** (one ``SELECT`` per side): row
  count, non-null counts (of columns nullable on that side), the ``true`` count of booleans,
  and the mean of numbers, except above ``exact_max_rows`` where the samples pair up: there
  a faithful copy gives identical samples, so the paired mean difference is the copy's own,
  not sampling noise, and a pushed-down mean per number column cost MariaDB 0.5 s per 6M rows
  (TPC-H SF1 lineitem, 2-core machine: ``COUNT(*)`` and 8 means 8 s, ``COUNT(*)`` alone 1.3 s
  from a covering index). What paired means miss is a shift confined to rows outside the
  sample, a few rows' worth: the plan's record-level rules own single rows.
* **Further exact aggregates, pushed down up to ``exact_max_rows``** (default 100k rows):
  standard deviation of numbers, min/max of numbers, dates and times (shown, never judged:
  see below), ``COUNT(DISTINCT)``
  (MySQL text compared as ``BINARY`` so case-insensitive collations do not merge values
  PostgreSQL keeps apart), min/max/mean/stddev of text *length* (text min/max depend on
  collation, so they are not compared), per-category counts (``SUM(CASE WHEN col = 'x'
  ...)``, categories from the samples plus an ``(other)`` bucket). Above that size these come
  from the paired samples: on TPC-H SF1 in MariaDB every extra aggregate over 6M rows costs
  0.2-0.6 s (a ``COUNT(DISTINCT)`` several seconds, more than the whole sample); on the 200k
  rows of ``part`` the exact set took 2.4 s against 0.4 s for the samples; and paired
  samples lose little (a category remap moving 0.5% of rows still shows up in ~100 sampled
  rows).
  Transformed columns cannot be pushed down on the source side; they use the samples.
* **Samples, drawn in the database**, ``sample_rows`` per side. With an integer first
  primary-key column both sides read the *same* rows (paired), so sampling noise cancels and
  a faithful copy gives identical samples: ~500 key ranges spread evenly (random phase from
  ``seed``) over ``[min(k), max(k)]``, each an index range scan, so the sample costs
  milliseconds, not a scan. Where keys are too sparse for that, the rows whose scrambled key
  ``((k mod P)*48271 + seed) mod m`` is 0 (one scan, no sort). Without such a key:
  ``ORDER BY random() LIMIT n`` (PostgreSQL, seeded with ``setseed``) / ``ORDER BY RAND(seed)
  LIMIT n`` (MySQL): independent samples, and the rules below then also demand statistical
  significance for mean shifts. Tables up to ``sample_rows`` are read whole (paired).
  Quantiles (p1, p25, p50, p75, p99) and the tests run on the samples.

Rules (a column is flagged when any rule fires; each is a threshold key, see below):

* ``null_frac_abs``: absolute difference of the null fractions.
* ``distinct_rel``: relative difference of distinct counts of discrete columns (text,
  boolean, integers, dates), exact or on paired samples. Continuous columns are shown only:
  harmless noise below the display precision changes their distinct count.
* ``mean_rel_shift`` / ``mean_std_shift``: the mean moved by more than this fraction of the
  source mean (or of a tenth of the standard deviation when the mean is near zero, so centred
  columns do not flag on noise), or by more than this many source standard deviations.
  This is the rule that catches a systematic shift too small to see on single rows, e.g. a
  rounding transform that moves an average order value by 3%. On text it applies to lengths.
* ``std_rel_shift``: relative change of the standard deviation.
* ``ks_d_min`` (numeric, temporal, non-categorical text lengths): two-sample
  Kolmogorov–Smirnov on the samples; flagged only if ``p < alpha / n_tests`` *and*
  ``D >= ks_d_min``. The p-value alone is not enough: with 20k rows KS finds shifts far too
  small to matter, and with 40 columns one of them will look "significant" by chance.
* ``tvd_max`` (categorical: text or boolean with at most ``max_categories`` values):
  chi-square on the category counts; flagged only if ``p < alpha / n_tests`` *and* the total
  variation distance (half the sum of absolute share differences, i.e. the share of rows
  that would have to change category) is at least ``tvd_max``. A remapped category moves
  its whole share, so it is caught; a handful of quarantined rows is not.

Minima and maxima are shown, not judged: an extreme is one row, and the plan's record-level
rules own single rows; a distribution check that fires on one outlier would also fire on
every orphan or quarantined row and drown real shifts.

Thresholds (``thresholds={'column': {...}, '*': {...}}``; ``*`` applies to every column,
target column names are the keys; the plan will get a field for this):

============== ======== ==================================================================
key            default  how to choose
============== ======== ==================================================================
alpha          0.001    family-wise false-alarm rate per check run, Bonferroni-split over
                        the tests run. Lower it for wide tables checked on every partition.
mean_rel_shift 0.005    the smallest relative change of the mean you would call a defect.
                        Money: 0.5% (a 3% rounding bias is six times that). Noisy sensor
                        data: 1-2%. A value below the transform's own legitimate effect
                        (e.g. rounding to cents on values ~1) flags correct migrations.
mean_std_shift 0.05     shift in source standard deviations; catches shifts of columns
                        whose mean is large compared to their spread (years, ids).
std_rel_shift  0.01     relative change of the spread: clipping, bucketing, unit mix-ups.
null_frac_abs  0.001    share of rows that may gain or lose NULL (e.g. via null_if) beyond
                        what the source-after-transforms shows: ~ your quarantine rate.
distinct_rel   0.01     relative change of distinct counts: merged or split values.
ks_d_min       0.02     largest CDF gap tolerated; ~ the share of rows that may move.
tvd_max        0.005    share of rows that may change category: ~ your quarantine rate.
max_categories 50       text/boolean columns with at most this many values are
                        categorical (chi-square); others are compared by length.
row_count_rel  0.01     ('*' only) row-count difference; conservation is the completeness
                        check's job, this is a coarse guard.
skip           false    true: do not check the column (free text, hashes, ...).
============== ======== ==================================================================

Rule of thumb: set the effect-size thresholds (``*_shift``, ``*_abs``, ``ks_d_min``,
``tvd_max``) to the largest difference that would *not* change a business decision, and the
quarantine rate of the table as a floor; leave ``alpha`` alone unless the check runs on
hundreds of columns or partitions.
"""
from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import sqlalchemy as sa
from scipy import stats as sps

from checks.outcome import (CheckOutcome, finding, findings_markdown, is_mysql, mysql_schema, outcome_from,
                            source_schema, table_ref, target_schema, to_markdown_table)
from kora_assets.dbio.connections import reflect_columns
from kora_assets.dbio.source import WKT, columns_read_as_text
from kora_assets.errors import recoverable
from kora_assets.plan.types import KoraType
from kora_assets.transforms.casting import cast_expr
from kora_assets.transforms.operators import apply_chain

DEFAULTS: dict[str, Any] = {
    "alpha": 0.001, "mean_rel_shift": 0.005, "mean_std_shift": 0.05, "std_rel_shift": 0.01,
    "null_frac_abs": 0.001, "distinct_rel": 0.01, "ks_d_min": 0.02, "tvd_max": 0.005,
    "max_categories": 50, "row_count_rel": 0.01, "skip": False,
}
QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
_PRIME = 2147483647  # keys are reduced mod a prime, then scrambled: no periodicity with the key
_MULT = 48271
_BLOCK_ROWS = 40  # rows per key range of a block sample: small blocks, many of them
OTHER = "(other)"


@dataclass
class _Col:
    """One plan column as the check sees it."""

    source: str
    target: str
    ktype: KoraType
    ops: list
    th: dict[str, Any]
    pushdown: bool = True  # False: both sides come from the samples (e.g. transformed columns)
    categorical: bool = False
    categories: list = field(default_factory=list)
    nullable: dict[str, bool] = field(default_factory=dict)  # side -> nullable in that catalog

    @property
    def kind(self) -> str:
        kt = self.ktype
        if kt.name == "boolean":
            return "boolean"
        if kt.is_numeric:
            return "numeric"
        if kt.is_temporal:
            return "temporal"
        if kt.name in ("text", "varchar", "char"):
            return "text"
        return "other"  # json, uuid, bytes: counts and nulls only

    @property
    def discrete(self) -> bool:
        """Distinct counts mean something: categories, keys, days; not measurements."""
        kt = self.ktype
        return (self.kind in ("text", "boolean") or kt.is_integer or kt.name == "date"
                or (kt.name == "numeric" and kt.precision is not None and not kt.scale))


@dataclass
class _Side:
    """Everything known about one side of one column, and whether it is exact or sampled."""

    rows: int = 0
    nonnull: int | None = None
    distinct: int | None = None
    min: Any = None
    max: Any = None
    mean: float | None = None
    std: float | None = None
    quantiles: list[float] | None = None
    counts: dict[Any, int] | None = None  # categorical
    values: Any = None  # numbers for KS (numpy): values, day/µs counts or text lengths
    moments_exact: bool = True  # the mean (of values, or of text lengths)
    std_exact: bool = True
    distinct_exact: bool = True
    counts_exact: bool = True

    @property
    def null_frac(self) -> float | None:
        if self.nonnull is None or not self.rows:
            return None
        return (self.rows - self.nonnull) / self.rows


@dataclass
class _Sampling:
    """How both sides draw their sample; the same object for both, so the rows pair up."""

    kind: str  # "all" | "blocks" | "modulo" | "random"
    key: _Key | None = None
    ranges: list[tuple[int, int]] = field(default_factory=list)
    modulus: int = 1

    @property
    def paired(self) -> bool:
        return self.kind != "random"

    def describe(self) -> str:
        return {"all": "whole table (paired)",
                "blocks": f"paired: {len(self.ranges)} key ranges of {self.key.target if self.key else ''}",
                "modulo": f"paired: 1 in {self.modulus} by scrambled {self.key.target if self.key else ''}",
                "random": "independent random samples"}[self.kind]


def check_statistics(plan, table: str, source_engine: sa.Engine, target_engine: sa.Engine, *,
                     where_source: str | sa.ColumnElement | None = None,
                     where_target: str | sa.ColumnElement | None = None,
                     sample_rows: int = 20000, seed: int = 20240611,
                     thresholds: dict[str, dict[str, Any]] | None = None,
                     exact_max_rows: int = 100_000,
                     severity: str = "warn") -> CheckOutcome:
    """Compare per-column distributions of source-after-transforms and target; see module doc.

    ``where_source``/``where_target`` restrict both sides to one partition (SQL text or a
    SQLAlchemy expression). ``severity`` is what a failing outcome reports: statistical
    evidence is strong but not proof, so the default is ``warn``.
    """
    tp = plan.tables[table]
    tgt_name = plan.target_name(table)
    src = _Endpoint(source_engine, source_schema(plan, source_engine), table, where_source, "source")
    tgt = _Endpoint(target_engine, target_schema(plan, target_engine), tgt_name, where_target, "target")
    findings: list[dict] = []
    cols = _columns(tp, thresholds or {}, src, tgt, findings)
    pushed = [c for c in cols if c.pushdown]
    # Two servers, so both sides always run at once. On a large table the aggregate scans do
    # not need the samples (no category list), so they start first and the samples overlap them.
    with ThreadPoolExecutor(max_workers=4) as pool:
        both = lambda f: [pool.submit(f, src), pool.submit(f, tgt)]  # noqa: E731
        est = max(*[f.result() for f in both(lambda e: e.estimate_rows())], 1)
        exact = est <= exact_max_rows
        key = _sample_key(tp, src, tgt)
        means = exact or key is None  # a large table with a key: its paired samples carry the means
        aggs = None if exact else both(lambda e: e.aggregate(pushed, False, means))
        sampling = _plan_sampling(key, src, est, sample_rows, seed)
        s_raw, t_raw = [f.result() for f in both(lambda e: e.sample(cols, sampling, sample_rows, seed))]
        if sampling.kind == "blocks" and s_raw.height < sample_rows // 4:  # keys too sparse for ranges
            sampling = _Sampling("modulo", sampling.key, modulus=max(1, math.ceil(est / sample_rows)))
            s_raw, t_raw = [f.result() for f in both(lambda e: e.sample(cols, sampling, sample_rows, seed))]
        s_df = _source_after_transforms(s_raw, cols, findings)
        t_df = _cast_target(t_raw, cols)
        _mark_categorical(cols, s_df, t_df)
        if aggs is None:  # small table: exact category counts need the categories seen in the samples
            aggs = both(lambda e: e.aggregate(pushed, True))
        s_agg, t_agg = [f.result() for f in aggs]
    table_th = {**DEFAULTS, **(thresholds or {}).get("*", {})}
    _row_count_rule(s_agg["__rows__"], t_agg["__rows__"], table_th, findings)
    results = [_column_sides(c, s_agg, t_agg, s_df, t_df, exact) for c in cols]
    n_tests = max(1, sum(_n_tests(s, t, sampling.paired) for _, s, t in results))
    verdicts = [_judge(c, s, t, sampling.paired, n_tests, findings) for c, s, t in results]
    return _outcome(tgt_name, table, results, verdicts, findings, s_agg["__rows__"], t_agg["__rows__"],
                    sampling, s_df.height, t_df.height, severity)


# --- endpoints: where the SQL runs ---------------------------------------------------------

class _Endpoint:
    """One side (source or target) of one table: sizing, sampling and pushed-down aggregates."""

    def __init__(self, engine: sa.Engine, schema: str | None, table: str, where, side: str):
        self.engine, self.schema, self.table, self.side = engine, schema, table, side
        self.where = sa.text(where) if isinstance(where, str) else where
        self.dialect = engine.dialect.name
        self.columns: dict[str, dict[str, Any]] = {}

    def name(self, c: _Col) -> str:
        return c.source if self.side == "source" else c.target

    def reflect(self) -> dict[str, dict[str, Any]]:
        if not self.columns:
            insp = sa.inspect(self.engine)
            self.columns = {c["name"]: c for c in reflect_columns(insp, self.table, self.schema)}
        return self.columns

    def ref(self, names) -> sa.TableClause:
        return table_ref(self.table, list(dict.fromkeys(names)), self.schema)

    def _readable(self, col, name: str):
        """What connectorx cannot decode read as text (``columns_read_as_text``), compared as
        numbers or times after ``_coerce``."""
        as_text = columns_read_as_text(self.engine, self.table, self.schema)
        if name not in as_text:
            return col
        return (sa.func.ST_AsText(col) if as_text[name] == WKT else sa.cast(col, sa.Text)).label(name)

    def _filtered(self, stmt):
        return stmt.where(self.where) if self.where is not None else stmt

    def estimate_rows(self) -> int:
        """Catalog estimate when it is cheap and the whole table is meant; COUNT(*) otherwise.

        The estimate only sizes the sample; every compared count comes from the aggregates.
        """
        est = self._catalog_rows() if self.where is None else None
        if est is None or est < 100_000:
            with self.engine.connect() as conn:
                est = conn.execute(self._filtered(sa.select(sa.func.count()).select_from(self.ref([])))).scalar_one()
        return int(est)

    def _catalog_rows(self) -> int | None:
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    v = conn.execute(sa.text(
                        "SELECT c.reltuples FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE c.relname = :t AND n.nspname = :s"), {"t": self.table, "s": self.schema or "public"}
                    ).scalar()
                elif is_mysql(self.engine):
                    v = conn.execute(sa.text(
                        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_NAME = :t "
                        "AND TABLE_SCHEMA = :s"), {"t": self.table, "s": mysql_schema(conn, self.schema)}).scalar()
                else:
                    return None
        except sa.exc.DBAPIError:
            return None
        return int(v) if v is not None and v > 0 else None

    def key_range(self, key: str) -> tuple[int, int] | None:
        t = self.ref([key])
        with self.engine.connect() as conn:
            lo, hi = conn.execute(self._filtered(sa.select(sa.func.min(t.c[key]), sa.func.max(t.c[key])))).one()
        return None if lo is None else (int(lo), int(hi))

    def sample(self, cols: list[_Col], how: _Sampling, n: int, seed: int) -> pl.DataFrame:
        """Rows drawn in the database: the same keys on both sides unless ``how`` is random."""
        names = [self.name(c) for c in cols]
        key = (how.key.source if self.side == "source" else how.key.target) if how.key else None
        t = self.ref(names + ([key] if key else []))
        stmt = self._filtered(sa.select(*[self._readable(t.c[c], c) for c in names]))
        if how.kind == "blocks":
            k = t.c[key]
            stmt = stmt.where(sa.or_(*[sa.and_(k >= lo, k < hi) for lo, hi in how.ranges]))
        elif how.kind == "modulo":
            k = sa.cast(t.c[key], sa.BigInteger)
            stmt = stmt.where(((k % _PRIME) * _MULT + seed) % how.modulus == 0)
        if how.kind != "random":  # a cap in key order: even a badly estimated size keeps the pairs
            stmt = (stmt.order_by(t.c[key]) if key else stmt).limit(3 * n)
        else:
            rnd = sa.func.rand(seed) if is_mysql(self.engine) else sa.func.random()
            stmt = stmt.order_by(rnd).limit(n)
        if how.kind in ("blocks", "all"):
            arrow = self._fetch_arrow(stmt)
            if arrow is not None:
                return arrow
        with self.engine.connect() as conn:
            if how.kind == "random" and self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.setseed((seed % 1000) / 1000.0)))
            rows = conn.execute(stmt).all()
        return _frame(names, rows)

    def _fetch_arrow(self, stmt) -> pl.DataFrame | None:
        """The sample through connectorx (Arrow, decoded outside the GIL) when it can; else None.

        Only for plain range/whole-table selects: their literal SQL is dialect-neutral enough
        (no ``%`` operators that a ``format`` paramstyle would double, no session seed).
        """
        backend = self.engine.url.get_backend_name()
        scheme = {"mysql": "mysql", "mariadb": "mysql", "postgresql": "postgresql"}.get(backend)
        if scheme is None:
            return None
        try:
            import connectorx as cx

            sql = str(stmt.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
            query = {k: v for k, v in self.engine.url.query.items() if k not in ("charset", "local_infile")}
            url = self.engine.url.set(drivername=scheme, query=query).render_as_string(hide_password=False)
            return pl.from_arrow(cx.read_sql(url, sql, return_type="arrow"))
        except BaseException as exc:  # any gap in connectorx's type or URL support: the DBAPI path below
            if not recoverable(exc):
                raise
            return None

    def aggregate(self, cols: list[_Col], exact: bool, means: bool = True) -> dict[str, Any]:
        """One pushed-down SELECT with every aggregate the comparison needs (module doc)."""
        t = self.ref([self.name(c) for c in cols])
        exprs: dict[str, sa.ColumnElement] = {"__rows__": sa.func.count()}
        for c in cols:
            exprs.update(self._column_aggregates(c, t.c[self.name(c)], exact, means))
        labelled = [e.label(f"a{i}") for i, e in enumerate(exprs.values())]
        with self.engine.connect() as conn:
            row = conn.execute(self._filtered(sa.select(*labelled).select_from(t))).one()
        out = dict(zip(exprs.keys(), row))
        if self.dialect == "sqlite":  # the "std" aggregates hold E[x^2]; finish them here
            for c in cols:
                p = f"{c.target}\x00"
                if out.get(p + "std") is not None and out.get(p + "mean") is not None:
                    out[p + "std"] = _std_from(float(out[p + "mean"]), float(out[p + "std"]),
                                               out.get(p + "nonnull", out["__rows__"]))
        return out

    def _column_aggregates(self, c: _Col, col, exact: bool, means: bool = True) -> dict[str, Any]:
        kind, p = c.kind, f"{c.target}\x00"
        out = {}
        if c.nullable.get(self.side, True):  # NOT NULL in this catalog: non-null count = rows
            out[p + "nonnull"] = sa.func.count(col)
        x = sa.cast(col, sa.Float) if self.dialect == "sqlite" else col
        if kind == "numeric" and means:
            out[p + "mean"] = sa.func.avg(x)
        elif kind == "boolean":
            out[p + "cat\x00true"] = sa.func.sum(sa.case((sa.cast(col, sa.Integer) != 0, 1), else_=0))
        if not exact:
            return out
        if kind in ("numeric", "temporal"):
            out.update({p + "min": sa.func.min(col), p + "max": sa.func.max(col)})
        if kind == "numeric":
            out[p + "std"] = self._stddev(x)
        if kind in ("numeric", "temporal", "text", "boolean") and c.discrete:
            out[p + "distinct"] = sa.func.count(sa.distinct(self._binary(col) if kind == "text" else col))
        if kind == "text":
            n = sa.func.length(col) if self.dialect == "sqlite" else sa.func.char_length(col)
            out.update({p + "min": sa.func.min(n), p + "max": sa.func.max(n), p + "mean": sa.func.avg(n),
                        p + "std": self._stddev(n)})
        if c.categorical and kind == "text":
            for i, v in enumerate(c.categories):
                hit = self._binary(col) == self._binary(sa.literal(v, sa.String))
                out[p + "cat\x00" + str(i)] = sa.func.sum(sa.case((hit, 1), else_=0))
        return out

    def _binary(self, e):
        """Compare text byte-wise on MySQL, whose default collations ignore case and trailing blanks."""
        return sa.cast(e, sa.LargeBinary) if is_mysql(self.engine) else e

    def _stddev(self, x):
        if self.dialect == "sqlite":  # no STDDEV in SQLite: from the first two moments
            return sa.func.avg(x * x)
        return sa.func.stddev_samp(x)


def _frame(names: list[str], rows) -> pl.DataFrame:
    """Sample rows as a polars frame, one column at a time so odd DBAPI types degrade to text."""
    data = {}
    for i, name in enumerate(names):
        values = [r[i] for r in rows]
        try:
            data[name] = pl.Series(name, values, strict=False)
        except BaseException as exc:  # e.g. decimals of several scales (an unconstrained numeric)
            if not recoverable(exc):
                raise
            data[name] = pl.Series(name, [None if v is None else str(v) for v in values], dtype=pl.String)
    return pl.DataFrame(data) if data else pl.DataFrame()


# --- which columns, compared how -----------------------------------------------------------

def _columns(tp, thresholds, src: _Endpoint, tgt: _Endpoint, findings) -> list[_Col]:
    src_cols, tgt_cols = src.reflect(), tgt.reflect()
    out = []
    for name, cp in tp.columns.items():
        target = cp.target or name
        th = {**DEFAULTS, **thresholds.get("*", {}), **thresholds.get(target, {})}
        unknown = set(th) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown threshold key(s) {sorted(unknown)} for column {target!r}; "
                             f"known: {sorted(DEFAULTS)}")
        if th["skip"]:
            continue
        if name not in src_cols or target not in tgt_cols:
            side = "source" if name not in src_cols else "target"
            findings.append(finding("not_compared", f"column missing on the {side} side (the structural check "
                                    "reports it)", column=target, level="info"))
            continue
        c = _Col(name, target, cp.ktype, list(cp.transform), th,
                 nullable={"source": bool(src_cols[name]["nullable"]), "target": bool(tgt_cols[target]["nullable"])})
        c.pushdown = (not c.ops and _pushdown_ok(c.kind, src_cols[name]["type"])
                      and _pushdown_ok(c.kind, tgt_cols[target]["type"]))
        out.append(c)
    return out


def _pushdown_ok(kind: str, sql_type) -> bool:
    """Aggregates run on a raw column only if it already has the plan's kind of type; a number
    stored as text (converted on write) is compared via the cast sample instead."""
    py = _python_type(sql_type)
    if kind == "numeric":
        return py in (int, float) or py.__name__ == "Decimal"
    if kind == "temporal":
        return py.__module__ == "datetime"
    if kind == "boolean":
        return py in (bool, int)
    if kind == "text":
        return py is str
    return True


def _python_type(t):
    try:
        return t.python_type
    except NotImplementedError:
        return object


@dataclass
class _Key:
    source: str
    target: str


def _sample_key(tp, src: _Endpoint, tgt: _Endpoint) -> _Key | None:
    """The first primary-key column if it is an integer on both sides: it pairs the samples."""
    if not tp.primary_key:
        return None
    k = tp.primary_key[0]
    cp = tp.columns[k]
    target = cp.target or k
    st, tt = src.reflect().get(k), tgt.reflect().get(target)
    if not cp.ktype.is_integer or st is None or tt is None:
        return None
    if _python_type(st["type"]) is not int or _python_type(tt["type"]) is not int:
        return None
    return _Key(k, target)


def _plan_sampling(key: _Key | None, src: _Endpoint, est: int, n: int, seed: int) -> _Sampling:
    """Whole table if small; else key-range blocks (same ranges on both sides); else random."""
    if est <= n:
        return _Sampling("all", key)
    if key is None:
        return _Sampling("random")
    bounds = src.key_range(key.source)
    if bounds is None:
        return _Sampling("all", key)
    lo, hi = bounds
    n_blocks = max(1, min(500, n // _BLOCK_ROWS))
    span = hi - lo + 1
    width = max(1, int(span * (n / est) / n_blocks))
    step = span / n_blocks
    phase = (seed % 9973) / 9973 * max(step - width, 0)
    ranges = []
    for i in range(n_blocks):
        a = lo + int(i * step + phase)
        ranges.append((a, a + width))
    return _Sampling("blocks", key, ranges=ranges)


def _coerce(s: pl.Series, c: _Col) -> pl.Series:
    """The plan's dtype, as a worker would write it; char(n) padding is not data (MySQL strips
    it, PostgreSQL pads), and dates stored as text (SQLite) are parsed, not cast."""
    dtype = c.ktype.polars_dtype()
    if c.kind == "numeric" and dtype == pl.String:  # an unconstrained numeric travels as text: compared as numbers
        dtype = pl.Float64
    if s.dtype == pl.String and c.kind == "temporal":
        if c.ktype.name == "time":
            s = s.str.to_time(strict=False)
        else:
            parsed = s.str.to_datetime(time_unit="us", strict=False)
            s = parsed.dt.date() if c.ktype.name == "date" else parsed
    if isinstance(dtype, pl.Decimal):  # rounded as the workers round (half away from zero)
        s = s.to_frame("v").select(cast_expr(pl.col("v"), c.ktype, s.dtype)).to_series().alias(s.name)
    out = s.cast(dtype, strict=False)
    return out.str.strip_chars_end(" ") if c.ktype.name == "char" else out


def _source_after_transforms(raw: pl.DataFrame, cols: list[_Col], findings) -> pl.DataFrame:
    """The source sample as the target should hold it: plan transforms, then the plan's dtype."""
    out = {}
    for c in cols:
        try:
            chained = raw.select(apply_chain(pl.col(c.source), c.ops)).to_series() if c.ops else raw[c.source]
            out[c.target] = _coerce(chained, c).alias(c.target)
        except Exception as exc:  # a chain that does not fit the data is the plan's problem, not ours
            findings.append(finding("transform_error", f"transform chain does not apply to the source sample: "
                                    f"{str(exc).splitlines()[0]}", column=c.target, level="warn"))
            out[c.target] = pl.Series(c.target, [None] * raw.height, dtype=c.ktype.polars_dtype())
    return pl.DataFrame(out, height=raw.height) if out else pl.DataFrame()


def _cast_target(raw: pl.DataFrame, cols: list[_Col]) -> pl.DataFrame:
    out = {c.target: _coerce(raw[c.target], c).alias(c.target) for c in cols}
    return pl.DataFrame(out, height=raw.height) if out else pl.DataFrame()


def _mark_categorical(cols: list[_Col], s_df: pl.DataFrame, t_df: pl.DataFrame) -> None:
    """Text columns with few values are categories: chi-square on their counts, not lengths."""
    for c in cols:
        if c.kind == "boolean":
            c.categorical = True
            continue
        if c.kind != "text":
            continue
        values = pl.concat([s_df[c.target].drop_nulls(), t_df[c.target].drop_nulls()]).unique()
        nonnull = max(s_df[c.target].drop_nulls().len(), 1)
        if len(values) <= c.th["max_categories"] and len(values) <= max(2, nonnull // 2):
            c.categorical = True
            c.categories = sorted(values.to_list())


# --- per-column sides ------------------------------------------------------------------------

def _column_sides(c: _Col, s_agg, t_agg, s_df, t_df, exact: bool):
    if c.pushdown:
        s_side, t_side = _from_aggregates(c, s_agg), _from_aggregates(c, t_agg)
        if not exact:  # the expensive statistics come from the (paired) samples
            _fill_from_sample(c, s_side, s_df[c.target])
            _fill_from_sample(c, t_side, t_df[c.target])
    else:
        # Source after transforms exists only as a sample: compare it to the target's sample
        # (the same rows when paired), not to the target's exact aggregates.
        s_side, t_side = _from_sample(c, s_df[c.target]), _from_sample(c, t_df[c.target])
    for side, df in ((s_side, s_df), (t_side, t_df)):
        _add_sample_shape(c, side, df[c.target])
    return c, s_side, t_side


def _from_aggregates(c: _Col, agg: dict) -> _Side:
    p = f"{c.target}\x00"
    rows = int(agg["__rows__"])
    side = _Side(rows=rows, nonnull=_int(agg.get(p + "nonnull", rows)),
                 distinct=_int(agg.get(p + "distinct")), min=agg.get(p + "min"), max=agg.get(p + "max"),
                 mean=_float(agg.get(p + "mean")), std=_float(agg.get(p + "std")))
    if c.kind == "boolean":
        trues = _int(agg.get(p + "cat\x00true")) or 0
        side.counts = {True: trues, False: (side.nonnull or 0) - trues}
    elif c.categorical and (p + "cat\x000") in agg:
        counts = {v: _int(agg.get(p + "cat\x00" + str(i))) or 0 for i, v in enumerate(c.categories)}
        counts[OTHER] = (side.nonnull or 0) - sum(counts.values())
        side.counts = counts
    return side


def _from_sample(c: _Col, s: pl.Series) -> _Side:
    nn = s.drop_nulls()
    side = _Side(rows=len(s), nonnull=len(nn), moments_exact=False, std_exact=False, distinct_exact=False,
                 counts_exact=False)
    if c.kind != "text":
        x = _numeric_view(c, nn)
        if x is not None and len(x):
            side.min, side.max = nn.min(), nn.max()
            if c.kind == "numeric":
                side.mean, side.std = float(x.mean()), (float(x.std()) if len(x) > 1 else 0.0)
    _fill_from_sample(c, side, s)
    return side


def _fill_from_sample(c: _Col, side: _Side, s: pl.Series) -> None:
    """Distinct count, min/max, text-length moments and category counts from the sample."""
    nn = s.drop_nulls()
    side.distinct, side.distinct_exact = (nn.n_unique() if c.discrete else None), False
    if c.kind in ("numeric", "temporal") and len(nn):
        side.min, side.max = nn.min(), nn.max()
    if c.kind == "numeric" and len(nn) and side.mean is None:  # not pushed down (paired samples)
        side.mean, side.moments_exact = float(nn.cast(pl.Float64).mean()), False
    if c.kind == "numeric" and len(nn) > 1:
        side.std, side.std_exact = float(nn.cast(pl.Float64).std()), False
    if c.kind == "text":
        x = _numeric_view(c, nn)
        side.moments_exact = side.std_exact = False
        if x is not None and len(x):
            side.min, side.max = x.min(), x.max()
            side.mean, side.std = float(x.mean()), (float(x.std()) if len(x) > 1 else 0.0)
        else:
            side.min = side.max = side.mean = side.std = None
    if c.categorical and c.kind != "boolean":
        vc = nn.value_counts()
        side.counts = dict(zip(vc[nn.name].to_list(), vc["count"].to_list()))
        side.counts_exact = False
    elif c.kind == "boolean" and not side.counts:
        side.counts = {True: int(nn.sum()), False: int(len(nn) - nn.sum())}
        side.counts_exact = False


def _add_sample_shape(c: _Col, side: _Side, s: pl.Series) -> None:
    """Quantiles and the KS input: always from the sample, whatever the basis of the rest."""
    if c.categorical:
        return
    x = _numeric_view(c, s.drop_nulls())
    if x is None or not len(x):
        return
    side.values = x.to_numpy()
    side.quantiles = [float(x.quantile(qq, "linear")) for qq in QUANTILES]


def _numeric_view(c: _Col, s: pl.Series) -> pl.Series | None:
    """Numbers to test: values, day/microsecond counts for temporal, lengths for text."""
    try:
        if c.kind == "numeric":
            return s.cast(pl.Float64)
        if c.kind == "temporal":
            return s.to_physical().cast(pl.Float64)
        if c.kind == "text":
            return s.cast(pl.String).str.len_chars().cast(pl.Float64)
    except Exception:
        return None
    return None


# --- judging ---------------------------------------------------------------------------------

@dataclass
class _Verdict:
    column: str
    kind: str
    basis: str
    test: str = ""
    p_value: float | None = None
    statistic: float | None = None
    shift: float | None = None
    flagged: list[str] = field(default_factory=list)


def _n_tests(s: _Side, t: _Side, paired: bool) -> int:
    n = 1 if (s.counts is not None or s.values is not None) else 0
    return n + (0 if paired or (s.moments_exact and t.moments_exact) else 1)


def _judge(c: _Col, s: _Side, t: _Side, paired: bool, n_tests: int, findings) -> _Verdict:
    th = c.th
    alpha = th["alpha"] / n_tests
    exact = (s.counts_exact and t.counts_exact) if c.categorical else (s.moments_exact and t.moments_exact)
    v = _Verdict(c.target, "categorical" if c.categorical else c.kind,
                 "exact" if exact else ("paired sample" if paired else "sample"))

    def flag(rule, msg, **detail):
        v.flagged.append(rule)
        findings.append(finding(rule, msg, column=c.target, **detail))

    if s.null_frac is not None and t.null_frac is not None:
        d = abs(t.null_frac - s.null_frac)
        independent = not paired and not c.pushdown
        if d > th["null_frac_abs"] and (not independent or _two_prop_p(s, t) < alpha):
            flag("null_frac", f"null fraction {t.null_frac:.4%} vs {s.null_frac:.4%} expected",
                 expected=s.null_frac, actual=t.null_frac)
    if s.distinct is not None and t.distinct is not None and (paired or (s.distinct_exact and t.distinct_exact)):
        d = abs(t.distinct - s.distinct)
        if d > th["distinct_rel"] * max(s.distinct, 1):
            flag("distinct", f"{t.distinct} distinct values vs {s.distinct} expected",
                 expected=s.distinct, actual=t.distinct)
    if c.categorical:
        _judge_categories(c, s, t, alpha, v, flag)
    else:
        _judge_moments(c, s, t, alpha, paired, v, flag)
        _judge_ks(c, s, t, alpha, v, flag)
    return v


def _judge_moments(c, s: _Side, t: _Side, alpha, paired, v: _Verdict, flag) -> None:
    if s.mean is None or t.mean is None:
        return
    th = c.th
    delta = t.mean - s.mean
    sd = s.std or 0.0
    rel = abs(delta) / max(abs(s.mean), 0.1 * sd, 1e-12)
    in_sd = abs(delta) / sd if sd > 0 else (0.0 if delta == 0 else math.inf)
    v.shift = rel
    v.test = v.test or "mean"
    exact = s.moments_exact and t.moments_exact
    significant = True
    if not exact and not paired and s.values is not None and t.values is not None \
            and len(s.values) > 1 and len(t.values) > 1:
        significant = float(sps.ttest_ind(s.values, t.values, equal_var=False).pvalue) < alpha
    what = "mean length" if c.kind == "text" else "mean"
    if significant and (rel > th["mean_rel_shift"] or in_sd > th["mean_std_shift"]):
        flag("length" if c.kind == "text" else "mean",
             f"{what} {t.mean:.6g} vs {s.mean:.6g} expected: shifted {delta / max(abs(s.mean), 1e-12):+.3%} "
             f"({in_sd:.3f} sd)", expected=s.mean, actual=t.mean, shift=rel)
    if s.std and t.std is not None and ((s.std_exact and t.std_exact) or paired):
        srel = abs(t.std - s.std) / s.std
        if srel > th["std_rel_shift"]:
            flag("std", f"standard deviation {t.std:.6g} vs {s.std:.6g} expected ({srel:+.2%})",
                 expected=s.std, actual=t.std, shift=srel)


def _judge_ks(c, s: _Side, t: _Side, alpha, v: _Verdict, flag) -> None:
    if s.values is None or t.values is None or len(s.values) < 2 or len(t.values) < 2:
        return
    with warnings.catch_warnings():  # "exact calculation unsuccessful": the asymptotic p is fine here
        warnings.simplefilter("ignore", RuntimeWarning)
        res = sps.ks_2samp(s.values, t.values)
    v.test, v.p_value, v.statistic = "ks", float(res.pvalue), float(res.statistic)
    if res.pvalue < alpha and res.statistic >= c.th["ks_d_min"]:
        flag("ks", f"distributions differ: KS D={res.statistic:.4f}, p={res.pvalue:.3g} "
             f"(n={len(s.values)}/{len(t.values)})", statistic=float(res.statistic), p_value=float(res.pvalue))


def _judge_categories(c, s: _Side, t: _Side, alpha, v: _Verdict, flag) -> None:
    if not s.counts or not t.counts:
        return
    cats = [k for k in dict.fromkeys([*s.counts, *t.counts]) if s.counts.get(k, 0) + t.counts.get(k, 0) > 0]
    ns, nt = sum(s.counts.get(k, 0) for k in cats), sum(t.counts.get(k, 0) for k in cats)
    if not cats or not ns or not nt:
        return
    tvd = 0.5 * sum(abs(s.counts.get(k, 0) / ns - t.counts.get(k, 0) / nt) for k in cats)
    p = 1.0
    if len(cats) > 1 and tvd > 0:
        table = [[s.counts.get(k, 0) for k in cats], [t.counts.get(k, 0) for k in cats]]
        p = float(sps.chi2_contingency(table).pvalue)
    v.test, v.p_value, v.shift = "chi2", p, tvd
    if p < alpha and tvd >= c.th["tvd_max"]:
        moved = sorted(cats, key=lambda k: -abs(s.counts.get(k, 0) / ns - t.counts.get(k, 0) / nt))[:3]
        detail = ", ".join(f"{k!s}: {s.counts.get(k, 0)}→{t.counts.get(k, 0)}" for k in moved)
        flag("categories", f"category shares differ: {tvd:.2%} of rows changed category, chi2 p={p:.3g} ({detail})",
             shift=tvd, p_value=p)


def _two_prop_p(s: _Side, t: _Side) -> float:
    n1, n2 = s.rows, t.rows
    x1, x2 = n1 - (s.nonnull or 0), n2 - (t.nonnull or 0)
    pooled = (x1 + x2) / max(n1 + n2, 1)
    se = math.sqrt(pooled * (1 - pooled) * (1 / max(n1, 1) + 1 / max(n2, 1)))
    if se == 0:
        return 1.0 if x1 / max(n1, 1) == x2 / max(n2, 1) else 0.0
    z = abs(x1 / n1 - x2 / n2) / se
    return float(2 * sps.norm.sf(z))


def _row_count_rule(n_s: int, n_t: int, th: dict, findings) -> None:
    rel = abs(n_t - n_s) / max(n_s, 1)
    if rel > th["row_count_rel"]:
        findings.append(finding("row_count", f"{n_t} target rows vs {n_s} source rows ({rel:.2%})",
                                count=abs(n_t - n_s), expected=n_s, actual=n_t))


# --- the report ------------------------------------------------------------------------------

def _outcome(tgt_name, table, results, verdicts, findings, n_s, n_t, sampling: _Sampling,
             ns_sample, nt_sample, severity) -> CheckOutcome:
    flagged = [v for v in verdicts if v.flagged]
    meta: dict[str, Any] = {
        "rows_source": int(n_s), "rows_target": int(n_t), "columns_checked": len(verdicts),
        "columns_flagged": len(flagged), "sample_rows_source": ns_sample, "sample_rows_target": nt_sample,
        "sampling": sampling.describe(),
    }
    for v in verdicts:
        if v.shift is not None:
            meta[f"{v.column}.shift"] = float(v.shift)
        if v.p_value is not None:
            meta[f"{v.column}.p_value"] = float(v.p_value)
    verdict_rows = [[v.column, v.kind, v.basis, v.test or "—", v.p_value, v.shift, v.statistic,
                     "FLAGGED: " + ", ".join(v.flagged) if v.flagged else "ok"] for v in verdicts]
    stat_rows = [row for c, s, t in results for row in _stat_rows(c, s, t)]
    meta["report"] = "\n\n".join([
        f"### Statistics of `{tgt_name}` (source `{table}` after transforms)",
        f"rows: source {n_s}, target {n_t}; sampling: {meta['sampling']} ({ns_sample}/{nt_sample} rows)",
        to_markdown_table(verdict_rows, ["column", "kind", "basis", "test", "p-value", "shift", "statistic",
                                         "verdict"]),
        "#### Side by side",
        to_markdown_table(stat_rows, ["column", "stat", "source (expected)", "target", "difference"]),
        "#### Findings", findings_markdown(findings)])
    return outcome_from(findings, what=f"statistics of {tgt_name}", severity=severity, metadata=meta)


def _stat_rows(c: _Col, s: _Side, t: _Side) -> list[list]:
    names = {"text": ("min length", "max length", "mean length", "std length")}.get(
        c.kind, ("min", "max", "mean", "std"))
    pairs = [("non-null", s.nonnull, t.nonnull), ("null fraction", s.null_frac, t.null_frac),
             ("distinct", s.distinct, t.distinct), (names[0], s.min, t.min), (names[1], s.max, t.max),
             (names[2], s.mean, t.mean), (names[3], s.std, t.std)]
    if s.quantiles and t.quantiles:
        unit = {"date": " (days since 1970)", "time": " (ns since midnight)"}.get(
            c.ktype.name, " (µs since 1970)" if c.kind == "temporal" else " (length)" if c.kind == "text" else "")
        pairs += [(f"p{int(qq * 100)}{unit}", a, b) for qq, a, b in zip(QUANTILES, s.quantiles, t.quantiles)]
    if s.counts is not None and t.counts is not None:
        for k in list(dict.fromkeys([*s.counts, *t.counts]))[:20]:
            pairs.append((f"= {k!s}", s.counts.get(k, 0), t.counts.get(k, 0)))
    return [[c.target, stat, _show(a), _show(b), _diff(a, b)] for stat, a, b in pairs
            if not (a is None and b is None)]


def _show(v):
    from decimal import Decimal

    return float(v) if isinstance(v, Decimal) else v


def _diff(a, b) -> str:
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        return "" if a == b else "differs"
    if a == b:
        return "="
    return f"{b - a:+.6g}" + (f" ({(b - a) / abs(a):+.3%})" if a else "")


def _int(v) -> int | None:
    return None if v is None else int(v)


def _float(v) -> float | None:
    return None if v is None else float(v)


def _std_from(mean: float, mean_sq: float, n: int | None) -> float:
    n = n or 0
    var = max(mean_sq - mean * mean, 0.0) * (n / (n - 1) if n > 1 else 1.0)
    return math.sqrt(var)
