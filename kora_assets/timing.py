"""Phase timings of a table's step, logged as they finish.

A table's step is more than its copy (constraints, conservation, the checks); a user watching
a long migration, and the benchmark reading the log, must see where the time goes.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager

progress_log = logging.getLogger("kora.progress")


@contextmanager
def phase(table: str, name: str, context=None):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        line = f"{table}: {name} in {time.perf_counter() - t0:.1f}s"
        progress_log.info(line)
        if context is not None:
            context.log.info(line)
