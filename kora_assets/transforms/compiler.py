"""Compiling a table's plan into one polars expression graph: transform, then cast.

For every planned column the compiled frame carries three things side by side: the raw
source value, the value after the plan's operators (``__t<i>``) and the value cast to the
target type (``__o<i>``). Validators compare them to say precisely what went wrong, and
the writer takes only the ``__o`` columns. Compiled once per (table, source schema) and
kept warm by the worker that runs it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from kora_assets.plan.model import TablePlan
from kora_assets.plan.types import KoraType
from kora_assets.transforms.casting import cast_expr
from kora_assets.transforms.operators import apply_chain


@dataclass(frozen=True)
class LearnedFix:
    """A fix the recovery loop proved on samples: an operator chain for one column and error class.

    It is tried only on values of that column that fail validation, starting from the raw
    source value, and kept only where the result then passes: rows that were fine are never
    touched, by construction.
    """

    fix_id: int
    column: str  # source column
    error_class: str
    ops: tuple = ()


@dataclass(frozen=True)
class CompiledColumn:
    index: int
    source: str
    target: str
    ktype: KoraType
    nullable: bool
    plan_ops: tuple = ()
    slot: str = ""  # "" for the plan's values; a fix slot names a candidate's columns

    @property
    def t(self) -> str:
        return f"__t{self.slot}{self.index}"

    @property
    def o(self) -> str:
        return f"__o{self.slot}{self.index}"

    @property
    def fixed_by(self) -> str:
        return f"__fix{self.index}"

    def in_slot(self, slot: str) -> "CompiledColumn":
        return CompiledColumn(self.index, self.source, self.target, self.ktype, self.nullable, self.plan_ops, slot)


@dataclass
class TableTransform:
    """The compiled transform of one table."""

    plan: TablePlan
    fixes: list[LearnedFix] = field(default_factory=list)

    def __post_init__(self):
        self.columns = [
            CompiledColumn(i, src, self.plan.target_column(src), cp.ktype, cp.nullable, tuple(cp.transform))
            for i, (src, cp) in enumerate(self.plan.columns.items())
        ]
        self.by_source = {c.source: c for c in self.columns}

    @property
    def source_columns(self) -> list[str]:
        return [c.source for c in self.columns]

    def apply(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """Add ``__t``/``__o`` columns; the raw source columns stay for error reporting."""
        lf = lf.with_columns([apply_chain(pl.col(c.source), list(c.plan_ops)).alias(c.t) for c in self.columns])
        schema = lf.collect_schema()
        return lf.with_columns([cast_expr(pl.col(c.t), c.ktype, schema[c.t]).cast(c.ktype.polars_dtype(), strict=False)
                                .alias(c.o) for c in self.columns])

    def apply_candidate(self, lf: pl.LazyFrame, column: CompiledColumn, ops: tuple) -> pl.LazyFrame:
        """Compute a fix chain's values for ``column`` into its slot columns (raw -> ops -> cast)."""
        lf = lf.with_columns(apply_chain(pl.col(column.source), list(ops)).alias(column.t))
        dtype = lf.collect_schema()[column.t]
        return lf.with_columns(cast_expr(pl.col(column.t), column.ktype, dtype)
                               .cast(column.ktype.polars_dtype(), strict=False).alias(column.o))

    def output_frame(self, df: pl.DataFrame) -> pl.DataFrame:
        """The target-shaped frame: ``__o`` columns renamed to target columns."""
        return df.select([pl.col(c.o).alias(c.target) for c in self.columns])
