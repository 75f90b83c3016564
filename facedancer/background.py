"""Producing items in a background thread, a bounded number ahead of their consumer."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ahead(items: Iterable[T], fn: Callable[[T], R] | None = None, depth: int = 8) -> Iterator[R]:
    """Iterate `items` (mapped by `fn`) in one background thread, at most `depth` results ahead, in order.

    Constant memory for long streams; an exception in the thread is re-raised in the consumer; stopping
    early (break, error) stops the thread.
    """
    results: queue.Queue = queue.Queue(maxsize=max(1, depth))
    end = object()
    failure: list[BaseException] = []
    stop = threading.Event()

    def work():
        try:
            for item in items:
                if stop.is_set():
                    break
                results.put(fn(item) if fn is not None else item)
        except BaseException as exc:  # handed to the consumer
            failure.append(exc)
        finally:
            results.put(end)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (result := results.get()) is not end:
            yield result
        if failure:
            raise failure[0]
    finally:
        stop.set()
        while thread.is_alive():
            try:
                results.get(timeout=0.1)
            except queue.Empty:
                pass
