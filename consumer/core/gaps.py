"""Gap policy: which empty intervals between two traded bars of a symbol become flat bars.

``flat`` fills every empty interval (a market that never closes), ``skip`` fills none (a
window is the last bars that traded; a closed market shows as a price gap between two bars,
as charts draw it), ``session`` fills only the intervals that overlap a trading session of an
exchange calendar. A policy is a :class:`GapRule`: the bar indices (``bar_start // interval``)
that may be filled, as sorted disjoint half-open ranges; :func:`fill_starts` applies it to a
batch of gaps at once. Pure numpy; the calendar itself is loaded by :mod:`consumer.sessions`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

from consumer.core.bar_columns import NO_BAR

GapPolicy = Literal["flat", "skip", "session"]
GAP_POLICIES: Final = ("flat", "skip", "session")

_EVER: Final = 2**61
"""Bound of the one range ``flat`` allows: beyond any bar index, its length fits in int64."""


@dataclass(frozen=True)
class GapRule:
    """The bar indices a gap may be filled at: ``lo`` / ``hi`` int64[k], sorted, disjoint,
    ``lo[i] <= b < hi[i]``. ``policy`` names it; ``sessions`` counts the calendar's sessions."""

    policy: GapPolicy
    lo: np.ndarray
    hi: np.ndarray
    sessions: int = 0

    @staticmethod
    def flat() -> GapRule:
        """Every empty interval is filled."""
        return GapRule("flat", np.array([-_EVER], np.int64), np.array([_EVER], np.int64))

    @staticmethod
    def skip() -> GapRule:
        """No empty interval is filled."""
        return GapRule("skip", np.zeros(0, np.int64), np.zeros(0, np.int64))

    @staticmethod
    def session(opens_ms: np.ndarray, closes_ms: np.ndarray, interval_ms: int) -> GapRule:
        """Intervals ``[b * interval, (b + 1) * interval)`` that overlap a session ``[open, close)``.

        ``opens_ms`` / ``closes_ms`` int64[k] epoch ms, sorted by open, each open < its close.
        """
        opens = np.asarray(opens_ms, np.int64)
        closes = np.asarray(closes_ms, np.int64)
        if opens.shape != closes.shape or (closes <= opens).any() or (np.diff(opens) < 0).any():
            raise ValueError("sessions must be sorted by open, each open before its close")
        lo = opens // interval_ms
        hi = -(-closes // interval_ms)
        if not len(lo):
            return GapRule("session", lo, hi, 0)
        reach = np.maximum.accumulate(hi)
        head = np.ones(len(lo), dtype=bool)
        head[1:] = lo[1:] > reach[:-1]
        first = np.flatnonzero(head)
        ends = np.r_[first[1:], len(lo)] - 1
        return GapRule("session", lo[first], reach[ends], len(opens))

    def allowed(self, bar_index: np.ndarray) -> np.ndarray:
        """bool[n]: whether each bar index may hold a flat bar."""
        k = np.searchsorted(self.lo, bar_index, side="right") - 1
        return (k >= 0) & (bar_index < self.hi[np.maximum(k, 0)]) if len(self.lo) else k >= 0


def fill_starts(
    previous_start: np.ndarray,
    next_start: np.ndarray,
    interval_ms: int,
    max_gap_bars: int,
    rule: GapRule,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat bars for g gaps: (owner int64[t], bar_start int64[t]), owner-major, oldest first.

    Gap i lies strictly between the bars ``previous_start[i]`` and ``next_start[i]`` (int64[g],
    multiples of ``interval_ms``; a ``previous_start`` of ``NO_BAR``, a symbol's first bar,
    has no gap). Of the empty intervals the rule allows there, the
    most recent ``max_gap_bars`` are filled, since older ones cannot reach a window.
    """
    prev = np.asarray(previous_start, np.int64) // interval_ms
    nxt = np.asarray(next_start, np.int64) // interval_ms
    none = np.zeros(0, np.int64)
    if not len(rule.lo) or not len(prev):
        return none, none
    length = rule.hi - rule.lo
    before = np.r_[0, np.cumsum(length)]
    known = np.asarray(previous_start) != NO_BAR
    rank_hi = _allowed_below(nxt, rule, before)
    rank_lo = _allowed_below(prev + 1, rule, before)
    counts = np.where(known & (nxt > prev + 1), np.minimum(rank_hi - rank_lo, max_gap_bars), 0)
    total = int(counts.sum())
    if total == 0:
        return none, none
    owner = np.repeat(np.arange(len(counts)), counts)
    offset = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    rank = rank_hi[owner] - counts[owner] + offset
    k = np.searchsorted(before, rank, side="right") - 1
    return owner, (rule.lo[k] + rank - before[k]) * interval_ms


def _allowed_below(bar_index: np.ndarray, rule: GapRule, before: np.ndarray) -> np.ndarray:
    """int64[n]: how many allowed bar indices lie below each ``bar_index`` (its rank)."""
    k = np.searchsorted(rule.lo, bar_index, side="left")
    last = np.maximum(k - 1, 0)
    inside = np.clip(bar_index - rule.lo[last], 0, rule.hi[last] - rule.lo[last])
    return np.where(k > 0, before[last] + inside, 0)
