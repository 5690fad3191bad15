"""Loading a plan from YAML, with errors that point at the line a human has to fix.

Pydantic knows *what* is wrong and *where* in the data; the YAML node tree knows on which
line that place was written. Cross-references (columns named by keys, foreign keys naming
tables, FK cycles) are checked here too, after the types, so every message names a line.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from kora_assets.naming import dagster_name
from kora_assets.plan.model import DAGSTER_NAME, Plan

_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class PlanIssue:
    path: tuple
    message: str
    line: int | None = None

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        dotted = ".".join(str(p) for p in self.path) or "(top level)"
        return f"{where}: {dotted}: {self.message}"


class PlanError(ValueError):
    """A plan that cannot run; ``str()`` is a list of ``file:line: path: problem`` lines."""

    def __init__(self, source: str, issues: list[PlanIssue]):
        self.source, self.issues = source, issues
        lines = "\n".join("  " + i.render(source) for i in issues)
        super().__init__(f"invalid migration plan ({len(issues)} problem(s)):\n{lines}")


def resolve_env(template: str, *, what: str = "value") -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}``; a missing variable is a specific error."""

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        if name in os.environ:
            return os.environ[name]
        if default is not None:
            return default
        raise KeyError(name)

    try:
        return _ENV_RE.sub(sub, template)
    except KeyError as exc:
        raise PlanError("plan", [PlanIssue((what,), f"environment variable {exc.args[0]} is not set")]) from None


def env_refs(template: str) -> list[str]:
    return [m.group(1) for m in _ENV_RE.finditer(template) if m.group(2) is None]


def load_plan(path: str | os.PathLike, *, require_env: bool = True) -> Plan:
    """Read, type-check and cross-check a plan file."""
    p = Path(path)
    if not p.exists():
        raise PlanError(str(p), [PlanIssue((), "file not found")])
    plan = parse_plan(p.read_text(encoding="utf-8"), source=str(p), require_env=require_env)
    if plan.query_log and not plan.query_log.startswith("${") and not Path(plan.query_log).is_absolute():
        plan.query_log = str((p.resolve().parent / plan.query_log))  # relative to the plan, not the cwd
    return plan


def parse_plan(text: str, *, source: str = "plan.yaml", require_env: bool = True) -> Plan:
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise PlanError(source, [PlanIssue((), f"not valid YAML: {getattr(exc, 'problem', exc)}", line)]) from None
    if not isinstance(data, dict):
        raise PlanError(source, [PlanIssue((), "a plan is a YAML mapping with source, target and tables")])
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        issues = [PlanIssue(_clean_loc(e["loc"]), _message(e)) for e in exc.errors()]
        raise PlanError(source, _with_lines(issues, root)) from None
    issues = list(cross_check(plan))
    if require_env:
        for key in ("source", "target"):
            for var in env_refs(getattr(plan, key).url):
                if var not in os.environ:
                    issues.append(PlanIssue((key, "url"), f"environment variable {var} is not set"))
    if issues:
        raise PlanError(source, _with_lines(issues, root))
    return plan


def cross_check(plan: Plan) -> Iterable[PlanIssue]:
    """References between parts of the plan, which field types alone cannot check."""
    targets: dict[str, str] = {}
    assets: dict[str, str] = {}
    for name, t in plan.tables.items():
        base = ("tables", name)
        tgt = plan.target_name(name)
        if tgt in targets:
            yield PlanIssue(base + ("target",), f"target table {tgt!r} is also the target of {targets[tgt]!r}")
        elif dagster_name(tgt) in assets:
            yield PlanIssue(base + ("target",), f"target tables {tgt!r} and {plan.target_name(assets[dagster_name(tgt)])!r} "
                                                f"would both be the Dagster asset {dagster_name(tgt)!r} (Dagster names "
                                                "keep only letters, digits and _); rename one")
        targets[tgt] = name
        assets.setdefault(dagster_name(tgt), name)
        cols = set(t.columns)
        seen_targets: dict[str, str] = {}
        for c, cp in t.columns.items():
            tc = cp.target or c
            if tc in seen_targets:
                yield PlanIssue(base + ("columns", c, "target"), f"target column {tc!r} is also the target of {seen_targets[tc]!r}")
            seen_targets[tc] = c
        for i, c in enumerate(t.primary_key):
            if c not in cols:
                yield _unknown(base + ("primary_key", i), c, name, cols)
            elif t.columns[c].transform:
                yield PlanIssue(base + ("columns", c, "transform"), "primary key columns cannot be transformed (keys must match between source and target)")
        for i, fk in enumerate(t.foreign_keys):
            fb = base + ("foreign_keys", i)
            for j, c in enumerate(fk.columns):
                if c not in cols:
                    yield _unknown(fb + ("columns", j), c, name, cols)
            if fk.references not in plan.tables:
                yield PlanIssue(fb + ("references",), f"unknown table {fk.references!r}; tables in this plan: {', '.join(plan.tables)}")
            else:
                pcols = set(plan.tables[fk.references].columns)
                for j, c in enumerate(fk.ref_columns):
                    if c not in pcols:
                        yield _unknown(fb + ("ref_columns", j), c, fk.references, pcols)
            if len(fk.columns) != len(fk.ref_columns):
                yield PlanIssue(fb, "columns and ref_columns must have the same length")
        for i, u in enumerate(t.unique):
            for j, c in enumerate(u):
                if c not in cols:
                    yield _unknown(base + ("unique", i, j), c, name, cols)
        for i, ix in enumerate(t.indexes):
            for j, c in enumerate(ix.columns):
                if c not in cols:
                    yield _unknown(base + ("indexes", i, "columns", j), c, name, cols)
        part = t.partitioning
        pb = base + ("partitioning",)
        if part.kind != "none":
            if not part.column:
                yield PlanIssue(pb + ("column",), f"{part.kind} partitioning needs a column")
            elif part.column not in cols:
                yield _unknown(pb + ("column",), part.column, name, cols)
            elif t.columns[part.column].transform:
                yield PlanIssue(pb + ("column",), "the partition column cannot be transformed (partitions must select the same rows in source and target)")
            elif part.kind == "key_range" and not t.columns[part.column].ktype.is_integer:
                yield PlanIssue(pb + ("column",), "key_range partitioning needs an integer column")
            elif part.kind == "time" and not t.columns[part.column].ktype.is_temporal:
                yield PlanIssue(pb + ("column",), "time partitioning needs a date or timestamp column")
        if part.kind == "time" and part.start is None:
            yield PlanIssue(pb + ("start",), "time partitioning needs a start date")
    try:
        load_order(plan)
    except CycleError as exc:
        yield PlanIssue(("tables", exc.tables[0], "foreign_keys"), str(exc))


class CycleError(ValueError):
    def __init__(self, tables: list[str]):
        self.tables = tables
        super().__init__(
            "foreign keys form a cycle that cannot be ordered: " + " -> ".join(tables + tables[:1])
            + "; drop one of these foreign keys from the plan or make it part of one table")


def parents(plan: Plan, table: str) -> list[str]:
    """Tables this one references (self-references excluded: they load within a partition)."""
    return sorted({fk.references for fk in plan.tables[table].foreign_keys
                   if fk.references != table and fk.references in plan.tables})


def ancestors(plan: Plan, table: str) -> set[str]:
    """Every table the table's rows depend on: its parents, theirs, and so on."""
    out, todo = set(), list(parents(plan, table))
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(parents(plan, p))
    return out


def load_order(plan: Plan) -> list[str]:
    """Tables with parents before children; a cycle is a specific error."""
    order, state = [], {}

    def visit(t: str, stack: list[str]):
        if state.get(t) == "done":
            return
        if state.get(t) == "active":
            raise CycleError(stack[stack.index(t):])
        state[t] = "active"
        for p in parents(plan, t):
            visit(p, stack + [p])
        state[t] = "done"
        order.append(t)

    for t in plan.tables:
        visit(t, [t])
    return order


def _unknown(path, col, table, cols) -> PlanIssue:
    import difflib

    near = difflib.get_close_matches(col, list(cols), n=1)
    hint = f"; did you mean {near[0]!r}?" if near else f"; columns: {', '.join(sorted(cols))}"
    return PlanIssue(path, f"unknown column {col!r} in table {table!r}{hint}")


def _clean_loc(loc: tuple) -> tuple:
    # Drop pydantic's union-tag segments (e.g. 'trim') that are not in the YAML.
    out = []
    for part in loc:
        if isinstance(part, str) and (part.startswith("function-") or part in _op_tags()):
            continue
        out.append(part)
    return tuple(out)


def _op_tags() -> set[str]:
    from kora_assets.transforms.operators import OPERATOR_NAMES

    return set(OPERATOR_NAMES)


def _message(err: dict) -> str:
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "string_pattern_mismatch" and err.get("ctx", {}).get("pattern") == DAGSTER_NAME:
        suggestion = dagster_name(str(err.get("input", "")))
        msg = f"a Dagster name takes only letters, digits and _ (e.g. {suggestion!r})"
    if err["type"] == "extra_forbidden":
        msg = "unknown field (check the spelling; see the plan format in the README)"
    if err["type"] == "union_tag_invalid":
        from kora_assets.transforms.operators import OPERATOR_NAMES

        msg = f"unknown operator {err.get('input', {}).get('op')!r}; known: {', '.join(OPERATOR_NAMES)}"
    return msg


def _with_lines(issues: list[PlanIssue], root) -> list[PlanIssue]:
    for issue in issues:
        issue.line = _line_of(root, issue.path)
    return issues


def _line_of(node, path: tuple) -> int | None:
    """The line where the deepest existing node on ``path`` starts (1-based)."""
    best = node.start_mark.line + 1 if node is not None else None
    for part in path:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if str(k.value) == str(part):
                    child = v if not isinstance(v, yaml.ScalarNode) else v
                    best = k.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            best = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return best
