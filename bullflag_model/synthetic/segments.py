"""The segment table: the plan of a chunk of series that planning writes and rendering reads.

A chunk of m series is planned as one ``[m, slots]`` array per field: length in bars, drift, move,
power, amp, cycles and converge of the planned log path (sigma units), the noise, revert and
volume multipliers of its texture, and the opening gaps (jump, sigma units each, on jump_bars
bars spread over the segment from jump_phase) that carry part of its move. In a window's plan,
slots 0 and 1 are background regimes, ``PATTERN_SLOTS`` (2 to 7) the pattern's legs (a bull
flag's pole, flag, breakout, retest, reclaim and continuation) and ``POST_SLOT`` (8) the tail
after it; pattern-free series use any number of regime slots.
"""

from __future__ import annotations

import numpy as np

N_SLOTS = 9
POLE_SLOT, FLAG_SLOT = 2, 3
PATTERN_SLOTS = slice(2, 8)
POST_SLOT = 8

_SEGMENT_DEFAULTS: dict[str, float] = {
    "length": 0.0,
    "drift": 0.0,
    "move": 0.0,
    "power": 1.0,
    "amp": 0.0,
    "cycles": 0.0,
    "converge": 0.0,
    "noise": 1.0,
    "revert": 1.0,
    "vol_start": 0.0,
    "vol_end": 0.0,
    "jump": 0.0,
    "jump_bars": 0.0,
    "jump_phase": 0.0,
}


def blank_segments(m: int, slots: int = N_SLOTS) -> dict[str, np.ndarray]:
    """Segment table [m, slots] per field, filled with neutral defaults."""
    return {k: np.full((m, slots), v) for k, v in _SEGMENT_DEFAULTS.items()}
