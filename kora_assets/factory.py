"""The asset factory: one partitioned Dagster asset per planned table.

Dependencies follow the foreign keys (parents upstream of children, every child partition
depending on all of a parent's partitions), so Dagster's lineage graph *is* the FK graph
and a backfill of everything lands parents first. A run may cover many partitions
(``BackfillPolicy.single_run``): they become tasks on the shared queue and the Ray workers
pull them in parallel; each partition still lands atomically and gets its own
completeness verdict.
"""

import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor

import dagster as dg

from checks.completeness import Conservation, check_partition, check_table
from checks.table_checks import evaluate_table_checks, statistical_result, table_check_specs
from kora_assets.dbio.connections import Database
from kora_assets.bookkeeping.ledger import ledger_partitions
from kora_assets.dbio.ddl import ensure_target_schema, finalize_indexes_and_fks, finalize_keys, has_key_constraints
from kora_assets.errors import explain
from kora_assets.naming import asset_key
from kora_assets.partitions import partitions_def
from kora_assets.plan.loader import parents
from kora_assets.plan.model import Plan
from kora_assets.timing import phase, progress_log
from kora_assets.workers import load_ahead
from kora_assets.workers.partition_task import PartitionResult, PartitionTask
from resources.databases import DatabaseResource, bind_plan
from resources.ray_cluster import RayResource
from resources.redis_bus import RedisResource

COMPLETENESS = "completeness"


def _columns_markdown(plan: Plan, table: str) -> str:
    t = plan.tables[table]
    rows = ["| source column | target column | type | null | transform |", "|---|---|---|---|---|"]
    for src, cp in t.columns.items():
        ops = ", ".join(op.op for op in cp.transform) or "-"
        rows.append(f"| {src} | {cp.target or src} | {cp.type} | {'yes' if cp.nullable else 'no'} | {ops} |")
    return "\n".join(rows)


def build_table_asset(plan: Plan, table: str) -> dg.AssetsDefinition:
    tp = plan.tables[table]
    key = asset_key(plan.name, plan.target_name(table))
    pdef = partitions_def(tp)
    deps = [dg.AssetDep(asset_key(plan.name, plan.target_name(p)), partition_mapping=dg.AllPartitionMapping())
            for p in parents(plan, table)]
    with warnings.catch_warnings():  # per-partition checks are a preview feature we rely on knowingly
        warnings.simplefilter("ignore")
        checks = [dg.AssetCheckSpec(
            COMPLETENESS, asset=key, blocking=True, partitions_def=pdef,
            description="Conservation per partition: every source key is landed or queued, exactly once."),
            *table_check_specs(plan, table, pdef)]
        return _define_table_asset(plan, table, key, pdef, deps, checks)


def _define_table_asset(plan: Plan, table: str, key: dg.AssetKey, pdef, deps, checks) -> dg.AssetsDefinition:
    tp = plan.tables[table]

    @dg.asset(
        key=key, group_name=tp.group or plan.name, partitions_def=pdef, deps=deps,
        backfill_policy=dg.BackfillPolicy.single_run(), check_specs=checks,
        kinds={"postgres" if not plan.target.url.startswith("sqlite") else "sqlite", "ray", "polars"},
        description=f"Source table `{table}` migrated to `{plan.target_name(table)}` "
                    f"({tp.partitioning.kind} partitioning).",
        metadata={"source_table": table, "columns": dg.MetadataValue.md(_columns_markdown(plan, table)),
                  "dagster/table_name": plan.target_name(table)},
    )
    def _table_asset(context: dg.AssetExecutionContext, source_db: DatabaseResource,
                     target_db: DatabaseResource, ray_cluster: RayResource, redis: RedisResource):
        bound = bind_plan(plan, source_db, target_db)
        results = run_partitions(context, bound, table, list(context.partition_keys), ray_cluster, redis)
        results = _queue_unique_conflicts(context, bound, table, results, ray_cluster, redis)
        _scan_semantics_meanwhile(context, bound, table, key, sum(r.landed for r in results))
        with phase(table, "keys", context):
            complete, added = finalize_keys_if_loaded(context, bound, table)
        # The indexes and FKs build while the checks that only read rows run: the databases
        # and this process take turns less (TPC-H lineitem: ~12 s of builds, ~9 s of checks).
        building = _build_indexes_meanwhile(bound, table) if complete else None
        try:
            verdicts = _completeness_verdicts(context, bound, table, results)
            statistics = statistical_result(bound, table, list(context.partition_keys))
        finally:
            if building is not None:
                with phase(table, "indexes and foreign keys, after the checks that read rows", context):
                    added += _built(context, table, building)
        yield dg.MaterializeResult(metadata={**_materialization_metadata(results),
                                             "constraints_added": dg.MetadataValue.text(", ".join(added) or "none")})
        yield from _completeness_results(context, bound, table, verdicts)
        yield from evaluate_table_checks(context, bound, table, list(context.partition_keys), complete, added,
                                         statistics)

    return _table_asset


def run_partitions(context, plan: Plan, table: str, keys: list[str], ray_cluster: RayResource,
                   redis: RedisResource) -> list[PartitionResult]:
    """Queue the partitions, let the worker pool pull them, fail loudly and specifically."""
    from kora_assets.workers.pool import WorkerPool

    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    _load_encoder_meanwhile()
    try:
        source.check()
        target.check()
        ensure_target_schema(target, plan)
        ray_cluster.ensure()
        redis_url = redis.resolved_url()
    except Exception as exc:
        raise dg.Failure(description=explain(exc)) from None
    t0, done = time.perf_counter(), []

    def progress(r: PartitionResult):
        done.append(r)
        status = f"FAILED: {r.error}" if r.error else f"{r.landed:,} landed, {r.queued:,} queued"
        line = (f"{table} [{len(done)}/{len(keys)}] partition {r.partition_key}: "
                f"{r.source_rows:,} rows read, {status} ({r.seconds:.1f}s on {r.worker}, {r.worker_rss_mib:,} MiB)")
        context.log.info(line)
        progress_log.info(line)

    ahead = load_ahead.active()
    if ahead is not None and ahead.claims(table, context.run_id, keys):  # kora migrate queued them already
        results = ahead.wait(table, progress)
    else:
        pool = WorkerPool.shared(plan, ray_cluster.num_workers or plan.settings.workers).warm()
        with phase(table, "semantic types", context):
            _prime_semantics(context, plan, table)
        results = pool.run([PartitionTask(table, k, context.run_id) for k in keys], redis_url, progress)
    failed = [r for r in results if r.error]
    if failed:
        lines = "\n".join(f"- partition {r.partition_key}: {r.error}" for r in failed[:20])
        raise dg.Failure(description=f"{len(failed)} of {len(keys)} partition(s) of {table} failed; nothing of "
                                     f"those partitions was written (each rolls back as a whole). Re-run to retry.\n{lines}",
                         metadata={"failed_partitions": len(failed)})
    line = f"{table}: {len(keys)} partition(s) in {time.perf_counter() - t0:.1f}s"
    context.log.info(line)
    progress_log.info(line)
    return results


def _load_encoder_meanwhile() -> None:
    """Load the semantic model on a thread while Ray starts: ``ray.init`` mostly waits for its
    processes (3-4 s on 2 cores), and the model load (torch import and weights, ~3 s) would
    otherwise follow it. ``get_encoder`` is locked, so the first real use waits for this one."""
    from checks.semantic.encoder import available, get_encoder, loaded

    if not loaded() and available():
        threading.Thread(target=get_encoder, name="kora-encoder-load", daemon=True).start()


def _scan_semantics_meanwhile(context, plan: Plan, table: str, key: dg.AssetKey, landed_rows: int) -> None:
    """Rows landed: start the semantic check's anomaly scan (CPU, this process) while the
    databases build indexes and run the checks of this step (``checks.semantic.prefetch``)."""
    from checks.semantic import prefetch
    from checks.semantic.anomaly import DEFAULT_THRESHOLD
    from checks.semantic.assetcheck import CHECK_NAME
    from checks.semantic.encoder import available

    selected = context.run.asset_check_selection
    if available() and (selected is None or dg.AssetCheckKey(key, CHECK_NAME) in selected):
        prefetch.start(plan, table, list(context.partition_keys), context.run_id, DEFAULT_THRESHOLD, landed_rows)


def _prime_semantics(context, plan: Plan, table: str) -> None:
    """Infer the table's semantic types once, here, and store them for the workers to read."""
    from checks.semantic.runtime import prime_or_reason

    if reason := prime_or_reason(plan, table):
        context.log.warning(f"{table}: semantic types not inferred ({reason}); plan rules only")


def _queue_unique_conflicts(context, plan: Plan, table: str, results: list[PartitionResult],
                            ray_cluster: RayResource, redis: RedisResource) -> list[PartitionResult]:
    """Before the unique constraints: queue the landed duplicates of unique columns by loading
    their partitions again (``kora_assets.dbio.unique``); the results, those partitions' anew."""
    from kora_assets.dbio.unique import conflict_partitions, find_conflicts, record_conflicts

    target = Database(plan.target.url, "target")
    if (not plan.tables[table].unique_sets() or target.dialect != "postgresql"
            or has_key_constraints(target, plan, table)):  # keyed: the constraints keep repeats out
        return results
    landed = _landed_if_complete(target, plan, table)
    if landed is None:
        return results
    conflicts = find_conflicts(target, plan, table)
    if not conflicts:
        return results
    record_conflicts(target, plan, table, conflicts)
    again = conflict_partitions(target, plan, table, conflicts, sorted(landed))
    context.log.warning(f"{table}: {len(conflicts)} row(s) repeat a unique value of an earlier row; "
                        f"loading {len(again)} partition(s) again to queue them as constraint.unique")
    redone = {r.partition_key: r for r in run_partitions(context, plan, table, again, ray_cluster, redis)}
    return [redone.pop(r.partition_key, r) for r in results] + list(redone.values())


def finalize_keys_if_loaded(context, plan: Plan, table: str) -> tuple[bool, list[str]]:
    """Once every partition of the table has landed, give it its keys (indexes and FKs follow)."""
    target = Database(plan.target.url, "target")
    if _landed_if_complete(target, plan, table) is None:
        return False, []
    try:
        added = finalize_keys(target, plan, table)
    except Exception as exc:
        raise _constraint_failure(table, exc) from None
    if added:
        context.log.info(f"{table}: created {', '.join(added)}")
    return True, added


def _landed_if_complete(target: Database, plan: Plan, table: str) -> set[str] | None:
    """The partitions the ledger says landed, if they are all of the table's; else None."""
    landed = ledger_partitions(target, table)
    return landed if set(partitions_def(plan.tables[table]).get_partition_keys()) <= landed else None


def _build_indexes_meanwhile(plan: Plan, table: str) -> Future:
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kora-ddl")
    try:
        return pool.submit(finalize_indexes_and_fks, Database(plan.target.url, "target"), plan, table)
    finally:
        pool.shutdown(wait=False)


def _built(context, table: str, building: Future) -> list[str]:
    try:
        added = building.result()
    except Exception as exc:
        raise _constraint_failure(table, exc) from None
    if added:
        context.log.info(f"{table}: created {', '.join(added)}")
    return added


def _constraint_failure(table: str, exc: Exception) -> dg.Failure:
    return dg.Failure(description=f"{table}: all partitions landed, but its constraints could not be "
                                  f"created: {explain(exc)}")


def _materialization_metadata(results: list[PartitionResult]) -> dict:
    read = sum(r.source_rows for r in results)
    classes: dict[str, int] = {}
    for r in results:
        for c, n in r.error_classes.items():
            classes[c] = classes.get(c, 0) + n
    secs = max((r.seconds for r in results), default=0.0)
    md = "\n".join(["| error class | rows |", "|---|---|", *[f"| {c} | {n:,} |" for c, n in sorted(classes.items())]])
    return {
        "rows_read": dg.MetadataValue.int(read),
        "rows_landed": dg.MetadataValue.int(sum(r.landed for r in results)),
        "rows_queued": dg.MetadataValue.int(sum(r.queued for r in results)),
        "partitions": dg.MetadataValue.int(len(results)),
        "slowest_partition_seconds": dg.MetadataValue.float(round(secs, 3)),
        "errors_by_class": dg.MetadataValue.md(md if classes else "no row failed validation"),
    }


def _conservation_metadata(c: list[Conservation]) -> dict:
    rows = ["| partition | source | landed | queued | missing | extra | compared by | verdict |",
            "|---|---|---|---|---|---|---|---|"]
    for x in c:
        rows.append(f"| {x.partition_key} | {x.source_rows:,} | {x.landed_rows:,} | {x.queued_rows:,} | {x.missing_n} | "
                    f"{x.extra_n} | {x.method} | {'ok' if x.passed else 'FAILED'} |")
    samples = [f"{x.partition_key}: missing {x.missing}, extra {x.extra}" for x in c if not x.passed]
    meta = {
        "source_rows": dg.MetadataValue.int(sum(x.source_rows for x in c)),
        "landed_rows": dg.MetadataValue.int(sum(x.landed_rows for x in c)),
        "queued_rows": dg.MetadataValue.int(sum(x.queued_rows for x in c)),
        "unaccounted_rows": dg.MetadataValue.int(sum(x.missing_n + x.extra_n for x in c)),
        "partitions": dg.MetadataValue.md("\n".join(rows)),
    }
    if len(c) == 1:
        meta["source_key_checksum"] = dg.MetadataValue.text(c[0].source_checksum)
        meta["landed_plus_queued_key_checksum"] = dg.MetadataValue.text(c[0].accounted_checksum)
    if samples:
        meta["sample_unaccounted_keys"] = dg.MetadataValue.md("\n".join(f"- {s}" for s in samples[:20]))
    return meta


def _completeness_verdicts(context, plan: Plan, table: str, results: list[PartitionResult]) -> list[Conservation]:
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    with phase(table, f"completeness check of {len(results)} partition(s)", context):
        whole = check_table(plan, table, [r.partition_key for r in results], source, target)
        if whole is not None:
            return whole
        with ThreadPoolExecutor(max_workers=1 if target.dialect == "sqlite" else 2) as pool:  # servers: side by side
            return list(pool.map(lambda r: check_partition(plan, table, r.partition_key, source, target), results))


def _completeness_results(context, plan: Plan, table: str, verdicts: list[Conservation]):
    key = asset_key(plan.name, plan.target_name(table))
    if len(verdicts) > 1:  # a multi-partition run: record each partition's own verdict too
        for v in verdicts:
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=key, check_name=COMPLETENESS, passed=v.passed, partition=v.partition_key,
                metadata=_conservation_metadata([v]), severity=dg.AssetCheckSeverity.ERROR))
    bad = [v.partition_key for v in verdicts if not v.passed]
    desc = (f"all {len(verdicts)} partition(s) conserve every source row" if not bad
            else f"{len(bad)} partition(s) do not add up: {', '.join(bad[:10])}")
    yield dg.AssetCheckResult(check_name=COMPLETENESS, passed=not bad, description=desc,
                              metadata=_conservation_metadata(verdicts))
