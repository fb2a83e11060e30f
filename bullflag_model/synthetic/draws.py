"""Per-window random draws within bounds: ``[m]`` values, one per window of a chunk.

Planning and rendering draw every size and texture from a range in ``GeneratorParams`` through
these helpers, always from the generator passed in, so the windows depend only on its seed.
"""

from __future__ import annotations

import math

import numpy as np


def uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    """[m] floats uniform in bounds."""
    return rng.uniform(bounds[0], bounds[1], m)


def integers(rng: np.random.Generator, bounds: tuple[int, int], m: int, scale: float = 1.0) -> np.ndarray:
    """[m] integers uniform in the inclusive bounds, times scale, at least 1."""
    return np.maximum(np.floor(rng.uniform(bounds[0], bounds[1] + 1, m) * scale), 1.0)


def log_uniform(rng: np.random.Generator, bounds: tuple[float, float], m: int) -> np.ndarray:
    """[m] floats log-uniform in bounds."""
    return np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]), m))


def offsets_in(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """[m] integers uniform in [lo, hi] per row (hi below lo collapses to lo)."""
    hi = np.maximum(hi, lo)
    return lo + np.floor(rng.random(lo.shape) * (hi - lo + 1))
