"""Training data as model inputs: generator chunks turned into features, here or in worker processes.

Each generator chunk carries its own seed, so a split is the same whether it is generated in the
training process or by data workers, in any order. Workers import this module alone (numpy, no
torch), so they start fast and touch no GPU state.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from bullflag_model.features import N_FEATURES, SEQ_LEN, features_in_chunks
from bullflag_model.synthetic import HEADS, GeneratorParams, WindowChunk, generate_chunk, window_chunks


@dataclass
class Split:
    """Feature windows ``[N, F, L]`` float32 with their labels ``[N, 4]`` float32."""

    features: np.ndarray
    labels: np.ndarray


def chunk_split(chunk: WindowChunk, params: GeneratorParams) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[m, F, L]`` and labels ``[m, 4]`` of one generator chunk (runs in data workers)."""
    bars, labels, _ = generate_chunk(chunk, params)
    return features_in_chunks(bars), labels


class PendingSplit:
    """A split being generated: chunk by chunk in this process, or submitted to data workers.

    ``result`` assembles the windows in chunk order, so the split is the same either way.
    """

    def __init__(self, n: int, seed: int, params: GeneratorParams, pool: Executor | None) -> None:
        self._chunks = window_chunks(n, seed, params)
        self._params = params
        self._futures: deque[Future[tuple[np.ndarray, np.ndarray]]] | None = None
        if pool is not None:
            self._futures = deque(pool.submit(chunk_split, chunk, params) for chunk in self._chunks)

    def result(self) -> Split:
        """Wait for (or generate) every chunk and return the whole split; call once.

        Each worker result is dropped as soon as it is copied, so a split is held about once.
        """
        n = self._chunks[-1].hi if self._chunks else 0
        split = Split(
            features=np.empty((n, N_FEATURES, SEQ_LEN), dtype=np.float32),
            labels=np.empty((n, len(HEADS)), dtype=np.float32),
        )
        for chunk in self._chunks:
            if self._futures is not None:
                features, labels = self._futures.popleft().result()
            else:
                features, labels = chunk_split(chunk, self._params)
            split.features[chunk.lo : chunk.hi], split.labels[chunk.lo : chunk.hi] = features, labels
        return split


def make_split(n: int, seed: int, params: GeneratorParams, pool: Executor | None = None) -> Split:
    """Generate ``n`` labelled windows from ``seed`` and turn them into features once."""
    return PendingSplit(n, seed, params, pool).result()


def data_pool(workers: int) -> ProcessPoolExecutor | None:
    """Processes that generate training data while the model trains (None for ``workers == 0``).

    Started with ``spawn``: forking a process that already holds torch (and maybe CUDA) state is unsafe.
    """
    if workers == 0:
        return None
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
