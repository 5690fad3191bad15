"""A value repeated in a unique column (not the primary key) is queued, not landed, and the
table still gets its unique constraint: across partitions loaded side by side, and within one.
"""
from __future__ import annotations

import json
import sqlite3

import pytest

from kora_assets.migrate import migrate
from kora_assets.plan.loader import parse_plan
from tests.test_migrate_e2e import _rows

pytestmark = pytest.mark.usefixtures("ray_local", "redis_url")

PLAN = """
name: uniq
source: {{url: "{src}"}}
target: {{url: "{tgt}", schema: public}}
tables:
  people:
    primary_key: [id]
    unique: [[email]]
    partitioning: {{kind: key_range, column: id, bounds: [10, 20]}}
    columns:
      id: {{type: integer, nullable: false}}
      email: {{type: text}}
      name: {{type: text}}
"""


def _source(path) -> str:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, email TEXT, name TEXT)")
    rows = [(i, f"p{i}@example.com", f"person {i}") for i in range(1, 31)]
    rows[25 - 1] = (25, "p5@example.com", "person 25")  # repeats id 5, two partitions away
    rows[13 - 1] = (13, "p12@example.com", "person 13")  # repeats id 12, same partition
    rows[7 - 1] = (7, None, "person 7")  # NULLs never collide
    rows[8 - 1] = (8, None, "person 8")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", rows)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


def test_duplicates_of_a_unique_column_are_queued_and_the_constraint_is_added(tmp_path, pg_db, dagster_instance):
    plan = parse_plan(PLAN.format(src=_source(tmp_path / "src.db"), tgt=pg_db), require_env=False)
    for _ in range(2):  # the second run over landed data: the same target, the same queue
        outcome = migrate(plan, dagster_instance)
        assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
        landed = [r[0] for r in _rows(pg_db, "SELECT id FROM public.people ORDER BY id")]
        assert landed == [i for i in range(1, 31) if i not in (13, 25)]
        queue = _rows(pg_db, "SELECT CAST(primary_key AS TEXT), partition_key, column_name, error_class, reason, "
                             "value, CAST(\"row\" AS TEXT), status FROM kora.error_queue ORDER BY 2")
        assert [(json.loads(q[0])["id"], q[1], q[2], q[3], q[5], q[7]) for q in queue] == [
            (13, "10..20", "email", "constraint.unique", "p12@example.com", "pending"),
            (25, "20..", "email", "constraint.unique", "p5@example.com", "pending")]
        assert 'already held by the row {"id": 12}' in queue[0][4]
        assert 'already held by the row {"id": 5}' in queue[1][4]
        assert json.loads(queue[1][6]) == {"id": 25, "email": "p5@example.com", "name": "person 25"}
        assert _rows(pg_db, "SELECT conname FROM pg_constraint WHERE conname = 'uq_people_email'") == [
            ("uq_people_email",)]


@pytest.mark.timeout(180)
def test_a_repeat_in_a_one_partition_table_beside_other_tables(tmp_path, pg_db, dagster_instance):
    """``kora migrate`` of several tables loads ahead; a table of one partition with a repeated
    unique value loads that partition again to queue the repeat. That second load waited for
    results the first one had already taken: the migration hung. And a child loaded ahead of
    that second load kept a row pointing at the repeat: its foreign key then failed the table."""
    src = _source(tmp_path / "src.db")
    con = sqlite3.connect(tmp_path / "src.db")
    con.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, person_id INTEGER, body TEXT)")
    con.executemany("INSERT INTO notes VALUES (?, ?, ?)", [(i, i * 5, f"note {i}") for i in range(1, 6)])
    con.commit()
    con.close()
    text = PLAN.format(src=src, tgt=pg_db).replace("    partitioning: {kind: key_range, column: id, bounds: [10, 20]}\n", "")
    text += ("  notes:\n    primary_key: [id]\n    columns:\n      id: {type: integer}\n      person_id: {type: integer}\n"
             "      body: {type: text}\n    foreign_keys:\n      - {columns: [person_id], references: people, "
             "ref_columns: [id]}\n")
    outcome = migrate(parse_plan(text, require_env=False), dagster_instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
    assert [r[0] for r in _rows(pg_db, "SELECT id FROM public.people ORDER BY id")] == [
        i for i in range(1, 31) if i not in (13, 25)]
    assert _rows(pg_db, "SELECT table_name, primary_key->>'id', error_class FROM kora.error_queue ORDER BY 1, 2") == [
        ("notes", "5", "fk_orphan"), ("people", "13", "constraint.unique"), ("people", "25", "constraint.unique")]
    assert _rows(pg_db, "SELECT id FROM public.notes ORDER BY id") == [(1,), (2,), (3,), (4,)]


def test_a_sqlite_target_queues_repeats_instead_of_failing_the_partition(tmp_path, dagster_instance):
    """SQLite declares the constraint at CREATE TABLE, so the worker checks each chunk against the
    rows already landed (one partition here: which of two partitions' rows lands first is not fixed)."""
    text = PLAN.format(src=_source(tmp_path / "src.db"), tgt=f"sqlite:///{tmp_path / 'tgt.db'}")
    text = text.replace(", schema: public", "").replace(
        "    partitioning: {kind: key_range, column: id, bounds: [10, 20]}\n", "")
    plan = parse_plan(text, require_env=False)
    tgt = f"sqlite:///{tmp_path / 'tgt.db'}"
    for _ in range(2):
        outcome = migrate(plan, dagster_instance)
        assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
        assert [r[0] for r in _rows(tgt, "SELECT id FROM people ORDER BY id")] == [
            i for i in range(1, 31) if i not in (13, 25)]
        queue = _rows(tgt, "SELECT primary_key, column_name, error_class, value FROM kora__error_queue ORDER BY id")
        assert sorted((json.loads(q[0])["id"], q[1], q[2], q[3]) for q in queue) == [
            (13, "email", "constraint.unique", "p12@example.com"), (25, "email", "constraint.unique", "p5@example.com")]


def test_a_keyed_table_queues_a_new_repeat_instead_of_failing_the_partition(tmp_path, pg_db, dagster_instance):
    """After the table has its constraints (a later load, e.g. a schedule until cut-over), a new
    row repeating a landed row's value is queued; the partition's own older rows are no repeats."""
    src = _source(tmp_path / "src.db")
    plan = parse_plan(PLAN.format(src=src, tgt=pg_db), require_env=False)
    assert migrate(plan, dagster_instance).ok
    con = sqlite3.connect(tmp_path / "src.db")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", [(31, "p3@example.com", "new"), (32, "p32@example.com", "new")])
    con.commit()
    con.close()
    outcome = migrate(plan, dagster_instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
    assert [r[0] for r in _rows(pg_db, "SELECT id FROM public.people ORDER BY id")] == [
        i for i in range(1, 33) if i not in (13, 25, 31)]
    queue = _rows(pg_db, "SELECT CAST(primary_key AS TEXT), partition_key, error_class, reason FROM kora.error_queue")
    assert sorted((json.loads(q[0])["id"], q[1], q[2]) for q in queue) == [
        (13, "10..20", "constraint.unique"), (25, "20..", "constraint.unique"), (31, "20..", "constraint.unique")]
    assert [q[3] for q in queue if json.loads(q[0])["id"] == 31] == [
        "duplicate value of unique (email): held by an earlier row"]


def test_a_unique_column_without_a_primary_key_loads(tmp_path, dagster_instance):
    """No key to tell a row's own older version apart: the constraint alone decides (no repeats here)."""
    con = sqlite3.connect(tmp_path / "src.db")
    con.execute("CREATE TABLE people (id INTEGER, email TEXT UNIQUE, name TEXT)")
    con.executemany("INSERT INTO people VALUES (?, ?, ?)", [(i, f"p{i}@example.com", f"person {i}") for i in range(1, 29)])
    con.commit()
    con.close()
    text = PLAN.format(src=f"sqlite:///{tmp_path / 'src.db'}", tgt=f"sqlite:///{tmp_path / 'tgt.db'}")
    text = (text.replace(", schema: public", "").replace("    primary_key: [id]\n", "")
            .replace("    partitioning: {kind: key_range, column: id, bounds: [10, 20]}\n", ""))
    outcome = migrate(parse_plan(text, require_env=False), dagster_instance)
    assert outcome.ok, [(t.table, t.status, t.detail) for t in outcome.tables]
    assert len(_rows(f"sqlite:///{tmp_path / 'tgt.db'}", "SELECT id FROM people")) == 28
