"""Asking the LLM for a fix, and accepting its answer only as operators of the closed set.

The model sees the column, its target type and rules, the error class and samples of failing
and passing values, and must answer ``{"ops": [<operator>, ...]}`` under the operator JSON
schema. Its text is then parsed *strictly*:

1. it must start with a JSON object (whitespace and a ```json fence are tolerated, prose,
   code or SQL are not);
2. the object must validate against the operator schema (unknown operators, unknown fields,
   wrong types are rejected: pydantic ``extra=forbid``);
3. parameters must look like data: no code or SQL fragments, bounded sizes.

A rejected answer is logged with its reason and adds no candidate. An accepted one is only a
*candidate*: the sandbox still has to prove it.
"""
from __future__ import annotations

import json
import logging
import re

from pydantic import ValidationError

from kora_assets.recovery.candidates import Candidate, GroupContext
from kora_assets.transforms.operators import OPERATOR_LIST_ADAPTER, check_chain, operator_json_schema

log = logging.getLogger("kora.recovery")
MAX_OPS = 4
MAX_STRING = 200
MAX_MAPPING = 2000

#: Fragments that have no business in a fix's parameters: code, SQL, shell, templates.
_SUSPICIOUS = re.compile(
    r"(\bimport\s+\w|__\w+__|\beval\s*\(|\bexec\s*\(|\bos\.(system|popen)|subprocess|\blambda\b|\bdef\s+\w+\s*\(|"
    r"\b(select|insert|update|delete|drop|alter|create|truncate|grant)\b\s+[\w*(]|;\s*--|--\s|/\*|\$\(|`|\{\{|<script)",
    re.IGNORECASE)


class RejectedAnswer(ValueError):
    """The LLM's answer is not a fix in the operator schema (the message says why)."""


def answer_schema() -> dict:
    """``{"ops": [operator, ...]}`` with the operator schema's definitions hoisted to the root."""
    op = operator_json_schema()
    defs = op.pop("$defs", {})
    return {"type": "object", "additionalProperties": False, "required": ["ops"],
            "properties": {"ops": {"type": "array", "minItems": 1, "maxItems": MAX_OPS, "items": op}},
            "$defs": defs}


def parse_answer(text: str) -> tuple:
    """The operators in an LLM answer, or ``RejectedAnswer``."""
    if not isinstance(text, str) or not text.strip():
        raise RejectedAnswer("empty answer")
    s = text.strip()
    s = re.sub(r"^```(?:json)?\s*", "", s)
    if not s.startswith("{"):
        raise RejectedAnswer(f"not a JSON object: {text.strip()[:80]!r}")
    try:
        data, _end = json.JSONDecoder().raw_decode(s)
    except json.JSONDecodeError as exc:
        raise RejectedAnswer(f"invalid JSON ({exc.msg} at {exc.pos})") from None
    if isinstance(data, dict) and "op" in data and "ops" not in data:
        data = {"ops": [data]}
    if not isinstance(data, dict) or set(data) != {"ops"} or not isinstance(data["ops"], list):
        raise RejectedAnswer('expected exactly {"ops": [...]}')
    if not 1 <= len(data["ops"]) <= MAX_OPS:
        raise RejectedAnswer(f"a fix has 1 to {MAX_OPS} operators, not {len(data['ops'])}")
    _check_data(data["ops"])
    try:
        ops = OPERATOR_LIST_ADAPTER.validate_python(data["ops"])
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RejectedAnswer(f"not in the operator schema: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    try:
        check_chain(ops)
    except ValueError as exc:
        raise RejectedAnswer(str(exc)) from None
    return tuple(ops)


def _check_data(node, depth: int = 0) -> None:
    if depth > 6:
        raise RejectedAnswer("nested too deeply")
    if isinstance(node, dict):
        if len(node) > MAX_MAPPING:
            raise RejectedAnswer(f"a mapping of {len(node)} entries is too large")
        for k, v in node.items():
            _check_data(k, depth + 1)
            _check_data(v, depth + 1)
    elif isinstance(node, list):
        if len(node) > MAX_MAPPING:
            raise RejectedAnswer(f"a list of {len(node)} items is too large")
        for v in node:
            _check_data(v, depth + 1)
    elif isinstance(node, str):
        if len(node) > MAX_STRING:
            raise RejectedAnswer(f"a parameter of {len(node)} characters is too long")
        if _SUSPICIOUS.search(node):
            raise RejectedAnswer(f"a parameter looks like code or SQL: {node[:60]!r}")


_VOCABULARY = """Operators (JSON objects, "op" names the operator):
- {"op": "trim"} / {"op": "collapse_whitespace"} / {"op": "lower"} / {"op": "upper"}
- {"op": "map_values", "mapping": {"old": "new", ...}, "case_insensitive": false}
- {"op": "case_fold_allowed", "allowed": ["a", "b"]}
- {"op": "null_if", "values": ["n/a", "-"]}
- {"op": "default", "value": "x"}   (fills NULL; lossy)
- {"op": "parse_date", "formats": ["%d.%m.%Y"]} / {"op": "parse_timestamp", "formats": ["%d.%m.%Y %H:%M"]}
- {"op": "parse_number", "decimal": "." or ",", "thousands": ",", ".", " ", "'" or "", "strip_currency": true, "percent": false}
- {"op": "parse_boolean", "true": ["ja"], "false": ["nein"]}
- {"op": "remove_nul"} / {"op": "fix_mojibake"} / {"op": "truncate", "length": 10} / {"op": "round", "digits": 2}
- {"op": "scale", "factor": 0.01}
- {"op": "split_from_sibling", "sibling": "city", "separators": [",", " "], "values": ["OR", "WA"]}
  (this column is empty and the sibling column ends in a separator and one of `values`: this column takes
  that value and the sibling keeps the text before the separator; it must be the only operator)"""


def build_messages(ctx: GroupContext, reason: str | None = None, passing: list | None = None) -> list[dict]:
    cp = ctx.column
    rules = {k: v for k, v in cp.rules.model_dump().items() if v is not None}
    failing = [v for v in ctx.values.head(12).to_list()]
    system = ("You repair values that failed validation during a database migration. You answer with ONE JSON "
              'object {"ops": [...]}: a short chain of operators that turns every failing value into a valid one. '
              "You never write code or SQL. If no operator chain can repair the values, answer "
              '{"ops": [{"op": "trim"}]}.\n' + _VOCABULARY)
    user = (f"Column {ctx.sig.table}.{ctx.sig.column}: target type {cp.type}, "
            f"{'nullable' if cp.nullable else 'NOT NULL'}" + (f", rules {json.dumps(rules)}" if rules else "") + ".\n"
            f"Error class: {ctx.sig.error_class}" + (f" ({reason})" if reason else "") + ".\n"
            f"Failing values: {json.dumps(failing, ensure_ascii=False)}\n"
            + (f"Values that pass: {json.dumps(passing[:8], ensure_ascii=False, default=str)}\n" if passing else "")
            + 'Answer with the JSON object only, e.g. {"ops": [{"op": "parse_date", "formats": ["%d.%m.%Y"]}]}')
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def propose(client, ctx: GroupContext, reason: str | None = None, passing: list | None = None) -> tuple[list[Candidate], str | None]:
    """(candidates from the LLM, why its answer was rejected or None)."""
    from resources.llm import LLMUnavailable

    messages = build_messages(ctx, reason, passing)
    try:
        text = client.complete(messages, answer_schema())
    except LLMUnavailable as exc:
        log.warning("LLM unavailable for %s: %s", ctx.sig, exc)
        return [], f"LLM unavailable: {exc}"
    except Exception as exc:  # a broken client is a rejected answer, never a crash
        log.warning("LLM call failed for %s: %s", ctx.sig, exc)
        return [], f"LLM call failed: {type(exc).__name__}: {exc}"
    try:
        ops = parse_answer(text)
    except RejectedAnswer as exc:
        log.info("LLM answer for %s rejected: %s", ctx.sig, exc)
        return [], f"LLM answer rejected: {exc}"
    log.info("LLM proposed for %s: %s", ctx.sig, [op.op for op in ops])
    return [Candidate(ops, origin="llm", note="proposed by the LLM")], None
