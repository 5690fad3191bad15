"""Phase timings of a table's step, logged as they finish.

A table's step is more than its copy (constraints, conservation, the checks); a user watching
a long migration, and the benchmark reading the log, must see where the time goes, and which
phase raised the coordinating process's peak memory (the workers report theirs per partition).
"""
from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager

progress_log = logging.getLogger("kora.progress")


@contextmanager
def phase(table: str, name: str, context=None):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        line = f"{table}: {name} in {time.perf_counter() - t0:.1f}s (coordinator peak {peak_rss_mib():,} MiB)"
        progress_log.info(line)
        if context is not None:
            context.log.info(line)


def peak_rss_mib() -> int:
    """This process's peak resident memory so far (0 where the platform does not say)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KiB on Linux
    except (ImportError, OSError):
        return 0


def rss_mib() -> int:
    """This process's resident memory now (a worker reports it after each partition; 0 off Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // (1 << 20)
    except (OSError, ValueError):
        return 0
