"""Cross-column fixes: applying both halves of a ``split_from_sibling`` fix, or neither.

A learned fix belongs to one column and one error class, and the record validator applies it
per column (``RecordValidator.apply_fixes``): where the column fails with the fix's class and
the fixed value passes, the value is replaced and ``__fix<i>`` records the fix. A cross-column
operator also rewrites a *sibling* column (``city 'Bend OR'`` -> ``'Bend'`` when ``state`` takes
``'OR'``). This module runs right after ``apply_fixes`` and, for every row the fix took:

- computes the sibling's new value (its raw text before the separator, through the sibling's
  plan transform and cast), and keeps it only if the sibling then passes all of its checks and
  no other fix changed the sibling already;
- marks the sibling ``__fix<i>`` with the fix id, so the audit keeps the sibling's original too;
- otherwise reverts the fixed column to its plan value: half a split never lands.

Everything is polars expressions over the whole frame. Workers do not apply cross-column fixes
inline (``WorkerFixes`` leaves them out); their rows reach the queue and recovery lands them here.
"""
from __future__ import annotations

import polars as pl

from checks.record import _any, column_checks
from kora_assets.plan.model import Settings
from kora_assets.transforms.casting import cast_expr
from kora_assets.transforms.compiler import LearnedFix, TableTransform
from kora_assets.transforms.operators import apply_chain, cross_column_ops


_BOTH = "__xcol_both"


def has_cross_column(fixes: list[LearnedFix]) -> bool:
    return any(cross_column_ops(f.ops) for f in fixes)


def apply_sibling_writes(lf: pl.LazyFrame, tr: TableTransform, settings: Settings) -> pl.LazyFrame:
    """Complete (or undo) the cross-column fixes ``apply_fixes`` took on ``lf`` (see module doc)."""
    tp = tr.plan
    for n, fix in enumerate(tr.fixes):
        xs = cross_column_ops(fix.ops)
        if not xs:
            continue
        op, c = xs[0], tr.by_source.get(fix.column)
        if c is None:
            continue
        schema = lf.collect_schema()
        if c.fixed_by not in schema:
            continue
        took = (pl.col(c.fixed_by) == fix.fix_id).fill_null(False)
        s = tr.by_source.get(op.sibling)
        # the plan's own value of the fixed column, to revert to
        back = c.in_slot(f"xr{n}_")
        lf = tr.apply_candidate(lf, back, c.plan_ops)
        if s is None or s is c or len(xs) != 1:
            lf = lf.with_columns(pl.lit(False).alias(_BOTH))
        else:
            if s.fixed_by not in schema:
                lf = lf.with_columns(pl.lit(None, dtype=pl.Int64).alias(s.fixed_by))
            slot = s.in_slot(f"xs{n}_")
            lf = lf.with_columns(apply_chain(op.sibling_expr(pl.col(c.source)), list(s.plan_ops)).alias(slot.t))
            dtype = lf.collect_schema()[slot.t]
            lf = lf.with_columns(cast_expr(pl.col(slot.t), s.ktype, dtype).cast(s.ktype.polars_dtype(), strict=False)
                                 .alias(slot.o))
            part = op.expr(pl.col(c.source)).cast(pl.String, strict=False)
            sib_ok = ~_any([ck.fails for ck in column_checks(slot, tp, settings)])
            lf = lf.with_columns((took & op._applies(pl.col(c.source)) & (pl.col(c.t).cast(pl.String, strict=False) == part)
                                  & pl.col(s.fixed_by).is_null() & sib_ok).fill_null(False).alias(_BOTH))
            both = pl.col(_BOTH)
            lf = lf.with_columns(
                pl.when(both).then(pl.col(slot.t).cast(pl.String)).otherwise(pl.col(s.t).cast(pl.String)).alias(s.t),
                pl.when(both).then(pl.col(slot.o)).otherwise(pl.col(s.o)).alias(s.o),
                pl.when(both).then(pl.lit(fix.fix_id, dtype=pl.Int64)).otherwise(pl.col(s.fixed_by)).alias(s.fixed_by),
            ).drop(slot.t, slot.o)
        revert = took & ~pl.col(_BOTH)
        lf = lf.with_columns(
            pl.when(revert).then(pl.col(back.t).cast(pl.String)).otherwise(pl.col(c.t).cast(pl.String)).alias(c.t),
            pl.when(revert).then(pl.col(back.o)).otherwise(pl.col(c.o)).alias(c.o),
            pl.when(revert).then(pl.lit(None, dtype=pl.Int64)).otherwise(pl.col(c.fixed_by)).alias(c.fixed_by),
        ).drop(back.t, back.o, _BOTH)
    return lf


__all__ = ["apply_sibling_writes", "has_cross_column"]
