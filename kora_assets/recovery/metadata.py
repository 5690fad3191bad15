"""What the Dagster UI shows about recovery, per table asset: queued, fixed, quarantined,
fixes learned (with their operators) and the recovery rate, as asset observations, so each
number plots over runs."""
from __future__ import annotations

import dagster as dg

from kora_assets.bookkeeping.tables import bookkeeping_table
from kora_assets.dbio.connections import Database
from kora_assets.naming import asset_key
from kora_assets.plan.model import Plan


def queue_counts(target: Database) -> dict[str, dict[str, int]]:
    """table -> {pending, fixed, quarantined} over the whole error queue."""
    q = bookkeeping_table(target, "error_queue")
    out: dict[str, dict[str, int]] = {}
    try:
        with target.engine.connect() as c:
            for t, s, n in c.exec_driver_sql(f"SELECT table_name, status, COUNT(*) FROM {q} GROUP BY 1, 2"):
                out.setdefault(t, {})[s] = int(n)
    except Exception:
        pass
    return out


def table_metadata(plan: Plan, table: str, rep, counts: dict[str, int], library_fixes: list | None = None) -> dict:
    pending, fixed, quar = counts.get("pending", 0), counts.get("fixed", 0), counts.get("quarantined", 0)
    total = pending + fixed + quar
    learned = rep.fixes_learned if rep else []
    rows = ["| fix | signature | operators | origin |", "|---|---|---|---|"]
    rows += [f"| {f['fix_id']} | `{f['signature']}` | `{f['ops']}` | {f['origin']} |" for f in learned]
    md = {
        "recovery/queued": dg.MetadataValue.int(pending + quar),
        "recovery/pending": dg.MetadataValue.int(pending),
        "recovery/fixed": dg.MetadataValue.int(fixed),
        "recovery/quarantined": dg.MetadataValue.int(quar),
        "recovery/recovery_rate": dg.MetadataValue.float(round(fixed / total, 4) if total else 1.0),
        "recovery/fixes_learned": dg.MetadataValue.int(len(learned)),
        "recovery/fixes_learned_ops": dg.MetadataValue.md("\n".join(rows) if learned else "no new fix in this run"),
    }
    if rep is not None:
        md["recovery/run_fixed"] = dg.MetadataValue.int(rep.fixed)
        md["recovery/run_quarantined"] = dg.MetadataValue.int(rep.quarantined)
        md["recovery/run_recovery_rate"] = dg.MetadataValue.float(round(rep.recovery_rate, 4))
        md["recovery/library_hits"] = dg.MetadataValue.int(len(rep.library_hits))
        if rep.verdicts:
            md["recovery/quarantine_reasons"] = dg.MetadataValue.md(
                "\n".join(f"- `{s}`: {r}" for s, r in list(rep.verdicts.items())[:30]))
    if library_fixes is not None:
        md["recovery/library"] = dg.MetadataValue.md("\n".join(
            ["| fix | signature | operators | successes | rows |", "|---|---|---|---|---|"]
            + [f"| {f.id} | `{f.signature}` | `{_ops(f.ops)}` | {f.success_count} | {f.rows_fixed} |" for f in library_fixes]))
    return md


def _ops(ops) -> str:
    from kora_assets.recovery.library import describe_ops

    return describe_ops(ops)


def observations(plan: Plan, report, target: Database) -> list[dg.AssetObservation]:
    counts = queue_counts(target)
    out = []
    for table in plan.tables:
        rep = report.tables.get(table) if report else None
        if rep is None and table not in counts:
            continue
        out.append(dg.AssetObservation(asset_key=asset_key(plan.name, plan.target_name(table)),
                                       metadata=table_metadata(plan, table, rep, counts.get(table, {}))))
    return out
