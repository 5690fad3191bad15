"""Ray: a local instance started for you, or an existing cluster by address.

``RAY_AUTH_MODE`` is decided explicitly for the local instance (token auth off on a private
loopback-only head); a cluster you point at keeps its own setting.

The local head starts without the three Python daemons a one-machine, driver-only Ray has no
use for: the dashboard's API server (``include_dashboard=False`` still starts it, with only its
usage-stats module), the autoscaler monitor (nothing to scale) and the log monitor (it streams
worker logs to the driver, and ``log_to_driver`` is off). They held ~260 MiB of resident memory
(~80-100 MiB each) in every ``kora migrate`` and cost ~0.6 s of its start-up. Ray offers no
``ray.init`` switch for them (its ``RayParams`` does, for ``ray start``), so the head node is
built from a subclass for the length of the one ``ray.init`` call (``_lean_local_head``).

The raylet's two agents (the dashboard agent: metrics and node stats; the runtime-env agent:
per-job environments) are replaced by ``resources/ray_agent_stub.py``, which writes the port
files the raylet waits for and idles: another ~200 MiB and ~2 CPU-s of imports per start (a
two-table ``kora migrate``: ~1.5 s shorter on 2 cores). Without a runtime-env agent no job
may carry a ``runtime_env``: the workers inherit this process's environment, ``KORA_*``
variables included. A cluster given by address keeps all of its processes.
"""
from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import dagster as dg
from pydantic import Field


class RayResource(dg.ConfigurableResource):
    """Where kora's worker actors run."""

    address: str | None = Field(None, description="ray://host:10001 or host:6379 of an existing cluster; default: KORA_RAY_ADDRESS or a local Ray")
    num_workers: int | None = Field(None, description="worker actors; default: the plan's settings.workers")
    num_cpus: int | None = Field(None, description="CPUs for a local Ray (default: all)")

    def ensure(self) -> None:
        import ray

        if ray.is_initialized():
            return
        address = self.address or os.environ.get("KORA_RAY_ADDRESS")
        from kora_assets.memory import worker_malloc_env, worker_thread_env

        if address:  # its processes are running: the workers get the heap settings with their job
            kora_env = {k: v for k, v in os.environ.items() if k.startswith("KORA_")}
            runtime_env = {"env_vars": {**worker_malloc_env(), **worker_thread_env(), **kora_env}}
            ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            return
        # A local Ray's processes inherit this environment, KORA_* included. (As job env_vars
        # instead, they made Ray start fresh workers rather than use the ones it pre-starts: the
        # first actor ~1 s later; and the local head has no runtime-env agent to apply them.)
        os.environ.update(worker_malloc_env())
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        threads = worker_thread_env()  # for Ray's processes only: this one keeps its own polars pool
        os.environ.update(threads)
        try:
            with _lean_local_head():
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, _node_ip_address="127.0.0.1")
        finally:
            for k in threads:
                os.environ.pop(k, None)


# The raylet's agent options and the port files each agent writes (see ray_agent_stub).
_AGENT_PORT_FILES = {
    "--dashboard_agent_command": "metrics_agent_port,metrics_export_port,dashboard_agent_listen_port",
    "--runtime_env_agent_command": "runtime_env_agent_port",
}


def _stub_agents(command: list[str]) -> list[str]:
    """The raylet's command line with each agent's program replaced by the stub (same options)."""
    stub = [sys.executable, "-S", str(Path(__file__).with_name("ray_agent_stub.py"))]
    out = []
    for arg in command:
        option, _, agent = arg.partition("=")
        if option in _AGENT_PORT_FILES:
            options = [a for a in shlex.split(agent) if a.startswith("--")]
            arg = f"{option}={subprocess.list2cmdline([*stub, _AGENT_PORT_FILES[option], *options])}"
        out.append(arg)
    return out


@contextlib.contextmanager
def _lean_local_head():
    """While ``ray.init`` starts a local head: no dashboard server, autoscaler or log monitor,
    and stubs for the raylet's agents."""
    from ray._private import node as ray_node
    from ray._private import services

    base, start_process = ray_node.Node, services.start_ray_process

    def start_ray_process(command, process_type, *args, **kwargs):
        if process_type == "raylet":
            command = _stub_agents(command)
        return start_process(command, process_type, *args, **kwargs)

    class LeanHeadNode(base):
        def __init__(self, ray_params, *args, **kwargs):
            if kwargs.get("head", args[0] if args else False):
                ray_params.include_log_monitor = False
                ray_params.no_monitor = True
            super().__init__(ray_params, *args, **kwargs)

        def start_api_server(self, *, include_dashboard, raise_on_failure):
            return None

    ray_node.Node, services.start_ray_process = LeanHeadNode, start_ray_process
    try:
        yield
    finally:
        ray_node.Node, services.start_ray_process = base, start_process


def stop_local_ray_now() -> None:
    """End the local Ray this process started, at once (SIGKILL to every process under this one).

    For the end of ``kora migrate``, when every actor is idle and every write has committed.
    ``ray.shutdown()`` asks each of Ray's processes to stop and waits for it (~2 s); the
    agents and workers the raylet started would outlive a kill of the raylet alone, so the
    whole tree of this process goes. A cluster given by address has no process here to stop.
    """
    import psutil

    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for p in children:  # not waited for: a SIGKILL cannot be refused (waiting cost ~2 s of zombies)
        try:
            p.kill()
        except psutil.Error:
            pass
