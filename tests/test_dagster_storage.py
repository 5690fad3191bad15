"""The Dagster instance kora keeps beside a plan: its pooled SQLite event log writes the same
files any Dagster reads, keeps a bounded number of engines, and is only written where kora
wrote the instance's config itself."""
from __future__ import annotations

import dagster as dg
import pytest

from kora_assets import dagster_storage
from kora_assets.dagster_storage import PooledSqliteEventLogStorage
from kora_assets.migrate import dagster_instance


@dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c"]))
def numbers(context):
    return dg.MaterializeResult(metadata={"rows": {"a": 1, "b": 2, "c": 3}[context.partition_key]})


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    (tmp_path / "plan.yaml").write_text("")
    yield tmp_path / ".kora" / "dagster"
    monkeypatch.delenv("DAGSTER_HOME", raising=False)


def _rows_by_partition(instance: dg.DagsterInstance) -> dict[str, int]:
    records = instance.fetch_materializations(dg.AssetKey("numbers"), limit=100).records
    return {r.partition_key: r.asset_materialization.metadata["rows"].value for r in records}


def test_kora_instance_writes_events_a_default_dagster_instance_reads(home):
    inst = dagster_instance(home.parent.parent / "plan.yaml")
    assert isinstance(inst.event_log_storage, PooledSqliteEventLogStorage)
    for key in ("a", "b", "c"):
        assert dg.materialize([numbers], partition_key=key, instance=inst).success
    assert _rows_by_partition(inst) == {"a": 1, "b": 2, "c": 3}
    run_ids = {r.run_id for r in inst.get_runs()}
    inst.dispose()

    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # Dagster's default storage
    plain = dg.DagsterInstance.from_config(str(home))
    try:
        assert type(plain.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert _rows_by_partition(plain) == {"a": 1, "b": 2, "c": 3}
        assert {r.run_id for r in plain.get_runs()} == run_ids
        steps = [e for rid in run_ids for e in plain.all_logs(rid) if e.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS]
        assert len(steps) == 3
    finally:
        plain.dispose()


def test_engines_are_kept_for_the_latest_files_only_and_wipe_deletes_them(home, monkeypatch):
    monkeypatch.setattr(dagster_storage, "_ENGINES_KEPT", 3)
    inst = dagster_instance(home.parent.parent / "plan.yaml")
    storage = inst.event_log_storage
    for key in ("a", "b", "c", "a", "b"):
        assert dg.materialize([numbers], partition_key=key, instance=inst).success
    assert len(storage._engines) == 3  # the index and the two latest runs' files
    assert len(storage.get_all_run_ids()) == 5
    storage.wipe()
    assert storage.get_all_run_ids() == [] and list(storage._engines) == ["index"]  # emptied through a new engine
    assert _rows_by_partition(inst) == {}
    inst.dispose()


def test_instance_config_is_kora_s_own_or_left_alone(home):
    home.mkdir(parents=True)
    cfg = home / "dagster.yaml"
    cfg.write_text("telemetry:\n  enabled: false\n")  # what earlier versions of kora wrote
    dagster_instance(home.parent.parent / "plan.yaml").dispose()
    assert "PooledSqliteEventLogStorage" in cfg.read_text()

    mine = "telemetry:\n  enabled: false\nrun_monitoring:\n  enabled: false\n"
    cfg.write_text(mine)
    inst = dagster_instance(home.parent.parent / "plan.yaml")
    assert cfg.read_text() == mine
    assert type(inst.event_log_storage).__name__ == "SqliteEventLogStorage"
    inst.dispose()
