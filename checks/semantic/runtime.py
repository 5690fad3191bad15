"""Resolving each column's semantic type once per table, and the inline checks that follow from it.

``checks.record.column_checks`` asks ``semantic_checks(column, table_plan)`` for the plausibility
checks of a column. The answer comes from a per-process registry keyed by the table plan, so
nothing here runs per batch:

* ``prime_table(plan, table)`` resolves a table once: the plan's explicit ``semantic:`` fields
  (``off`` disables), else the classifier's inferred type from a 500-row source sample —
  used inline only when it is confident (>= 0.70) *and* at least 95 % of the sample already
  passes the type's rules (a type that would reject much of a column is more likely wrong
  than the column) — plus the validation library's confirmed rules for each column's profile
  and the retired built-ins to skip. A worker calls it when it compiles a table; the semantic
  asset check calls it too.
* Inferred types are stored in the target (``kora.semantic_columns``, see
  ``checks.semantic.library.TypeStore``): the first process to resolve a table infers, every
  other worker, the recovery loop and later runs read the same answer without loading the
  model, so all of them apply the same rules.
* Without priming (or without the model) a table resolves from the plan's explicit fields
  alone, with the built-in rules: kora then runs on plausibility rules only, and says so once.

``KORA_TODAY=YYYY-MM-DD`` pins "today" for the date rules (reproducible benchmarks).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass

import polars as pl

from checks.semantic.plausibility import Rule, builtin_rules, plausibility_checks, vet_sample
from checks.semantic.types import SemanticSpec, parse_semantic, profile_key

log = logging.getLogger("kora.semantic")
MIN_CONFIDENCE = 0.70
MIN_SAMPLE_PASS = 0.95
SAMPLE_ROWS = 500


@dataclass(frozen=True)
class ColumnSemantics:
    source: str
    target: str
    semantic_type: str | None  # what inline rules use (None: no semantic rules)
    confidence: float = 0.0
    origin: str = "none"  # plan | inferred | off | inferred-low-confidence | inferred-rejected | none
    inferred: str | None = None  # the classifier's answer, even where not used
    block_anomalies: bool = False
    rules: tuple[Rule, ...] = ()  # the rules applied inline
    profile: str | None = None
    note: str = ""


@dataclass
class TableSemantics:
    table: str
    columns: dict[str, ColumnSemantics]
    today: dt.date
    model: str = "not used"  # loaded | unavailable: <reason> | not used
    library: str = "not read"
    primed: bool = False

    def typed(self) -> dict[str, ColumnSemantics]:
        return {k: v for k, v in self.columns.items() if v.semantic_type}


_REGISTRY: dict[str, TableSemantics] = {}
_BY_ID: dict[int, tuple[object, str]] = {}
_LOCK = threading.RLock()
_SAID_RULES_ONLY = False
_SAID_NO_MODEL = False


def today() -> dt.date:
    v = os.environ.get("KORA_TODAY")
    return dt.date.fromisoformat(v) if v else dt.date.today()


def fingerprint(tp) -> str:
    hit = _BY_ID.get(id(tp))
    if hit is not None and hit[0] is tp:
        return hit[1]
    fp = hashlib.sha1(tp.model_dump_json().encode()).hexdigest()
    if len(_BY_ID) > 4096:
        _BY_ID.clear()
    _BY_ID[id(tp)] = (tp, fp)  # holding tp keeps its id from being reused
    return fp


def register(tp, ts: TableSemantics) -> None:
    with _LOCK:
        _REGISTRY[fingerprint(tp)] = ts


def lookup(tp) -> TableSemantics | None:
    return _REGISTRY.get(fingerprint(tp))


def clear() -> None:
    with _LOCK:
        _REGISTRY.clear()
        _BY_ID.clear()


def _spec(cp) -> SemanticSpec:
    try:
        return parse_semantic(cp.semantic)
    except ValueError as exc:
        log.warning("kora: %s; semantic validation is off for that column", exc)
        return SemanticSpec(off=True)


def _explicit(table: str, tp, when: dt.date) -> TableSemantics:
    cols = {}
    for src, cp in tp.columns.items():
        spec, tgt = _spec(cp), cp.target or src
        if spec.off:
            cols[src] = ColumnSemantics(src, tgt, None, 1.0, "off")
        elif spec.type:
            cols[src] = ColumnSemantics(src, tgt, spec.type, 1.0, "plan", block_anomalies=spec.block_anomalies,
                                        rules=builtin_rules(spec.type), profile=profile_key(spec.type, cp.ktype))
        else:
            cols[src] = ColumnSemantics(src, tgt, None, 0.0, "none")
    return TableSemantics(table, cols, when)


def plan_only(tp) -> TableSemantics:
    """The table's semantics from its plan alone (cached), for an unprimed process."""
    global _SAID_RULES_ONLY
    ts = lookup(tp)
    if ts is not None:
        return ts
    ts = _explicit(tp.target or "?", tp, today())
    untyped = [c for c in ts.columns.values() if c.origin == "none"]
    if untyped and not _SAID_RULES_ONLY:
        from checks.semantic.encoder import unavailable_reason

        why = unavailable_reason() or "this process did not prime the table (checks.semantic.runtime.prime_table)"
        log.info("kora: semantic types are not inferred here (%s): plausibility rules run for the %s column(s) whose "
                 "plan names a semantic type", why, "their" if not ts.typed() else len(ts.typed()))
        _SAID_RULES_ONLY = True
    register(tp, ts)
    return ts


def semantic_checks(column, tp, settings=None) -> list:
    """The plausibility ``RecordCheck``s of one compiled column (cheap: a registry lookup)."""
    ts = lookup(tp) or plan_only(tp)
    cs = ts.columns.get(column.source)
    if cs is None or not cs.semantic_type or not cs.rules:
        return []
    return plausibility_checks(column, cs.semantic_type, ts.today, cs.rules)


# -- priming -----------------------------------------------------------------------------------

def read_sample(plan, table: str, rows: int = SAMPLE_ROWS) -> pl.DataFrame | None:
    """The first ``rows`` rows of a source table (all planned columns), or None if unreadable."""
    from kora_assets.dbio.connections import Database
    from kora_assets.dbio.source import SourceReader

    tp = plan.tables[table]
    try:
        src = Database(plan.source.url, "source")
        reader = SourceReader(src, plan.source.schema_)
        sql = reader.select_sql(table, list(tp.columns), None) + f" LIMIT {int(rows)}"
        frames = list(reader._sqlalchemy(sql, list(tp.columns), rows))
        return pl.concat(frames, how="diagonal_relaxed") if frames else None
    except Exception as exc:  # a sample is an optimisation; the migration reports real errors
        log.warning("kora: cannot sample %s for semantic inference: %s", table, exc)
        return None


def infer_columns(table: str, tp, sample: pl.DataFrame, columns: list[str] | None = None):
    """Classifier predictions for the given (default: all) columns of a sample; None without the model."""
    from checks.semantic.classifier import ColumnProfile, SemanticClassifier
    from kora_assets.transforms.casting import as_text

    clf = SemanticClassifier.get()
    if clf is None:
        return None
    names = [c for c in (columns or list(tp.columns)) if c in sample.columns]
    profiles = [ColumnProfile.of(table, c, tp.columns[c].type,
                                 as_text(sample.get_column(c)).drop_nulls().head(50).to_list())
                for c in names]
    return dict(zip(names, clf.predict(profiles))) if profiles else {}


def spec_key(cp) -> str:
    """What an inference depends on in the plan: the column's type and transforms."""
    return hashlib.sha1(json.dumps([cp.type, [op.model_dump(mode="json") for op in cp.transform]],
                                   sort_keys=True).encode()).hexdigest()[:16]


def _stored_into(ts: TableSemantics, plan, table: str, tp, untyped: list[str]):
    """Use the types another process inferred and stored for this plan table; the store, or None."""
    try:
        from checks.semantic.library import TypeStore

        store = TypeStore(plan.target.url)
        if not store.usable():
            return None
        stored = store.load(plan.name, table)
    except Exception as exc:
        log.debug("semantic type store unreadable: %s", exc)
        return None
    for src in untyped:
        row = stored.get(src)
        if row is None or row["spec_key"] != spec_key(tp.columns[src]):
            continue
        st = row["semantic_type"]
        ts.columns[src] = ColumnSemantics(src, ts.columns[src].target, st, row["confidence"], row["origin"],
                                          row["inferred"], rules=builtin_rules(st) if st else (),
                                          profile=profile_key(row["inferred"], tp.columns[src].ktype) if row["inferred"] else None,
                                          note=row["note"])
    return store


def prime_table(plan, table: str, *, sample: pl.DataFrame | None = None, use_model: bool = True,
                use_library: bool = True, use_store: bool = True, when: dt.date | None = None,
                force: bool = False) -> TableSemantics:
    """Resolve a table's semantics once per process (see the module doc) and register them."""
    tp = plan.tables[table]
    cached = lookup(tp)
    if cached is not None and cached.primed and not force:
        return cached
    with _LOCK:
        cached = lookup(tp)
        if cached is not None and cached.primed and not force:
            return cached
        ts = _explicit(table, tp, when or today())
        ts.primed = True
        untyped = [c for c, cs in ts.columns.items() if cs.origin == "none"]
        store = _stored_into(ts, plan, table, tp, untyped) if use_store and untyped else None
        if store is not None:
            fresh = [c for c in untyped if ts.columns[c].origin == "none"]
            if len(fresh) < len(untyped):
                ts.model = "not needed: types stored by an earlier inference"
            untyped = fresh
        if use_model and untyped:
            from checks.semantic.encoder import unavailable_reason

            global _SAID_NO_MODEL
            reason = unavailable_reason()
            if reason:
                ts.model = f"unavailable: {reason}"
                if not _SAID_NO_MODEL:
                    log.warning("kora: %s", reason)
                    _SAID_NO_MODEL = True
            else:
                if sample is None:
                    sample = read_sample(plan, table)
                if sample is not None and sample.height:
                    _infer_into(ts, table, tp, sample, untyped)
                    if store is not None and ts.model == "loaded":
                        _save(store, plan, table, tp, ts, untyped)
        if use_library:
            _library_into(ts, plan)
        if any(cs.block_anomalies for cs in ts.columns.values()):
            _block_into(ts, plan, table)
        register(tp, ts)
        return ts


def prime_or_reason(plan, table: str) -> str | None:
    """``prime_table`` for a caller that goes on without semantic types (they sharpen the
    validation, never gate it): None, or why they were not inferred."""
    try:
        prime_table(plan, table)
    except Exception as exc:
        from kora_assets.errors import explain

        return explain(exc)
    return None


def _save(store, plan, table: str, tp, ts: TableSemantics, columns: list[str]) -> None:
    rows = {c: {"spec_key": spec_key(tp.columns[c]), "semantic_type": ts.columns[c].semantic_type,
                "inferred": ts.columns[c].inferred, "confidence": ts.columns[c].confidence,
                "origin": ts.columns[c].origin, "note": ts.columns[c].note}
            for c in columns if ts.columns[c].inferred}
    try:
        if rows:
            store.save(plan.name, table, rows)
        stored = store.load(plan.name, table)  # another process may have stored first: agree with it
        for c in columns:
            row = stored.get(c)
            if row and row["spec_key"] == spec_key(tp.columns[c]) and row["semantic_type"] != ts.columns[c].semantic_type:
                st = row["semantic_type"]
                ts.columns[c] = ColumnSemantics(c, ts.columns[c].target, st, row["confidence"], row["origin"],
                                                row["inferred"], rules=builtin_rules(st) if st else (),
                                                profile=ts.columns[c].profile, note=row["note"])
    except Exception as exc:
        log.warning("kora: inferred semantic types not stored (%s); each process will infer its own", exc)


def remember(plan, table: str, inferred: dict[str, ColumnSemantics]) -> int:
    """Store ``kora init``'s inferences for the columns its plan leaves untyped, as a migration's
    first inference would: the migration then reads them instead of loading the model and
    classifying the same sample again before its first partition can load (a table's workers
    wait for its types). Skipped, quietly, where the target cannot take them yet (not created,
    or a URL naming an unset variable): the migration infers then. How many were stored."""
    from checks.semantic.library import TypeStore

    tp = plan.tables[table]
    ts = _explicit(table, tp, today())
    todo = [c for c, cs in ts.columns.items() if cs.origin == "none" and c in inferred and inferred[c].inferred]
    if not todo:
        return 0
    try:
        store = TypeStore(plan.target.url)
        if not store.usable():
            return 0
        store.db.check()
    except Exception as exc:
        log.debug("inferred semantic types of %s not stored at init: %s", table, exc)
        return 0
    ts.columns.update({c: inferred[c] for c in todo})
    _save(store, plan, table, tp, ts, todo)
    return len(todo)


def _block_into(ts: TableSemantics, plan, table: str, max_values: int = 20_000) -> None:
    """Columns whose plan says ``:block``: their anomalous source values become a deny rule."""
    from checks.semantic.anomaly import DEFAULT_THRESHOLD, find_anomalies
    from checks.semantic.encoder import get_encoder
    from kora_assets.dbio.connections import Database

    enc = get_encoder()
    if enc is None:
        log.warning("kora: anomalies cannot block without the semantic model; they are not scored")
        return
    src = Database(plan.source.url, "source")
    for name, cs in list(ts.columns.items()):
        if not (cs.block_anomalies and cs.semantic_type):
            continue
        q = src.quote(name)
        sql = (f"SELECT DISTINCT {q} FROM {src.qualified(table, plan.source.schema_)} "
               f"WHERE {q} IS NOT NULL LIMIT {int(max_values)}")
        with src.engine.connect() as c:
            values = [None if r[0] is None else str(r[0]) for r in c.exec_driver_sql(sql)]
        found = find_anomalies(pl.Series(values, dtype=pl.String), enc, threshold=DEFAULT_THRESHOLD)
        if found:
            rule = Rule.make(f"{cs.semantic_type}.anomaly", "not_in_set",
                             f"far from the column's other values (anomaly score >= {DEFAULT_THRESHOLD:g})",
                             values=sorted({a.value for a in found}))
            ts.columns[name] = ColumnSemantics(cs.source, cs.target, cs.semantic_type, cs.confidence, cs.origin,
                                               cs.inferred, True, cs.rules + (rule,), cs.profile, cs.note)


def _infer_into(ts: TableSemantics, table: str, tp, sample: pl.DataFrame, untyped: list[str]) -> None:
    from kora_assets.transforms.compiler import TableTransform

    preds = infer_columns(table, tp, sample, untyped)
    if preds is None:
        ts.model = "unavailable: the classifier head or encoder did not load"
        return
    ts.model = "loaded"
    transform = TableTransform(tp)
    frame = transform.apply(sample.lazy()).collect()
    for src, pred in preds.items():
        cs = ts.columns[src]
        prof = profile_key(pred.type, tp.columns[src].ktype)
        if pred.confidence < MIN_CONFIDENCE:
            ts.columns[src] = ColumnSemantics(src, cs.target, None, pred.confidence, "inferred-low-confidence",
                                              pred.type, profile=prof)
            continue
        rules = builtin_rules(pred.type)
        verdict = vet_sample(frame, transform.by_source[src], pred.type, ts.today)
        if rules and verdict.pass_rate < MIN_SAMPLE_PASS:
            ts.columns[src] = ColumnSemantics(
                src, cs.target, None, pred.confidence, "inferred-rejected", pred.type, profile=prof,
                note=f"{1 - verdict.pass_rate:.0%} of a {verdict.rows}-value sample fails {pred.type}'s rules "
                     f"({', '.join(verdict.failing)}): not applied inline; name the type in the plan to apply it")
            continue
        ts.columns[src] = ColumnSemantics(src, cs.target, pred.type, pred.confidence, "inferred", pred.type,
                                          rules=rules, profile=prof)


def _library_into(ts: TableSemantics, plan) -> None:
    """Add the library's confirmed rules (and drop retired built-ins) per column profile."""
    typed = ts.typed()
    if not typed:
        return
    try:
        from checks.semantic.library import RuleLibrary

        lib = RuleLibrary.for_plan(plan)
        cache: dict[str, tuple[list[Rule], set[str]]] = {}
        for src, cs in typed.items():
            if cs.profile not in cache:
                cache[cs.profile] = lib.applicable(cs.profile)
            extra, retired = cache[cs.profile]
            rules = tuple(r for r in cs.rules if r.name not in retired) + tuple(extra)
            ts.columns[src] = ColumnSemantics(cs.source, cs.target, cs.semantic_type, cs.confidence, cs.origin,
                                              cs.inferred, cs.block_anomalies, rules, cs.profile, cs.note)
        ts.library = f"read ({sum(len(e) for e, _ in cache.values())} confirmed learned rule(s) apply)"
    except Exception as exc:  # the library improves validation; a broken one must not stop it
        ts.library = f"unreadable: {exc}"
        log.warning("kora: validation rule library unreadable (%s); built-in rules only", exc)


def suggest_types(table: str, columns: dict[str, dict], sample: pl.DataFrame) -> dict[str, ColumnSemantics] | None:
    """``kora init``: the classifier's type per column of a reflected table (None without the model).

    ``origin`` says what init should write: ``inferred`` (confident, and the sample passes the
    type's rules: a ``semantic:`` field) or a comment for the rest.
    """
    from kora_assets.plan.model import TablePlan

    tp = TablePlan.model_validate({"columns": columns})
    ts = _explicit(table, tp, today())
    untyped = [c for c, cs in ts.columns.items() if cs.origin == "none"]
    if not untyped:
        return ts.columns
    from checks.semantic.encoder import unavailable_reason

    global _SAID_NO_MODEL
    if unavailable_reason():
        if not _SAID_NO_MODEL:
            log.warning("kora: %s", unavailable_reason())
            _SAID_NO_MODEL = True
        return None
    _infer_into(ts, table, tp, sample, untyped)
    return ts.columns if ts.model == "loaded" else None
