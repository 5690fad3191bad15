"""Recovery benchmark: how much failing legacy data kora repairs correctly on its own.

Data sets (see ../shared/bench/recovery/README.md):

- ``legacy_crm`` (one run per seed): the generator writes a SQLite source (every column TEXT),
  ``spec.json`` and ``truth/<table>.csv``. The plan is written from the spec alone: types,
  NOT NULL, min/max, allowed values, the primary keys and the foreign key; no transforms
  (``--trim`` adds ``trim`` to the text columns).
- ``beers``: ``dirty.csv`` loaded into a SQLite source as TEXT, migrated to numeric ``ounces``
  and ``abv``, integer ``ibu``, ``city`` and a NOT NULL two-letter ``state``; truth ``clean.csv``.

Each data set is migrated into a fresh PostgreSQL database with ``kora_assets.migrate.migrate``
(Dagster, Ray workers) followed by ``run_until_stable`` (what ``kora migrate`` does), with a
fresh fix library, then scored per source row against the truth:

  correct      landed with every value equal to the truth (numbers as numbers, dates as dates,
               NULL = NULL), or expected in quarantine and kept in the error queue
  wrong        landed with a value different from the truth, or landed though expected in quarantine
  quarantined  expected to land, still in the error queue (a missed repair)
  lost         neither landed nor queued (must be 0)

Printed per data set: rows, rows with dirt, rows failing at first (queued by the workers),
of those: auto-resolved correctly, resolved wrongly, still quarantined (and how many of those the
truth also expects in quarantine), lost; the auto-resolution rate (failing rows that should land
and landed correctly / failing rows that should land); rows that passed validation at first but
differ from the truth (a plan/validation gap, not recovery's doing); LLM calls; seconds.

    .venv/bin/python bench/recovery_bench.py                       # seeds 1 2 3, default sizes, + beers
    .venv/bin/python bench/recovery_bench.py --seeds 7 --customers 5000 --orders 15000
    .venv/bin/python bench/recovery_bench.py --only beers --llm transformers

Needs PostgreSQL on 127.0.0.1:5432 (postgres, trust) and Redis on 127.0.0.1:6379 (optional).
Databases: <--db-prefix, default kora_rec_bench_><data set> (dropped at the end unless --keep). Results: bench/out/recovery_results.json.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = (ROOT / ".." / "shared" / "bench" / "recovery").resolve()
PG = "postgresql://postgres@127.0.0.1:5432"


def pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG}/postgres", autocommit=True) as c:
        c.execute(sql)


def fresh_pg(name: str) -> str:
    pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_exec(f'CREATE DATABASE "{name}"')
    return f"{PG}/{name}"


# -- plans ------------------------------------------------------------------------------------

def crm_plan(spec: dict, source: str, target: str, workers: int, trim: bool = False) -> dict:
    tables = {}
    for t, ts in spec["tables"].items():
        cols = {}
        for c, cs in ts["columns"].items():
            rules = {k: cs[k] for k in ("min", "max", "allowed") if k in cs}
            # --trim: what a user may write for a padded legacy source (padded names then land
            # trimmed, but lower-cased country codes like 'us ' pass char(2) instead of failing).
            text = cs["type"].startswith(("varchar", "text", "char"))
            ops = {"transform": [{"op": "trim"}]} if trim and text else {}
            cols[c] = {"type": cs["type"], "nullable": cs["nullable"], **({"rules": rules} if rules else {}), **ops}
        tables[t] = {"primary_key": ts["primary_key"], "columns": cols, "foreign_keys": ts.get("foreign_keys", [])}
    return {"name": "crm", "source": {"url": source}, "target": {"url": target},
            "settings": {"workers": workers, "lossy_fixes_allowed": spec.get("lossy_fixes_allowed", False)},
            "tables": tables}


BEER_TYPES = {"index": ("integer", False), "id": ("integer", False), "beer-name": ("text", True),
              "style": ("text", True), "ounces": ("numeric", True), "abv": ("numeric", True),
              "ibu": ("integer", True), "brewery_id": ("integer", True), "brewery-name": ("text", True),
              "city": ("text", True), "state": ("char(2)", False)}


def beers_source(out: Path) -> Path:
    db = out / "beers.sqlite"
    db.unlink(missing_ok=True)
    con = sqlite3.connect(db)
    with open(SHARED / "beers" / "dirty.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    head = rows[0]
    con.execute(f'CREATE TABLE beers ({", ".join(f"{chr(34)}{c}{chr(34)} TEXT" for c in head)})')
    con.executemany(f'INSERT INTO beers VALUES ({", ".join("?" for _ in head)})',
                    [[None if v == "" else v for v in r] for r in rows[1:]])
    con.commit()
    con.close()
    return db


def beers_plan(source: str, target: str, workers: int) -> dict:
    cols = {c: {"type": t, "nullable": n} for c, (t, n) in BEER_TYPES.items()}
    return {"name": "beers", "source": {"url": source}, "target": {"url": target},
            "settings": {"workers": workers}, "tables": {"beers": {"primary_key": ["index"], "columns": cols}}}


# -- running ----------------------------------------------------------------------------------

def migrate(plan_dict: dict, workdir: Path, llm) -> tuple[object, float]:
    import yaml

    from kora_assets.migrate import dagster_instance, migrate as run_migration
    from kora_assets.plan.loader import load_plan
    from kora_assets.recovery.loop import run_until_stable

    path = workdir / "plan.yaml"
    path.write_text(yaml.safe_dump(plan_dict, sort_keys=False, allow_unicode=True))
    plan = load_plan(path)
    os.environ.pop("DAGSTER_HOME", None)
    instance = dagster_instance(path)
    t0 = time.perf_counter()
    outcome = run_migration(plan, instance)
    report = run_until_stable(plan, llm=llm)
    secs = time.perf_counter() - t0
    for t in outcome.tables:
        if t.status != "ok":
            logging.getLogger("bench").warning("%s: %s %s", t.table, t.status, t.detail)
    return report, secs


def target_frame(url: str, table: str) -> pl.DataFrame:
    import connectorx as cx

    return pl.from_arrow(cx.read_sql(url, f'SELECT * FROM "{table}"', return_type="arrow"))


def queue_frame(url: str, table: str) -> pl.DataFrame:
    import psycopg

    with psycopg.connect(url.replace("postgresql://", "postgresql://")) as c:
        rows = c.execute("SELECT primary_key::text, status, error_class, column_name FROM kora.error_queue "
                         "WHERE table_name = %s", (table,)).fetchall()
    return pl.DataFrame(rows, schema=["k", "status", "error_class", "column_name"], orient="row")


def _eq(truth: pl.Expr, got: pl.Expr, kind: str) -> pl.Expr:
    both_null = truth.is_null() & got.is_null()
    if kind == "number":
        t, g = truth.cast(pl.Float64, strict=False), got.cast(pl.Float64, strict=False)
        return both_null | ((t - g).abs() <= 1e-9 * (1 + t.abs())).fill_null(False)
    if kind == "bool":
        t = truth.cast(pl.String).str.to_lowercase().is_in(["1", "true", "t"])
        return both_null | (t == got.cast(pl.Boolean)).fill_null(False)
    if kind == "date":
        return both_null | (truth.cast(pl.String).str.slice(0, 10) == got.cast(pl.String).str.slice(0, 10)).fill_null(False)
    if kind == "timestamp":
        t = truth.cast(pl.String).str.to_datetime(strict=False)
        return both_null | (t == got.cast(pl.Datetime("us"))).fill_null(False)
    return both_null | (truth.cast(pl.String) == got.cast(pl.String)).fill_null(False)


def _kind(t: str) -> str:
    t = t.lower()
    if t.startswith(("numeric", "integer", "smallint", "bigint", "double", "real")):
        return "number"
    if t == "boolean":
        return "bool"
    if t == "date":
        return "date"
    if t.startswith("timestamp"):
        return "timestamp"
    return "text"


def audit_frame(url: str, table: str, key: str) -> pl.DataFrame:
    import psycopg

    with psycopg.connect(url) as c:
        rows = c.execute("SELECT primary_key::text, column_name FROM kora.fix_audit WHERE table_name = %s",
                         (table,)).fetchall()
    df = pl.DataFrame(rows, schema=["k", "column"], orient="row")
    return df.select(pl.col("k").str.json_path_match(f"$.{key}").cast(pl.Int64, strict=False).alias(key), "column")


def score(truth: pl.DataFrame, dirty: pl.DataFrame, landed: pl.DataFrame, queue: pl.DataFrame, key: str,
          types: dict[str, str], parent_quarantined: pl.Series | None = None,
          audits: pl.DataFrame | None = None) -> dict:
    """Per source row: correct / wrong / quarantined / lost, split by failing at first or not."""
    truth = truth.with_columns(pl.col(key).cast(pl.Int64))
    cols = [c for c in types if c != key]
    qk = queue.with_columns(pl.col("k").str.json_path_match(f"$.{key}").cast(pl.Int64, strict=False).alias(key))
    in_queue = qk.filter(pl.col("status").is_in(["pending", "quarantined"]))[key]
    ever = qk[key]
    got = landed.rename({c: f"__got_{c}" for c in landed.columns if c != key}).with_columns(pl.col(key).cast(pl.Int64))
    df = truth.join(got, on=key, how="left").with_columns(
        pl.col(f"__got_{cols[0]}").is_not_null().alias("__dummy"))
    landed_keys = landed[key].cast(pl.Int64)
    df = df.with_columns(pl.col(key).is_in(landed_keys.implode()).alias("landed"),
                         pl.col(key).is_in(in_queue.implode()).alias("queued"),
                         pl.col(key).is_in(ever.implode()).alias("failed_first"))
    df = df.with_columns([_eq(pl.col(c), pl.col(f"__got_{c}"), _kind(types[c])).alias(f"__eq_{c}") for c in cols])
    df = df.with_columns(pl.all_horizontal([pl.col(f"__eq_{c}") for c in cols]).alias("equal"))
    # a wrong landed value: changed by a fix (recovery's or a worker's inline one), or passed through as read
    fixed_cols = [pl.lit(False)]
    if audits is not None and audits.height:
        for c in cols:
            keys = audits.filter(pl.col("column") == c)[key]
            fixed_cols.append(~pl.col(f"__eq_{c}") & pl.col(key).is_in(keys.implode()))
    df = df.with_columns(pl.any_horizontal(fixed_cols).alias("wrong_by_fix"))
    d = dirty.with_columns(pl.col(key).cast(pl.Int64))
    tcmp = truth.select(key, *cols).join(d.select(key, *cols), on=key, suffix="__d")
    dirt = tcmp.select(pl.any_horizontal([pl.col(c).cast(pl.String).ne_missing(pl.col(f"{c}__d").cast(pl.String))
                                         for c in cols]).sum()).item()
    land = pl.col("expected") == "land"
    correct = (pl.col("landed") & land & pl.col("equal")) | (~land & pl.col("queued") & ~pl.col("landed"))
    wrong = pl.col("landed") & (~land | ~pl.col("equal"))
    quarantined = land & pl.col("queued") & ~pl.col("landed")
    lost = ~pl.col("landed") & ~pl.col("queued")
    ff = pl.col("failed_first")
    r = df.select(
        rows=pl.len(), failing_at_first=ff.sum(),
        ff_should_land=(ff & land).sum(),
        auto_resolved_correctly=(ff & land & pl.col("landed") & pl.col("equal")).sum(),
        resolved_wrongly=(ff & wrong).sum(),
        resolved_wrongly_by_a_fix=(ff & wrong & (pl.col("wrong_by_fix") | ~land)).sum(),
        quarantined_total=(ff & pl.col("queued")).sum(),
        quarantined_as_expected=(ff & pl.col("queued") & ~land).sum(),
        quarantined_missed=(ff & quarantined).sum(),
        lost=lost.sum(),
        correct=correct.sum(), wrong=wrong.sum(), quarantined=quarantined.sum(),
        wrong_passed_at_first=(~ff & wrong).sum(),
    ).row(0, named=True)
    r = {k: int(v) for k, v in r.items()}
    r["wrong_by_column"] = {c: n for c in cols if (n := int(df.filter(wrong & land & ~pl.col(f"__eq_{c}")).height))}
    r["rows_with_dirt"] = int(dirt)
    r["auto_resolution_rate"] = round(r["auto_resolved_correctly"] / r["ff_should_land"], 4) if r["ff_should_land"] else 1.0
    r["wrong_by_fix_rate_of_failing"] = (round(r["resolved_wrongly_by_a_fix"] / r["failing_at_first"], 5)
                                         if r["failing_at_first"] else 0.0)
    r["wrong_rate_of_failing"] = round(r["resolved_wrongly"] / r["failing_at_first"], 5) if r["failing_at_first"] else 0.0
    if parent_quarantined is not None:
        r["quarantined_missed_parent_in_quarantine"] = int(df.filter(quarantined & pl.col("customer_id").cast(pl.Int64)
                                                                     .is_in(parent_quarantined.implode())).height)
    return r


def run_crm(seed: int, args, llm) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"kora_crm_{seed}_"))
    # the generator's "today" (what counts as a future birth date) is the clock kora reads too
    subprocess.run([sys.executable, str(SHARED / "legacy_crm.py"), str(out), "--seed", str(seed),
                    "--customers", str(args.customers), "--orders", str(args.orders),
                    "--today", dt.date.today().isoformat()], check=True,
                   stdout=subprocess.DEVNULL)
    spec = json.loads((out / "spec.json").read_text())
    target = fresh_pg(f"{args.db_prefix}crm{seed}")
    os.environ["KORA_FIX_LIBRARY_URL"] = target  # a fresh library per data set: nothing learned beforehand
    report, secs = migrate(crm_plan(spec, f"sqlite:///{out / 'source.sqlite'}", target, args.workers, args.trim), out, llm)
    res = {"data_set": f"legacy_crm seed {seed}", "seconds": round(secs, 1), "llm_calls": report.llm_calls,
           "generations": sum(report.generations.values()), "tables": {}}
    con = sqlite3.connect(out / "source.sqlite")
    cust_q = None
    for table in ("customers", "orders"):
        truth = pl.read_csv(out / "truth" / f"{table}.csv", infer_schema=False)
        dirty = pl.read_database(f"SELECT * FROM {table}", con, infer_schema_length=None)
        types = {c: cs["type"] for c, cs in spec["tables"][table]["columns"].items()}
        q = queue_frame(target, table)
        r = score(truth, dirty, target_frame(target, table), q, "id", types,
                  cust_q if table == "orders" else None, audit_frame(target, table, "id"))
        if table == "customers":
            cust_q = (q.filter(pl.col("status").is_in(["pending", "quarantined"]))
                      .select(pl.col("k").str.json_path_match("$.id").cast(pl.Int64))["k"])
        res["tables"][table] = r
    con.close()
    if not args.keep:
        pg_exec(f'DROP DATABASE IF EXISTS "{args.db_prefix}crm{seed}" WITH (FORCE)')
    return res


def run_beers(args, llm) -> dict:
    out = Path(tempfile.mkdtemp(prefix="kora_beers_"))
    src = beers_source(out)
    target = fresh_pg(f"{args.db_prefix}beers")
    os.environ["KORA_FIX_LIBRARY_URL"] = target
    report, secs = migrate(beers_plan(f"sqlite:///{src}", target, args.workers), out, llm)
    truth = pl.read_csv(SHARED / "beers" / "clean.csv", infer_schema=False).with_columns(pl.lit("land").alias("expected"))
    dirty = pl.read_csv(SHARED / "beers" / "dirty.csv", infer_schema=False)
    types = {c: t for c, (t, _) in BEER_TYPES.items()}
    r = score(truth, dirty, target_frame(target, "beers"), queue_frame(target, "beers"), "index", types,
              audits=audit_frame(target, "beers", "index"))
    if not args.keep:
        pg_exec(f'DROP DATABASE IF EXISTS "{args.db_prefix}beers" WITH (FORCE)')
    return {"data_set": "beers", "seconds": round(secs, 1), "llm_calls": report.llm_calls,
            "generations": sum(report.generations.values()), "tables": {"beers": r}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--orders", type=int, default=60_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", choices=["crm", "beers"], default=None)
    ap.add_argument("--llm", choices=["none", "transformers", "openai"], default="none",
                    help="the LLM resource kind (openai reads KORA_LLM_BASE_URL / KORA_LLM_MODEL)")
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    ap.add_argument("--trim", action="store_true",
                    help="legacy_crm plan with `trim` on its text columns (default: the spec taken literally, "
                         "no transforms)")
    ap.add_argument("--db-prefix", default="kora_rec_bench_",
                    help="name prefix of the bench databases (so two runs side by side do not drop each other's)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from resources.llm import LLMResource

    os.environ["KORA_LLM_KIND"] = args.llm
    llm = LLMResource.from_env()
    results = []
    if args.only in (None, "crm"):
        for seed in args.seeds:
            results.append(run_crm(seed, args, llm))
            print_result(results[-1])
    if args.only in (None, "beers"):
        results.append(run_beers(args, llm))
        print_result(results[-1])
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "recovery_results.json").write_text(json.dumps(results, indent=2))
    lost = sum(t["lost"] for r in results for t in r["tables"].values())
    return 1 if lost else 0


def print_result(r: dict) -> None:
    print(f"\n== {r['data_set']}: {r['seconds']}s, {r['llm_calls']} LLM call(s), {r['generations']} generation(s)")
    head = ["table", "rows", "dirt", "fail@1st", "resolved ok", "wrong", "(by a fix)", "quarant.", "(expected)",
            "lost", "auto-rate", "wrong@1st-pass"]
    print("  ".join(f"{h:>11}" for h in head))
    for t, s in r["tables"].items():
        vals = [t, s["rows"], s["rows_with_dirt"], s["failing_at_first"], s["auto_resolved_correctly"],
                s["resolved_wrongly"], s["resolved_wrongly_by_a_fix"], s["quarantined_total"], s["quarantined_as_expected"], s["lost"],
                f"{s['auto_resolution_rate']:.1%}", s["wrong_passed_at_first"]]
        print("  ".join(f"{v:>11}" for v in vals))
        if s["resolved_wrongly"] > s["resolved_wrongly_by_a_fix"]:
            print(f"{'':>11}  {s['resolved_wrongly'] - s['resolved_wrongly_by_a_fix']} row(s) recovery landed carry a "
                  "value no fix touched that differs from the truth (it passed validation as read, like the "
                  "wrong@1st-pass rows the workers land)")
        if s.get("wrong_by_column"):
            print(f"{'':>11}  wrong values by column: " + ", ".join(f"{c} {n}" for c, n in s["wrong_by_column"].items()))
        if s.get("quarantined_missed_parent_in_quarantine"):
            print(f"{'':>11}  of the missed repairs, {s['quarantined_missed_parent_in_quarantine']} are orders of a "
                  "customer that is itself (rightly) quarantined: their FK cannot hold")


if __name__ == "__main__":
    sys.exit(main())
