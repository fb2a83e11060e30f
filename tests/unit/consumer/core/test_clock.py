"""The event-time clock as a pure function: equal to a record-by-record oracle, split anywhere."""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core import clock as clock_module
from consumer.core.clock import NO_CLOCK, ClockState, ClockStateError, EventClock, state_of

NEVER = 2**62
"""A wall-clock limit no event time reaches."""


def oracle(
    state: ClockState, ts: list[int], size: int, jump: int, latest: int
) -> tuple[list[str], list[int | None], ClockState]:
    """The documented rule, one record at a time and by plain sorting: (verdict per record,
    clock after each record, final state)."""
    window = deque(state.window)
    clock = state.clock
    verdicts, clocks = [], []
    for t in ts:
        if t > latest or (clock is not None and t > clock + jump):
            verdicts.append("future")
        elif clock is not None and t < clock - jump:
            verdicts.append("past")
        else:
            verdicts.append("ok")
            window.append(t)
            if len(window) > size:
                window.popleft()
            if len(window) == size:
                median = sorted(window)[(size - 1) // 2]
                clock = median if clock is None else max(clock, median)
        clocks.append(clock)
    return verdicts, clocks, ClockState(clock, tuple(window))


def verdicts_of(future: np.ndarray, past: np.ndarray) -> list[str]:
    pairs = zip(future.tolist(), past.tolist(), strict=True)
    return ["future" if f else "past" if p else "ok" for f, p in pairs]


def clocks_of(after: np.ndarray) -> list[int | None]:
    return [None if c == NO_CLOCK else c for c in after.tolist()]


streams = st.lists(st.one_of(st.integers(1_000, 1_400), st.integers(0, 10_000), st.just(0)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(
    ts=streams,
    size=st.integers(1, 9),
    jump=st.integers(0, 3_000),
    latest=st.one_of(st.just(NEVER), st.integers(0, 12_000)),
    cuts=st.lists(st.integers(0, 60), max_size=4),
)
def test_the_clock_equals_the_record_by_record_rule_however_the_records_are_split(
    ts: list[int], size: int, jump: int, latest: int, cuts: list[int]
) -> None:
    expected, expected_clocks, expected_end = oracle(ClockState(), ts, size, jump, latest)
    clock = EventClock(size, jump)
    state = ClockState()
    verdicts: list[str] = []
    clocks: list[int | None] = []
    bounds = [0, *sorted(min(c, len(ts)) for c in cuts), len(ts)]
    for lo, hi in itertools.pairwise(bounds):
        verdict = clock.judge(state, np.array(ts[lo:hi], dtype=np.int64), latest)
        verdicts += verdicts_of(verdict.future, verdict.past)
        clocks += clocks_of(verdict.after)
        state = verdict.end
    assert verdicts == expected
    assert clocks == expected_clocks
    assert state == expected_end


@settings(max_examples=200, deadline=None)
@given(ts=streams, size=st.integers(1, 9), jump=st.integers(0, 3_000), data=st.data())
def test_the_state_before_any_record_resumes_the_clock_exactly(
    ts: list[int], size: int, jump: int, data: st.DataObject
) -> None:
    if not ts:
        return
    cut = data.draw(st.integers(0, len(ts) - 1))
    clock = EventClock(size, jump)
    whole = clock.judge(ClockState(), np.array(ts, dtype=np.int64), NEVER)
    before, window, fill = whole.states_before(np.array([cut]))
    resumed_from = state_of(int(before[0]), window[0], int(fill[0]))
    resumed = clock.judge(resumed_from, np.array(ts[cut:], dtype=np.int64), NEVER)
    assert resumed.future.tolist() == whole.future[cut:].tolist()
    assert resumed.past.tolist() == whole.past[cut:].tolist()
    assert resumed.after.tolist() == whole.after[cut:].tolist()
    assert resumed.end == whole.end


def test_a_lone_first_record_at_ts_0_does_not_become_the_clock() -> None:
    start = 1_700_000_000_000
    ts = np.array([0, *range(start, start + 20_000, 1_000)], dtype=np.int64)
    verdict = EventClock(9, 7 * 86_400_000).judge(ClockState(), ts, NEVER)
    assert not verdict.future.any() and not verdict.past.any()
    assert (verdict.after[:8] == NO_CLOCK).all(), "no clock before nine records"
    assert verdict.after[8] == start + 3_000
    assert verdict.end.clock == start + 15_000


def test_one_record_ahead_or_behind_moves_nothing_and_far_ones_are_judged() -> None:
    start = 1_700_000_000_000
    steady = [start + i * 1_000 for i in range(20)]
    clock = EventClock(9, 3_600_000)
    for odd, reason in ((start + 3_000_000, "ok"), (start + 86_400_000, "future"), (0, "past")):
        ts = np.array([*steady[:12], odd, *steady[12:]], dtype=np.int64)
        verdict = clock.judge(ClockState(), ts, NEVER)
        assert verdicts_of(verdict.future, verdict.past)[12] == reason
        plain = clock.judge(ClockState(), np.array(steady, dtype=np.int64), NEVER)
        if reason != "ok":
            assert np.delete(verdict.after, 12).tolist() == plain.after.tolist()
        assert np.delete(verdict.after, 12).max() <= max(steady), "the clock never passes the bulk"


def test_the_wall_clock_limit_holds_before_the_clock_starts() -> None:
    verdict = EventClock(9, 1_000).judge(ClockState(), np.array([5, 50_000, 6], dtype=np.int64), 10_000)
    assert verdicts_of(verdict.future, verdict.past) == ["ok", "future", "ok"]


def test_clock_states_round_trip_and_bad_ones_are_named() -> None:
    state = ClockState(12, (10, 11, 12))
    assert ClockState.from_json(state.to_json()) == state
    assert ClockState.from_json(ClockState().to_json()) == ClockState()
    with pytest.raises(ClockStateError, match="window"):
        ClockState.from_json({"clock": 1, "window": [1.5]})
    with pytest.raises(ClockStateError, match="more than"):
        ClockState.from_json({"clock": 1, "window": [1, 2, 3]}, size=2)
    assert ClockState.from_json({"clock": 1, "window": [1, 2]}, size=2) == ClockState(1, (1, 2))
    with pytest.raises(ClockStateError, match="clock"):
        ClockState.from_json({"clock": True, "window": []})
    with pytest.raises(ValueError, match="clock window"):
        EventClock(0)


@pytest.mark.parametrize("size", [1, 3, 9])
def test_a_long_run_of_records_each_near_the_last_but_far_from_the_clock_is_judged_exactly(size: int) -> None:
    # Each record is within the jump of the one before, none within the jump of the clock, which
    # therefore never moves: at size 1 each vectorised pass can settle only one more record, so
    # the run is settled by the record-by-record fallback; the larger windows settle sooner.
    chain = [200 + 90 * i for i in range(14)]
    ts = [*chain, 50, 160, 140]
    state = ClockState(0, (0,) * size)
    verdict = EventClock(size, 100).judge(state, np.array(ts, dtype=np.int64), NEVER)
    verdicts, clocks, end = oracle(state, ts, size, 100, NEVER)
    assert verdicts_of(verdict.future, verdict.past) == verdicts
    assert verdicts[:14] == ["future"] * 14 and verdicts[14] == "ok"
    assert clocks_of(verdict.after) == clocks and verdict.end == end


@settings(max_examples=200, deadline=None)
@given(ts=streams, size=st.integers(1, 9), jump=st.integers(0, 3_000), data=st.data())
def test_the_record_by_record_fallback_alone_equals_the_rule_from_any_state(
    ts: list[int], size: int, jump: int, data: st.DataObject
) -> None:
    """With no vectorised pass the fallback judges every run, so it must be the rule by itself."""
    start = data.draw(st.one_of(st.just(ClockState()), st.builds(ClockState, st.integers(0, 10_000))))
    window = data.draw(st.lists(st.integers(0, 10_000), max_size=size))
    state = ClockState(start.clock, tuple(window))
    expected, expected_clocks, expected_end = oracle(state, ts, size, jump, NEVER)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock_module, "_PASSES", 0)
        verdict = EventClock(size, jump).judge(state, np.array(ts, dtype=np.int64), NEVER)
    assert verdicts_of(verdict.future, verdict.past) == expected
    assert clocks_of(verdict.after) == expected_clocks
    assert verdict.end == expected_end
