"""The semantic anomaly scan, started as soon as a table's rows have landed.

The semantic check runs as its own Dagster step after the asset's step, which after landing
the rows still builds keys, indexes and foreign keys and runs the completeness, structural,
referential and statistical checks: work done by the databases, while the coordinating
process mostly waits. The anomaly scan is the opposite (the encoder, in this process), so
the asset's step starts it on a thread here and the semantic check takes the finished report
instead of computing it again: on TPC-H lineitem the scan then runs during the 10 s of index
and FK builds. Only the report of the same run, table and threshold is taken; anything else
is computed by the check as before.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger("kora.semantic")
_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kora-semantic-prefetch")
_PENDING: dict[tuple, Future] = {}


def start(plan, table: str, partition_keys: list[str], run_id: str, threshold: float,
          landed_rows: int | None = None) -> None:
    """Begin the scan the semantic check of this run will ask for (see its ``_semantic``)."""
    from checks.semantic.assetcheck import semantic_report

    key = (run_id, plan.name, table, tuple(partition_keys), threshold)
    if key in _PENDING:  # started when the rows landed, before the run (``kora migrate`` loading ahead)
        return
    for k in [k for k in _PENDING if k[0] != run_id and k[1:3] == key[1:3]]:  # a run that never asked
        _PENDING.pop(k).cancel()
    # recorded in the library when the check takes it (``take``), a backfill's per partition
    scanned = partition_keys[0] if len(partition_keys) == 1 else "all"  # a backfill: anomalies once over the table
    _PENDING[key] = _POOL.submit(semantic_report, plan, table, scanned, threshold=threshold, record=False,
                                 landed_rows=landed_rows)


def take(plan, table: str, partition_keys: list[str], run_id: str, threshold: float):
    """The report started for exactly this check, waited for; None if there is none or it failed."""
    fut = _PENDING.pop((run_id, plan.name, table, tuple(partition_keys), threshold), None)
    if fut is None:
        return None
    try:
        report = fut.result()
    except Exception as exc:  # the check computes it itself and reports what goes wrong
        log.warning("kora: the early semantic scan of %s failed (%s); the check runs it again", table, exc)
        return None
    if len(partition_keys) == 1:
        from checks.semantic.assetcheck import record_taken

        record_taken(plan, report)
    return report
