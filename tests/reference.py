"""A deliberately simple model of which windows a worker scores and where it commits.

The oracle of tests on random streams: plain dicts and loops over one partition's accepted
ticks, sharing no code with consumer/core, so a fault there cannot hide in the expectation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

SEQ_LEN = 200
CLOCK_WINDOW = 9


@dataclasses.dataclass(frozen=True)
class Reference:
    """What an uninterrupted worker does with one partition's stream."""

    scored: set[tuple[str, int]]
    """(symbol, bar_end_ts) of every window it scores."""
    commit: int
    """The offset it commits after the last record."""
    late: set[int] = dataclasses.field(default_factory=set)
    """Offsets of ticks dead-lettered as ``late`` (their bar had closed)."""


def reference_run(
    ticks: Iterable[tuple[int, str, int]],
    end_offset: int,
    interval_ms: int,
    seq_len: int = SEQ_LEN,
    clock_window: int = CLOCK_WINDOW,
    gaps: str = "flat",
    idle_closes: Sequence[tuple[int, int]] = (),
) -> Reference:
    """The windows scored and the commit point for ``(offset, symbol, ts_ms)`` accepted ticks.

    Rules, with lateness 0 and gaps shorter than a window: with ``gaps="flat"`` bars are
    consecutive per symbol from its first tick (a gap is filled with flat bars), with
    ``gaps="skip"`` a symbol's bars are only those that traded; a bar is closed when a later bar of its
    symbol has a tick or the partition's clock reaches its end (the clock: none until
    ``clock_window`` ticks arrived, then the largest median so far of the last ``clock_window``
    ticks' times, the lower one of the middle two for an even count); a symbol's window
    is scored at every closed bar from its ``seq_len``-th on; the commit point is the first tick
    of the oldest bar still open, or ``end_offset`` when none is open.

    ``idle_closes``: ``(offset, event_time_ms)`` idle closes, each raising the event time that
    closes bars to ``event_time_ms`` before the tick at ``offset`` (or after the last one); a
    tick whose bar ends at or before the clock after it or that event time, or is older than its
    symbol's newest bar, is ``late``: it moves the clock but joins no bar.
    """
    traded: dict[str, set[int]] = {}
    newest: dict[str, int] = {}
    first_tick: dict[tuple[str, int], int] = {}
    recent: list[int] = []
    clock = None
    raised = None
    pending = sorted(idle_closes)
    late: set[int] = set()
    for offset, symbol, ts_ms in ticks:
        while pending and pending[0][0] <= offset:
            raised = max(raised or pending[0][1], pending.pop(0)[1])
        recent = [*recent, ts_ms][-clock_window:]
        if len(recent) == clock_window:
            median = sorted(recent)[(clock_window - 1) // 2]
            clock = median if clock is None else max(clock, median)
        bar = ts_ms // interval_ms
        reach = max(t for t in (clock, raised, -(2**63)) if t is not None)
        if (bar + 1) * interval_ms <= reach or bar < newest.get(symbol, bar):
            late.add(offset)
            continue
        traded.setdefault(symbol, set()).add(bar)
        newest[symbol] = bar
        first_tick.setdefault((symbol, bar), offset)
    for _, event_time_ms in pending:
        raised = max(raised or event_time_ms, event_time_ms)
    if raised is not None:
        clock = max(clock or raised, raised)
    scored: set[tuple[str, int]] = set()
    open_first_ticks = []
    for symbol, last in newest.items():
        closed_up_to = last if clock is not None and clock >= (last + 1) * interval_ms else last - 1
        bars = sorted(traded[symbol]) if gaps == "skip" else range(min(traded[symbol]), last + 1)
        for bar in [b for b in bars if b <= closed_up_to][seq_len - 1 :]:
            scored.add((symbol, (bar + 1) * interval_ms))
        if closed_up_to < last:
            open_first_ticks.append(first_tick[symbol, last])
    return Reference(scored, min(open_first_ticks, default=end_offset), late)
