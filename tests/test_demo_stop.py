"""`kora demo --stop`: the embedded PostgreSQL the demo leaves running is stopped on request."""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from kora_assets.demo.run import embedded_postgres

KORA = [sys.executable, "-m", "kora_assets.cli"]


@pytest.fixture
def demo_dir():
    # Not pytest's tmp_path: it is private to root, and the server runs as the pgserver user.
    d = Path(tempfile.mkdtemp(prefix="kora-demo-stop-", dir="/tmp"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3) as c:
            return c.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def test_stop_ends_the_embedded_server_and_a_second_stop_says_nothing_runs(demo_dir):
    url = embedded_postgres(demo_dir / "pgdata")
    assert _answers(url)

    out = subprocess.run([*KORA, "demo", "--dir", str(demo_dir), "--stop"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert f"stopped the embedded PostgreSQL in {demo_dir / 'pgdata'}" in out.stdout
    assert not _answers(url)

    again = subprocess.run([*KORA, "demo", "--dir", str(demo_dir), "--stop"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "nothing to stop" in again.stdout
    assert (demo_dir / "pgdata" / "PG_VERSION").exists()  # the data stays for the next demo


def test_stop_without_a_demo_dir_says_so(tmp_path):
    out = subprocess.run([*KORA, "demo", "--dir", str(tmp_path / "none"), "--stop"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "nothing to stop" in out.stdout
