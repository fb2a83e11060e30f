"""A partition's event-time clock, which no single record can move: pure numpy, no I/O.

The rule, judged record by record in arrival order:

- The clock's **window** holds the event times of the last ``size`` records it accepted.
- The **clock** starts once the window is full and is then the running maximum of the window's
  lower median, so it follows the bulk of recent records and never goes back. Fewer than half
  the window's records, however far off, cannot move it.
- A record is judged against the clock as it stood before the record: more than ``max_jump_ms``
  ahead of it is ``future_ts``, more than ``max_jump_ms`` behind it is ``past_ts``. A record more
  than the allowed skew ahead of the wall clock is ``future_ts`` at any time. Judged records do
  not enter the window.
- Before the clock starts (a new partition's first ``size`` records) no record is judged against
  it and no bar closes by the watermark: a lone first record far from the rest (``ts = 0``) is
  outvoted by the next ones instead of becoming the partition's time.

The bar aggregator's watermark is this clock minus the allowed lateness. :class:`ClockState` is
the clock between two records; checkpoints store it, so a restart replays from a commit point
with the very clock the uninterrupted run had there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from consumer.core.bar_columns import NO_BAR

NO_CLOCK: Final = NO_BAR
"""The clock before it starts, in int64 arrays (the aggregator's 'no event time yet')."""

DEFAULT_WINDOW: Final = 9
"""Accepted records the clock's median is taken over: five records in a row are needed to move it."""

_PASSES: Final = 8
"""Vectorised passes before the exact record-by-record loop takes over (long runs of bad records)."""


class ClockStateError(ValueError):
    """A stored clock state that does not describe a clock (wrong types or too long a window)."""


@dataclass(frozen=True, slots=True)
class ClockState:
    """The clock between two records: ``clock`` (None before it starts) and the accepted event
    times of the window, oldest first (at most the window size)."""

    clock: int | None = None
    window: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The state as a JSON-ready object (for checkpoints)."""
        return {"clock": self.clock, "window": list(self.window)}

    @staticmethod
    def from_json(raw: object, size: int | None = None) -> ClockState:
        """Parse :meth:`to_json`'s object; ``ClockStateError`` names what is wrong."""
        if not isinstance(raw, dict):
            raise ClockStateError(f"expected an object with 'clock' and 'window', got {raw!r:.80}")
        clock, window = raw.get("clock"), raw.get("window")
        if clock is not None and not _is_int(clock):
            raise ClockStateError(f"clock must be an integer or null, got {clock!r:.80}")
        if not isinstance(window, list) or not all(map(_is_int, window)):
            raise ClockStateError(f"window must be a list of integers, got {window!r:.80}")
        if size is not None and len(window) > size:
            raise ClockStateError(f"window holds {len(window)} event times, more than the clock's {size}")
        return ClockState(clock, tuple(window))


def _is_int(value: object) -> bool:
    """Whether ``value`` is a JSON integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ClockVerdict:
    """The clock's judgement of one run of records (length n, arrival order).

    ``future`` / ``past`` bool[n]: records refused; ``after`` int64[n]: the clock after each
    record (``NO_CLOCK`` before it starts); ``before`` int64[n]: the clock each record was judged
    against; ``end``: the state after the last record.
    """

    future: np.ndarray
    past: np.ndarray
    after: np.ndarray
    before: np.ndarray
    end: ClockState
    size: int
    _history: np.ndarray = field(repr=False)
    _accepted_before: np.ndarray = field(repr=False)
    _fill0: int = field(repr=False)

    def states_before(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The clock state just before each of ``rows``, as arrays for bulk keeping:
        (clock int64[m], window int64[m, size] oldest first padded at the front, fill int64[m])."""
        count = self._accepted_before[rows]
        windows = sliding_window_view(self._history, self.size)[count]
        return self.before[rows], windows, np.minimum(self.size, self._fill0 + count)


def state_of(clock: int, window: np.ndarray, fill: int) -> ClockState:
    """A :class:`ClockState` from one row of :meth:`ClockVerdict.states_before`'s arrays."""
    kept = window[len(window) - fill :] if fill else window[:0]
    return ClockState(None if clock == NO_CLOCK else int(clock), tuple(kept.tolist()))


class EventClock:
    """Judges records against a partition's clock; holds only the rule's two parameters."""

    def __init__(self, size: int = DEFAULT_WINDOW, max_jump_ms: int = 7 * 86_400_000) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"clock window must be an integer >= 1, got {size!r}")
        if max_jump_ms < 0:
            raise ValueError(f"max_jump_ms must be >= 0, got {max_jump_ms}")
        self.size = size
        self.max_jump_ms = max_jump_ms

    def judge(self, state: ClockState, ts: np.ndarray, latest_allowed_ms: int) -> ClockVerdict:
        """Judge event times ``ts`` int64[n] (arrival order) starting from ``state``.

        ``latest_allowed_ms``: the wall clock plus the allowed skew. The result is the same
        however a run of records is split into calls.
        """
        ts = np.asarray(ts, dtype=np.int64)
        if len(state.window) > self.size:
            raise ClockStateError(
                f"window of {len(state.window)} event times, more than the clock's {self.size}"
            )
        wall = ts > latest_allowed_ms
        refused = wall
        for _ in range(_PASSES):
            verdict = self._verdict(state, ts, wall, refused)
            judged = verdict.future | verdict.past
            if (judged == refused).all():
                return verdict
            refused = judged
        return self._verdict(state, ts, wall, self._sequential(state, ts, wall))

    def _verdict(
        self, state: ClockState, ts: np.ndarray, wall: np.ndarray, refused: np.ndarray
    ) -> ClockVerdict:
        """Clocks for a guess of the refused records, and the judgement they imply.

        The guess is right when the judgement equals it: each record's verdict depends only on
        the verdicts before it, so that fixed point is the record-by-record result.
        """
        size = self.size
        fill0 = len(state.window)
        c0 = NO_CLOCK if state.clock is None else state.clock
        taken = ~refused
        history = np.full(size + int(np.count_nonzero(taken)), NO_CLOCK, dtype=np.int64)
        history[size - fill0 : size] = state.window
        history[size:] = ts[taken]
        accepted = len(history) - size
        counted = np.cumsum(taken)
        after = np.full(len(ts), c0, dtype=np.int64)
        if accepted:
            middle = (size - 1) // 2
            median = np.partition(sliding_window_view(history, size)[1:], middle, axis=1)[:, middle]
            full = fill0 + 1 + np.arange(accepted) >= size
            clocks = np.maximum.accumulate(np.maximum(np.where(full, median, NO_CLOCK), c0))
            after = np.where(counted > 0, clocks[np.maximum(counted - 1, 0)], c0)
        before = np.empty(len(ts), dtype=np.int64)
        before[:1] = c0
        before[1:] = after[:-1]
        started = before != NO_CLOCK
        future = wall | (started & (ts > before + self.max_jump_ms))
        past = started & ~future & (ts < before - self.max_jump_ms)
        fill = min(size, fill0 + accepted)
        clock = int(after[-1]) if len(ts) else c0
        end = ClockState(None if clock == NO_CLOCK else clock, tuple(history[len(history) - fill :].tolist()))
        return ClockVerdict(future, past, after, before, end, size, history, counted - taken, fill0)

    def _sequential(self, state: ClockState, ts: np.ndarray, wall: np.ndarray) -> np.ndarray:
        """bool[n] refused records by the rule applied one record at a time (the exact fallback)."""
        window = deque(state.window, maxlen=self.size)
        clock = state.clock
        refused = wall.copy()
        middle = (self.size - 1) // 2
        for i, t in enumerate(ts.tolist()):
            if refused[i] or (clock is not None and abs(t - clock) > self.max_jump_ms):
                refused[i] = True
                continue
            window.append(t)
            if len(window) == self.size:
                median = sorted(window)[middle]
                clock = median if clock is None else max(clock, median)
        return refused
