"""TPC-H MariaDB -> PostgreSQL: kora against pgloader and a raw text pipe, in one run.

Generates TPC-H data with ``tpchgen-cli``, loads it into MariaDB (``kora_bench_src``: the 8
tables with their types, primary keys, foreign keys and a few indexes), then migrates the whole
database into a fresh, empty PostgreSQL database per contender, all reaching the same end state
(same column types, primary keys, indexes and foreign keys):

  raw       per table ``mariadb --batch --raw --quick -e 'SELECT ...' | psql -c '\\copy ... FROM pstdin'``
            into tables created by hand-written DDL (the DDL kora creates), in FK order; then
            the primary keys, indexes and foreign keys. Timed as a whole.
  pgloader  ``pgloader`` (Debian package) from MariaDB; it creates schema, indexes and FKs itself.
  kora      ``kora init`` (not timed), then ``kora migrate PLAN --no-recover`` (validation on),
            while the peak RSS of its whole process tree (Ray workers included) is sampled.

Every contender's row counts are checked against the source before anything is printed. The
result is rows/s per contender and the ratios kora/pgloader and kora/raw (rows/s over rows/s,
measured in the same run, so machine noise mostly cancels), plus kora's peak RSS and the busy
CPU seconds of the whole machine while each contender ran (databases included). The issue's
targets: kora/pgloader >= 2, kora/raw >= 0.7, peak RSS < 1 GiB and independent of table size.

    .venv/bin/python bench/tpch_migrate.py                      # SF 0.1 (~866k rows), a few minutes
    .venv/bin/python bench/tpch_migrate.py --scale-factor 1     # SF 1 (8.66M rows), the real run
    .venv/bin/python bench/tpch_migrate.py --skip-pgloader --workers 4 --keep
    .venv/bin/python bench/tpch_migrate.py --only kora --profile  # py-spy profile of kora (slower)

Files: generated data in bench/out/tpch-sf<SF>/ (reused), the plan in bench/out/tpch_plan.yaml,
logs in bench/out/tpch_sf<SF>_<contender>.log, results in bench/out/tpch_results.json.
Databases: MariaDB kora_bench_src (kept, reused while its row counts match; --reload rebuilds it),
PostgreSQL kora_bench_raw, kora_bench_pgloader, kora_bench_kora (dropped at the end unless --keep).
Needs: the ``mariadb`` and ``psql`` clients, ``pgloader`` (``apt-get install -y pgloader``) unless
--skip-pgloader, MariaDB on 127.0.0.1:3306 (root, no password) and PostgreSQL on 127.0.0.1:5432
(postgres, trust) by default.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
VENV_BIN = Path(sys.executable).parent

SRC_DB = "kora_bench_src"
TARGET_DBS = {"raw": "kora_bench_raw", "pgloader": "kora_bench_pgloader", "kora": "kora_bench_kora"}
CONTENDERS = ("raw", "pgloader", "kora")

# ---------------------------------------------------------------------------------------------
# The TPC-H schema, once: MariaDB DDL and the PostgreSQL DDL of the raw pipe are both made from it.
# Every foreign-key column has its own index (MariaDB requires one; named here so every
# contender gets the same set), plus the usual date indexes. FK order = load order.
# ---------------------------------------------------------------------------------------------


@dataclass
class Table:
    name: str
    columns: list[tuple[str, str]]  # (name, MariaDB type); all NOT NULL in TPC-H
    pk: list[str]
    fks: list[tuple[str, str, str]] = field(default_factory=list)  # (column, parent table, parent column)
    indexes: list[str] = field(default_factory=list)  # single-column secondary indexes
    nullable: frozenset[str] = frozenset()


D = "DECIMAL(15,2)"
TABLES = [
    Table("region", [("r_regionkey", "INTEGER"), ("r_name", "CHAR(25)"), ("r_comment", "VARCHAR(152)")],
          ["r_regionkey"]),
    Table("nation", [("n_nationkey", "INTEGER"), ("n_name", "CHAR(25)"), ("n_regionkey", "INTEGER"),
                     ("n_comment", "VARCHAR(152)")],
          ["n_nationkey"], [("n_regionkey", "region", "r_regionkey")], ["n_regionkey"]),
    Table("part", [("p_partkey", "INTEGER"), ("p_name", "VARCHAR(55)"), ("p_mfgr", "CHAR(25)"),
                   ("p_brand", "CHAR(10)"), ("p_type", "VARCHAR(25)"), ("p_size", "INTEGER"),
                   ("p_container", "CHAR(10)"), ("p_retailprice", D), ("p_comment", "VARCHAR(23)")],
          ["p_partkey"]),
    Table("supplier", [("s_suppkey", "INTEGER"), ("s_name", "CHAR(25)"), ("s_address", "VARCHAR(40)"),
                       ("s_nationkey", "INTEGER"), ("s_phone", "CHAR(15)"), ("s_acctbal", D),
                       ("s_comment", "VARCHAR(101)")],
          ["s_suppkey"], [("s_nationkey", "nation", "n_nationkey")], ["s_nationkey"]),
    Table("partsupp", [("ps_partkey", "INTEGER"), ("ps_suppkey", "INTEGER"), ("ps_availqty", "INTEGER"),
                       ("ps_supplycost", D), ("ps_comment", "VARCHAR(199)")],
          ["ps_partkey", "ps_suppkey"],
          [("ps_partkey", "part", "p_partkey"), ("ps_suppkey", "supplier", "s_suppkey")], ["ps_suppkey"]),
    Table("customer", [("c_custkey", "INTEGER"), ("c_name", "VARCHAR(25)"), ("c_address", "VARCHAR(40)"),
                       ("c_nationkey", "INTEGER"), ("c_phone", "CHAR(15)"), ("c_acctbal", D),
                       ("c_mktsegment", "CHAR(10)"), ("c_comment", "VARCHAR(117)")],
          ["c_custkey"], [("c_nationkey", "nation", "n_nationkey")], ["c_nationkey"]),
    Table("orders", [("o_orderkey", "BIGINT"), ("o_custkey", "INTEGER"), ("o_orderstatus", "CHAR(1)"),
                     ("o_totalprice", D), ("o_orderdate", "DATE"), ("o_orderpriority", "CHAR(15)"),
                     ("o_clerk", "CHAR(15)"), ("o_shippriority", "INTEGER"), ("o_comment", "VARCHAR(79)")],
          ["o_orderkey"], [("o_custkey", "customer", "c_custkey")], ["o_custkey", "o_orderdate"]),
    Table("lineitem", [("l_orderkey", "BIGINT"), ("l_partkey", "INTEGER"), ("l_suppkey", "INTEGER"),
                       ("l_linenumber", "INTEGER"), ("l_quantity", D), ("l_extendedprice", D),
                       ("l_discount", D), ("l_tax", D), ("l_returnflag", "CHAR(1)"), ("l_linestatus", "CHAR(1)"),
                       ("l_shipdate", "DATE"), ("l_commitdate", "DATE"), ("l_receiptdate", "DATE"),
                       ("l_shipinstruct", "CHAR(25)"), ("l_shipmode", "CHAR(10)"), ("l_comment", "VARCHAR(44)")],
          ["l_orderkey", "l_linenumber"],
          [("l_orderkey", "orders", "o_orderkey"), ("l_partkey", "part", "p_partkey"),
           ("l_suppkey", "supplier", "s_suppkey")],
          ["l_partkey", "l_suppkey", "l_shipdate"]),
]
BY_NAME = {t.name: t for t in TABLES}


def pg_type(my_type: str) -> str:
    """The PostgreSQL type kora's plan gives a MariaDB type (kora_assets.plan.infer + types)."""
    t = my_type.lower()
    return {"integer": "integer", "bigint": "bigint", "date": "date"}.get(t, t.replace("decimal", "numeric"))


def is_text(my_type: str) -> bool:
    return my_type.upper().startswith(("CHAR", "VARCHAR", "TEXT"))


# Constraint and index names follow kora's (kora_assets/dbio/ddl.py): pk_<t>, ix_<t>_<cols>, fk_<t>_<cols>.
def my_create_sql(t: Table) -> str:
    cols = [f"{c} {ty} {'NULL' if c in t.nullable else 'NOT NULL'}" for c, ty in t.columns]
    cols.append(f"PRIMARY KEY ({', '.join(t.pk)})")
    return f"CREATE TABLE {t.name} (\n  " + ",\n  ".join(cols) + "\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"


def my_secondary_sql(t: Table) -> str | None:
    parts = [f"ADD INDEX ix_{t.name}_{c} ({c})" for c in t.indexes]
    parts += [f"ADD CONSTRAINT fk_{t.name}_{c} FOREIGN KEY ({c}) REFERENCES {p} ({pc})" for c, p, pc in t.fks]
    return f"ALTER TABLE {t.name} " + ", ".join(parts) if parts else None


def pg_create_sql(t: Table) -> str:
    cols = [f"{c} {pg_type(ty)}{'' if c in t.nullable else ' NOT NULL'}" for c, ty in t.columns]
    return f"CREATE TABLE {t.name} (\n  " + ",\n  ".join(cols) + "\n)"


def pg_post_load_sql(t: Table) -> tuple[list[str], list[str], list[str]]:
    """(primary key, indexes, foreign keys) statements for after the bulk load, as kora defines them."""
    pk = [f"ALTER TABLE {t.name} ADD CONSTRAINT pk_{t.name} PRIMARY KEY ({', '.join(t.pk)})"]
    ix = [f"CREATE INDEX ix_{t.name}_{c} ON {t.name} ({c})" for c in t.indexes]
    fk = [f"ALTER TABLE {t.name} ADD CONSTRAINT fk_{t.name}_{c} FOREIGN KEY ({c}) REFERENCES {p} ({pc}) "
          "ON DELETE NO ACTION ON UPDATE NO ACTION DEFERRABLE INITIALLY IMMEDIATE" for c, p, pc in t.fks]
    return pk, ix, fk


# ---------------------------------------------------------------------------------------------
# Connections
# ---------------------------------------------------------------------------------------------


@dataclass
class Servers:
    my_host: str
    my_port: int
    my_user: str
    pg_host: str
    pg_port: int
    pg_user: str

    def my_connect(self, db: str | None = SRC_DB, **kw):
        import pymysql

        return pymysql.connect(host=self.my_host, port=self.my_port, user=self.my_user, database=db,
                               autocommit=True, charset="utf8mb4", **kw)

    def pg_connect(self, db: str = "postgres"):
        import psycopg

        return psycopg.connect(host=self.pg_host, port=self.pg_port, user=self.pg_user, dbname=db, autocommit=True)

    def my_url(self, db: str = SRC_DB) -> str:
        return f"mysql://{self.my_user}@{self.my_host}:{self.my_port}/{db}"

    def pg_url(self, db: str) -> str:
        return f"postgresql://{self.pg_user}@{self.pg_host}:{self.pg_port}/{db}"


def git_state() -> dict:
    """Which kora was measured: HEAD and the files changed since (engineers work concurrently)."""
    def git(*a):
        r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    changed = git("status", "--porcelain", "--", "kora_assets", "checks", "resources")
    return {"head": git("rev-parse", "--short", "HEAD"), "changed": changed.splitlines() if changed else []}


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# 1. TPC-H data
# ---------------------------------------------------------------------------------------------


def find_tool(name: str, override: str | None = None) -> str | None:
    if override:
        return override
    venv = VENV_BIN / name
    return str(venv) if venv.exists() else shutil.which(name)


def sf_label(sf: float) -> str:
    return f"{sf:g}"


def generate(tpchgen: str, sf: float, cache: Path) -> dict[str, int]:
    """The .tbl files in ``cache`` (generated once) and their row counts."""
    counts_file = cache / "counts.json"
    if counts_file.exists() and all((cache / f"{t.name}.tbl").exists() for t in TABLES):
        return json.loads(counts_file.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    log(f"generating TPC-H SF{sf_label(sf)} into {cache}")
    t0 = time.perf_counter()
    subprocess.run([tpchgen, "tbl", "--scale-factor", str(sf), "--output-dir", str(cache), "--overwrite"],
                   check=True, stdout=subprocess.DEVNULL)
    counts = {}
    for t in TABLES:
        n = 0
        with open(cache / f"{t.name}.tbl", "rb") as f:
            while chunk := f.read(1 << 24):
                n += chunk.count(b"\n")
        counts[t.name] = n
    counts_file.write_text(json.dumps(counts))
    log(f"generated {sum(counts.values()):,} rows in {time.perf_counter() - t0:.1f}s")
    return counts


# ---------------------------------------------------------------------------------------------
# 2. MariaDB source
# ---------------------------------------------------------------------------------------------


def source_counts(srv: Servers, db: str = SRC_DB) -> dict[str, int] | None:
    try:
        conn = srv.my_connect(db)
    except Exception:
        return None
    try:
        with conn.cursor() as cur:
            out = {}
            for t in TABLES:
                try:
                    cur.execute(f"SELECT COUNT(*) FROM {t.name}")
                    out[t.name] = int(cur.fetchone()[0])
                except Exception:
                    return None
            cur.execute("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s", (db,))
            if int(cur.fetchone()[0]) != len(TABLES):
                return None
            return out
    finally:
        conn.close()


def load_source(srv: Servers, cache: Path) -> None:
    log(f"loading MariaDB {SRC_DB} from {cache}")
    t0 = time.perf_counter()
    conn = srv.my_connect(None, local_infile=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {SRC_DB}")
            cur.execute(f"CREATE DATABASE {SRC_DB} CHARACTER SET utf8mb4")
            cur.execute(f"USE {SRC_DB}")
            cur.execute("SET foreign_key_checks = 0, unique_checks = 0")
            for t in TABLES:
                cur.execute(my_create_sql(t))
                t1 = time.perf_counter()
                cols = ", ".join(c for c, _ in t.columns)
                # .tbl: '|' separated, a trailing '|' on every line, no quoting, no NULLs.
                cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE {t.name} CHARACTER SET utf8mb4 "
                            "FIELDS TERMINATED BY '|' ESCAPED BY '' LINES TERMINATED BY '|\\n' "
                            f"({cols})", (str(cache / f"{t.name}.tbl"),))
                log(f"  {t.name}: {cur.rowcount:,} rows in {time.perf_counter() - t1:.1f}s")
            for t in TABLES:  # secondary indexes and FKs after the load: sorted index builds
                if sql := my_secondary_sql(t):
                    cur.execute(sql)
            cur.execute("SET foreign_key_checks = 1, unique_checks = 1")
            cur.execute("ANALYZE TABLE " + ", ".join(t.name for t in TABLES))
            cur.fetchall()
    finally:
        conn.close()
    log(f"source loaded in {time.perf_counter() - t0:.1f}s")


def warm_source(srv: Servers) -> None:
    """One full clustered-index scan per table so no contender pays for a cold page cache."""
    conn = srv.my_connect()
    try:
        with conn.cursor() as cur:
            for t in TABLES:
                cur.execute(f"SELECT SUM(LENGTH({t.columns[-1][0]})) FROM {t.name}")
                cur.fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------


def recreate_pg(srv: Servers, db: str) -> None:
    with srv.pg_connect() as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        c.execute(f"CREATE DATABASE {db}")


def drop_pg(srv: Servers, db: str) -> None:
    with srv.pg_connect() as c:
        c.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def target_counts(srv: Servers, db: str) -> dict[str, int | None]:
    out: dict[str, int | None] = {}
    with srv.pg_connect(db) as c:
        for t in TABLES:
            try:
                out[t.name] = int(c.execute(f"SELECT COUNT(*) FROM public.{t.name}").fetchone()[0])
            except Exception:
                out[t.name] = None
    return out


def content_hashes(srv: Servers, db: str) -> dict[str, str]:
    """An order-independent digest of every table's rows (sum of a hash of each row's text)."""
    out = {}
    with srv.pg_connect(db) as c:
        for t in TABLES:
            n, h = c.execute(f"SELECT COUNT(*), SUM(hashtext(x::text)) FROM public.{t.name} x").fetchone()
            out[t.name] = f"{n}:{h}"
    return out


def target_schema(srv: Servers, db: str) -> dict[str, dict]:
    """What each contender built: column types and nullability, PK, secondary indexes, FKs."""
    out: dict[str, dict] = {}
    with srv.pg_connect(db) as c:
        for t in TABLES:
            cols = c.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                (f"public.{t.name}",)).fetchall()
            if not cols:
                out[t.name] = {"missing": True}
                continue
            cons = c.execute(
                "SELECT contype, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = to_regclass(%s) AND contype IN ('p', 'f')", (f"public.{t.name}",)).fetchall()
            idx = c.execute(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = to_regclass(%s) "
                "AND NOT i.indisprimary", (f"public.{t.name}",)).fetchall()
            out[t.name] = {
                "columns": {n: f"{ty}{' not null' if nn else ''}" for n, ty, nn in cols},
                "primary_key": sorted(d for k, d in cons if k == "p"),
                # NO ACTION and RESTRICT only differ for deferred checks: both count as "the default" here.
                "foreign_keys": sorted(re.sub(r"\s*(ON (DELETE|UPDATE) (NO ACTION|RESTRICT)|NOT DEFERRABLE|DEFERRABLE"
                                              r"|INITIALLY IMMEDIATE)", "", d).replace("public.", "")
                                       for k, d in cons if k == "f"),
                "indexes": sorted(re.sub(r"^.*USING \w+ ", "", d) for (d,) in idx),
            }
    return out


def schema_differences(reference: dict, other: dict) -> list[str]:
    diffs = []
    for t in TABLES:
        a, b = reference.get(t.name, {}), other.get(t.name, {})
        if b.get("missing"):
            diffs.append(f"{t.name}: missing")
            continue
        for col, ty in a.get("columns", {}).items():
            if b.get("columns", {}).get(col) != ty:
                diffs.append(f"{t.name}.{col}: {b.get('columns', {}).get(col)} (raw: {ty})")
        for k in ("primary_key", "foreign_keys", "indexes"):
            if a.get(k) != b.get(k):
                diffs.append(f"{t.name} {k}: {b.get(k)} (raw: {a.get(k)})")
    return diffs


# ---------------------------------------------------------------------------------------------
# Process-tree RSS sampling
# ---------------------------------------------------------------------------------------------


def _unexeced_forks(procs) -> set[int]:
    """Children caught between fork and exec (same command line as their parent): they share
    every page with the parent, so their RSS is the parent's counted twice (a ~950 MiB
    'kora migrate' beside the real one when the coordinator starts a subprocess)."""
    cmd = {}
    for p in procs:
        try:
            cmd[p.pid] = (p.ppid(), p.cmdline())
        except Exception:
            continue
    return {pid for pid, (ppid, line) in cmd.items() if ppid in cmd and line and cmd[ppid][1] == line}


class TreeSampler(threading.Thread):
    """Every ``interval`` s: RSS summed over a process and all its descendants; keeps the maxima."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True, name="rss-sampler")
        self.pid, self.interval = pid, interval
        self.stop_event = threading.Event()
        self.max_tree = 0
        self.max_single = 0
        self.max_single_proc = ""
        self.max_procs = 0
        self.max_pss = 0  # proportional set size summed: shared pages (libraries) counted once
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (seconds since start, tree RSS), ~1 per second
        self.per_process: dict[int, list] = {}  # pid -> [peak RSS, command line]

    def run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        t0, last_tl = time.monotonic(), -1.0
        while not self.stop_event.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total, pss, want_pss = 0, 0, self.samples % 5 == 0  # PSS (smaps) once a second
            forks = _unexeced_forks(procs)
            for p in procs:
                if p.pid in forks:
                    continue
                try:
                    if want_pss:
                        mi = p.memory_full_info()
                        pss += getattr(mi, "pss", mi.rss)
                    else:
                        mi = p.memory_info()
                    rss = mi.rss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                total += rss
                seen = self.per_process.get(p.pid)
                if seen is None or rss > seen[0]:
                    try:  # re-read: Ray renames a worker (ray::IDLE -> ray::MigrationWorker.drain)
                        name = " ".join(p.cmdline()).strip()[:120]
                    except Exception:
                        name = seen[1] if seen else "?"
                    self.per_process[p.pid] = [rss, name]
                if rss > self.max_single:
                    self.max_single = rss
                    try:
                        self.max_single_proc = f"{p.pid} {' '.join(p.cmdline())[:100]}"
                    except Exception:
                        self.max_single_proc = str(p.pid)
            self.samples += 1
            self.max_procs = max(self.max_procs, len(procs))
            self.max_tree = max(self.max_tree, total)
            self.max_pss = max(self.max_pss, pss)
            now = time.monotonic() - t0
            if now - last_tl >= 1.0:
                self.timeline.append((round(now, 1), total))
                last_tl = now
            self.stop_event.wait(self.interval)

    def stop(self) -> dict:
        self.stop_event.set()
        self.join(timeout=5)
        return {"peak_rss_tree_bytes": self.max_tree, "peak_rss_single_bytes": self.max_single,
                "peak_pss_tree_bytes": self.max_pss,
                "peak_rss_single_process": self.max_single_proc, "max_processes": self.max_procs,
                "samples": self.samples, "rss_timeline": self.timeline,
                "per_process_peak": sorted(([v[0], k, v[1]] for k, v in self.per_process.items()), reverse=True)}


def run_sampled(cmd: list[str], logfile: Path, env: dict | None = None, timeout: float | None = None,
                profile_to: Path | None = None, py_spy: str | None = None) -> tuple[int, float, dict]:
    """Run ``cmd`` with output to ``logfile``; (exit code, wall seconds, RSS stats of its tree)."""
    with open(logfile, "w") as lf:
        lf.write("$ " + " ".join(cmd) + "\n")
        lf.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        spy = None
        if profile_to and py_spy:
            spy = subprocess.Popen([py_spy, "record", "--pid", str(proc.pid), "--subprocesses", "--rate", "50",
                                    "--format", "raw", "--output", str(profile_to), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=open(str(profile_to) + ".log", "w"))
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            lf.write(f"\n[bench] killed after {timeout}s\n")
            rc = 124 if rc in (0, None) else rc
        secs = time.perf_counter() - t0
        stats = sampler.stop()
        if spy is not None:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.terminate()
    return rc, secs, stats


def tail(path: Path, n: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# 3. Contenders
# ---------------------------------------------------------------------------------------------


def raw_select(t: Table) -> str:
    """SELECT producing PostgreSQL COPY text format under ``mariadb --raw``: backslash, tab,
    newline and carriage return escaped, SQL NULL as \\N (TPC-H has neither; this is correct anyway)."""
    exprs = []
    for c, ty in t.columns:
        e = c
        if is_text(ty):
            e = (f"REPLACE(REPLACE(REPLACE(REPLACE({c}, '\\\\', '\\\\\\\\'), '\\t', '\\\\t'), "
                 f"'\\n', '\\\\n'), '\\r', '\\\\r')")
        if c in t.nullable:
            e = f"IFNULL({e}, '\\\\N')"
        exprs.append(e)
    return f"SELECT {', '.join(exprs)} FROM {t.name}"


def run_raw(srv: Servers, mariadb: str, psql: str, logfile: Path) -> dict:
    db = TARGET_DBS["raw"]
    recreate_pg(srv, db)
    steps: dict[str, float] = {}
    env = {**os.environ, "PGCLIENTENCODING": "UTF8"}
    with open(logfile, "w") as lf:
        t0 = time.perf_counter()
        with srv.pg_connect(db) as c:
            for t in TABLES:
                c.execute(pg_create_sql(t))
        steps["create_tables"] = time.perf_counter() - t0
        for t in TABLES:
            t1 = time.perf_counter()
            sql = raw_select(t)
            cols = ", ".join(c for c, _ in t.columns)
            my_cmd = [mariadb, f"--host={srv.my_host}", f"--port={srv.my_port}", f"--user={srv.my_user}",
                      "--batch", "--skip-column-names", "--raw", "--quick", "--default-character-set=utf8mb4",
                      SRC_DB, "-e", sql]
            pg_cmd = [psql, "-h", srv.pg_host, "-p", str(srv.pg_port), "-U", srv.pg_user, "-d", db, "-X", "-q",
                      "-v", "ON_ERROR_STOP=1", "-c", f"\\copy {t.name} ({cols}) FROM pstdin"]
            lf.write(f"$ {' '.join(my_cmd[:-1])} '{sql}' | {' '.join(pg_cmd[:-1])} '{pg_cmd[-1]}'\n")
            lf.flush()
            src = subprocess.Popen(my_cmd, stdout=subprocess.PIPE, stderr=lf)
            dst = subprocess.Popen(pg_cmd, stdin=src.stdout, stdout=lf, stderr=lf, env=env)
            src.stdout.close()
            rc_dst, rc_src = dst.wait(), src.wait()
            if rc_src or rc_dst:
                raise RuntimeError(f"raw pipe for {t.name} failed (mariadb exit {rc_src}, psql exit {rc_dst}); "
                                   f"see {logfile}:\n{tail(logfile, 10)}")
            steps[f"copy_{t.name}"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        with srv.pg_connect(db) as c:
            stmts = [pg_post_load_sql(t) for t in TABLES]
            for phase, i in (("primary_keys", 0), ("indexes", 1), ("foreign_keys", 2)):
                t3 = time.perf_counter()
                for s in stmts:
                    for stmt in s[i]:
                        lf.write(stmt + ";\n")
                        c.execute(stmt)
                steps[phase] = time.perf_counter() - t3
        steps["constraints_and_indexes"] = time.perf_counter() - t2
        secs = time.perf_counter() - t0
    return {"ok": True, "seconds": secs, "steps": {k: round(v, 3) for k, v in steps.items()}}


PGLOADER_CMD = """\
LOAD DATABASE
     FROM {src}
     INTO {dst}
 WITH include drop, create tables, create indexes, foreign keys, reset sequences,
      prefetch rows = 25000
 -- pgloader pauses reading while its writers catch up; MariaDB's default 60 s write timeout
 -- then drops the connection mid-lineitem ("couldn't read from socket"). With that fixed, its
 -- default 100k prefetched rows per reader exhausted the Debian build's heap on lineitem.
  SET MySQL PARAMETERS net_read_timeout = '600', net_write_timeout = '600'
 -- the same column types as kora and the raw DDL (pgloader would make int(11) a bigint,
 -- char(n) a varchar(n) and drop NOT NULL from dates)
 CAST type int to integer drop typemod keep not null,
      type char to char keep typemod keep not null,
      type date to date keep not null
 ALTER SCHEMA '{schema}' RENAME TO 'public';
"""


def run_pgloader(srv: Servers, pgloader: str | None, logfile: Path, timeout: float) -> dict:
    if not pgloader:
        return {"ok": False,
                "error": "pgloader is not installed (apt-get install -y pgloader), or pass --skip-pgloader"}
    db = TARGET_DBS["pgloader"]
    recreate_pg(srv, db)
    cmdfile = OUT / "tpch_pgloader.load"
    cmdfile.write_text(PGLOADER_CMD.format(src=srv.my_url(), dst=srv.pg_url(db), schema=SRC_DB))
    rc, secs, rss = run_sampled([pgloader, "--root-dir", str(OUT / "pgloader"), str(cmdfile)], logfile, timeout=timeout)
    text = logfile.read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if re.search(r"\b(FATAL|ERROR)\b", ln)]
    res = {"ok": rc == 0 and not errors, "seconds": secs, "exit_code": rc, **_mib(rss),
           "phases": _pgloader_phases(text)}
    if not res["ok"]:
        res["error"] = f"pgloader exit {rc}; " + ("; ".join(errors[:5]) if errors else tail(logfile, 8))
    return res


def _pgloader_phases(text: str) -> dict[str, float]:
    """pgloader's own summary, e.g. {'fetch meta data': 0.3, 'public.lineitem': 14.4, ...} in seconds."""
    out = {}
    for m in re.finditer(r"^\s*(\S.*?)\s+(?:\d+|✓|✗)\s+\d+(?:\s+[\d.]+ [kMG]?B)?\s+(?:(\d+)h)?(?:(\d+)m)?([\d.]+)s\s*$",
                         text, re.M):
        out[m[1].strip()] = round(int(m[2] or 0) * 3600 + int(m[3] or 0) * 60 + float(m[4]), 3)
    return out


SUMMARY_RE = re.compile(r"^(\w+)\s+(ok|failed|check_failed|skipped|-)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)"
                        r"\s+([\d.]+)\s+(\S+)$")
PROGRESS_RE = re.compile(r"^(\w+) \[(\d+)/(\d+)\] partition (\S+): ([\d,]+) rows read, (.*) "
                         r"\(([\d.]+)s on ([^,\s]+)(?:, ([\d,]+) MiB)?\)$")


def run_kora(srv: Servers, kora: str, workers: int | None, logfile: Path, timeout: float,
             profile: bool, py_spy: str | None) -> dict:
    db = TARGET_DBS["kora"]
    recreate_pg(srv, db)
    plan = OUT / "tpch_plan.yaml"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "KORA_RAY_ADDRESS", "DAGSTER_HOME")}
    env.setdefault("RAY_AUTH_MODE", "disabled")
    t0, busy0 = time.perf_counter(), machine_busy_s()
    init = subprocess.run([kora, "init", "--source", srv.my_url(), "--target", srv.pg_url(db),
                           "-o", str(plan), "--force"], capture_output=True, text=True, env=env, cwd=ROOT)
    init_s = time.perf_counter() - t0
    init_cpu = (machine_busy_s() or 0.0) - (busy0 or 0.0)
    if init.returncode:
        return {"ok": False, "error": f"kora init exit {init.returncode}: {(init.stderr or init.stdout).strip()}"}
    cmd = [kora, "migrate", str(plan), "--no-recover"] + (["--workers", str(workers)] if workers else [])
    prof = OUT / "tpch_kora_profile.txt" if profile else None
    rc, secs, rss = run_sampled(cmd, logfile, env=env, timeout=timeout, profile_to=prof, py_spy=py_spy)
    text = logfile.read_text(errors="replace")
    per_table, partitions = {}, []
    for ln in text.splitlines():
        if m := SUMMARY_RE.match(ln.strip()):
            per_table[m[1]] = {"status": m[2], "read": int(m[3].replace(",", "")), "landed": int(m[4].replace(",", "")),
                               "queued": int(m[5].replace(",", "")), "seconds": float(m[6])}
        elif m := PROGRESS_RE.match(ln.strip()):
            partitions.append({"table": m[1], "partition": m[4], "rows": int(m[5].replace(",", "")),
                               "status": m[6], "seconds": float(m[7]), "worker": m[8],
                               "worker_rss_mib": int(m[9].replace(",", "")) if m[9] else None})
    m = re.search(r"^migration (?:complete|INCOMPLETE) in ([\d.]+)s", text, re.M)
    res = {"ok": rc == 0, "seconds": secs, "exit_code": rc, "init_output": init.stdout.strip(),
           "init_seconds_not_timed": round(init_s, 2), "init_machine_cpu_s": init_cpu,
           "kora_reported_seconds": float(m[1]) if m else None,
           "per_table": per_table, "partitions": partitions, **_mib(rss)}
    if prof:
        res["profile"] = str(prof)
    if rc:
        detail = [ln for ln in text.splitlines() if re.match(r"^\w+: (failed|check_failed|skipped)", ln)]
        res["error"] = f"kora migrate exit {rc}; " + ("; ".join(detail) if detail else tail(logfile, 15))
    try:
        with srv.pg_connect(db) as c:
            res["error_queue_rows"] = int(c.execute("SELECT COUNT(*) FROM kora.error_queue").fetchone()[0])
    except Exception:
        pass
    return res


def _mib(rss: dict) -> dict:
    out = dict(rss)
    for k in ("peak_rss_tree_bytes", "peak_rss_single_bytes", "peak_pss_tree_bytes"):
        out[k.replace("_bytes", "_mib")] = round(rss[k] / 2**20, 1)
    out["rss_timeline"] = [(t, round(b / 2**20, 1)) for t, b in rss["rss_timeline"]]
    out["per_process_peak_mib"] = [(round(b / 2**20, 1), pid, cmd) for b, pid, cmd in rss["per_process_peak"]]
    del out["per_process_peak"]
    return out


# ---------------------------------------------------------------------------------------------
# 4. Report
# ---------------------------------------------------------------------------------------------


def _label(cmd: str) -> str:
    """A short name for a process: 'kora migrate', 'ray::MigrationWorker.drain', 'dashboard.py', 'raylet'."""
    words = cmd.split()
    if not words:
        return "?"
    if words[0].startswith("ray::"):
        return words[0]
    if "migrate" in words and any(w.endswith("/kora") for w in words):
        return "kora migrate"
    for w in words[1:] if "python" in words[0] else words:
        if not w.startswith("-"):
            return w.rsplit("/", 1)[-1]
    return words[0].rsplit("/", 1)[-1]


def machine_busy_s() -> float | None:
    """CPU seconds this machine has been busy (all processes, all cores: /proc/stat), or None.

    A contender's wall time moves with whatever else a shared host runs; the work it makes
    the machine do (its own processes, both database servers, the pipe's clients) moves less."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # less idle and iowait


def report(r: dict) -> None:
    total = r["source_rows_total"]
    print()
    print(f"TPC-H SF{r['scale_factor']}: {total:,} rows in {len(TABLES)} tables, MariaDB -> PostgreSQL "
          f"({r['cpus']} CPUs, load avg at start {r['loadavg_start']})")
    hdr = f"  {'contender':<10} {'seconds':>9} {'rows/s':>11}  {'rows ok':<8} {'peak RSS tree/single (MiB)':<27} note"
    print(hdr)
    print("  " + "-" * (len(hdr) + 10))
    for name in CONTENDERS:
        c = r["contenders"].get(name)
        if c is None:
            continue
        if c.get("skipped"):
            print(f"  {name:<10} {'-':>9} {'-':>11}  {'-':<8} {'-':<27} skipped")
            continue
        secs = f"{c['seconds']:.1f}" if c.get("seconds") else "-"
        rate = f"{c['rows_per_s']:,.0f}" if c.get("rows_per_s") else "-"
        ok = "yes" if c.get("counts_match") else ("NO" if "counts_match" in c else "-")
        rss = (f"{c['peak_rss_tree_mib']:,.0f} / {c['peak_rss_single_mib']:,.0f}"
               if "peak_rss_tree_mib" in c else "-")
        note = "" if c.get("ok") else f"FAILED: {c.get('error', '')}"
        if c.get("ok") and c.get("schema_differences"):
            note = f"schema differs from raw in {len(c['schema_differences'])} place(s)"
        if c.get("content_matches_raw") is False:
            note += f" CONTENT differs from raw in {', '.join(c['content_differs_in'])}"
        elif c.get("content_matches_raw"):
            note += " same schema and content as raw" if not c.get("schema_differences") else " same content as raw"
        print(f"  {name:<10} {secs:>9} {rate:>11}  {ok:<8} {rss:<27} {note[:300]}")
    print()
    for key, label, target in (("kora_over_pgloader", "kora / pgloader", 2.0), ("kora_over_raw", "kora / raw", 0.7)):
        v = r["ratios"].get(key)
        if v is None:
            print(f"  {label:<16} n/a ({r['ratios'].get(key + '_why', 'a contender did not complete')})")
        else:
            print(f"  {label:<16} {v:6.3f}  (rows/s ratio; target >= {target}: {'met' if v >= target else 'NOT met'})")
    cpu = {n: r["contenders"].get(n, {}).get("machine_cpu_s") for n in CONTENDERS}
    if cpu.get("kora") and (cpu.get("raw") or cpu.get("pgloader")):
        parts = ", ".join(f"{n} {v:,.0f}" for n, v in cpu.items() if v)
        ratios = ", ".join(f"kora / {n} {cpu['kora'] / cpu[n]:.2f}" for n in ("raw", "pgloader") if cpu.get(n))
        print(f"  machine CPU-s  {parts} (busy CPU seconds of the whole machine, databases included; {ratios})")
    pg = r["contenders"].get("pgloader", {})
    meta = pg.get("phases", {}).get("fetch meta data", 0)
    if pg.get("ok") and meta > max(10.0, 0.1 * pg["seconds"]):
        adj = r["source_rows_total"] / (pg["seconds"] - meta)
        k_rate = r["contenders"].get("kora", {}).get("rows_per_s")
        print(f"  WARNING: pgloader spent {meta:.1f}s of its {pg['seconds']:.1f}s fetching MariaDB metadata "
              f"(information_schema; usually well under a second: lock waits from concurrent DDL on the server?). "
              f"Without it: {adj:,.0f} rows/s" + (f", kora / pgloader {k_rate / adj:.3f}" if k_rate else ""))
    k = r["contenders"].get("kora", {})
    if "peak_rss_tree_mib" in k:
        gib = k["peak_rss_tree_bytes"] / 2**30
        print(f"  kora peak RSS   {k['peak_rss_tree_mib']:,.0f} MiB summed over {k['max_processes']} processes "
              f"(target < 1 GiB: {'met' if gib < 1 else 'NOT met'}); largest single process "
              f"{k['peak_rss_single_mib']:,.0f} MiB ({k['peak_rss_single_process'][:70]}); "
              f"PSS summed (shared pages once, sampled 1/s): {k['peak_pss_tree_mib']:,.0f} MiB")
        top = ", ".join(f"{_label(cmd)} {mib:,.0f}" for mib, _, cmd in k.get("per_process_peak_mib", [])[:8])
        print(f"                  largest processes (peak RSS MiB): {top}")
    if k.get("per_table"):
        print(f"\n  kora per table (from its summary; kora reports {k.get('kora_reported_seconds')}s for the "
              f"migration, of the {k['seconds']:.1f}s wall time of the process; `kora init` took "
              f"{k.get('init_seconds_not_timed')}s, not counted):")
        order = list(dict.fromkeys(p["table"] for p in k.get("partitions", []))) or list(k["per_table"])
        for t, s in sorted(k["per_table"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99):
            rate = s["read"] / s["seconds"] if s["seconds"] else 0
            print(f"    {t:<10} {s['status']:<7} {s['read']:>10,} rows {s['seconds']:8.1f}s {rate:>11,.0f} rows/s"
                  f"  queued {s['queued']:,}")
    raw = r["contenders"].get("raw", {})
    if raw.get("steps"):
        st = raw["steps"]
        copy = sum(v for s, v in st.items() if s.startswith("copy_"))
        print(f"\n  raw: copy {copy:.1f}s, primary keys {st.get('primary_keys', 0):.1f}s, indexes "
              f"{st.get('indexes', 0):.1f}s, foreign keys {st.get('foreign_keys', 0):.1f}s")
    for name in CONTENDERS:
        c = r["contenders"].get(name, {})
        if not c.get("ok") and "row counts differ" not in c.get("error", ""):
            continue  # failed outright: its FAILED line says why
        for d in c.get("schema_differences", [])[:10]:
            print(f"  {name} schema vs raw: {d}")
        if c.get("count_mismatches"):
            print(f"  {name} row count mismatches: {c['count_mismatches']}")
    print(f"\n  results: {r['results_file']}")


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="tpch_migrate.py",
        description="Benchmark `kora migrate` (validation on) against pgloader and a raw `mariadb | psql` text\n"
                    "pipe: TPC-H in MariaDB -> empty PostgreSQL databases. Prints rows/s, the ratios\n"
                    "kora/pgloader and kora/raw, and kora's peak RSS.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale-factor", "--sf", type=float, default=0.1,
                    help="TPC-H scale factor: 0.1 (~866k rows) for a quick run, 1 (8.66M rows) for the real one "
                         "(default: %(default)s)")
    ap.add_argument("--workers", type=int, default=None,
                    help="Ray worker actors, passed to `kora migrate --workers` (default: the plan's, i.e. 2)")
    ap.add_argument("--skip-pgloader", action="store_true", help="do not run pgloader (no kora/pgloader ratio)")
    ap.add_argument("--only", default=None, metavar="LIST",
                    help="comma-separated contenders to run, of raw,pgloader,kora (default: all)")
    ap.add_argument("--reload", action="store_true",
                    help="rebuild MariaDB kora_bench_src even if it already holds this scale factor's rows")
    ap.add_argument("--keep", action="store_true",
                    help="keep the PostgreSQL target databases kora_bench_{raw,pgloader,kora} afterwards")
    ap.add_argument("--profile", action="store_true",
                    help="run kora under `py-spy record --subprocesses` (driver and Ray workers) into "
                         "bench/out/tpch_kora_profile.txt (collapsed stacks); its timings are then inflated")
    ap.add_argument("--no-verify-content", dest="verify_content", action="store_false",
                    help="skip comparing each target's row contents with the raw pipe's (an order-independent "
                         "hash per table, after the timings)")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds allowed per contender (default: %(default)s)")
    ap.add_argument("--mysql", default="root@127.0.0.1:3306", metavar="USER@HOST:PORT",
                    help="MariaDB server, passwordless (default: %(default)s)")
    ap.add_argument("--postgres", default="postgres@127.0.0.1:5432", metavar="USER@HOST:PORT",
                    help="PostgreSQL server, trust auth (default: %(default)s)")
    ap.add_argument("--tpchgen", default=None, help="tpchgen-cli executable (default: the venv's, else PATH)")
    ap.add_argument("--kora", default=None, help="kora executable (default: the venv's, else PATH)")
    ap.add_argument("--pgloader", default=None, help="pgloader executable (default: PATH)")
    ap.add_argument("--results", default=str(OUT / "tpch_results.json"),
                    help="JSON results file (default: %(default)s)")
    args = ap.parse_args(argv)

    def hostport(s: str, port: int) -> tuple[str, str, int]:
        user, _, hp = s.rpartition("@")
        host, _, p = hp.partition(":")
        return user, host, int(p or port)

    mu, mh, mp = hostport(args.mysql, 3306)
    pu, ph, pp = hostport(args.postgres, 5432)
    srv = Servers(mh, mp, mu or "root", ph, pp, pu or "postgres")
    only = set(args.only.split(",")) if args.only else set(CONTENDERS)
    if bad := only - set(CONTENDERS):
        ap.error(f"--only: unknown contender(s) {', '.join(sorted(bad))}")
    if args.skip_pgloader:
        only.discard("pgloader")

    tools = {n: find_tool(n) for n in ("mariadb", "psql")}
    tools["tpchgen"] = find_tool("tpchgen-cli", args.tpchgen)
    tools["kora"] = find_tool("kora", args.kora)
    tools["pgloader"] = args.pgloader or shutil.which("pgloader")
    tools["py-spy"] = find_tool("py-spy")
    need = ["tpchgen"] + (["mariadb", "psql"] if "raw" in only else []) + (["kora"] if "kora" in only else [])
    if missing := [n for n in need if not tools[n]]:
        ap.error(f"not found: {', '.join(missing)}")
    if args.profile and not tools["py-spy"]:
        ap.error("--profile needs py-spy (pip install py-spy)")

    OUT.mkdir(parents=True, exist_ok=True)
    sf = args.scale_factor
    cache = OUT / f"tpch-sf{sf_label(sf)}"
    expected = generate(tools["tpchgen"], sf, cache)
    have = None if args.reload else source_counts(srv)
    if have != expected:
        if have is not None:
            log(f"{SRC_DB} holds other row counts ({sum(have.values()):,} rows); reloading")
        load_source(srv, cache)
        have = source_counts(srv)
        if have != expected:
            raise SystemExit(f"source load incomplete: {have} != {expected}")
    else:
        log(f"reusing {SRC_DB}: {sum(have.values()):,} rows (pass --reload to rebuild it)")
    total = sum(have.values())
    warm_source(srv)

    result: dict = {"scale_factor": sf, "source_rows": have, "source_rows_total": total,
                    "started_at": dt.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                    "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
                    "workers": args.workers, "contenders": {}, "ratios": {}, "results_file": args.results,
                    "kora_git": git_state()}
    logs = {n: OUT / f"tpch_sf{sf_label(sf)}_{n}.log" for n in CONTENDERS}
    for name in CONTENDERS:
        if name not in only:
            result["contenders"][name] = {"skipped": True}
            continue
        log(f"{name}: migrating into {TARGET_DBS[name]} (log: {logs[name]})")
        la = os.getloadavg()[0]
        busy0 = machine_busy_s()
        try:
            if name == "raw":
                res = run_raw(srv, tools["mariadb"], tools["psql"], logs[name])
            elif name == "pgloader":
                res = run_pgloader(srv, tools["pgloader"], logs[name], args.timeout)
            else:
                res = run_kora(srv, tools["kora"], args.workers, logs[name], args.timeout, args.profile,
                               tools["py-spy"])
        except Exception as exc:
            res = {"ok": False, "error": str(exc)}
        res["loadavg_1m_before"] = round(la, 2)
        busy1 = machine_busy_s()
        if busy0 is not None and busy1 is not None:  # kora init is not timed, so not counted either
            res["machine_cpu_s"] = round(busy1 - busy0 - res.get("init_machine_cpu_s", 0.0), 1)
        res["log"] = str(logs[name])
        try:
            counts = target_counts(srv, TARGET_DBS[name])
            res["target_rows"] = counts
            res["count_mismatches"] = {t: {"source": have[t], "target": counts[t]}
                                       for t in have if counts[t] != have[t]}
            res["counts_match"] = not res["count_mismatches"]
        except Exception as exc:
            res["counts_match"] = False
            res.setdefault("error", f"cannot count target rows: {exc}")
        if res.get("ok") and not res["counts_match"]:
            res["ok"] = False
            res["error"] = f"row counts differ from the source: {res['count_mismatches']}"
        if res.get("ok") and res.get("seconds"):
            res["rows_per_s"] = total / res["seconds"]
        status = f"{res['seconds']:.1f}s, {res.get('rows_per_s', 0):,.0f} rows/s" if res.get("ok") else \
            f"FAILED: {res.get('error', '')[:500]}"
        log(f"{name}: {status}")
        result["contenders"][name] = res

    # Same end state? Compare every contender's schema with the raw pipe's (the spec's DDL).
    schemas = {}
    for name in CONTENDERS:
        if result["contenders"][name].get("skipped"):
            continue
        try:
            schemas[name] = target_schema(srv, TARGET_DBS[name])
        except Exception:
            pass
    for name, s in schemas.items():
        if name != "raw" and "raw" in schemas:
            result["contenders"][name]["schema_differences"] = schema_differences(schemas["raw"], s)
    result["target_schemas"] = schemas
    if args.verify_content:  # same values, not just the same counts (the raw pipe is the reference)
        digests = {}
        for name in CONTENDERS:
            if result["contenders"][name].get("counts_match"):
                try:
                    digests[name] = content_hashes(srv, TARGET_DBS[name])
                except Exception as exc:
                    result["contenders"][name]["content_error"] = str(exc)
        ref = digests.get("raw")
        for name, d in digests.items():
            if name != "raw" and ref:
                diff = [t for t in d if d[t] != ref[t]]
                result["contenders"][name]["content_matches_raw"] = not diff
                if diff:
                    result["contenders"][name]["content_differs_in"] = diff

    c = result["contenders"]
    k = c.get("kora", {})
    for other in ("pgloader", "raw"):
        key = f"kora_over_{other}"
        if k.get("rows_per_s") and c.get(other, {}).get("rows_per_s"):
            result["ratios"][key] = k["rows_per_s"] / c[other]["rows_per_s"]
        else:
            why = [n for n in ("kora", other) if not c.get(n, {}).get("rows_per_s")]
            result["ratios"][key + "_why"] = ", ".join(
                f"{n} {'skipped' if c.get(n, {}).get('skipped') else 'failed'}" for n in why)
    if not args.keep:
        for name in CONTENDERS:
            if name in only:
                drop_pg(srv, TARGET_DBS[name])
    result["finished_at"] = dt.datetime.now().isoformat(timespec="seconds")
    Path(args.results).write_text(json.dumps(result, indent=2, default=str))
    report(result)
    return 0 if all(c[n].get("ok") for n in only) else 1


if __name__ == "__main__":
    raise SystemExit(main())
