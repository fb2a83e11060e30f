"""One record, of any kind and at any time, inserted anywhere into a clean stream changes no
output of any other symbol: no window, no bar in it, no dead letter.

A clean stream: a few symbols interleaved, each symbol's ticks in event-time order, the
partition jittered by no more than the allowed lateness (so nothing in it is late), with quiet
stretches. The inserted record ranges from ``ts = 0`` to the year 3000, through a tick slightly
behind, inside, or 50 minutes ahead of the stream, a new or an existing symbol, or no tick at
all. Both runs end by closing every open bar, so only content is compared, not timing.
"""

from __future__ import annotations

import itertools

import numpy as np
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.core.pipeline import BarPipeline, PartitionOutcome
from tests.strategies import examples

settings.register_profile(
    "single_record",
    max_examples=examples(1_000),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

INTERVAL = 1_000
SEQ_LEN = 4
START = 1_700_000_000_000
NOW = START + 86_400_000
JUMP = 3_600_000
FLUSH = 2**60

Record = tuple[bytes | None, bytes | None]


@st.composite
def clean_streams(draw: st.DrawFn) -> tuple[list[Record], int]:
    """(records, allowed lateness) of a clean mixed stream."""
    lateness = draw(st.sampled_from([0, 500, 2_000]))
    n = draw(st.integers(20, 120))
    symbols = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    steps = rng.choice([0, 50, 300, 900, 4_000], size=n, p=[0.2, 0.3, 0.3, 0.15, 0.05])
    base = START + np.cumsum(steps)
    ts = base - rng.integers(0, lateness + 1, n)
    names = [f"S{i}" for i in rng.integers(0, symbols, n)]
    for name in set(names):
        rows = [i for i, s in enumerate(names) if s == name]
        ts[rows] = np.sort(ts[rows])
    records: list[Record] = [
        (s.encode(), orjson.dumps({"symbol": s, "ts": int(t), "price": float(p), "size": 1, "id": i}))
        for i, (s, t, p) in enumerate(zip(names, ts, rng.uniform(10, 20, n), strict=True))
    ]
    return records, lateness


@st.composite
def odd_records(draw: st.DrawFn, records: list[Record]) -> tuple[str, Record]:
    """(its symbol, the record): any time, near the stream or far from it, or not a tick."""
    times = [orjson.loads(value)["ts"] for _, value in records if value is not None]
    near = draw(st.sampled_from(times))
    ts = draw(
        st.one_of(
            st.just(0),
            st.integers(0, START),
            st.integers(near - 30_000, near + 30_000),
            st.just(near + 50 * 60_000),
            st.integers(near, near + 2 * JUMP),
            st.integers(NOW, NOW + 10 * JUMP),
            st.just(32_503_680_000_000),
        )
    )
    symbol = draw(st.sampled_from(["S0", "S1", "S2", "S3", "ODD"]))
    kind = draw(st.sampled_from(["tick", "tick", "tick", "no_key", "bad_json"]))
    trade_id = draw(st.integers(0, 200))
    value = orjson.dumps({"symbol": symbol, "ts": ts, "price": 15.0, "size": 1, "id": trade_id})
    if kind == "bad_json":
        return symbol, (symbol.encode(), b"{" + value)
    return symbol, (None if kind == "no_key" else symbol.encode(), value)


def outputs(records: list[Record], lateness: int, cuts: list[int]) -> tuple[dict, list[tuple[str, str]]]:
    """Windows by (symbol, bar end), and (symbol, reason) of every dead letter, after a flush."""
    pipeline = BarPipeline(INTERVAL, lateness, seq_len=SEQ_LEN, max_time_jump_ms=JUMP, clock_ms=lambda: NOW)
    windows = {}
    rejected = []
    bounds = [0, *sorted(min(c, len(records)) for c in cuts), len(records)]
    for lo, hi in itertools.pairwise(bounds):
        part = records[lo:hi]
        outcome: PartitionOutcome = pipeline.process(0, [v for _, v in part], [k for k, _ in part])
        windows.update(_by_bar(outcome.windows))
        rejected += [(_symbol(part[r.index]), str(r.reason)) for r in outcome.rejects]
    windows.update(_by_bar(pipeline.close_expired(0, FLUSH)))
    return windows, rejected


def _by_bar(windows: object) -> dict[tuple[str, int], tuple[bytes, int]]:
    return {
        (s, int(end)): (bars.tobytes(), int(start))
        for s, end, bars, start in zip(
            windows.symbols,
            windows.bar_end_ts,
            windows.bars,
            windows.window_start_ts,
            strict=True,  # type: ignore[attr-defined]
        )
    }


def _symbol(record: Record) -> str:
    try:
        return str(orjson.loads(record[1] or b"")["symbol"])
    except orjson.JSONDecodeError:
        return "?"


@settings(settings.get_profile("single_record"))
@given(stream=clean_streams(), data=st.data())
def test_one_inserted_record_changes_no_output_of_any_other_symbol(
    stream: tuple[list[Record], int], data: st.DataObject
) -> None:
    records, lateness = stream
    symbol, odd = data.draw(odd_records(records))
    where = data.draw(st.integers(0, len(records)))
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=3))
    clean_windows, clean_rejects = outputs(records, lateness, cuts)
    assert clean_rejects == [], "the clean stream is clean"
    windows, rejects = outputs([*records[:where], odd, *records[where:]], lateness, cuts)
    others = {key: value for key, value in windows.items() if key[0] != symbol}
    assert others == {key: value for key, value in clean_windows.items() if key[0] != symbol}
    assert [r for r in rejects if r[0] not in (symbol, "?")] == []
