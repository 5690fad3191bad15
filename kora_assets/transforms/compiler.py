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
class CompiledColumn:
    index: int
    source: str
    target: str
    ktype: KoraType
    nullable: bool
    plan_ops: tuple = ()
    fallbacks: tuple = ()  # learned fixes: op chains tried only where the plan's chain fails

    @property
    def t(self) -> str:
        return f"__t{self.index}"

    @property
    def o(self) -> str:
        return f"__o{self.index}"


@dataclass
class TableTransform:
    """The compiled transform of one table."""

    plan: TablePlan
    fallbacks: dict[str, list[tuple]] = field(default_factory=dict)

    def __post_init__(self):
        self.columns = [
            CompiledColumn(i, src, self.plan.target_column(src), cp.ktype, cp.nullable,
                           tuple(cp.transform), tuple(self.fallbacks.get(src, ())))
            for i, (src, cp) in enumerate(self.plan.columns.items())
        ]

    @property
    def source_columns(self) -> list[str]:
        return [c.source for c in self.columns]

    def apply(self, lf: pl.LazyFrame) -> pl.LazyFrame:
        """Add ``__t``/``__o`` columns; the raw source columns stay for error reporting."""
        lf = lf.with_columns([apply_chain(pl.col(c.source), list(c.plan_ops)).alias(c.t) for c in self.columns])
        schema = lf.collect_schema()
        outs = []
        for c in self.columns:
            out = cast_expr(pl.col(c.t), c.ktype, schema[c.t])
            for chain in c.fallbacks:
                # A learned fix only touches values the plan's own chain could not convert.
                fixed = apply_chain(pl.col(c.source), list(chain))
                out = pl.coalesce([out, _cast_any(fixed, c.ktype)])
            outs.append(out.cast(c.ktype.polars_dtype(), strict=False).alias(c.o))
        return lf.with_columns(outs)

    def output_frame(self, df: pl.DataFrame) -> pl.DataFrame:
        """The target-shaped frame: ``__o`` columns renamed to target columns."""
        return df.select([pl.col(c.o).alias(c.target) for c in self.columns])


def _cast_any(e: pl.Expr, kt: KoraType) -> pl.Expr:
    """Cast an expression whose dtype is only known at run time (fix chains start from raw)."""
    target = kt.polars_dtype()
    return e.cast(pl.String, strict=False).pipe(lambda s: cast_expr(s, kt, pl.String())).cast(target, strict=False)
