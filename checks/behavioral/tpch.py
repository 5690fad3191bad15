"""TPC-H as a reference workload for behavioral validation.

Replaying the 22 TPC-H queries against a source and its migrated copy is the standard
proof that the replay machinery itself is faithful: on a correct migration every query must
match, and a planted defect must show up exactly where it is read. The tests and
``bench/replay_cost.py`` share this module so that both load the very same tables.

Data comes from the ``tpchgen-cli`` package (pipe-delimited ``.tbl`` files with a trailing
``|``). MySQL/MariaDB is loaded with ``LOAD DATA LOCAL INFILE``, PostgreSQL with ``COPY``;
both take the table and column names, types and keys from a :class:`Plan`, the source under
its source names and the target under its (possibly renamed) target names.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from kora_assets.plan.model import Plan

#: Table -> (columns as (name, kora type), primary key), in the TPC-H specification's order.
TPCH_TABLES: dict[str, tuple[list[tuple[str, str]], list[str]]] = {
    "region": ([("r_regionkey", "integer"), ("r_name", "char(25)"), ("r_comment", "varchar(152)")],
               ["r_regionkey"]),
    "nation": ([("n_nationkey", "integer"), ("n_name", "char(25)"), ("n_regionkey", "integer"),
                ("n_comment", "varchar(152)")], ["n_nationkey"]),
    "part": ([("p_partkey", "integer"), ("p_name", "varchar(55)"), ("p_mfgr", "char(25)"),
              ("p_brand", "char(10)"), ("p_type", "varchar(25)"), ("p_size", "integer"),
              ("p_container", "char(10)"), ("p_retailprice", "numeric(15,2)"),
              ("p_comment", "varchar(23)")], ["p_partkey"]),
    "supplier": ([("s_suppkey", "integer"), ("s_name", "char(25)"), ("s_address", "varchar(40)"),
                  ("s_nationkey", "integer"), ("s_phone", "char(15)"), ("s_acctbal", "numeric(15,2)"),
                  ("s_comment", "varchar(101)")], ["s_suppkey"]),
    "partsupp": ([("ps_partkey", "integer"), ("ps_suppkey", "integer"), ("ps_availqty", "integer"),
                  ("ps_supplycost", "numeric(15,2)"), ("ps_comment", "varchar(199)")],
                 ["ps_partkey", "ps_suppkey"]),
    "customer": ([("c_custkey", "integer"), ("c_name", "varchar(25)"), ("c_address", "varchar(40)"),
                  ("c_nationkey", "integer"), ("c_phone", "char(15)"), ("c_acctbal", "numeric(15,2)"),
                  ("c_mktsegment", "char(10)"), ("c_comment", "varchar(117)")], ["c_custkey"]),
    "orders": ([("o_orderkey", "integer"), ("o_custkey", "integer"), ("o_orderstatus", "char(1)"),
                ("o_totalprice", "numeric(15,2)"), ("o_orderdate", "date"),
                ("o_orderpriority", "char(15)"), ("o_clerk", "char(15)"),
                ("o_shippriority", "integer"), ("o_comment", "varchar(79)")], ["o_orderkey"]),
    "lineitem": ([("l_orderkey", "integer"), ("l_partkey", "integer"), ("l_suppkey", "integer"),
                  ("l_linenumber", "integer"), ("l_quantity", "numeric(15,2)"),
                  ("l_extendedprice", "numeric(15,2)"), ("l_discount", "numeric(15,2)"),
                  ("l_tax", "numeric(15,2)"), ("l_returnflag", "char(1)"), ("l_linestatus", "char(1)"),
                  ("l_shipdate", "date"), ("l_commitdate", "date"), ("l_receiptdate", "date"),
                  ("l_shipinstruct", "char(25)"), ("l_shipmode", "char(10)"),
                  ("l_comment", "varchar(44)")], ["l_orderkey", "l_linenumber"]),
}

#: Secondary indexes the correlated queries (Q17, Q20, Q21, Q22) need to run in seconds.
TPCH_INDEXES: dict[str, list[list[str]]] = {
    "lineitem": [["l_partkey", "l_suppkey"], ["l_suppkey"]],
    "orders": [["o_custkey"]],
    "partsupp": [["ps_suppkey"]],
}

#: Where the 22 TPC-H queries in MySQL dialect live (one ``-- name: qNN`` label each).
QUERIES_FILE = Path(__file__).resolve().parents[2] / "tests" / "data" / "tpch_mysql_queries.sql"


def tpch_plan(source_url: str, target_url: str, *, renames: dict[str, tuple[str, dict[str, str]]] | None = None,
              query_log: str | None = None, name: str = "tpch") -> Plan:
    """A plan that migrates TPC-H as is, except for the given ``{table: (target, {col: target})}``."""
    renames = renames or {}
    tables = {}
    for table, (columns, pk) in TPCH_TABLES.items():
        target, col_renames = renames.get(table, (table, {}))
        cols = {c: {"type": t, "nullable": False, **({"target": col_renames[c]} if c in col_renames else {})}
                for c, t in columns}
        tables[table] = {"columns": cols, "primary_key": pk,
                         "indexes": [{"columns": ix} for ix in TPCH_INDEXES.get(table, [])],
                         **({"target": target} if target != table else {})}
    return Plan.model_validate({"name": name, "source": {"url": source_url}, "target": {"url": target_url},
                                "tables": tables, "query_log": query_log})


def tpchgen_binary() -> str:
    """The ``tpchgen-cli`` next to this interpreter (a venv) or on ``PATH``."""
    here = Path(sys.executable).with_name("tpchgen-cli")
    found = str(here) if here.exists() else shutil.which("tpchgen-cli")
    if not found:
        raise FileNotFoundError("tpchgen-cli is not installed (pip install tpchgen-cli)")
    return found


def generate(out_dir: str | os.PathLike, scale_factor: float = 0.01) -> Path:
    """Write the eight ``<table>.tbl`` files for ``scale_factor`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([tpchgen_binary(), "--scale-factor", str(scale_factor), "--output-dir", str(out),
                    "--overwrite"], check=True, capture_output=True)
    return out


def _ddl(plan: Plan, table: str, dialect: str, *, target: bool) -> list[str]:
    tp = plan.tables[table]
    q = (lambda s: f'"{s}"') if dialect == "postgresql" else (lambda s: f"`{s}`")
    name = plan.target_name(table) if target else table
    col = (lambda c: tp.target_column(c)) if target else (lambda c: c)
    cols = [f"{q(col(c))} {cp.ktype.ddl(dialect)}{'' if cp.nullable else ' NOT NULL'}"
            for c, cp in tp.columns.items()]
    if tp.primary_key:
        cols.append(f"PRIMARY KEY ({', '.join(q(col(c)) for c in tp.primary_key)})")
    stmts = [f"DROP TABLE IF EXISTS {q(name)}", f"CREATE TABLE {q(name)} ({', '.join(cols)})"]
    for i, idx in enumerate(TPCH_INDEXES.get(table, [])):
        stmts.append(f"CREATE INDEX {q(f'{name}_ix{i}')} ON {q(name)} ({', '.join(q(col(c)) for c in idx)})")
    return stmts


def load_mysql(conn, data_dir: str | os.PathLike, plan: Plan) -> dict[str, int]:
    """Create and bulk-load the source tables (source names) on a pymysql connection.

    The connection must have been opened with ``local_infile=True``. Returns rows per table.
    """
    counts = {}
    with conn.cursor() as cur:
        for table in plan.tables:
            for stmt in _ddl(plan, table, "mysql", target=False):
                cur.execute(stmt)
            path = Path(data_dir, f"{table}.tbl").resolve()
            cur.execute(f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table}` CHARACTER SET utf8mb4 "
                        "FIELDS TERMINATED BY '|' LINES TERMINATED BY '|\\n'", (str(path),))
            counts[table] = cur.rowcount
        for table in plan.tables:  # fresh statistics, or MariaDB picks poor plans for Q20
            cur.execute(f"ANALYZE TABLE `{table}`")
            cur.fetchall()
    conn.commit()
    return counts


def load_postgres(conn, data_dir: str | os.PathLike, plan: Plan, *, tables: list[str] | None = None) -> dict[str, int]:
    """Create and ``COPY`` the target tables (target names) on a psycopg 3 connection."""
    counts = {}
    with conn.cursor() as cur:
        for table in tables or list(plan.tables):
            for stmt in _ddl(plan, table, "postgresql", target=True):
                cur.execute(stmt)
            tp = plan.tables[table]
            cols = ", ".join(f'"{tp.target_column(c)}"' for c in tp.columns)
            with open(Path(data_dir, f"{table}.tbl"), "rb") as f, \
                    cur.copy(f'COPY "{plan.target_name(table)}" ({cols}) FROM STDIN (DELIMITER \'|\')') as cp:
                for line in f:
                    cp.write(line[:-2] + b"\n" if line.endswith(b"|\n") else line)
            counts[table] = cur.rowcount
        cur.execute("ANALYZE")  # fresh statistics so the planner picks the indexes
    conn.commit()
    return counts
