"""Symbols that leave (``--symbol-ttl``) in BarPipeline: whatever the batch boundaries, the
windows, dead letters and buffers equal a record-by-record run, the state records (tombstones
included) replay to the buffers, and a freed slot takes a refused symbol."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.buffers import EMPTY_START
from consumer.core.clock import ClockState
from consumer.core.expiry import SymbolTtlError
from consumer.core.gaps import GapRule
from consumer.core.pipeline import BarPipeline, PartitionOutcome
from consumer.core.state import CHECKPOINT_KEY, Checkpoint, StateReplay, bar_keys, bar_records
from tests.strategies import examples

SEQ_LEN = 4
INTERVAL = 1_000
TTL = 5_000
T0 = 1_700_000_000_000
SYMBOLS = ("A", "B", "C", "D", "E")

step = st.one_of(st.integers(-400, 1_500), st.sampled_from([2_000, 3_000, 5_500, 12_000]))
steps = st.lists(st.tuples(step, st.sampled_from(SYMBOLS), st.integers(0, 9)), min_size=1, max_size=100)


def stream(drawn: list[tuple[int, str, int]]) -> tuple[list[bytes], list[bytes]]:
    """Ticks with event time wandering forward; E trades rarely, so it expires and comes back."""
    values, keys = [], []
    ts = T0
    for offset, (step, symbol, pick) in enumerate(drawn):
        ts += step
        name = "E" if pick == 0 else symbol if symbol != "E" else "A"
        keys.append(name.encode())
        values.append(orjson.dumps({"symbol": name, "ts": ts, "price": 10.0 + offset % 7, "size": 1}))
    return values, keys


def pipeline(gaps: str, max_symbols: int = 100, clock_window: int = 9) -> BarPipeline:
    rule = GapRule.flat() if gaps == "flat" else GapRule.skip()
    return BarPipeline(
        INTERVAL,
        0,
        seq_len=SEQ_LEN,
        max_symbols=max_symbols,
        gap_rule=rule,
        symbol_ttl_ms=TTL,
        clock_window=clock_window,
        clock_ms=lambda: 2**60,
    )


def state_records(p: BarPipeline, outcome: PartitionOutcome) -> list[tuple[bytes, bytes | None]]:
    """What the worker writes for the batch (consumer/kafka/batch.py), with a checkpoint."""
    stored, expired = outcome.stored, outcome.expired
    records: list[tuple[bytes, bytes | None]] = [
        (k, None) for k in bar_keys(expired.key_symbols, expired.key_slots)
    ]
    records += bar_records(
        stored.symbols,
        stored.bar_start,
        stored.ohlcv,
        INTERVAL,
        SEQ_LEN,
        stored.sequence if p.by_sequence else None,
    )
    return [*records, (CHECKPOINT_KEY, Checkpoint(0, outcome.commit, None).encode())]


def run(p: BarPipeline, values: list[bytes], keys: list[bytes], bounds: list[int]) -> dict[str, object]:
    """Windows, rejects, expirations and the replayed state of one run, checking after every batch
    that the state replays to exactly the buffers."""
    replay = StateReplay(INTERVAL, SEQ_LEN, p.by_sequence)
    windows: dict[tuple[str, int], bytes] = {}
    scored = 0
    rejects = []
    expired = []
    for lo, hi in itertools.pairwise(bounds):
        outcome = p.process(0, values[lo:hi], keys[lo:hi], np.arange(lo, hi))
        for i, symbol in enumerate(outcome.windows.symbols):
            windows[(symbol, int(outcome.windows.bar_end_ts[i]))] = outcome.windows.bars[i].tobytes()
        scored += len(outcome.windows)
        rejects += [(r.index + lo, r.reason) for r in outcome.rejects]
        expired += outcome.expired.symbols
        records = state_records(p, outcome)
        replay.apply([k for k, _ in records], [v for _, v in records])
        assert_state_is_the_buffers(p, replay)
    assert scored == len(windows)
    live = sorted(s for s in SYMBOLS if s in p.buffers)
    return {
        "windows": windows,
        "rejects": rejects,
        "live": live,
        "buffers": buffers_of(p, live),
        "expired": expired,
    }


def buffers_of(p: BarPipeline, symbols: list[str]) -> list[tuple[list[int], int]]:
    """Per symbol: the bar starts it holds and its bar count."""
    _, starts = p.buffers.windows(p.buffers.slots(symbols))
    counts = p.buffers.counts(symbols).tolist()
    return [([int(s) for s in row if s != EMPTY_START], c) for row, c in zip(starts, counts, strict=True)]


def assert_state_is_the_buffers(p: BarPipeline, replay: StateReplay) -> None:
    restored = replay.result()
    held = {s: b for s, b in zip(restored.symbols, restored.bar_start, strict=True)}
    live = [s for s in SYMBOLS if s in p.buffers and p.buffers.counts([s])[0]]
    assert sorted(held) == live
    for symbol, (starts, _) in zip(live, buffers_of(p, live), strict=True):
        assert held[symbol].tolist() == starts


@settings(max_examples=examples(300), deadline=None)
@given(steps, st.lists(st.integers(0, 100), max_size=6), st.sampled_from(["flat", "skip"]))
def test_expiry_does_not_depend_on_batch_boundaries(
    drawn: list[tuple[int, str, int]], cuts: list[int], gaps: str
) -> None:
    values, keys = stream(drawn)
    one_by_one = run(pipeline(gaps), values, keys, list(range(len(values) + 1)))
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    batched = run(pipeline(gaps), values, keys, bounds)
    assert {k: v for k, v in batched.items() if k != "expired"} == {
        k: v for k, v in one_by_one.items() if k != "expired"
    }
    assert sorted(set(batched["expired"])) == sorted(set(one_by_one["expired"]))  # type: ignore[call-overload]


@settings(max_examples=examples(100), deadline=None)
@given(steps, st.lists(st.integers(0, 100), max_size=6))
def test_a_supplied_clock_expires_as_the_judged_one(
    drawn: list[tuple[int, str, int]], cuts: list[int]
) -> None:
    """``bullflag scan`` judges time once and passes the clock after each record."""
    values, keys = stream(drawn)
    ts = np.array([orjson.loads(v)["ts"] for v in values], dtype=np.int64)
    judged = pipeline("flat")
    after = judged.clock.judge(ClockState(), ts, 2**60).after
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    supplied = pipeline("flat")
    for lo, hi in itertools.pairwise(bounds):
        want = judged.process(0, values[lo:hi], keys[lo:hi])
        got = supplied.process(0, values[lo:hi], keys[lo:hi], clock=after[lo:hi])
        assert got.windows.symbols == want.windows.symbols
        np.testing.assert_array_equal(got.windows.bars, want.windows.bars)
        assert got.expired.symbols == want.expired.symbols
        np.testing.assert_array_equal(got.expired.key_slots, want.expired.key_slots)


def ticks(rows: list[tuple[str, int]]) -> tuple[list[bytes], list[bytes]]:
    values = [orjson.dumps({"symbol": s, "ts": T0 + t, "price": 10.0, "size": 1}) for s, t in rows]
    return values, [s.encode() for s, _ in rows]


def test_an_idle_symbol_is_freed_and_its_slot_takes_a_refused_symbol() -> None:
    p = pipeline("flat", max_symbols=3, clock_window=1)
    first = p.process(0, *ticks([("J1", 0), ("J2", 10), ("A", 20), ("REAL", 30), ("A", 1_500)]))
    assert first.refused_symbols == ["REAL"] and len(p.buffers) == 3
    # A keeps trading; the junk does not. Once A's clock is TTL past the junk's last bars, they go.
    later = p.process(0, *ticks([("A", t) for t in range(2_000, 9_000, 500)]))
    assert sorted(later.expired.symbols) == ["J1", "J2"]
    assert sorted(later.expired.key_symbols) == ["J1", "J2"]  # one bar each, one tombstone each
    assert "J1" not in p.buffers and "J1" not in p.aggregator(0).symbols and len(p.buffers) == 1
    back = p.process(0, *ticks([("REAL", 9_100), ("J1", 9_200), ("A", 10_500)]))
    assert back.refused_symbols == [] and "REAL" in p.buffers and "J1" in p.buffers
    assert p.buffers.counts(["REAL", "J1"]).tolist() == [1, 1]  # J1 started afresh


def test_a_returning_symbol_starts_afresh_without_gap_bars() -> None:
    p = pipeline("flat", clock_window=1)
    p.process(
        0, *ticks([("A", t) for t in range(0, 6_000, 100)] + [("B", t) for t in range(6_000, 7_000, 100)])
    )
    assert p.buffers.counts(["A"])[0] == 6
    outcome = p.process(0, *ticks([("B", 7_000), ("A", 12_100), ("B", 12_500)]))
    assert outcome.expired.symbols == ["A"] and sorted(outcome.expired.key_slots) == list(range(SEQ_LEN))
    assert p.buffers.counts(["A"])[0] == 0 and "A" in p.aggregator(0).symbols  # its new bar is open
    assert "A" not in outcome.stored.symbols  # no gap bars between its old bars and its new one


def test_a_symbol_with_only_late_ticks_does_not_hold_the_limit() -> None:
    p = pipeline("flat", max_symbols=2, clock_window=1)
    first = p.process(0, *ticks([("A", 5_000), ("LATE", 100), ("REAL", 5_100)]))
    assert [r.reason for r in first.rejects] == ["late", "max_symbols"] and first.refused_symbols == ["REAL"]
    assert "LATE" not in p.aggregator(0).symbols and first.expired.symbols == []
    second = p.process(0, *ticks([("REAL", 5_200), ("A", 6_100)]))
    assert second.refused_symbols == [] and p.buffers.counts(["REAL"]).tolist() == [1]


def test_the_ttl_must_cover_a_bar_and_the_lateness() -> None:
    with pytest.raises(SymbolTtlError, match="at least"):
        BarPipeline(60_000, 5_000, symbol_ttl_ms=60_000)
    assert BarPipeline(60_000, 5_000, symbol_ttl_ms=0).symbol_ttl_ms == 0
