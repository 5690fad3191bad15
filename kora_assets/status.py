"""``kora status``: where a migration stands, measured live on both databases.

Counts are pushed down to SQL per partition; queued rows come from the error queue. This is
what scripts and benchmarks read (``--json``), so it reports facts, not the ledger's memory.
"""
from __future__ import annotations

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.dbio.source import SourceReader
from kora_assets.partitions import key_range_keys, partitions_def, predicate
from kora_assets.plan.model import Plan


def _queued(target: Database) -> dict[tuple[str, str], dict[str, int]]:
    q = bookkeeping_table(target, "error_queue")
    out: dict[tuple[str, str], dict[str, int]] = {}
    try:
        with target.engine.connect() as c:
            rows = c.exec_driver_sql(f"SELECT table_name, partition_key, status, COUNT(*) FROM {q} GROUP BY 1, 2, 3").fetchall()
    except Exception:  # nothing migrated yet: no bookkeeping tables
        return out
    for t, p, s, n in rows:
        out.setdefault((t, p), {})[s] = int(n)
    return out


def _target_count(reader: SourceReader, table: str, where: str | None) -> int | None:
    try:
        return reader.count(table, where)
    except Exception:
        return None


def migration_status(plan: Plan, tables: list[str] | None = None) -> dict:
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    src, tgt = SourceReader(source, plan.source.schema_), SourceReader(target, plan.target.schema_)
    queued = _queued(target)
    report = {"plan": plan.name, "tables": {}}
    for table, tp in plan.tables.items():
        if tables and table not in tables:
            continue
        pdef = partitions_def(tp)
        keys = pdef.get_partition_keys() if tp.partitioning.kind == "time" else key_range_keys(tp)
        col = tp.partitioning.column
        parts, totals = {}, {"source_rows": 0, "landed_rows": 0, "queued_rows": 0, "fixed_rows": 0}
        for k in keys:
            s = src.count(table, predicate(tp, k, col, source.quote) if col else None)
            landed = _target_count(tgt, plan.target_name(table), predicate(tp, k, tp.target_column(col), target.quote) if col else None)
            qs = queued.get((table, k), {})
            row = {"source_rows": s, "landed_rows": landed or 0,
                   "queued_rows": qs.get("pending", 0) + qs.get("quarantined", 0),
                   "quarantined_rows": qs.get("quarantined", 0), "fixed_rows": qs.get("fixed", 0)}
            row["conserved"] = row["source_rows"] == row["landed_rows"] + row["queued_rows"]
            parts[k] = row
            for f in totals:
                totals[f] += row[f]
        totals["conserved"] = all(p["conserved"] for p in parts.values())
        report["tables"][table] = {"target": plan.target_name(table), **totals, "partitions": parts}
    return report
