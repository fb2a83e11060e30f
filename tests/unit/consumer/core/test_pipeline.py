"""BarPipeline: the windows scored do not depend on how the stream is split into batches."""

from __future__ import annotations

import itertools

import numpy as np
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.config import Settings
from consumer.core.bars import BarAggregator
from consumer.core.clock import ClockState, EventClock
from consumer.core.pipeline import BarPipeline
from consumer.core.state import Checkpoint, RestoredPartition
from consumer.core.windows import Windows
from tests.strategies import SEQ_LEN as MODEL_SEQ_LEN
from tests.strategies import examples

SEQ_LEN = 5
INTERVAL = 1_000


def tick_stream(seed: int, n: int, symbols: int) -> tuple[list[bytes], list[bytes]]:
    """Ticks of a few symbols with gaps, jitter and a bad record or two, as Kafka values and keys."""
    rng = np.random.default_rng(seed)
    ts = np.cumsum(rng.integers(0, 900, n)) + 1_700_000_000_000
    names = [f"S{i}" for i in rng.integers(0, symbols, n)]
    values = [
        orjson.dumps({"symbol": s, "ts": int(t), "price": float(p), "size": 1})
        for s, t, p in zip(names, ts, rng.uniform(10, 20, n), strict=True)
    ]
    values[n // 2] = b"{not json"
    return values, [s.encode() for s in names]


def run(pipeline: BarPipeline, values: list[bytes], keys: list[bytes], cuts: list[int]) -> Windows:
    parts = []
    bounds = [0, *sorted(cuts), len(values)]
    for lo, hi in itertools.pairwise(bounds):
        parts.append(pipeline.process(0, values[lo:hi], keys[lo:hi]).windows)
    return Windows.concat(parts, SEQ_LEN)


def by_bar(windows: Windows) -> dict[tuple[str, int], tuple[np.ndarray, int]]:
    return {
        (s, int(end)): (bars, int(start))
        for s, end, bars, start in zip(
            windows.symbols, windows.bar_end_ts, windows.bars, windows.window_start_ts, strict=True
        )
    }


def test_each_window_is_the_last_bars_up_to_its_bar() -> None:
    values, keys = tick_stream(seed=1, n=400, symbols=3)
    decoder_pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN)
    decoded = decoder_pipeline.decoder.decode_ticks(values, keys)
    clock = EventClock().judge(ClockState(), decoded.ts_ms, latest_allowed_ms=2**62).after
    closed = BarAggregator(INTERVAL, 0).add(decoded, clock).bars
    expected = {}
    for symbol in set(closed.symbols):
        rows = [i for i, s in enumerate(closed.symbols) if s == symbol]
        for k in range(SEQ_LEN - 1, len(rows)):
            window_rows = rows[k - SEQ_LEN + 1 : k + 1]
            expected[(symbol, int(closed.bar_start[rows[k]]) + INTERVAL)] = closed.ohlcv()[window_rows]
    windows = by_bar(run(BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN), values, keys, [100, 250]))
    assert len(expected) > 20
    assert windows.keys() == expected.keys()
    for key, (bars, start) in windows.items():
        np.testing.assert_array_equal(bars, expected[key])
        assert key[1] - start == SEQ_LEN * INTERVAL, "bars are contiguous: gaps are filled"


@settings(max_examples=examples(30), deadline=None)
@given(seed=st.integers(0, 10_000), cuts=st.lists(st.integers(0, 300), max_size=8))
def test_batch_boundaries_do_not_change_the_output(seed: int, cuts: list[int]) -> None:
    values, keys = tick_stream(seed=seed, n=300, symbols=3)
    whole = by_bar(run(BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN), values, keys, []))
    split = by_bar(run(BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN), values, keys, cuts))
    assert whole.keys() == split.keys()
    for key, (bars, start) in whole.items():
        np.testing.assert_array_equal(split[key][0], bars)
        assert split[key][1] == start


def test_bad_records_are_rejected_with_their_position() -> None:
    values, keys = tick_stream(seed=2, n=50, symbols=2)
    outcome = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN).process(0, values, keys)
    assert [(r.index, r.reason) for r in outcome.rejects] == [(25, "invalid_json")]


def test_dropping_a_partition_frees_its_symbols() -> None:
    values, keys = tick_stream(seed=3, n=200, symbols=4)
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN)
    pipeline.process(0, values, keys)
    assert len(pipeline.buffers) == 4
    assert pipeline.drop_partition(0) == 4
    assert len(pipeline.buffers) == 0


def test_restoring_a_partition_forgets_what_the_pipeline_held_for_it() -> None:
    """A partition that comes back is rebuilt from its state alone: fed the same records again
    after an empty restore, it produces what it produced the first time."""
    values, keys = tick_stream(seed=5, n=200, symbols=3)
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN)
    first = pipeline.process(0, values, keys)
    pipeline.restore_partition(0, RestoredPartition([], [], [], None, 0), None)
    again = pipeline.process(0, values, keys)
    expected = {key: (bars.tobytes(), start) for key, (bars, start) in by_bar(first.windows).items()}
    assert {key: (bars.tobytes(), start) for key, (bars, start) in by_bar(again.windows).items()} == expected
    assert expected, "the first run scored windows"
    assert (again.commit, again.mark, again.rejects) == (first.commit, first.mark, first.rejects)


T0 = 1_700_000_000_000


def one_symbol(*times: int) -> tuple[list[bytes], list[bytes]]:
    """Ticks of symbol ``A`` at ``times``, as Kafka values and keys."""
    return [orjson.dumps({"symbol": "A", "ts": t, "price": 10.0}) for t in times], [b"A"] * len(times)


def test_the_commit_point_carries_the_clock_state_just_before_the_open_bars_first_tick() -> None:
    """A restart reads again from the open bar's first tick with the clock the run had there:
    a window of three, the lower median of (T0, T0 + 100, T0 + 200) as the clock."""
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, clock_window=3, clock_ms=lambda: 2**60)
    outcome = pipeline.process(0, *one_symbol(T0, T0 + 100, T0 + 200, T0 + 1_100, T0 + 1_200))
    assert outcome.commit == 3
    assert outcome.mark == ClockState(T0 + 100, (T0, T0 + 100, T0 + 200))


def test_the_pipelines_defaults_are_an_unconfigured_workers() -> None:
    """Callers that build a pipeline without settings get what the worker runs with by default."""
    settings = Settings()
    pipeline = BarPipeline(settings.bar_interval_ms, settings.allowed_lateness_ms)
    assert pipeline.gap_rule.policy == "flat" and not pipeline.by_sequence
    assert (
        pipeline.seq_len,
        pipeline.max_symbols,
        pipeline.decoder.max_bytes,
        pipeline.max_time_jump_ms,
        pipeline.max_clock_skew_ms,
        pipeline.clock.size,
    ) == (
        MODEL_SEQ_LEN,
        settings.max_symbols,
        settings.max_record_bytes,
        settings.max_time_jump_ms,
        settings.max_clock_skew_ms,
        settings.clock_window,
    )


def test_records_must_be_keyed_by_their_symbol_in_either_input_kind() -> None:
    tick = orjson.dumps({"symbol": "A", "ts": T0, "price": 10.0})
    bar = orjson.dumps({"symbol": "A", "ts": T0, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 1})
    for kind, value in (("ticks", tick), ("bars", bar)):
        pipeline = BarPipeline(INTERVAL, 0, input_kind=kind, seq_len=SEQ_LEN, clock_ms=lambda: 2**60)
        outcome = pipeline.process(0, [value, value], [b"A", b"B"])
        assert [(r.index, r.reason) for r in outcome.rejects] == [(1, "key_mismatch")], kind


def test_records_up_to_the_allowed_skew_ahead_of_the_wall_clock_are_accepted() -> None:
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, max_clock_skew_ms=3_600_000, clock_ms=lambda: T0)
    outcome = pipeline.process(0, *one_symbol(T0 + 1_800_000, T0 + 3_600_000, T0 + 3_600_001))
    assert [(r.index, r.reason) for r in outcome.rejects] == [(2, "future_ts")]


def test_a_callers_clock_is_taken_as_given_and_leaves_no_mark() -> None:
    """``bullflag scan`` judges time itself: nothing is refused, its clock closes the bars."""
    pipeline = BarPipeline(INTERVAL, 0, seq_len=1, clock_ms=lambda: 0)
    values, keys = one_symbol(T0, T0 + 100, T0 + 5_000)
    outcome = pipeline.process(0, values, keys, clock=np.array([T0, T0 + 500, T0 + 2_000]))
    assert outcome.rejects == []
    assert outcome.windows.bar_end_ts.tolist() == [T0 + 1_000 * k for k in range(1, 6)], (
        "a bar and its gap bars"
    )
    assert (outcome.commit, outcome.mark) == (2, None)


def test_a_bar_open_across_batches_keeps_the_offset_of_its_first_tick() -> None:
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, clock_window=1, clock_ms=lambda: 2**60)
    pipeline.process(0, *one_symbol(T0 + 100, T0 + 200), offsets=np.array([10, 11]))
    outcome = pipeline.process(0, *one_symbol(T0 + 300), offsets=np.array([12]))
    assert (outcome.commit, outcome.mark) == (10, ClockState(None, ()))


def test_dead_letters_from_the_checkpoints_end_on_are_sent_again() -> None:
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, clock_ms=lambda: 2**60)
    pipeline.restore_partition(0, RestoredPartition([], [], [], Checkpoint(5, 4, None), 1), 4)
    outcome = pipeline.process(0, [b"{", b"{"], [b"A", b"A"], offsets=np.array([4, 5]))
    assert ([r.index for r in outcome.rejects], outcome.replayed) == ([1], 1)


def test_an_empty_batch_commits_nothing_new() -> None:
    assert BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN).process(0, [], []).commit == 0


def test_ticks_within_the_allowed_lateness_update_their_bar() -> None:
    pipeline = BarPipeline(INTERVAL, 2_000, seq_len=SEQ_LEN, clock_window=1, clock_ms=lambda: 2**60)
    values = [
        orjson.dumps({"symbol": s, "ts": t, "price": 10.0}) for s, t in (("A", T0 + 5_000), ("B", T0 + 3_500))
    ]
    assert pipeline.process(0, values, [b"A", b"B"]).rejects == []


def test_the_symbol_limit_holds_across_partitions_too() -> None:
    pipeline = BarPipeline(INTERVAL, 0, seq_len=1, max_symbols=1, clock_window=1, clock_ms=lambda: 2**60)
    pipeline.process(0, *one_symbol(T0, T0 + 1_000))
    values = [orjson.dumps({"symbol": "B", "ts": t, "price": 10.0}) for t in (T0, T0 + 1_000)]
    assert pipeline.process(1, values, [b"B", b"B"]).refused_symbols == ["B"]


def test_close_expired_raises_the_clock_the_next_records_are_judged_against() -> None:
    """It sets the clock (never lowers it) and keeps the window, as ``bullflag scan`` needs."""
    pipeline = BarPipeline(INTERVAL, 0, seq_len=1, max_time_jump_ms=10_000, clock_ms=lambda: 2**60)
    pipeline.process(0, *one_symbol(T0 - 2_000, T0 - 1_000))
    assert pipeline.close_expired(0, T0).bar_end_ts.tolist() == [T0]
    assert pipeline.clocks[0] == ClockState(T0, (T0 - 2_000, T0 - 1_000))
    pipeline.close_expired(0, T0 - 60_000)
    assert pipeline.clocks[0] == ClockState(T0, (T0 - 2_000, T0 - 1_000))
    outcome = pipeline.process(0, *one_symbol(T0 + 20_000, T0 - 20_000, T0 + 500))
    assert [(r.index, r.reason) for r in outcome.rejects] == [(0, "future_ts"), (1, "past_ts")]
    pipeline.close_expired(1, T0)
    assert pipeline.clocks[1] == ClockState(T0, ())


def test_a_restored_symbols_last_bar_is_closed_to_late_ticks() -> None:
    starts = T0 + np.arange(3, dtype=np.int64) * INTERVAL
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, clock_ms=lambda: 2**60)
    pipeline.restore_partition(0, RestoredPartition(["A"], [starts], [np.ones((3, 5))], None, 3), None)
    outcome = pipeline.process(0, *one_symbol(T0 + 2_500, T0 + 3_100))
    assert [(r.index, r.reason) for r in outcome.rejects] == [(0, "late")]


def test_a_dropped_partition_keeps_neither_its_clock_nor_its_replay_point() -> None:
    """Records read again after it comes back are judged afresh and their dead letters sent."""
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, clock_ms=lambda: 2**60)
    checkpoint = Checkpoint(100, 100, ClockState(T0, (T0,) * 9))
    pipeline.restore_partition(0, RestoredPartition([], [], [], checkpoint, 1), 100)
    assert pipeline.drop_partition(0) == 0
    assert pipeline.drop_partition(7) == 0
    values, keys = one_symbol(T0 - 30 * 86_400_000)
    outcome = pipeline.process(0, [b"{not json", *values], [b"A", *keys])
    assert [(r.index, r.reason) for r in outcome.rejects] == [(0, "invalid_json")]
    assert outcome.replayed == 0


def test_windows_keep_int64_times_when_an_empty_part_is_joined() -> None:
    values, keys = tick_stream(seed=6, n=100, symbols=1)
    scored = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN).process(0, values, keys).windows
    joined = Windows.concat([Windows.concat([], SEQ_LEN), scored], SEQ_LEN)
    assert len(joined) == len(scored) > 0
    assert joined.bar_end_ts.dtype == joined.window_start_ts.dtype == np.int64


def test_a_tick_from_the_year_3000_closes_nothing() -> None:
    values, keys = tick_stream(seed=4, n=300, symbols=2)
    far = orjson.dumps({"symbol": "S0", "ts": 32_503_680_000_000, "price": 10.0})
    pipeline = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN)
    reference = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN)
    outcome = pipeline.process(0, [*values[:150], far, *values[150:]], [*keys[:150], b"S0", *keys[150:]])
    expected = reference.process(0, values, keys)
    assert [(r.index, r.reason) for r in outcome.rejects] == [(150, "future_ts"), (151, "invalid_json")]
    assert by_bar(outcome.windows).keys() == by_bar(expected.windows).keys()


def test_symbols_refused_at_the_limit_are_reported_once_per_batch() -> None:
    values = [
        orjson.dumps({"symbol": symbol, "ts": 1_700_000_000_000 + i, "price": 10.0})
        for i, symbol in enumerate(["A", "B", "C", "B", "A"])
    ]
    outcome = BarPipeline(INTERVAL, 0, seq_len=SEQ_LEN, max_symbols=1).process(
        0, values, [orjson.loads(v)["symbol"].encode() for v in values]
    )
    assert outcome.refused_symbols == ["B", "C"]
    assert [r.index for r in outcome.rejects if r.reason == "max_symbols"] == [1, 2, 3]
