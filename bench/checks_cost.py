"""What do the three table checks cost, compared with copying the table they check?

Builds a TPC-H ``lineitem`` (and its parent ``orders``) in MariaDB with ``tpchgen-cli``, copies
``lineitem`` into PostgreSQL the way a kora partition copy does (Arrow read with connectorx,
bulk ``COPY`` write), then times the structural, statistical and referential checks on it and
prints the ratio ``checks / copy``. The issue's target is a ratio of at most 0.3.

    .venv/bin/python bench/checks_cost.py --scale-factor 0.1
    .venv/bin/python bench/checks_cost.py --scale-factor 1 --keep   # TPC-H SF1: 6M rows

Databases used: ``--database`` (default ``kora_val_bench``) on both servers, dropped at the
end unless ``--keep``; ``--reuse`` re-runs the checks on kept databases without reloading.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

DB = "kora_val_bench"

MY_DDL = """
CREATE TABLE orders (
  o_orderkey BIGINT PRIMARY KEY, o_custkey BIGINT NOT NULL, o_orderstatus CHAR(1) NOT NULL,
  o_totalprice DECIMAL(15,2) NOT NULL, o_orderdate DATE NOT NULL, o_orderpriority CHAR(15) NOT NULL,
  o_clerk CHAR(15) NOT NULL, o_shippriority INT NOT NULL, o_comment VARCHAR(79) NOT NULL
) ENGINE=InnoDB;
CREATE TABLE lineitem (
  l_orderkey BIGINT NOT NULL, l_partkey BIGINT NOT NULL, l_suppkey BIGINT NOT NULL,
  l_linenumber INT NOT NULL, l_quantity DECIMAL(15,2) NOT NULL, l_extendedprice DECIMAL(15,2) NOT NULL,
  l_discount DECIMAL(15,2) NOT NULL, l_tax DECIMAL(15,2) NOT NULL, l_returnflag CHAR(1) NOT NULL,
  l_linestatus CHAR(1) NOT NULL, l_shipdate DATE NOT NULL, l_commitdate DATE NOT NULL,
  l_receiptdate DATE NOT NULL, l_shipinstruct CHAR(25) NOT NULL, l_shipmode CHAR(10) NOT NULL,
  l_comment VARCHAR(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber),
  KEY ix_lineitem_shipdate (l_shipdate),
  CONSTRAINT fk_lineitem_orders FOREIGN KEY (l_orderkey) REFERENCES orders (o_orderkey) ON DELETE CASCADE
) ENGINE=InnoDB;
"""

PG_DDL = """
CREATE TABLE orders (
  o_orderkey bigint PRIMARY KEY, o_custkey bigint NOT NULL, o_orderstatus char(1) NOT NULL,
  o_totalprice numeric(15,2) NOT NULL, o_orderdate date NOT NULL, o_orderpriority char(15) NOT NULL,
  o_clerk char(15) NOT NULL, o_shippriority integer NOT NULL, o_comment varchar(79) NOT NULL
);
CREATE TABLE lineitem (
  l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
  l_linenumber integer NOT NULL, l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
  l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
  l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
  l_receiptdate date NOT NULL, l_shipinstruct char(25) NOT NULL, l_shipmode char(10) NOT NULL,
  l_comment varchar(44) NOT NULL,
  PRIMARY KEY (l_orderkey, l_linenumber)
);
CREATE INDEX ix_lineitem_shipdate ON lineitem (l_shipdate);
"""

FK_DDL = ("ALTER TABLE lineitem ADD CONSTRAINT fk_lineitem_orders FOREIGN KEY (l_orderkey) "
          "REFERENCES orders (o_orderkey) ON DELETE CASCADE")

LINEITEM_COLS = {
    "l_orderkey": "bigint", "l_partkey": "bigint", "l_suppkey": "bigint", "l_linenumber": "integer",
    "l_quantity": "numeric(15,2)", "l_extendedprice": "numeric(15,2)", "l_discount": "numeric(15,2)",
    "l_tax": "numeric(15,2)", "l_returnflag": "char(1)", "l_linestatus": "char(1)", "l_shipdate": "date",
    "l_commitdate": "date", "l_receiptdate": "date", "l_shipinstruct": "char(25)", "l_shipmode": "char(10)",
    "l_comment": "varchar(44)",
}
ORDERS_COLS = {"o_orderkey": "bigint", "o_custkey": "bigint", "o_orderstatus": "char(1)",
               "o_totalprice": "numeric(15,2)", "o_orderdate": "date", "o_orderpriority": "char(15)",
               "o_clerk": "char(15)", "o_shippriority": "integer", "o_comment": "varchar(79)"}


def plan_yaml(my_url: str, pg_url: str) -> str:
    def cols(d):
        return "\n".join(f'      {c}: {{type: "{t}", nullable: false}}' for c, t in d.items())

    return f"""
name: bench
source: {{url: "{my_url}"}}
target: {{url: "{pg_url}"}}
tables:
  orders:
    primary_key: [o_orderkey]
    columns:
{cols(ORDERS_COLS)}
  lineitem:
    primary_key: [l_orderkey, l_linenumber]
    indexes: [{{columns: [l_shipdate]}}]
    foreign_keys:
      - {{columns: [l_orderkey], references: orders, ref_columns: [o_orderkey], on_delete: cascade}}
    columns:
{cols(LINEITEM_COLS)}
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--scale-factor", type=float, default=0.1, help="TPC-H scale factor (1 = 6M lineitem rows)")
    ap.add_argument("--mysql", default="root@127.0.0.1:3306", help="user[:password]@host:port of MariaDB/MySQL")
    ap.add_argument("--postgres", default="postgres@127.0.0.1:5432", help="user[:password]@host:port of PostgreSQL")
    ap.add_argument("--sample-rows", type=int, default=20000, help="statistical check sample size")
    ap.add_argument("--exact-max-rows", type=int, default=None,
                    help="statistical check: expensive aggregates exact up to this many rows (default: the check's)")
    ap.add_argument("--tpchgen", help="tpchgen-cli executable (default: on PATH, else next to this Python)",
                    default=shutil.which("tpchgen-cli") or str(Path(sys.executable).parent / "tpchgen-cli"))
    ap.add_argument("--database", default=DB, help="database name on both servers (must start with kora_val_)")
    ap.add_argument("--keep", action="store_true", help="keep the databases (re-run checks with --reuse)")
    ap.add_argument("--reuse", action="store_true",
                    help="use the kept databases: skip generation and source load, re-time the copy and the checks")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)

    db = args.database
    if not db.startswith("kora_val_"):
        ap.error("--database must start with kora_val_ (the benchmark drops and recreates it)")
    my_root, pg_root = f"mysql+pymysql://{args.mysql}", f"postgresql+psycopg://{args.postgres}"
    my_url, pg_url = f"{my_root}/{db}", f"{pg_root}/{db}"
    timings: dict[str, float] = {}
    if not args.reuse:
        with tempfile.TemporaryDirectory(prefix="kora-bench-") as tmp:
            t = time.perf_counter()
            generate(args.tpchgen, args.scale_factor, Path(tmp))
            timings["generate_s"] = time.perf_counter() - t
            t = time.perf_counter()
            load_source(my_root, db, Path(tmp))
            timings["load_source_s"] = time.perf_counter() - t
        prepare_target(pg_root, db, my_url)
    else:
        reset_lineitem(pg_url)
    timings.update(copy_lineitem(f"mysql://{args.mysql}/{db}", pg_url))
    timings.update(post_load(pg_url))
    result = run_checks(my_url, pg_url, args)
    result["timings"] = {**timings, **result["timings"]}
    copy_s = timings.get("copy_s")
    if copy_s:
        result["ratio_checks_to_copy"] = result["timings"]["checks_s"] / copy_s
        result["ratio_checks_to_copy_and_fk"] = result["timings"]["checks_s"] / (copy_s + timings["add_fk_s"])
    result["scale_factor"] = args.scale_factor
    if not args.keep:
        drop(my_root, pg_root, db)
    report(result, args.json)
    return 0


def generate(tpchgen: str, sf: float, out: Path) -> None:
    if not Path(tpchgen).exists() and not shutil.which(tpchgen):
        sys.exit(f"tpchgen-cli not found ({tpchgen}); install it or pass --tpchgen")
    subprocess.run([tpchgen, "csv", "-s", str(sf), "--tables", "lineitem,orders", "-o", str(out)],
                   check=True, stdout=subprocess.DEVNULL)


def load_source(my_root: str, db: str, d: Path) -> None:
    root = sa.create_engine(my_root, isolation_level="AUTOCOMMIT")
    with root.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
        c.exec_driver_sql(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    root.dispose()
    eng = sa.create_engine(f"{my_root}/{db}", connect_args={"local_infile": True})
    with eng.begin() as c:
        for stmt in filter(str.strip, MY_DDL.split(";")):
            c.exec_driver_sql(stmt)
        c.exec_driver_sql("SET foreign_key_checks = 0, unique_checks = 0")
        for table in ("orders", "lineitem"):
            c.exec_driver_sql(
                f"LOAD DATA LOCAL INFILE '{d / (table + '.csv')}' INTO TABLE {table} "
                "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n' IGNORE 1 LINES")
        c.exec_driver_sql("SET foreign_key_checks = 1, unique_checks = 1")
        c.exec_driver_sql("ANALYZE TABLE orders, lineitem")
    eng.dispose()


def prepare_target(pg_root: str, db: str, my_url: str) -> None:
    """The target schema and the parent table (not timed: the benchmark times lineitem)."""
    admin = sa.create_engine(f"{pg_root}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
        c.exec_driver_sql(f"CREATE DATABASE {db}")
    admin.dispose()
    pg = sa.create_engine(f"{pg_root}/{db}")
    with pg.begin() as c:
        c.exec_driver_sql(PG_DDL)
    pg.dispose()
    _copy(my_url.replace("mysql+pymysql://", "mysql://"), f"{pg_root}/{db}", "orders", "o_orderkey")


def reset_lineitem(pg_url: str) -> None:
    """--reuse: empty the target lineitem so the copy is timed again under the same conditions."""
    pg = sa.create_engine(pg_url)
    with pg.begin() as c:
        c.exec_driver_sql("ALTER TABLE lineitem DROP CONSTRAINT IF EXISTS fk_lineitem_orders")
        c.exec_driver_sql("TRUNCATE lineitem")
    pg.dispose()


def copy_lineitem(my_cx_url: str, pg_url: str) -> dict[str, float]:
    """The stand-in for kora's partition copy: connectorx Arrow read, PostgreSQL COPY write."""
    return _copy(my_cx_url, pg_url, "lineitem", "l_orderkey")


def _copy(my_cx_url: str, pg_url: str, table: str, key: str) -> dict[str, float]:
    import connectorx as cx
    import polars as pl
    import psycopg

    t0 = time.perf_counter()
    arrow = cx.read_sql(my_cx_url, f"SELECT * FROM {table}", return_type="arrow",
                        partition_on=key, partition_num=max(2, os.cpu_count() or 2))
    df = pl.from_arrow(arrow)
    t1 = time.perf_counter()
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        with conn.cursor() as cur, cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as cp:
            for chunk in df.iter_slices(200_000):
                buf = io.BytesIO()
                chunk.write_csv(buf, include_header=False)
                cp.write(buf.getvalue())
    t2 = time.perf_counter()
    return {"copy_read_s": t1 - t0, "copy_write_s": t2 - t1, "copy_s": t2 - t0, "rows": df.height}


def post_load(pg_url: str) -> dict[str, float]:
    """Foreign key and statistics after the bulk load, as a loader does; reported, not in the ratio."""
    pg = sa.create_engine(pg_url)
    t = time.perf_counter()
    with pg.begin() as c:
        c.exec_driver_sql(FK_DDL)
    fk = time.perf_counter() - t
    t = time.perf_counter()
    with pg.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("ANALYZE orders")
        c.exec_driver_sql("ANALYZE lineitem")
    pg.dispose()
    return {"add_fk_s": fk, "analyze_s": time.perf_counter() - t}


def run_checks(my_url: str, pg_url: str, args) -> dict:
    from checks.referential import check_references
    from checks.statistical import check_statistics
    from checks.structural import check_structure
    from kora_assets.plan import parse_plan

    plan = parse_plan(plan_yaml(my_url, pg_url), require_env=False)
    src, tgt = sa.create_engine(my_url), sa.create_engine(pg_url)
    out: dict = {"timings": {}, "passed": {}, "summaries": {}}
    runs = {
        "structural": lambda: check_structure(plan, "lineitem", src, tgt),
        "statistical": lambda: check_statistics(plan, "lineitem", src, tgt, sample_rows=args.sample_rows,
                                                **({"exact_max_rows": args.exact_max_rows}
                                                   if args.exact_max_rows is not None else {})),
        "referential": lambda: check_references(plan, "lineitem", src, tgt),
    }
    total = 0.0
    for name, fn in runs.items():
        t = time.perf_counter()
        o = fn()
        dt_ = time.perf_counter() - t
        total += dt_
        out["timings"][f"{name}_s"] = dt_
        out["passed"][name] = o.passed
        out["summaries"][name] = o.summary
    out["timings"]["checks_s"] = total
    src.dispose()
    tgt.dispose()
    return out


def drop(my_root: str, pg_root: str, db: str) -> None:
    with sa.create_engine(my_root, isolation_level="AUTOCOMMIT").connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")
    with sa.create_engine(f"{pg_root}/postgres", isolation_level="AUTOCOMMIT").connect() as c:
        c.exec_driver_sql(f"DROP DATABASE IF EXISTS {db}")


def report(r: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(r, indent=2, default=str))
        return
    t = r["timings"]
    print(f"TPC-H SF{r['scale_factor']} lineitem: {t.get('rows', '?')} rows")
    for k, v in t.items():
        if k.endswith("_s"):
            print(f"  {k[:-2]:<16} {v:8.2f} s")
    for name, ok in r["passed"].items():
        print(f"  {name:<16} {'passed' if ok else 'FAILED'}: {r['summaries'][name]}")
    if "ratio_checks_to_copy" in r:
        ratio = r["ratio_checks_to_copy"]
        print(f"checks / copy = {ratio:.3f} (target <= 0.3: {'met' if ratio <= 0.3 else 'NOT met'}); "
              f"checks / (copy + FK) = {r['ratio_checks_to_copy_and_fk']:.3f}")


if __name__ == "__main__":
    raise SystemExit(main())
