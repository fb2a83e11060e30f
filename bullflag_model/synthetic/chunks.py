"""Labelled windows drawn chunk by chunk: plan, render, then label a bounded number of bars at once.

Each window is the last ``seq_len`` bars of its own series (``_HISTORY_BARS`` of pre-history plus
the window), so no two windows share a bar. A draw of ``n`` windows from a seed is split into
chunks (``WindowChunk``) of about ``CHUNK_BARS`` bars, each with its own seed: memory stays bounded,
and chunks can be generated in any order or process with the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bullflag_model.features import SEQ_LEN
from bullflag_model.synthetic.draws import log_uniform
from bullflag_model.synthetic.labelling import clipped_span, label_windows
from bullflag_model.synthetic.params import DEFAULT_PARAMS, HEADS, KINDS, PHASES, GeneratorParams
from bullflag_model.synthetic.planning import draw_kinds, plan_chunk
from bullflag_model.synthetic.rendering import fill_missing, gap_mask, per_bar, render
from bullflag_model.synthetic.segments import FLAG_SLOT, POLE_SLOT

_HISTORY_BARS = 40
CHUNK_BARS = 2_000_000


@dataclass
class SyntheticBatch:
    """Generated windows with their labels.

    bars   [N, L, 5] float64: open, high, low, close, volume.
    labels [N, 4] float32: flag, breakout, retest, continuation (0/1), see ``HEADS``.
    kind   [N] int16: index into ``KINDS``.
    spans  [N, 5, 2] int32: [start, end) bar index of each of ``PHASES`` inside the window, clipped
           to it, -1 where absent or not reached. Pole and flag mark the planted segments of every
           kind that plants one (a bear flag's are mirrored); breakout, retest and continuation are
           measured by the labelling rules and given for labelled kinds only; a phase still under
           way ends at L. Every phase labelled 1 has a valid span.
    seed:  the seed the batch was generated from.
    """

    bars: np.ndarray
    labels: np.ndarray
    kind: np.ndarray
    spans: np.ndarray
    seed: int


def _generate_chunk(
    rng: np.random.Generator, kind: np.ndarray, p: GeneratorParams, seq_len: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bars [m, seq_len, 5], labels [m, 4] and spans [m, 5, 2] of one chunk of windows."""
    m = kind.shape[0]
    total = seq_len + _HISTORY_BARS
    plan = plan_chunk(rng, kind, p, total)
    sigma = log_uniform(rng, p.sigma_range, m)
    series = render(rng, per_bar(plan.seg, total), sigma, p)
    series = fill_missing(series, gap_mask(rng, m, total, seq_len, p))
    bars = series[:, _HISTORY_BARS:]

    begin = np.cumsum(plan.seg["length"], axis=1) - plan.seg["length"] - _HISTORY_BARS
    stop = begin + plan.seg["length"]
    pole = np.stack([begin[:, POLE_SLOT], stop[:, POLE_SLOT]], axis=1).astype(np.int64)
    flag = np.stack([begin[:, FLAG_SLOT], stop[:, FLAG_SLOT]], axis=1).astype(np.int64)
    labels = np.zeros((m, len(HEADS)), dtype=np.float32)
    spans = np.full((m, len(PHASES), 2), -1, dtype=np.int32)
    spans[:, 0] = clipped_span(pole[:, 0], pole[:, 1], plan.has_pole, seq_len)
    spans[:, 1] = clipped_span(flag[:, 0], flag[:, 1], plan.has_flag, seq_len)

    bull, failed = KINDS.index("bull_flag"), KINDS.index("failed_breakout")
    rows = np.flatnonzero((kind == bull) | (kind == failed))
    if rows.size:
        heads, phase_spans = label_windows(bars[rows], pole[rows], flag[rows], p)
        capped = kind[rows] == failed
        heads[capped, 2:] = 0.0
        phase_spans[capped, 3:] = -1
        labels[rows], spans[rows] = heads, phase_spans
    return bars, labels, spans


@dataclass(frozen=True)
class WindowChunk:
    """Rows ``[lo, hi)`` of a ``generate_windows`` draw: their kinds and the chunk's own seed.

    Chunks are independent, so they can be generated in any order or process with the same result.
    """

    lo: int
    hi: int
    kind: np.ndarray
    seed: np.random.SeedSequence


def window_chunks(
    n: int, seed: int, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> list[WindowChunk]:
    """Split a draw of ``n`` windows from ``seed`` into chunks of about ``CHUNK_BARS`` bars."""
    if n < 0 or seq_len < 2 * params.min_flag_bars:
        raise ValueError("n must be >= 0 and seq_len at least twice min_flag_bars")
    chunk = max(CHUNK_BARS // (seq_len + _HISTORY_BARS), 1)
    starts = range(0, n, chunk)
    kind_seed, *chunk_seeds = np.random.SeedSequence(seed).spawn(1 + len(starts))
    kind = draw_kinds(np.random.default_rng(kind_seed), n, params)
    return [
        WindowChunk(lo, min(lo + chunk, n), kind[lo : lo + chunk], child)
        for lo, child in zip(starts, chunk_seeds, strict=True)
    ]


def generate_chunk(
    chunk: WindowChunk, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bars ``[m, seq_len, 5]``, labels ``[m, 4]`` and spans ``[m, 5, 2]`` of one chunk."""
    return _generate_chunk(np.random.default_rng(chunk.seed), chunk.kind, params, seq_len)


def generate_windows(
    n: int, seed: int, params: GeneratorParams = DEFAULT_PARAMS, seq_len: int = SEQ_LEN
) -> SyntheticBatch:
    """Draw n labelled windows [n, seq_len, 5], each from its own series, deterministic from seed.

    Work is done chunk by chunk (``window_chunks``), so memory stays bounded and the result
    depends only on (n, seed, params, seq_len).
    """
    chunks = window_chunks(n, seed, params, seq_len)
    bars = np.empty((n, seq_len, 5))
    labels = np.empty((n, len(HEADS)), dtype=np.float32)
    spans = np.empty((n, len(PHASES), 2), dtype=np.int32)
    for chunk in chunks:
        bars[chunk.lo : chunk.hi], labels[chunk.lo : chunk.hi], spans[chunk.lo : chunk.hi] = generate_chunk(
            chunk, params, seq_len
        )
    kind = np.concatenate([c.kind for c in chunks]) if chunks else np.zeros(0, dtype=np.int16)
    return SyntheticBatch(bars=bars, labels=labels, kind=kind, spans=spans, seed=seed)
