"""The local Ray kora starts: only the processes a one-machine, driver-only Ray needs."""
from __future__ import annotations

import os

import psutil
import pytest
import ray

pytestmark = pytest.mark.usefixtures("ray_local")


def _ray_processes() -> list[str]:
    return [c for c, _ in _ray_processes_rss()]


def _ray_processes_rss() -> list[tuple[str, int]]:
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            out.append((" ".join(p.cmdline()), p.memory_info().rss))
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


def test_the_raylet_agents_are_stubs_and_workers_inherit_the_environment():
    """The dashboard and runtime-env agents are replaced by ray_agent_stub (a few MiB each, not
    ~100), and with no runtime-env agent the workers get KORA_* variables by inheritance."""

    @ray.remote
    def env(name):
        return os.environ.get(name)

    assert ray.get(env.remote("KORA_TEST_RAY_ENV")) == os.environ["KORA_TEST_RAY_ENV"] == "inherited"
    procs = _ray_processes_rss()
    cmds = [c for c, _ in procs]
    for agent in ("dashboard/agent.py", "runtime_env/agent/main.py"):
        assert not any(agent in c for c in cmds), f"{agent} was started: {cmds}"
    stubs = [(c, rss) for c, rss in procs if any(a.endswith("ray_agent_stub.py") for a in c.split()[:3])]
    assert len(stubs) == 2, cmds
    assert any("runtime_env_agent_port" in c for c, _ in stubs) and any("metrics_agent_port" in c for c, _ in stubs)
    assert all(rss < 40 * 2**20 for _, rss in stubs), stubs
