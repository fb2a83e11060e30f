"""A deliberately simple model of which windows a worker scores and where it commits.

The oracle of tests on random streams: plain dicts and loops over one partition's accepted
ticks, sharing no code with consumer/core, so a fault there cannot hide in the expectation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

SEQ_LEN = 200


@dataclasses.dataclass(frozen=True)
class Reference:
    """What an uninterrupted worker does with one partition's stream."""

    scored: set[tuple[str, int]]
    """(symbol, bar_end_ts) of every window it scores."""
    commit: int
    """The offset it commits after the last record."""


def reference_run(
    ticks: Iterable[tuple[int, str, int]], end_offset: int, interval_ms: int, seq_len: int = SEQ_LEN
) -> Reference:
    """The windows scored and the commit point for ``(offset, symbol, ts_ms)`` accepted ticks.

    Rules, with lateness 0 and gaps shorter than a window: bars are consecutive per symbol from
    its first tick (a gap is filled with flat bars); a bar is closed when a later bar of its
    symbol has a tick or the partition's highest event time reaches its end; a symbol's window
    is scored at every closed bar from its ``seq_len``-th on; the commit point is the first tick
    of the oldest bar still open, or ``end_offset`` when none is open.
    """
    first: dict[str, int] = {}
    newest: dict[str, int] = {}
    first_tick: dict[tuple[str, int], int] = {}
    highest = None
    for offset, symbol, ts_ms in ticks:
        bar = ts_ms // interval_ms
        first.setdefault(symbol, bar)
        newest[symbol] = max(newest.get(symbol, bar), bar)
        first_tick.setdefault((symbol, bar), offset)
        highest = ts_ms if highest is None else max(highest, ts_ms)
    scored: set[tuple[str, int]] = set()
    open_first_ticks = []
    for symbol, last in newest.items():
        assert highest is not None
        closed_up_to = last if highest >= (last + 1) * interval_ms else last - 1
        for bar in range(first[symbol] + seq_len - 1, closed_up_to + 1):
            scored.add((symbol, (bar + 1) * interval_ms))
        if closed_up_to < last:
            open_first_ticks.append(first_tick[symbol, last])
    return Reference(scored, min(open_first_ticks, default=end_offset))
