"""Trade-id memory of the aggregator's kernels (consumer.core.bar_kernels), hash collisions included."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.core.bar_kernels import remember_each, remember_fresh


def test_remember_each_flags_repeats_and_keeps_colliding_ids_apart() -> None:
    seen: dict[int, object] = {}
    repeated = remember_each(seen, [1, 1, 1, 1, 2], ["a", "b", "a", "c", "a"])
    assert repeated.dtype == bool
    assert repeated.tolist() == [False, False, True, False, False]
    assert seen == {1: ("a", "b", "c"), 2: "a"}
    assert remember_each(seen, [1, 1, 2, 3], ["b", "d", "a", "a"]).tolist() == [True, False, True, False]
    assert seen == {1: ("a", "b", "c", "d"), 2: "a", 3: "a"}


def test_remember_fresh_adds_all_or_nothing() -> None:
    seen: dict[int, object] = {7: "x", 8: "y"}
    assert remember_fresh(seen, [1, 2, 3], ["a", "b", "c"])
    assert seen == {7: "x", 8: "y", 1: "a", 2: "b", 3: "c"}
    assert not remember_fresh(seen, [4, 4], ["d", "e"]), "a key twice in the batch"
    assert not remember_fresh(seen, [5, 7], ["f", "g"]), "a key already known"
    assert seen == {7: "x", 8: "y", 1: "a", 2: "b", 3: "c"}


def test_keys_and_trade_ids_must_be_aligned() -> None:
    with pytest.raises(ValueError, match="zip"):
        remember_each({}, [1, 2], ["a"])
    with pytest.raises(ValueError, match="zip"):
        remember_fresh({}, [1, 2], ["a"])
    assert np.array_equal(remember_each({}, [], []), np.zeros(0, dtype=bool))
