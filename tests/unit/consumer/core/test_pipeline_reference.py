"""BarPipeline against the independent reference model (tests/reference.py) on random streams.

After every batch, the windows scored so far and the commit point must be the reference's for
the records read so far, for tick and for bar input, whatever the batch boundaries.
"""

from __future__ import annotations

import itertools

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.pipeline import BarPipeline
from tests.reference import reference_run
from tests.strategies import examples

SEQ_LEN = 4
INTERVAL = 1_000
T0 = 1_700_000_000_000
SYMBOLS = ("A", "B.X", "C:Y")

steps = st.lists(
    st.tuples(st.integers(0, 1_600), st.sampled_from(SYMBOLS), st.booleans()), min_size=1, max_size=120
)


def stream(drawn: list[tuple[int, str, bool]], kind: str) -> tuple[list[bytes], list[bytes], list[tuple]]:
    """Records in event-time order (so none is late), some broken; and the accepted ticks."""
    values, keys, accepted = [], [], []
    ts = T0
    for offset, (step, symbol, broken) in enumerate(drawn):
        ts += step
        keys.append(symbol.encode())
        if broken:
            values.append(b'{"symbol": "' + symbol.encode() + b'", "ts": ')
            continue
        if kind == "ticks":
            value = {"symbol": symbol, "ts": ts, "price": 10.0 + offset % 7, "size": offset % 3}
            accepted.append((offset, symbol, ts))
        else:
            start = ts // INTERVAL * INTERVAL
            value = {"symbol": symbol, "ts": start, "open": 10.0, "high": 12.0, "low": 9.0}
            value |= {"close": 11.0 + offset % 2, "volume": offset % 5}
            accepted.append((offset, symbol, start))
        values.append(orjson.dumps(value))
    return values, keys, accepted


@settings(max_examples=examples(300), deadline=None)
@given(steps, st.lists(st.integers(0, 120), max_size=4), st.sampled_from(["ticks", "bars"]))
def test_windows_and_commits_after_each_batch_are_the_references(
    drawn: list[tuple[int, str, bool]], cuts: list[int], kind: str
) -> None:
    values, keys, accepted = stream(drawn, kind)
    pipeline = BarPipeline(INTERVAL, 0, input_kind="ticks" if kind == "ticks" else "bars", seq_len=SEQ_LEN)
    scored: set[tuple[str, int]] = set()
    bounds = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    for lo, hi in itertools.pairwise(bounds):
        outcome = pipeline.process(0, values[lo:hi], keys[lo:hi], list(range(lo, hi)))
        windows = {
            (s, int(end)) for s, end in zip(outcome.windows.symbols, outcome.windows.bar_end_ts, strict=True)
        }
        assert len(windows) == len(outcome.windows), "each window once"
        assert not windows & scored, "no window scored twice"
        scored |= windows
        reference = reference_run([t for t in accepted if t[0] < hi], hi, INTERVAL, SEQ_LEN)
        assert scored == reference.scored
        assert outcome.commit == reference.commit
        broken = [i for i in range(lo, hi) if drawn[i][2]]
        assert [lo + r.index for r in outcome.rejects] == broken, "indices count within the batch"
        for window_start, end in zip(
            outcome.windows.window_start_ts, outcome.windows.bar_end_ts, strict=True
        ):
            assert end - window_start == SEQ_LEN * INTERVAL
