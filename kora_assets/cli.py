"""The ``kora`` command: init | migrate | demo | status.

Every failure a user can cause (a bad plan, an unreachable database, a missing variable)
ends in one specific message and exit code 2; a migration whose blocking checks fail ends
with exit code 1 after its summary.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import click

from kora_assets.errors import explain

EXIT_USAGE, EXIT_FAILED = 2, 1


def _quiet_warnings() -> None:
    """Dagster's preview/beta notices are for developers of kora, not for its users."""
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _setup_logging(verbose: bool) -> None:
    if not verbose:
        _quiet_warnings()
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s", stream=sys.stderr)
    progress = logging.getLogger("kora")
    progress.setLevel(logging.INFO)
    if not progress.handlers:
        h = logging.StreamHandler(sys.stdout)
        h.setFormatter(logging.Formatter("%(message)s"))
        progress.addHandler(h)
        progress.propagate = False


def _fail(msg: str) -> None:
    click.echo(f"kora: {msg}", err=True)
    sys.exit(EXIT_USAGE)


def _load(plan_path: str):
    from kora_assets.plan.loader import load_plan

    try:
        return load_plan(plan_path)
    except Exception as exc:
        _fail(explain(exc))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kora executes database migrations as partitioned Dagster assets on Ray: every row
    validated before it lands, every failure queued with its reason, fixes learned and reused.

    \b
    Typical session:
      kora init --source mysql://root@127.0.0.1/shop --target postgresql://postgres@127.0.0.1/shop -o plan.yaml
      kora migrate plan.yaml
      kora status plan.yaml
      KORA_PLAN=plan.yaml dagster dev -w workspace.yaml
    """
    from kora_assets.memory import bound_this_process

    bound_this_process()  # a flat heap for long migrations (see kora_assets.memory)


@main.command()
@click.option("--source", "source_url", required=True, help="Source database URL (MySQL/MariaDB, PostgreSQL, SQLite); ${VAR} allowed.")
@click.option("--target", "target_url", required=True, help="Target database URL (PostgreSQL, or SQLite); ${VAR} allowed.")
@click.option("-o", "--output", default="plan.yaml", show_default=True, help="Where to write the plan.")
@click.option("--source-schema", default=None, help="Source schema/database to reflect (default: the URL's).")
@click.option("--target-schema", default="public", show_default=True, help="Target schema for the migrated tables (PostgreSQL).")
@click.option("--partition-rows", default=250_000, show_default=True, help="Aim for partitions of about this many rows.")
@click.option("--tables", default=None, help="Comma-separated tables to include (default: all).")
@click.option("--force", is_flag=True, help="Overwrite an existing plan file.")
def init(source_url, target_url, output, source_schema, target_schema, partition_rows, tables, force):
    """Reflect the source schema and write a complete, commented migration plan."""
    _setup_logging(False)
    from kora_assets.dbio.connections import Database
    from kora_assets.plan.infer import SEMANTIC_NOTES, infer_plan, render_plan
    from kora_assets.plan.loader import parse_plan

    out = Path(output)
    if out.exists() and not force:
        _fail(f"{out} exists; pass --force to overwrite it")
    try:
        src = Database(source_url, "source")
        src.check()
        plan, counts = infer_plan(src, target_url, schema=source_schema,
                                  target_schema=None if target_url.startswith("sqlite") else target_schema,
                                  partition_rows=partition_rows, tables=tables.split(",") if tables else None)
        text = render_plan(plan, counts, src.display)
        written = parse_plan(text, source=str(out), require_env=False)  # what we write must load
    except Exception as exc:
        _fail(explain(exc))
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}: {len(counts)} table(s), {sum(counts.values()):,} rows. Next: kora migrate {out}")
    if kept := _remember_semantics(written, plan.get(SEMANTIC_NOTES) or {}):
        click.echo(f"kept {kept} inferred semantic type(s) in the target (kora.semantic_columns): "
                   "kora migrate uses them instead of inferring again")


def _remember_semantics(plan, notes: dict) -> int:
    """init's classifier answers, stored where the migration looks first (see
    ``checks.semantic.runtime.remember``); 0 when the target is not there yet."""
    from checks.semantic.runtime import remember

    return sum(remember(plan, t, {c: n.semantics for c, n in cols.items()}) for t, cols in notes.items() if cols)


@main.command()
@click.argument("plan_path", metavar="PLAN")
@click.option("--tables", default=None, help="Comma-separated source tables to migrate (default: all, in FK order).")
@click.option("--workers", type=int, default=None, help="Ray worker actors (default: the plan's settings.workers).")
@click.option("--recover/--no-recover", default=True, show_default=True, help="Run the recovery loop on the error queue afterwards.")
@click.option("-v", "--verbose", is_flag=True, help="Show Dagster's own log lines too.")
def migrate(plan_path, tables, workers, recover, verbose):
    """Run the whole migration through Dagster: all tables, all partitions, parents first.

    Safe to re-run: partitions are idempotent. Exit code 1 if a partition or a blocking
    check failed, 2 for a bad plan or an unreachable database.
    """
    _setup_logging(verbose)
    from kora_assets.dbio.connections import Database
    from kora_assets.migrate import after_migration, dagster_instance, migrate as run_migration, summary_counts

    plan = _load(plan_path)
    wanted = tables.split(",") if tables else None
    unknown = [t for t in wanted or [] if t not in plan.tables]
    if unknown:
        _fail(f"--tables: unknown table(s) {', '.join(unknown)}; the plan has {', '.join(plan.tables)}")
    if workers:
        plan = plan.model_copy(update={"settings": plan.settings.model_copy(update={"workers": workers})})
    try:
        Database(plan.source.url, "source").check()
        Database(plan.target.url, "target").check()
    except Exception as exc:
        _fail(explain(exc))
    instance = dagster_instance(plan_path)
    t0 = time.perf_counter()
    outcome = run_migration(plan, instance, wanted, post_checks=not recover)
    if recover:  # the replay judges the target as recovery leaves it, not the first pass
        _run_recovery(plan, wanted)
        after_migration(plan, instance, outcome, wanted)
    # the completeness check just counted both databases; after recovery the queue is counted again
    status = summary_counts(plan, outcome, wanted, recovered=recover)
    _print_summary(outcome, status, time.perf_counter() - t0)
    _exit_now(0 if outcome.ok else EXIT_FAILED)


def _exit_now(code: int) -> None:
    """Leave without the teardown: everything has committed and been printed.

    A normal exit stops Ray's processes one by one and then unloads torch, Ray and Dagster
    (~5 s, 5% of a TPC-H SF1 migration); the processes go at once and the rest with the process.
    """
    from resources.ray_cluster import stop_local_ray_now

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    stop_local_ray_now()
    os._exit(code)


def _run_recovery(plan, tables) -> None:
    try:
        from kora_assets.recovery.loop import run_until_stable
    except ImportError:
        return
    run_until_stable(plan, tables)


def _print_summary(outcome, status, seconds: float) -> None:
    rows = [("table", "status", "read", "landed", "queued", "seconds", "rows/s")]
    by_table = {t.table: t for t in outcome.tables}
    for table, s in status["tables"].items():
        o = by_table.get(table)
        secs = o.seconds if o else 0.0
        rate = f"{s['source_rows'] / secs:,.0f}" if secs else "-"
        rows.append((table, o.status if o else "-", f"{s['source_rows']:,}", f"{s['landed_rows']:,}",
                     f"{s['queued_rows']:,}", f"{secs:.1f}", rate))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    click.echo("")
    for i, r in enumerate(rows):
        click.echo("  ".join(c.rjust(w) if j > 1 else c.ljust(w) for j, (c, w) in enumerate(zip(r, widths))))
        if i == 0:
            click.echo("  ".join("-" * w for w in widths))
    for o in outcome.tables:
        if o.status != "ok":
            click.echo(f"\n{o.table}: {o.status}: {o.detail}")
    if outcome.checks:
        click.echo("\nchecks after the migration:")
        for c in outcome.checks:
            verdict = "passed" if c.passed else ("FAILED" if c.blocking else "warning")
            click.echo(f"  {c.asset} {c.check}: {verdict}" + (f" - {c.description}" if c.description else ""))
    click.echo(f"\n{'migration complete' if outcome.ok else 'migration INCOMPLETE'} in {seconds:.1f}s. "
               f"Error queue: kora.error_queue in the target. `kora status` shows partitions.")


@main.command()
@click.argument("plan_path", metavar="PLAN")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (per table and partition).")
@click.option("--tables", default=None, help="Comma-separated source tables (default: all).")
def status(plan_path, as_json, tables):
    """Source, landed and queued rows per table and partition, counted live."""
    _setup_logging(False)
    from kora_assets.status import migration_status

    plan = _load(plan_path)
    try:
        report = migration_status(plan, tables.split(",") if tables else None)
    except Exception as exc:
        _fail(explain(exc))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for table, s in report["tables"].items():
        mark = "ok" if s["conserved"] else "INCOMPLETE"
        click.echo(f"{table} -> {s['target']}: {s['source_rows']:,} source, {s['landed_rows']:,} landed, "
                   f"{s['queued_rows']:,} queued ({s['fixed_rows']:,} fixed) [{mark}]")
        for k, p in s["partitions"].items():
            if len(s["partitions"]) > 1:
                click.echo(f"    {k:>24}: {p['source_rows']:,} / {p['landed_rows']:,} / {p['queued_rows']:,}")


@main.command()
@click.option("--dir", "workdir", default=".kora-demo", show_default=True, help="Where the demo keeps its source, target and Dagster home.")
@click.option("--rows", default=1_000_000, show_default=True, help="Approximate rows in the legacy source.")
@click.option("--seed", default=42, show_default=True, help="Seed of the generated legacy data.")
@click.option("--target", "target_url", default=None, help="Use this PostgreSQL instead of the embedded one.")
@click.option("--stop", is_flag=True, help="Stop the embedded PostgreSQL an earlier demo left running in --dir "
                                           "(its data stays; the next demo starts it again), and exit.")
def demo(workdir, rows, seed, target_url, stop):
    """Build a dirty legacy SQLite source, start an embedded PostgreSQL, and migrate it.

    The embedded PostgreSQL keeps running afterwards, for `kora status` and the Dagster UI;
    `kora demo --stop` stops it.
    """
    _setup_logging(False)
    from kora_assets.demo.run import run_demo, stop_embedded_postgres

    if stop:
        pgdata = Path(workdir) / "pgdata"
        try:
            stopped = stop_embedded_postgres(pgdata)
        except Exception as exc:
            _fail(f"could not stop the embedded PostgreSQL in {pgdata}: {explain(exc)}")
        click.echo(f"stopped the embedded PostgreSQL in {pgdata}" if stopped
                   else f"no embedded PostgreSQL in {pgdata}: nothing to stop")
        sys.exit(0)
    try:
        code = run_demo(Path(workdir), rows=rows, seed=seed, target_url=target_url)
    except Exception as exc:
        _fail(explain(exc))
    sys.exit(code)


def _register_rules() -> None:
    from kora_assets.cli_rules import rules

    main.add_command(rules)


_register_rules()

if __name__ == "__main__":
    main()
