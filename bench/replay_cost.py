"""What does behavioral validation cost, next to the migration it validates?

Generates TPC-H with ``tpchgen-cli``, loads it into MariaDB (the source), migrates the same
tables into PostgreSQL, then replays the 22 TPC-H queries (MySQL dialect) on both sides with
kora's behavioral replay (translate, run read-only on source and target, compare), and prints
replay time / migration time.

The migration is, for now, a stand-in: PostgreSQL ``COPY`` of the generated files (the bulk
path kora's writer uses). ``--migrate-command`` times any other command instead, e.g.
``--migrate-command 'kora migrate plan.yaml'``; ``{source_url}`` and ``{target_url}`` in it are
replaced by the benchmark databases' URLs, and the command must create the target tables.

Example::

    .venv/bin/python bench/replay_cost.py --scale-factor 0.05 --repeat 3
"""
from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pymysql
from sqlalchemy.engine import make_url

from checks.behavioral import tpch
from checks.behavioral.querylog import read_query_log
from checks.behavioral.translate import renames_from_plan
from checks.behavioral.validator import replay_log


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--scale-factor", type=float, default=0.01, help="TPC-H scale factor (default 0.01)")
    p.add_argument("--mysql", default="mysql://root@127.0.0.1:3306", help="MariaDB/MySQL server URL (no database)")
    p.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server URL (no database)")
    p.add_argument("--queries", type=Path, default=tpch.QUERIES_FILE, help="the query log to replay")
    p.add_argument("--repeat", type=int, default=1, help="replay the log this many times; the median counts")
    p.add_argument("--migrate-command", help="time this shell command as the migration instead of COPY")
    p.add_argument("--per-query", action="store_true", help="also print each query's source and target time")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--keep", action="store_true", help="keep the kora_bh_bench_* databases")
    return p.parse_args(argv)


def _server(url: str):
    u = make_url(url)
    return u.host or "127.0.0.1", u.port, u.username, u.password


def main(argv=None) -> int:
    a = _args(argv)
    tag = uuid.uuid4().hex[:8]
    src_db, tgt_db = f"kora_bh_bench_src_{tag}", f"kora_bh_bench_tgt_{tag}"
    mhost, mport, muser, mpass = _server(a.mysql)
    phost, pport, puser, ppass = _server(a.postgres)
    mysql_kw = dict(host=mhost, port=mport or 3306, user=muser or "root", password=mpass or "")
    pg_kw = dict(host=phost, port=pport or 5432, user=puser or "postgres", password=ppass)
    src_url = make_url(a.mysql).set(database=src_db).render_as_string(hide_password=False)
    tgt_url = make_url(a.postgres).set(database=tgt_db).render_as_string(hide_password=False)
    plan = tpch.tpch_plan(src_url, tgt_url)
    out: dict = {"scale_factor": a.scale_factor, "queries": str(a.queries)}
    try:
        with tempfile.TemporaryDirectory(prefix="kora-bh-bench-") as tmp:
            t = time.perf_counter()
            data = tpch.generate(tmp, a.scale_factor)
            out["generate_s"] = time.perf_counter() - t

            with pymysql.connect(**mysql_kw) as c, c.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{src_db}` CHARACTER SET utf8mb4")
            with psycopg.connect(dbname="postgres", autocommit=True, **pg_kw) as c:
                c.execute(f'CREATE DATABASE "{tgt_db}"')

            t = time.perf_counter()
            with pymysql.connect(database=src_db, local_infile=True, **mysql_kw) as c:
                rows = tpch.load_mysql(c, data, plan)
            out["source_load_s"] = time.perf_counter() - t
            out["rows"] = sum(rows.values())

            t = time.perf_counter()
            if a.migrate_command:
                cmd = a.migrate_command.format(source_url=shlex.quote(src_url), target_url=shlex.quote(tgt_url))
                subprocess.run(cmd, shell=True, check=True)
                out["migration"] = a.migrate_command
            else:
                with psycopg.connect(dbname=tgt_db, **pg_kw) as c:
                    tpch.load_postgres(c, data, plan)
                out["migration"] = "PostgreSQL COPY of the generated files (stand-in for kora migrate)"
            out["migration_s"] = time.perf_counter() - t

        statements = read_query_log(a.queries)
        runs, report = [], None
        for _ in range(max(1, a.repeat)):
            t = time.perf_counter()
            report = replay_log(statements, src_url, tgt_url, renames_from_plan(plan))
            runs.append(time.perf_counter() - t)
        out["replay_runs_s"] = runs
        out["replay_s"] = statistics.median(runs)
        out["replay_source_s"] = report.seconds_source
        out["replay_target_s"] = report.seconds_target
        out["counts"] = report.counts()
        out["ratio_replay_to_migration"] = out["replay_s"] / out["migration_s"]
        out["per_query"] = [{"query": o.title, "status": o.status, "source_s": o.seconds_source,
                             "target_s": o.seconds_target} for o in report.outcomes]
    finally:
        if not a.keep:
            with pymysql.connect(**mysql_kw) as c, c.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{src_db}`")
            with psycopg.connect(dbname="postgres", autocommit=True, **pg_kw) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{tgt_db}" WITH (FORCE)')

    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return 0
    c = out["counts"]
    print(f"TPC-H scale factor {a.scale_factor}: {len(tpch.TPCH_TABLES)} tables, {out['rows']:,} rows")
    print(f"  generate (tpchgen-cli)                 {out['generate_s']:8.2f} s")
    print(f"  source load (MariaDB LOAD DATA)        {out['source_load_s']:8.2f} s   (not part of the ratio)")
    print(f"  migration: {out['migration']}")
    print(f"                                         {out['migration_s']:8.2f} s")
    print(f"  replay of {c['total']} queries (median of {len(runs)})     {out['replay_s']:8.2f} s   "
          f"(source {out['replay_source_s']:.2f} s, target {out['replay_target_s']:.2f} s, "
          f"rest: translation and comparison)")
    print(f"  outcome: {report.summary()}")
    print(f"  ratio replay / migration               {out['ratio_replay_to_migration']:8.2f}")
    if a.per_query:
        print("\n  query   status       source s   target s")
        for q in out["per_query"]:
            print(f"  {q['query']:<7} {q['status']:<12} {q['source_s']:8.3f}   {q['target_s']:8.3f}")
    return 0 if c["mismatched"] == 0 and c["untranslatable"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
