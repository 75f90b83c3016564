"""Progress on long work: one log line per stage as it starts and ends, and bars for the long stages.

`--quiet` (see `facedancer.cli.main`) switches every bar off through `set_quiet`; library callers that pass
`progress=False` switch off their own bar. Bars write to stderr, like the log, so stdout stays parseable.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger("facedancer")

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Process-wide: no progress bars (the command line's --quiet)."""
    global _quiet
    _quiet = bool(quiet)


def is_quiet() -> bool:
    return _quiet


def bar(iterable=None, total: int | None = None, desc: str = "", unit: str = "it", enabled: bool = True, **kwargs):
    """A tqdm bar on stderr (over `iterable`, or updated by hand), off when the caller asks or the process is quiet."""
    from tqdm import tqdm

    return tqdm(
        iterable, total=total, desc=desc, unit=unit, disable=_quiet or not enabled, dynamic_ncols=True, **kwargs
    )


def keep_alive(progress, seconds: float | None = None):
    """Redraw `progress` (a bar) from a thread every few seconds, so its elapsed time moves during one long step
    (the first training step traces the graph for a minute on a small CPU); returns the function that stops it.
    Every 2 s on a terminal, every 10 s into a log file."""
    if getattr(progress, "disable", True):
        return lambda: None
    interval = seconds or (2.0 if sys.stderr.isatty() else 10.0)
    stop = threading.Event()

    def redraw() -> None:
        while not stop.wait(interval):
            progress.refresh()

    thread = threading.Thread(target=redraw, name="progress-keep-alive", daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join()

    return halt


class Stage:
    """What a `stage` block yields: its name, and its duration once the block has ended."""

    def __init__(self, name: str):
        self.name = name
        self.seconds: float | None = None
        self.cpu_seconds: float | None = None
        self.note = ""


def cpu_time() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children (ffmpeg)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextmanager
def stage(name: str, logger: logging.Logger | None = None) -> Iterator[Stage]:
    """Log `name …` on entry and `name done in X s` (plus `note`) on a normal exit; the block may set `.note`.
    The record keeps the wall time and the CPU time (which, unlike wall time, a busy machine does not inflate)."""
    logger = logger or log
    record = Stage(name)
    logger.info("%s …", name)
    start, cpu = time.perf_counter(), cpu_time()
    yield record
    record.seconds, record.cpu_seconds = time.perf_counter() - start, cpu_time() - cpu
    logger.info("%s done in %.1f s%s", name, record.seconds, f" ({record.note})" if record.note else "")
