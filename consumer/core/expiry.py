"""When a symbol leaves (``--symbol-ttl``): pure decisions on numpy columns, no I/O.

A symbol's activity time is the end of its latest bar (its newest accepted record's time,
rounded up to the bar: what the state topic keeps, so a restart decides alike). It is
**expired** once its partition's event-time clock is more than the TTL past that:

- after a batch, an idle symbol (:func:`idle`) is expired and its state freed;
- a record of a symbol that had expired before it (the clock after that record is more than
  the TTL past the symbol's activity before it, :func:`returning`) starts the symbol afresh,
  whatever the batch boundaries, so outputs never depend on how records were batched.

The TTL is at least one bar interval plus the allowed lateness, so the watermark has closed an
expired symbol's last bar: expiry never drops an open bar, and never holds the commit back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from consumer.core.bar_columns import NO_BAR
from consumer.core.bar_kernels import segmented_cummax


class SymbolTtlError(ValueError):
    """A symbol TTL too short to be applied exactly (shorter than a bar plus the lateness)."""


def check_ttl(ttl_ms: int, interval_ms: int, allowed_lateness_ms: int) -> int:
    """``ttl_ms``, refused unless 0 (off) or at least ``interval + allowed lateness``."""
    if ttl_ms and ttl_ms < interval_ms + allowed_lateness_ms:
        raise SymbolTtlError(
            f"symbol TTL {ttl_ms} ms must be 0 (off) or at least the bar interval plus the allowed "
            f"lateness ({interval_ms + allowed_lateness_ms} ms), so that an expired symbol has no open bar"
        )
    return ttl_ms


def idle(
    latest_start: np.ndarray, is_open: np.ndarray, clock: int, interval_ms: int, ttl_ms: int
) -> np.ndarray:
    """bool[n]: symbols to expire at ``clock``: no open bar, latest bar (``latest_start``
    int64[n], ``NO_BAR`` for none) ending more than ``ttl_ms`` before the clock."""
    has_bar = latest_start != NO_BAR
    return has_bar & ~is_open & (clock - (latest_start + interval_ms) > ttl_ms)


def returning(
    code: np.ndarray,
    stored_end: np.ndarray,
    bar_end: np.ndarray,
    after: np.ndarray,
    allowed_lateness_ms: int,
    ttl_ms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(returns bool[n], active_before bool[n]) for n records in arrival order.

    ``code`` int64[n] names each record's symbol, ``stored_end`` int64[n] its activity time
    before the batch (``NO_BAR``: none), ``bar_end`` int64[n] the end of the record's bar,
    ``after`` int64[n] the partition's clock after it. A record counts as activity when the
    watermark (clock - lateness) has not passed its bar's end (a later one is ``late``). It
    ``returns`` when the clock is more than ``ttl_ms`` past its symbol's activity before it;
    ``active_before`` says whether that activity came from an earlier record of the batch.
    """
    n = len(code)
    order = np.argsort(code, kind="stable")
    first = np.ones(n, dtype=bool)
    first[1:] = code[order][1:] != code[order][:-1]
    active = np.where(bar_end > after - allowed_lateness_ms, bar_end, NO_BAR)[order]
    upto = segmented_cummax(active, first)
    batch_before = np.full(n, NO_BAR, dtype=np.int64)
    batch_before[1:] = upto[:-1]
    batch_before[first] = NO_BAR
    before = np.empty(n, dtype=np.int64)
    before[order] = batch_before
    previous = np.maximum(before, stored_end)
    returns = (previous != NO_BAR) & (after != NO_BAR) & (after - previous > ttl_ms)
    return returns, before != NO_BAR


def held_slots(
    bar_start: np.ndarray, counts: np.ndarray, interval_ms: int, slots: int, by_sequence: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(symbol row int64[m], state slot int64[m]) of every bar k symbols' buffers hold.

    ``bar_start`` int64[k, C] the windows (``EMPTY_START``-style minimum where no bar),
    ``counts`` int64[k] bars ever appended: slots by bar time, or by sequence number.
    """
    held = bar_start != np.iinfo(np.int64).min
    row, column = np.nonzero(held)
    if by_sequence:
        width = bar_start.shape[1]
        slot = (counts[row] - width + column) % slots
    else:
        slot = (bar_start[row, column] // interval_ms) % slots
    return row, slot


@dataclass(frozen=True)
class Expired:
    """Symbols a batch expired (in order) and the state records to delete, one tombstone each:
    ``key_symbols`` / ``key_slots`` int64[m], written before the batch's bars."""

    symbols: list[str] = field(default_factory=list)
    key_symbols: list[str] = field(default_factory=list)
    key_slots: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __add__(self, other: Expired) -> Expired:
        return Expired(
            [*self.symbols, *other.symbols],
            [*self.key_symbols, *other.key_symbols],
            np.concatenate([self.key_slots, other.key_slots]),
        )
