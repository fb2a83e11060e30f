"""Garbage-collector settings for a process that works in large batches.

A batch of 20,000 records allocates tens of thousands of short-lived containers (aiokafka's
``ConsumerRecord`` per record, one dict per parsed tick). With Python's default generation-0
threshold of 700 the cyclic collector runs dozens of times per batch, and its older-generation
passes walk the whole long-lived heap (the model, imports, symbol tables). Measured end to end
that was about half of the worker's CPU (``python -m benchmarks.bench_worker``). Those objects
form no reference cycles, so reference counting frees them anyway; collecting less often only
delays the rare cycle.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_users = 0
_previous: tuple[int, int, int] = gc.get_threshold()


@contextlib.contextmanager
def batch_friendly_gc(threshold: int) -> Iterator[None]:
    """While inside: generation 0 collected every ``threshold`` allocations, and the objects that
    exist on entry (model, imports) frozen out of collections. Restored when the last user
    leaves; ``threshold`` 0 leaves the collector alone."""
    global _users, _previous
    if threshold <= 0:
        yield
        return
    with _lock:
        if _users == 0:
            _previous = gc.get_threshold()
            gc.collect()
            gc.freeze()
        _users += 1
        gc.set_threshold(max(threshold, gc.get_threshold()[0]), _previous[1], _previous[2])
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                gc.set_threshold(*_previous)
                gc.unfreeze()
