"""Vectorised kernels of bar aggregation: grouping, running maxima, merging, trade-id dedup.

Pure functions on numpy columns (shapes in each docstring); the aggregator composes them.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from consumer.core.bar_columns import BarColumns, Fragments, SymbolBars

_GOLDEN: Final = 0x9E3779B97F4A7C15
# Odd multiplier that spreads symbol ids over the 64-bit dedup keys.
(_MIX,) = np.array([_GOLDEN], dtype=np.uint64).view(np.int64)
_ABSENT: Final = object()


def stable_order(sid: np.ndarray) -> np.ndarray:
    """Permutation grouping equal ids, arrival order kept; narrow ids take numpy's radix sort."""
    if len(sid) and int(sid.max()) < 2**16:
        return np.argsort(sid.astype(np.uint16), kind="stable")
    return np.argsort(sid, kind="stable")


def segmented_cummax(values: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Running maximum of int64[n] ``values`` restarting where bool[n] ``first`` is set.

    Values are replaced by their rank, offset by segment so that segments never mix; one
    ``maximum.accumulate`` then serves all segments.
    """
    segment = np.cumsum(first) - 1
    distinct, rank = np.unique(values, return_inverse=True)
    offset = segment * len(distinct)
    return distinct[np.maximum.accumulate(offset + rank) - offset]


def previous_values(first: np.ndarray, stored: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Per group, the previous group's value, or ``stored`` (reused) for a symbol's first one."""
    inner = ~first[1:]
    stored[1:][inner] = values[:-1][inner]
    return stored


def group_starts(sid: np.ndarray, bar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of equal (sid, bar) in sorted int64[k] columns: (bool[k] run heads, their positions)."""
    head = np.ones(len(sid), dtype=bool)
    head[1:] = (sid[1:] != sid[:-1]) | (bar[1:] != bar[:-1])
    return head, head.nonzero()[0]


def group_runs(
    head: np.ndarray, starts: np.ndarray, sid: np.ndarray, bar: np.ndarray, fragments: Fragments
) -> tuple[BarColumns, np.ndarray, np.ndarray]:
    """One bar per run of fragments (arrival order inside a run), plus its open / close ts.

    ``head`` bool[k] marks run starts, ``starts`` int64[g] are their positions and ``sid`` /
    ``bar`` int64[g] their keys. Open comes from the first fragment with the run's minimum ts,
    close from the last one with its maximum ts. All returned arrays are new.
    """
    k = len(fragments.ts)
    ts = fragments.ts
    ends = np.empty_like(starts)
    ends[:-1] = starts[1:]
    ends[-1:] = k
    if ((ts[1:] >= ts[:-1]) | head[1:]).all():
        open_at, close_at = starts, ends - 1
        open_ts, close_ts = ts[open_at], ts[close_at]
    else:
        open_at, close_at, open_ts, close_ts = extreme_positions(ts, starts, ends - starts)
    bars = BarColumns(
        sid,
        bar,
        fragments.open[open_at],
        np.maximum.reduceat(fragments.high, starts),
        np.minimum.reduceat(fragments.low, starts),
        fragments.close[close_at],
        np.add.reduceat(fragments.volume, starts),
        ends - starts,
    )
    return bars, open_ts, close_ts


def extreme_positions(
    ts: np.ndarray, starts: np.ndarray, lengths: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per run of int64[k] ``ts``: first position of its minimum, last of its maximum, both ts."""
    k = len(ts)
    open_ts = np.minimum.reduceat(ts, starts)
    close_ts = np.maximum.reduceat(ts, starts)
    position = np.arange(k)
    at_open = ts == np.repeat(open_ts, lengths)
    at_close = ts == np.repeat(close_ts, lengths)
    open_at = np.minimum.reduceat(np.where(at_open, position, k), starts)
    close_at = np.maximum.reduceat(np.where(at_close, position, -1), starts)
    return open_at, close_at, open_ts, close_ts


def absorb_open_bars(
    groups: BarColumns, open_ts: np.ndarray, close_ts: np.ndarray, state: SymbolBars, rows: np.ndarray
) -> None:
    """Merge the stored open bars into the batch bars at ``rows`` (same symbol and start).

    Updates ``groups``, ``open_ts`` and ``close_ts`` in place; the stored bar keeps open on a
    ts tie (it arrived first) and the batch takes close on a tie (it arrived last).
    """
    sid = groups.sid[rows]
    stored_opens = state.open_ts[sid] <= open_ts[rows]
    batch_closes = close_ts[rows] >= state.close_ts[sid]
    groups.open[rows] = np.where(stored_opens, state.open[sid], groups.open[rows])
    groups.high[rows] = np.maximum(state.high[sid], groups.high[rows])
    groups.low[rows] = np.minimum(state.low[sid], groups.low[rows])
    groups.close[rows] = np.where(batch_closes, groups.close[rows], state.close[sid])
    groups.volume[rows] += state.volume[sid]
    groups.ticks[rows] += state.count[sid]
    open_ts[rows] = np.minimum(open_ts[rows], state.open_ts[sid])
    close_ts[rows] = np.maximum(close_ts[rows], state.close_ts[sid])


def dedup_keys(sid: np.ndarray, trade_ids: list[object]) -> np.ndarray:
    """int64[k] keys ``hash(trade id) XOR (symbol id * _MIX)``; wraps, never overflows."""
    hashes = np.fromiter(map(hash, trade_ids), np.int64, len(trade_ids))
    return hashes ^ (sid * _MIX)


def remember_fresh(seen: dict[int, object], keys: list[int], trade_ids: list[object]) -> bool:
    """Add all keys and return True when none is known or repeated (else leave ``seen`` as is)."""
    if not seen.keys().isdisjoint(keys):
        return False
    size = len(seen)
    seen.update(zip(keys, trade_ids, strict=True))
    if len(seen) - size == len(keys):
        return True
    for key in keys:
        seen.pop(key, None)
    return False


def remember_each(seen: dict[int, object], keys: list[int], trade_ids: list[object]) -> np.ndarray:
    """bool[k]: trade ids already in ``seen`` or earlier in the list; remembers the others.

    A key shared by different trade ids (a hash collision) maps to a tuple of them.
    """
    repeated = np.zeros(len(keys), dtype=bool)
    for j, (key, trade_id) in enumerate(zip(keys, trade_ids, strict=True)):
        known = seen.get(key, _ABSENT)
        if known is _ABSENT:
            seen[key] = trade_id
        elif isinstance(known, tuple):
            if trade_id in known:
                repeated[j] = True
            else:
                seen[key] = (*known, trade_id)
        elif known == trade_id:
            repeated[j] = True
        else:
            seen[key] = (known, trade_id)
    return repeated
