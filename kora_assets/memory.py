"""glibc heap settings that keep kora's memory flat however many partitions a process runs.

connectorx, psycopg and polars allocate from several threads, so glibc gives them several
malloc arenas, and freed chunk memory stays in each arena instead of going back to the
system. A worker's RSS then climbed by ~10 MiB a partition: 344 -> 610 MiB over TPC-H SF1
lineitem's 25 partitions, a peak that grew with the table. Two arenas and trimming the heap
top on every free keep the same worker at ~290 MiB from the first partition to the last,
at the same speed (0.76-0.98 s a partition either way).

Workers get both settings as environment variables (read once, when their process starts).
The coordinating process, which runs the checks and the semantic model, only limits its
arenas (``mallopt`` at start-up: peak 911 -> 842 MiB over four tables' checks): setting a trim
threshold also switches off glibc's adaptive mmap threshold, and every large numpy/torch
buffer then costs fresh pages; those checks ran 20 % slower. A value the user set wins.

Workers also get fewer polars threads (``worker_thread_env``): less contention, less memory.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

WORKER_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_TRIM_THRESHOLD_": "0"}
_M_ARENA_MAX = -8  # from glibc's malloc.h


def worker_malloc_env() -> dict[str, str]:
    """The settings for worker processes, less any the user set in this environment."""
    return {k: v for k, v in WORKER_MALLOC_ENV.items() if k not in os.environ}


def worker_thread_env() -> dict[str, str]:
    """Polars threads per worker process: the cores shared out among the default two workers,
    less any the user set. Parallelism comes from the workers; within one, a second polars
    thread on a 2-core machine only contends (TPC-H lineitem, 3 partitions in one process:
    1.89 -> 1.64 and 1.98 -> 1.78 CPU-s, the same wall time, ~80 MiB less peak)."""
    if "POLARS_MAX_THREADS" in os.environ:
        return {}
    return {"POLARS_MAX_THREADS": str(max(1, (os.cpu_count() or 1) // 2))}


def bound_this_process() -> None:
    """Limit the running process's malloc arenas (no-op off glibc)."""
    mallopt = _libc("mallopt")
    if mallopt is not None and "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(_M_ARENA_MAX, int(WORKER_MALLOC_ENV["MALLOC_ARENA_MAX"]))


def release_free_heap() -> None:
    """Hand the heap's free pages back to the system (glibc ``malloc_trim``; no-op elsewhere).

    Between tables: what one table's checks freed would otherwise stay resident under the
    next table's peak (over four tables' checks: 850-870 MiB between tables, ~730 trimmed).
    """
    malloc_trim = _libc("malloc_trim")
    if malloc_trim is not None:
        malloc_trim(0)


def _libc(name: str):
    """A glibc function, or None where there is none (musl, macOS)."""
    path = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(path), name) if path else None
    except (OSError, AttributeError):
        return None
