"""Gap policies: the vectorised rule against a bar-by-bar reference, and bars built under each."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.bar_columns import NO_BAR
from consumer.core.gaps import GapRule, fill_starts
from consumer.core.pipeline import BarPipeline

INTERVAL = 10


def reference(prev: int, nxt: int, max_gap: int, sessions: list[tuple[int, int]] | None) -> list[int]:
    """Bar by bar: empty intervals between the bars that overlap a session (every one if None)."""
    if prev == NO_BAR:
        return []
    starts = range(prev + INTERVAL, nxt, INTERVAL)
    kept = [s for s in starts if sessions is None or any(o < s + INTERVAL and c > s for o, c in sessions)]
    return kept[max(0, len(kept) - max_gap) :] if max_gap else []


session_lists = st.lists(st.tuples(st.integers(-300, 2_000), st.integers(1, 120)), max_size=12).map(
    lambda pairs: sorted({(o, o + d) for o, d in pairs})
)


def disjoint(sessions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sessions made disjoint (a calendar's never overlap), still sorted."""
    out: list[tuple[int, int]] = []
    for o, c in sessions:
        if out and o < out[-1][1]:
            continue
        out.append((o, c))
    return out


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(
        st.tuples(st.integers(-30, 200), st.integers(0, 60)).map(
            lambda p: (p[0] * INTERVAL, (p[0] + p[1]) * INTERVAL)
        ),
        max_size=8,
    ),
    first=st.booleans(),
    max_gap=st.integers(0, 25),
    sessions=st.one_of(session_lists.map(disjoint), session_lists),
    policy=st.sampled_from(["flat", "skip", "session"]),
)
def test_fill_starts_matches_the_bar_by_bar_reference(
    gaps: list[tuple[int, int]], first: bool, max_gap: int, sessions: list[tuple[int, int]], policy: str
) -> None:
    prev = np.array([NO_BAR if first and i == 0 else p for i, (p, _) in enumerate(gaps)], np.int64)
    nxt = np.array([n for _, n in gaps], np.int64)
    if policy == "flat":
        rule, allowed = GapRule.flat(), None
    elif policy == "skip":
        rule, allowed = GapRule.skip(), []
    else:
        opens = np.array([o for o, _ in sessions], np.int64)
        closes = np.array([c for _, c in sessions], np.int64)
        rule, allowed = GapRule.session(opens, closes, INTERVAL), sessions

    owner, start = fill_starts(prev, nxt, INTERVAL, max_gap, rule)

    expected = [
        (i, s) for i in range(len(gaps)) for s in reference(int(prev[i]), int(nxt[i]), max_gap, allowed)
    ]
    assert list(zip(owner.tolist(), start.tolist(), strict=True)) == expected


@settings(max_examples=300, deadline=None)
@given(
    bars=st.lists(st.integers(-40, 220), max_size=20),
    sessions=st.one_of(session_lists.map(disjoint), session_lists),
    policy=st.sampled_from(["flat", "skip", "session"]),
)
def test_allowed_is_the_bar_by_bar_overlap_with_a_session(
    bars: list[int], sessions: list[tuple[int, int]], policy: str
) -> None:
    """``allowed`` per bar index against the definition: every bar, none, or one overlapping a session."""
    opens = np.array([o for o, _ in sessions], np.int64)
    closes = np.array([c for _, c in sessions], np.int64)
    rule = {
        "flat": GapRule.flat(),
        "skip": GapRule.skip(),
        "session": GapRule.session(opens, closes, INTERVAL),
    }[policy]
    expected = [
        policy == "flat"
        or (policy == "session" and any(o < (b + 1) * INTERVAL and c > b * INTERVAL for o, c in sessions))
        for b in bars
    ]
    assert rule.allowed(np.array(bars, np.int64)).tolist() == expected


def ticks(times: list[int], symbol: str = "A") -> tuple[list[bytes], list[bytes]]:
    values = [
        orjson.dumps({"symbol": symbol, "ts": t, "price": 10.0 + i, "size": 1}) for i, t in enumerate(times)
    ]
    return values, [symbol.encode()] * len(values)


DAY = 86_400_000
MONDAY = 1_732_492_800_000  # 2024-11-25 00:00 UTC


def closed_bars(rule: GapRule, times: list[int], interval: int) -> tuple[np.ndarray, np.ndarray]:
    """(bar_start, volume) of every bar a pipeline closed over ``times``, one tick each."""
    pipeline = BarPipeline(interval, 0, seq_len=3, gap_rule=rule, clock_ms=lambda: 2**60)
    values, keys = ticks(times)
    pipeline.process(0, values, keys)
    slot = int(pipeline.buffers.slots(["A"])[0])
    bars, starts = pipeline.buffers.windows(np.array([slot]))
    kept = starts[0] != np.iinfo(np.int64).min
    return starts[0][kept], bars[0][kept][:, 4]


def test_skip_leaves_weekends_out_of_daily_bars_and_flat_fills_them() -> None:
    weekdays = [MONDAY + d * DAY + 3_600_000 for d in (3, 4, 7, 8)]  # Thu, Fri, Mon, Tue

    skip_starts, skip_volume = closed_bars(GapRule.skip(), weekdays, DAY)
    flat_starts, flat_volume = closed_bars(GapRule.flat(), weekdays, DAY)

    assert ((skip_starts - MONDAY) // DAY).tolist() == [3, 4, 7]
    assert (skip_volume > 0).all()
    assert ((flat_starts - MONDAY) // DAY).tolist() == [5, 6, 7]
    assert flat_volume.tolist() == [0.0, 0.0, 1.0]


def test_session_fills_only_inside_sessions() -> None:
    minute = 60_000
    opens = np.array([MONDAY + 14 * 3_600_000 + 30 * minute, MONDAY + DAY + 14 * 3_600_000 + 30 * minute])
    rule = GapRule.session(opens, opens + 390 * minute, minute)
    # The last trades of Monday's session, then Tuesday's first three minutes with one gap.
    times = [int(opens[0]) + m * minute for m in (385, 386)] + [int(opens[1]) + m * minute for m in (0, 2)]
    pipeline = BarPipeline(minute, 0, seq_len=200, gap_rule=rule, clock_ms=lambda: 2**60)
    values, keys = ticks(times)
    pipeline.process(0, values, keys)
    bars, starts = pipeline.buffers.windows(pipeline.buffers.slots(["A"]))
    kept = starts[0] != np.iinfo(np.int64).min
    flat = starts[0][kept][bars[0][kept][:, 4] == 0]
    inside = rule.allowed(flat // minute)

    assert inside.all(), "every flat bar lies inside a session"
    assert (flat - int(opens[0])).tolist() == [387 * minute, 388 * minute, 389 * minute, DAY + minute]


def test_each_rule_names_its_policy_and_keeps_int64_bounds() -> None:
    minute = 60_000
    rules = {
        "flat": GapRule.flat(),
        "skip": GapRule.skip(),
        "session": GapRule.session(np.array([0.0, 10.0]) * minute, np.array([3.0, 12.0]) * minute, minute),
    }
    assert {name: rule.policy for name, rule in rules.items()} == {n: n for n in rules}
    assert all(r.lo.dtype == np.int64 and r.hi.dtype == np.int64 for r in rules.values())
    assert (rules["session"].lo.tolist(), rules["session"].hi.tolist(), rules["session"].sessions) == (
        [0, 10],
        [3, 12],
        2,
    )
    empty = GapRule.session(np.zeros(0), np.zeros(0), minute)
    assert (empty.policy, empty.lo.tolist(), empty.hi.tolist(), empty.sessions) == ("session", [], [], 0)


@pytest.mark.parametrize(
    ("opens", "closes"),
    [
        ([0, 10], [5]),
        ([0, 10], [5, 10]),
        ([0, 10], [5, 8]),
        ([10, 0], [15, 5]),
    ],
    ids=["shapes differ", "empty session", "close before open", "not sorted by open"],
)
def test_sessions_that_are_not_sorted_open_before_close_are_refused(
    opens: list[int], closes: list[int]
) -> None:
    with pytest.raises(ValueError, match=r"^sessions must be sorted by open, each open before its close$"):
        GapRule.session(np.array(opens), np.array(closes), 1)


def test_sessions_with_equal_opens_are_accepted() -> None:
    rule = GapRule.session(np.array([0, 0]), np.array([5, 7]), 1)
    assert (rule.lo.tolist(), rule.hi.tolist()) == ([0], [7])
