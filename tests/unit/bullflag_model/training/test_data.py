"""Training data: worker processes produce exactly the windows the training process would."""

from __future__ import annotations

import numpy as np

from bullflag_model.features import features_in_chunks
from bullflag_model.synthetic import DEFAULT_PARAMS, generate_windows, window_chunks
from bullflag_model.training.data import data_pool, make_split

N = 8_400  # two generator chunks


def test_chunks_tile_the_draw_in_order() -> None:
    chunks = window_chunks(N, seed=3)
    assert len(chunks) == 2
    assert [(c.lo, c.hi) for c in chunks] == [(0, chunks[0].hi), (chunks[0].hi, N)]
    assert all(c.kind.shape == (c.hi - c.lo,) for c in chunks)


def test_data_workers_give_the_same_split_as_the_training_process() -> None:
    here = make_split(N, 3, DEFAULT_PARAMS)
    pool = data_pool(2)
    assert pool is not None
    with pool:
        pooled = make_split(N, 3, DEFAULT_PARAMS, pool)
    np.testing.assert_array_equal(pooled.features, here.features)
    np.testing.assert_array_equal(pooled.labels, here.labels)
    batch = generate_windows(N, 3)
    np.testing.assert_array_equal(here.features, features_in_chunks(batch.bars))
    np.testing.assert_array_equal(here.labels, batch.labels)
