"""The local Ray kora starts: only the processes a one-machine, driver-only Ray needs."""
from __future__ import annotations

import psutil
import pytest
import ray

pytestmark = pytest.mark.usefixtures("ray_local")


def _ray_processes() -> list[str]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            out.append(" ".join(p.cmdline()))
        except psutil.Error:
            continue
    return out


def test_local_head_runs_without_dashboard_autoscaler_or_log_monitor():
    @ray.remote
    def double(x):
        return 2 * x

    assert ray.get([double.remote(i) for i in range(4)]) == [0, 2, 4, 6]
    cmds = _ray_processes()
    assert any("gcs_server" in c for c in cmds) and any("raylet" in c for c in cmds), cmds
    for daemon in ("dashboard/dashboard.py", "autoscaler/_private/monitor.py", "_private/log_monitor.py"):
        assert not any(daemon in c for c in cmds), f"{daemon} was started: {cmds}"


def test_a_later_plain_ray_init_gets_the_usual_node_class():
    from ray._private import node as ray_node

    assert ray_node.Node.__name__ == "Node"
