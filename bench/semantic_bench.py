#!/usr/bin/env python3
"""Semantic validation benchmark: planted implausible values and anomalies, legacy_crm, and cost.

    .venv/bin/python bench/semantic_bench.py                 # all three parts
    .venv/bin/python bench/semantic_bench.py --skip-perf --rows 5000

1. **Planted** (synthetic, seeded): a clean customer table (multicultural names, e-mails, birth
   dates, ages, balances, discount percentages, notes, country codes) gets implausible values
   and anomalies planted into ~2 % of the cells of each column: future birth dates, negative
   non-negative amounts, percentages over 100, ages over 130, malformed e-mails, placeholder
   and keyboard-mash names, placeholder notes. Detection is kora's own: the inline plausibility
   checks the workers run (``checks.record.column_checks``) plus the asset check's anomaly
   scores over the column's landed values. Scored per cell: precision, recall, F1, and the
   false-positive rate on the untouched clean cells. Twice: with the semantic types named in the
   plan, and with them *inferred* by the classifier (no ``semantic:`` field at all).
2. **legacy_crm** (``../shared/bench/recovery/legacy_crm.py`` output): rows whose truth is
   ``quarantine`` in ``customers`` are the implausible ones (future birth dates, negative
   balances); every other row must not be flagged. Scored per row, plan types and inferred types.
3. **Cost**: one partition (default 250,000 rows, kora init's partition size) of a table with five text columns read from
   SQLite, transformed, validated and written to PostgreSQL by the worker's own ``TableRunner``;
   without semantic inference, and with it (sample 500 rows, classify the columns, vet, then the
   inferred types' rules inline). Reported cold (torch import and model load included: once per
   worker process) and warm (model loaded: once per table per worker).

Targets (issue 5): F1 >= 0.9, false positives <= 1 % of clean values, inference <= 30 % of a
partition's wall time. Results also go to ``bench/out/semantic_bench.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import polars as pl  # noqa: E402

from checks.semantic import runtime  # noqa: E402
from checks.semantic.anomaly import DEFAULT_THRESHOLD, MAX_EMBED, find_anomalies  # noqa: E402
from checks.semantic.types import ANOMALY_TYPES  # noqa: E402
from kora_assets.plan.loader import parse_plan  # noqa: E402
from kora_assets.transforms.compiler import TableTransform  # noqa: E402

TODAY = dt.date(2026, 1, 1)
CRM = ROOT.parent / "shared" / "bench" / "recovery" / "legacy_crm.py"
OUT = ROOT / "bench" / "out"

FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Susan", "Anna",
         "Peter", "Thomas", "Laura", "Daniel", "Emma", "José", "Zoë", "Björn", "Chloé", "Dmitri", "Émile", "Fatima",
         "Günter", "Hiro", "Inès", "Jürgen", "Kofi", "Léa", "Mateo", "Noémie", "Olga", "Pál", "Quentin", "Renée",
         "Søren", "Tomás", "Ursula", "Valérie", "Wei", "Xavier", "Yusuf", "Zoltán", "Aisha", "Priya", "Mei", "Yuki",
         "Ngozi", "Lars", "Ingrid", "Piotr", "Giulia", "Lucía", "Thiago", "Sergei", "Omar", "Leila", "Chen", "Kwame"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Moore",
        "Martin", "Lee", "Walker", "Hall", "Young", "King", "Schmidt", "Fischer", "Weber", "Dubois", "García", "Müller",
        "Núñez", "O'Brien", "Kowalski", "Løvik", "Nakamura", "Peña", "Schäfer", "Ödegaard", "Silva", "Çelik", "Gómez",
        "Dvořák", "Lefèvre", "Öztürk", "Hernández", "Nguyen", "Kim", "Park", "Singh", "Patel", "Okafor", "Mensah",
        "Ivanov", "Andersson", "Nielsen", "Virtanen", "de Vries", "Bianchi", "Rossi", "Pereira", "Santos", "Haddad"]
DOMAINS = ["example.com", "gmail.com", "web.de", "outlook.com", "yahoo.co.uk", "uol.com.br", "acme.io", "posteo.de"]
WORDS = ("customer called about a late delivery asked for a refund check the invoice again item arrived damaged "
         "replaced under warranty follow up next week with the supplier address changed payment received by bank "
         "transfer order split into two shipments discount applied as agreed gift wrap requested leave at the door "
         "fragile handle with care account reviewed credit limit raised after review prefers email contact").split()
COUNTRIES = ["US", "DE", "FR", "ES", "GB", "JP", "BR", "NO", "PL", "TR", "IT", "MX", "CA", "NL", "SE", "IN"]
CITIES = ["Berlin", "Paris", "Madrid", "London", "New York", "Chicago", "Toronto", "São Paulo", "Tokyo", "Oslo",
          "Prague", "Vienna", "Lisbon", "Dublin", "Warsaw", "Istanbul", "Mumbai", "Sydney", "Lagos", "Zürich"]

LEXICON_NAMES = ["test", "Test", "TEST", "N/A", "asdf", "xxx", "John Doe", "Max Mustermann", "unknown", "dummy",
                 "qwerty", "test test", "Test User", "foo bar", "lorem ipsum", "no name", "?", "-", "asdfgh", "aaaa"]
MASH_ROWS = ["qwertyuiop", "asdfghjkl", "zxcvbnm", "qwertzuiop", "yxcvbnm"]
TEST_NAMES = ["Testy McTestface", "Test Kunde", "Dummy Customer", "Sample Person", "Demo User", "Fake Name",
              "Customer One", "User 123", "Abc Def", "Xyz Xyz", "Foo Bar Baz", "Do Not Use", "Delete Me", "Mr Test"]
NOTE_PLACEHOLDERS = ["asdf", "test", "TEST TEST", "xxx", "....", "qwerty qwerty", "lorem ipsum dolor sit amet",
                     "-", "n/a", "asdfasdfasdf", "jjjjjjj", "123123"]

PLAN_TYPES = {"name": "person_name", "email": "email", "birth_date": "birth_date", "age": "age",
              "balance": "money_nonnegative", "discount_pct": "percentage", "notes": "free_text",
              "country": "country_code"}


def _mash(rng: random.Random) -> str:
    row = rng.choice(MASH_ROWS)
    start = rng.randrange(0, len(row) - 4)
    s = row[start:start + rng.randint(4, 7)]
    return s if rng.random() < 0.6 else s + " " + rng.choice(MASH_ROWS)[:rng.randint(3, 6)]


def planted_table(n: int, seed: int, rate: float) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(table as raw text, truth: per cell the planted category or null)."""
    rng = random.Random(seed)
    rows, truth = [], []
    for i in range(1, n + 1):
        f, last = rng.choice(FIRST), rng.choice(LAST)
        born = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 70))
        age = (TODAY - born).days // 365
        r = {"id": i, "name": f"{f} {last}",
             "email": f"{f}.{last}{rng.randint(1, 999)}@{rng.choice(DOMAINS)}".lower().replace(" ", "").replace("'", ""),
             "birth_date": born.isoformat(), "age": str(age), "balance": f"{rng.uniform(0, 20000):.2f}",
             "discount_pct": f"{rng.choice([0, 5, 10, 12.5, 15, 20, 25, 50]):.2f}",
             "notes": " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))).capitalize() + ".",
             "country": rng.choice(COUNTRIES)}
        t = {k: None for k in r}
        if rng.random() < rate:
            r["birth_date"] = (TODAY + dt.timedelta(days=rng.randint(1, 20000))).isoformat()
            t["birth_date"] = "future birth date"
        if rng.random() < rate:
            r["balance"] = f"-{rng.uniform(0.01, 5000):.2f}"
            t["balance"] = "negative non-negative amount"
        if rng.random() < rate:
            r["discount_pct"] = f"{rng.uniform(100.01, 1000):.2f}"
            t["discount_pct"] = "percentage over 100"
        if rng.random() < rate:
            r["age"] = str(rng.randint(131, 999))
            t["age"] = "age over 130"
        if rng.random() < rate:
            local = r["email"].split("@")[0]
            r["email"] = rng.choice([local, f"{local}@", f"{local}@@{rng.choice(DOMAINS)}", f"{local} x@{rng.choice(DOMAINS)}",
                                     f"{local}.{rng.choice(DOMAINS)}", f"{local}@{rng.choice(DOMAINS).split('.')[0]}",
                                     f"@{rng.choice(DOMAINS)}", f"{local}@{rng.choice(DOMAINS).replace('.', '..')}",
                                     f"{local},x@{rng.choice(DOMAINS)}"])
            t["email"] = "malformed email"
        if rng.random() < rate:
            u = rng.random()
            r["name"] = rng.choice(LEXICON_NAMES) if u < 0.4 else (_mash(rng) if u < 0.7 else rng.choice(TEST_NAMES))
            t["name"] = "placeholder name"
        if rng.random() < rate / 2:
            r["notes"] = rng.choice(NOTE_PLACEHOLDERS)
            t["notes"] = "placeholder notes"
        rows.append(r)
        truth.append(t)
    return pl.DataFrame(rows), pl.DataFrame(truth, schema={k: pl.String for k in rows[0]})


def plan_for(columns: dict[str, str], table: str, *, semantic: dict[str, str] | None, src="sqlite:///x.db",
             tgt="sqlite:///y.db", pk="id", chunk=100_000, name="bench"):
    cols = {c: {"type": t, **({"semantic": semantic[c]} if semantic and c in semantic else {})} for c, t in columns.items()}
    return parse_plan(json.dumps({"version": 1, "name": name, "source": {"url": src}, "target": {"url": tgt},
                                  "settings": {"chunk_rows": chunk, "workers": 1},
                                  "tables": {table: {"primary_key": [pk], "columns": cols}}}), require_env=False)


def detect(plan, table: str, frame: pl.DataFrame, *, inferred: bool, anomalies: bool = True,
           max_embed: int = MAX_EMBED) -> tuple[pl.DataFrame, dict]:
    """Per cell: does kora flag it (inline semantic checks, or an anomaly in the column's values)?"""
    runtime.clear()
    tp = plan.tables[table]
    t0 = time.perf_counter()
    if inferred:
        ts = runtime.prime_table(plan, table, sample=frame.head(runtime.SAMPLE_ROWS).cast(pl.String),
                                 use_library=False, when=TODAY)
    else:
        ts = runtime.prime_table(plan, table, use_model=False, use_library=False, when=TODAY)
    t_prime = time.perf_counter() - t0
    tr = TableTransform(tp)
    df = tr.apply(frame.lazy()).collect()
    flags = {}
    for c in tr.columns:
        checks = runtime.semantic_checks(c, tp)
        flags[c.source] = (df.select(pl.any_horizontal([ck.fails.fill_null(False) for ck in checks])).to_series()
                           if checks else pl.Series([False] * df.height))
    t_anom, n_anom = 0.0, {}
    if anomalies:
        from checks.semantic.encoder import get_encoder

        enc = get_encoder()
        for src, cs in ts.columns.items():
            if enc is None or cs.semantic_type not in ANOMALY_TYPES or not tp.columns[src].ktype.is_text:
                continue
            t1 = time.perf_counter()
            values = df.get_column(tr.by_source[src].o).cast(pl.String).str.strip_chars()
            found = find_anomalies(values, enc, threshold=DEFAULT_THRESHOLD, max_embed=max_embed)
            t_anom += time.perf_counter() - t1
            bad = [a.value for a in found]
            n_anom[src] = len(bad)
            flags[src] = flags[src] | values.is_in(bad).fill_null(False)
    info = {"types": {s: (cs.semantic_type, round(cs.confidence, 2), cs.origin) for s, cs in ts.columns.items()},
            "prime_seconds": round(t_prime, 2), "anomaly_seconds": round(t_anom, 2), "anomalies_flagged": n_anom}
    return pl.DataFrame(flags), info


def score(flag: pl.Series, truth: pl.Series) -> dict:
    planted = truth.is_not_null()
    tp = int((flag & planted).sum())
    fp = int((flag & ~planted).sum())
    fn = int((~flag & planted).sum())
    clean = int((~planted).sum())
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return {"planted": tp + fn, "detected": tp, "false_positives": fp, "clean": clean, "precision": p, "recall": r,
            "f1": 2 * p * r / (p + r) if p + r else 0.0, "fp_rate": fp / clean if clean else 0.0}


def _line(label: str, s: dict) -> str:
    return (f"  {label:<30} planted {s['planted']:>6,}  detected {s['detected']:>6,}  FP {s['false_positives']:>4,}"
            f"  P {s['precision']:.3f}  R {s['recall']:.3f}  F1 {s['f1']:.3f}  FP rate {s['fp_rate']:.4%}")


def part_planted(rows: int, seed: int, rate: float, max_embed: int = MAX_EMBED) -> dict:
    frame, truth = planted_table(rows, seed, rate)
    columns = {"id": "integer", "name": "varchar(80)", "email": "varchar(120)", "birth_date": "date", "age": "integer",
               "balance": "numeric(12,2)", "discount_pct": "numeric(6,2)", "notes": "text", "country": "char(2)"}
    out = {}
    for mode in ("plan types", "inferred types"):
        plan = plan_for(columns, "customers", semantic=None if mode == "inferred types" else PLAN_TYPES)
        flags, info = detect(plan, "customers", frame, inferred=mode == "inferred types", max_embed=max_embed)
        cols = [c for c in columns if c != "id"]
        all_flag = pl.concat([flags[c] for c in cols])
        all_truth = pl.concat([truth[c] for c in cols])
        res = {"overall": score(all_flag, all_truth), "info": info, "by_category": {}}
        cats = sorted({v for c in cols for v in truth[c].drop_nulls().to_list()})
        for cat in cats:
            col = next(c for c in cols if cat in truth[c].to_list())
            mask = truth[col] == cat
            res["by_category"][cat] = {"column": col, "planted": int(mask.sum()),
                                       "detected": int((flags[col] & mask.fill_null(False)).sum())}
        res["fp_by_column"] = {c: int((flags[c] & truth[c].is_null()).sum()) for c in cols}
        out[mode] = res
        print(f"\n[planted] {rows:,} rows x {len(cols)} columns, ~{rate:.0%} planted per column, {mode}")
        print("  types: " + ", ".join(f"{c}={t[0] or '-'}({t[1]:.2f},{t[2]})" for c, t in info["types"].items()))
        print(_line("all planted cells", res["overall"]))
        for cat, d in res["by_category"].items():
            print(f"    {cat:<30} {d['detected']:>5,} / {d['planted']:<5,} ({d['column']})")
        print(f"    false positives by column: {res['fp_by_column']}")
        print(f"    prime {info['prime_seconds']}s, anomaly scoring {info['anomaly_seconds']}s, "
              f"anomalies flagged {info['anomalies_flagged']}")
    return out


def part_crm(crm_dir: Path | None, seed: int) -> dict:
    if crm_dir is None:
        if not CRM.exists():
            print(f"\n[legacy_crm] skipped: {CRM} not found")
            return {}
        crm_dir = Path(tempfile.mkdtemp(prefix="kora_sem_crm_"))
        subprocess.run([sys.executable, str(CRM), str(crm_dir), "--seed", str(seed), "--today", TODAY.isoformat()],
                       check=True, capture_output=True)
    spec = json.loads((crm_dir / "spec.json").read_text())
    con = sqlite3.connect(crm_dir / "source.sqlite")
    out = {}
    for table in ("customers", "orders"):
        cols = spec["tables"][table]["columns"]
        frame = pl.read_database(f"SELECT * FROM {table}", con, schema_overrides={c: pl.String for c in cols})
        truth = pl.read_csv(crm_dir / "truth" / f"{table}.csv", infer_schema=False)
        sem = {c: d["semantic"] for c, d in cols.items() if d.get("semantic")}
        types = {c: d["type"] for c, d in cols.items()}
        quarantine = truth["expected"] == "quarantine"
        # implausible = quarantined for a value no fix can know (customers); orders' are FK orphans (not semantic)
        implausible = quarantine if table == "customers" else pl.Series([False] * truth.height)
        for mode in ("plan types", "inferred types"):
            plan = plan_for(types, table, semantic=None if mode == "inferred types" else sem)
            flags, info = detect(plan, table, frame, inferred=mode == "inferred types")
            row_flag = pl.DataFrame(flags).select(pl.any_horizontal(pl.all())).to_series()
            s = score(row_flag, pl.Series(["x" if v else None for v in implausible]))
            out[f"{table}, {mode}"] = {"score": s, "info": info}
            print(f"\n[legacy_crm{'' if not seed else f' seed {seed}'}] {table}: {truth.height:,} rows, {int(implausible.sum())} implausible "
                  f"(truth 'quarantine'{'' if table == 'customers' else ': none, its quarantine rows are FK orphans'}), {mode}")
            print("  types: " + ", ".join(f"{c}={t[0] or '-'}({t[1]:.2f},{t[2]})" for c, t in info["types"].items()))
            print(_line("rows", s))
    con.close()
    return out


def part_perf(rows: int, pg_admin: str, repeats: int) -> dict:
    """One partition with five text columns: worker wall time without and with semantic inference."""
    import sqlalchemy as sa

    from kora_assets.dbio.connections import Database
    from kora_assets.dbio.ddl import ensure_target_schema
    from kora_assets.workers.partition_task import PartitionTask, TableRunner

    rng = random.Random(11)
    tmp = Path(tempfile.mkdtemp(prefix="kora_sem_perf_"))
    src = tmp / "contacts.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, city TEXT, "
                "notes TEXT)")
    data = []
    for i in range(1, rows + 1):
        f, last = rng.choice(FIRST), rng.choice(LAST)
        data.append((i, f, last, f"{f}.{last}{i}@{rng.choice(DOMAINS)}".lower().replace(" ", "").replace("'", ""),
                     rng.choice(CITIES), " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 10)))))
    con.executemany("INSERT INTO contacts VALUES (?, ?, ?, ?, ?, ?)", data)
    con.commit()
    con.close()
    db_name = f"kora_sem_perf_{os.getpid()}"
    admin = sa.create_engine(pg_admin.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        c.exec_driver_sql(f'CREATE DATABASE "{db_name}"')
    tgt = pg_admin.rsplit("/", 1)[0] + f"/{db_name}"
    columns = {"id": "integer", "first_name": "varchar(80)", "last_name": "varchar(80)", "email": "varchar(160)",
               "city": "varchar(80)", "notes": "text"}
    plan = plan_for(columns, "contacts", semantic=None, src=f"sqlite:///{src}", tgt=tgt, chunk=100_000, name="perf")
    source, target = Database(plan.source.url, "source"), Database(plan.target.url, "target")
    ensure_target_schema(target, plan)

    def reset():
        with target.engine.begin() as c:
            c.exec_driver_sql("TRUNCATE public.contacts")
            c.exec_driver_sql("DELETE FROM kora.error_queue")
            c.exec_driver_sql("DELETE FROM kora.partition_ledger")

    def run_partition() -> float:
        reset()
        t0 = time.perf_counter()
        r = TableRunner(plan, "contacts").run(PartitionTask("contacts", "all", "bench"), source, target)
        secs = time.perf_counter() - t0
        assert r.source_rows == rows and r.landed + r.queued == rows, r
        return secs

    res: dict = {"rows": rows}
    try:
        runtime.clear()
        runtime.plan_only(plan.tables["contacts"])
        run_partition()  # warm the database and the reader
        # cold: this process has not imported torch nor loaded the model yet
        runtime.clear()
        t0 = time.perf_counter()
        ts = runtime.prime_table(plan, "contacts", use_library=False, when=TODAY)
        res["infer_cold_s"] = time.perf_counter() - t0
        res["types"] = {s: (cs.semantic_type, round(cs.confidence, 2), cs.origin) for s, cs in ts.columns.items()}
        base, with_sem, warm, stored = [], [], [], []
        from checks.semantic import classifier
        from checks.semantic.encoder import get_encoder

        for _ in range(repeats):
            runtime.clear()
            runtime.plan_only(plan.tables["contacts"])  # no semantic types: the baseline
            base.append(run_partition())
            # warm: model loaded in this process, but neither this table's columns nor its values seen
            runtime.clear()
            classifier._CLASSIFIER._cache.clear()
            get_encoder()._cache.clear()
            with target.engine.begin() as c:
                c.exec_driver_sql("DELETE FROM kora.semantic_columns")
            t0 = time.perf_counter()
            runtime.prime_table(plan, "contacts", use_library=False, when=TODAY)
            warm.append(time.perf_counter() - t0)
            # every other worker: the types are stored, it only reads them (no model)
            runtime.clear()
            t0 = time.perf_counter()
            ts2 = runtime.prime_table(plan, "contacts", use_library=False, when=TODAY)
            stored.append(time.perf_counter() - t0)
            assert ts2.model.startswith("not needed"), ts2.model
            with_sem.append(run_partition())  # the inferred types' rules run inline
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        res.update(baseline_s=med(base), with_rules_s=med(with_sem), infer_warm_s=med(warm), read_stored_s=med(stored),
                   baseline_runs=[round(x, 2) for x in base], with_rules_runs=[round(x, 2) for x in with_sem])
        b = res["baseline_s"]
        res["overhead_rules"] = (res["with_rules_s"] - b) / b
        res["overhead_stored"] = (res["with_rules_s"] + res["read_stored_s"] - b) / b
        res["overhead_warm"] = (res["with_rules_s"] + res["infer_warm_s"] - b) / b
        res["overhead_cold"] = (res["with_rules_s"] + res["infer_cold_s"] - b) / b
        print(f"\n[cost] one partition of {rows:,} rows, five text columns, SQLite -> PostgreSQL, worker code path")
        print("  inferred types: " + ", ".join(f"{c}={t[0] or '-'}({t[1]:.2f})" for c, t in res["types"].items()))
        print(f"  partition without semantic types: {b:.2f}s (median of {repeats}: {res['baseline_runs']})")
        print(f"  partition with the inferred types' rules inline: {res['with_rules_s']:.2f}s ({res['with_rules_runs']})"
              f" = {res['overhead_rules']:+.1%}")
        print(f"  resolving the table, types already stored (every worker but the first): {res['read_stored_s']:.3f}s"
              f" -> partition {res['overhead_stored']:+.1%}")
        print(f"  inferring, model loaded (sample 500 rows, 6 columns, 12 texts, vet, store): {res['infer_warm_s']:.2f}s"
              f" -> partition {res['overhead_warm']:+.1%}")
        print(f"  inferring cold (torch import + model load + the above; once per migration, in the first process): "
              f"{res['infer_cold_s']:.2f}s -> {res['overhead_cold']:+.1%} of this one partition")
        print("  target: <= +30% per partition")
    finally:
        for db in (source, target):
            db.engine.dispose()
        with admin.connect() as c:
            c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        admin.dispose()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20_000, help="rows of the planted table")
    ap.add_argument("--rate", type=float, default=0.02, help="share of cells planted per column")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-embed", type=int, default=MAX_EMBED,
                    help="distinct values embedded per column for anomaly scores (default: kora's own budget, %(default)s)")
    ap.add_argument("--crm-dir", default=None, help="existing legacy_crm.py output (default: generate one per --crm-seeds)")
    ap.add_argument("--crm-seeds", default="7,8", help="legacy_crm.py seeds to generate and score")
    ap.add_argument("--perf-rows", type=int, default=250_000, help="rows of the cost partition (kora init's default size)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pg", default=os.environ.get("KORA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--skip-planted", action="store_true")
    ap.add_argument("--skip-crm", action="store_true")
    ap.add_argument("--skip-perf", action="store_true")
    a = ap.parse_args()
    os.environ["KORA_TODAY"] = TODAY.isoformat()
    from checks.semantic.encoder import unavailable_reason

    if unavailable_reason():
        print(f"note: {unavailable_reason()}")
    results: dict = {"today": TODAY.isoformat()}
    if not a.skip_perf:  # first: the cold numbers need a process without the model loaded
        results["cost"] = part_perf(a.perf_rows, a.pg, a.repeats)
    if not a.skip_planted:
        results["planted"] = part_planted(a.rows, a.seed, a.rate, a.max_embed)
    if not a.skip_crm:
        if a.crm_dir:
            results["legacy_crm"] = part_crm(Path(a.crm_dir), 0)
        else:
            results["legacy_crm"] = {f"seed {s}": part_crm(None, int(s)) for s in a.crm_seeds.split(",")}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "semantic_bench.json").write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {OUT / 'semantic_bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
