"""The worker's garbage-collector settings are scoped: applied while serving, then restored."""

from __future__ import annotations

import gc

import pytest

from consumer.ops.gc_tuning import batch_friendly_gc


@pytest.fixture(autouse=True)
def default_collector():
    """Every test starts from, and leaves behind, the interpreter's thresholds."""
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_raises_generation_zero_threshold_and_restores_it() -> None:
    with batch_friendly_gc(50_000):
        assert gc.get_threshold() == (50_000, 10, 10)
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (700, 10, 10)
    assert gc.get_freeze_count() == 0


def test_zero_leaves_the_collector_alone() -> None:
    with batch_friendly_gc(0):
        assert gc.get_threshold() == (700, 10, 10)
        assert gc.get_freeze_count() == 0


def test_overlapping_users_restore_only_when_the_last_leaves() -> None:
    first = batch_friendly_gc(50_000)
    second = batch_friendly_gc(20_000)
    first.__enter__()
    second.__enter__()
    assert gc.get_threshold()[0] == 50_000
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == 50_000
    second.__exit__(None, None, None)
    assert gc.get_threshold() == (700, 10, 10)


def test_restores_after_an_error() -> None:
    with pytest.raises(RuntimeError), batch_friendly_gc(50_000):
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)
