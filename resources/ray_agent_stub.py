"""Stands in for Ray's dashboard agent and runtime-env agent on kora's local head.

The raylet starts both agents, waits until each has written its ports into the session
directory, and exits if one of them dies. kora's local Ray needs neither: no metrics are
exported, no dashboard reads node stats, and no job or actor has a runtime environment (the
workers inherit the driver's environment). The two agents held ~200 MiB of resident memory
and spent ~2 CPU-s importing Ray's Python packages at every start. This script writes the
port files with ``-1`` (what Ray's own minimal agent writes for a service it does not run)
and then waits for its raylet to go.

Run with ``python -S`` by ``resources.ray_cluster._lean_local_head``: only the standard
library, nothing else imported (~9 MiB). ``argv[1]`` names the port files, comma-separated;
the agent's own arguments follow, of which ``--session-dir`` and ``--node-id`` are read.
"""
import os
import sys
import time


def main(argv: list[str]) -> None:
    opts = dict(a[2:].split("=", 1) for a in argv[2:] if a.startswith("--") and "=" in a)
    for name in argv[1].split(","):
        path = os.path.join(opts["session-dir"], f"{name}_{opts['node-id']}")
        with open(path + ".tmp", "w") as f:
            f.write("-1")
        os.replace(path + ".tmp", path)  # the raylet polls for the file: never a half-written one
    raylet = os.getppid()
    while os.getppid() == raylet:  # re-parented: the raylet is gone
        time.sleep(1.0)


if __name__ == "__main__":
    main(sys.argv)
