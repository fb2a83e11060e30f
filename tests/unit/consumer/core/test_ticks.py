"""Decoding and validation of tick / bar batches (consumer.core.ticks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.record_rules import MAX_TS_MS, RejectReason
from consumer.core.ticks import DecodedTicks, TickDecoder
from tests.strategies import examples

T0 = 1_732_550_400_123


def tick(**fields: object) -> bytes:
    """A tick value with defaults for the fields not given (``None`` drops a field)."""
    value: dict[str, object] = {"symbol": "AAPL", "ts": T0, "price": 189.23, "size": 100}
    value.update(fields)
    return orjson.dumps({k: v for k, v in value.items() if v is not None})


def bar(**fields: object) -> bytes:
    """A bar value with defaults for the fields not given."""
    value: dict[str, object] = {
        "symbol": "AAPL",
        "ts": 1_732_550_400_000,
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 500,
    }
    value.update(fields)
    return orjson.dumps({k: v for k, v in value.items() if v is not None})


def reasons(decoded: DecodedTicks) -> dict[int, str]:
    return {r.index: r.reason.value for r in decoded.rejects}


def test_reason_codes_are_stable() -> None:
    assert [r.value for r in RejectReason] == [
        "too_large",
        "null_value",
        "invalid_json",
        "not_object",
        "missing_field",
        "bad_symbol",
        "missing_key",
        "key_mismatch",
        "bad_ts",
        "bad_price",
        "bad_size",
        "bad_id",
        "bad_ohlc",
        "bad_volume",
        "late",
        "future_ts",
        "max_symbols",
        "past_ts",
    ]


def test_valid_batch_is_columnar() -> None:
    values = [tick(), tick(symbol="MSFT", ts=T0 + 1, price=400, size=None, id="T-1")]
    out = TickDecoder().decode_ticks(values, [b"AAPL", b"MSFT"])
    assert out.rejects == []
    assert out.symbols == ["AAPL", "MSFT"]
    assert out.ts_ms.dtype == np.int64 and out.ts_ms.tolist() == [T0, T0 + 1]
    assert out.price.dtype == np.float64 and out.price.tolist() == [189.23, 400.0]
    assert out.size.tolist() == [100.0, 0.0]
    assert out.trade_id == [None, "T-1"]
    assert out.index.tolist() == [0, 1]


def test_batch_without_ids_has_no_id_column() -> None:
    assert TickDecoder().decode_ticks([tick(), tick()]).trade_id is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "null_value"),
        (b"", "invalid_json"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "not_object"),
        (b'"AAPL"', "not_object"),
        (tick(symbol=None), "missing_field"),
        (tick(ts=None), "missing_field"),
        (tick(price=None), "missing_field"),
        (orjson.dumps({"symbol": "AAPL", "ts": T0, "price": None}), "missing_field"),
        (tick(symbol=""), "bad_symbol"),
        (tick(symbol="A" * 33), "bad_symbol"),
        (tick(symbol="AA PL"), "bad_symbol"),
        (tick(symbol=7), "bad_symbol"),
        (tick(symbol=["AAPL"]), "bad_symbol"),
        (tick(ts="2024-11-25T16:00:00"), "bad_ts"),
        (tick(ts="yesterday"), "bad_ts"),
        (tick(ts=-1), "bad_ts"),
        (tick(ts=MAX_TS_MS + 1), "bad_ts"),
        (b'{"symbol": "AAPL", "ts": 1180591620717411303424, "price": 1}', "bad_ts"),
        (tick(ts=2**63), "bad_ts"),
        (tick(ts=1.5), "bad_ts"),
        (tick(ts=True), "bad_ts"),
        (tick(ts=[T0]), "bad_ts"),
        (tick(price=0), "bad_price"),
        (tick(price=-3.5), "bad_price"),
        (tick(price="1.0"), "bad_price"),
        (tick(price=True), "bad_price"),
        (b'{"symbol": "AAPL", "ts": 1, "price": 1e999}', "invalid_json"),
        (tick(size=-1), "bad_size"),
        (tick(size="5"), "bad_size"),
        (tick(id=""), "bad_id"),
        (tick(id="x" * 129), "bad_id"),
        (tick(id=1.5), "bad_id"),
        (tick(id=False), "bad_id"),
    ],
)
def test_rejects_carry_reason(value: bytes | None, reason: str) -> None:
    out = TickDecoder().decode_ticks([tick(), value, tick()])
    assert reasons(out) == {1: reason}
    assert out.index.tolist() == [0, 2]
    assert out.rejects[0].detail


def test_first_failing_rule_wins() -> None:
    out = TickDecoder().decode_ticks([tick(symbol="", ts="bad", price=-1), tick(ts="bad", price=-1)])
    assert reasons(out) == {0: "bad_symbol", 1: "bad_ts"}


def test_too_large_uses_the_configured_limit() -> None:
    decoder = TickDecoder(max_bytes=80)
    out = decoder.decode_ticks([tick(), tick(note="x" * 100)])
    assert reasons(out) == {1: "too_large"}
    assert "limit is 80" in out.rejects[0].detail


def test_every_record_needs_its_symbol_as_key() -> None:
    values = [tick(), tick(), tick(), tick(symbol="bad symbol")]
    out = TickDecoder().decode_ticks(values, [b"AAPL", None, b"MSFT", b"x"])
    assert reasons(out) == {1: "missing_key", 2: "key_mismatch", 3: "bad_symbol"}
    assert "no key" in out.rejects[0].detail and "AAPL" in out.rejects[0].detail
    assert "MSFT" in out.rejects[1].detail


def test_without_keys_given_only_the_values_are_checked() -> None:
    assert reasons(TickDecoder().decode_ticks([tick(), tick()])) == {}


def test_misaligned_keys_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aligned"):
        TickDecoder().decode_ticks([tick()], [b"AAPL", b"AAPL"])


@pytest.mark.parametrize(
    "text",
    [
        "2024-11-25T16:00:00.123Z",
        "2024-11-25T16:00:00.123+00:00",
        "2024-11-25T17:00:00.123+01:00",
        "2024-11-25T11:00:00.123456-05:00",
    ],
)
def test_iso_timestamps_with_offset(text: str) -> None:
    out = TickDecoder().decode_ticks([tick(ts=text), tick(ts=T0), tick(ts=float(T0))])
    assert out.rejects == []
    assert out.ts_ms.tolist() == [T0, T0, T0]


@given(
    ms=st.integers(0, MAX_TS_MS),
    offset_minutes=st.integers(-14 * 60, 14 * 60),
    micros=st.integers(0, 999),
)
def test_iso_and_epoch_agree(ms: int, offset_minutes: int, micros: int) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms, microseconds=micros)
    try:
        text = moment.astimezone(zone).isoformat()
    except OverflowError:
        return
    out = TickDecoder().decode_ticks([tick(ts=text), tick(ts=ms)])
    assert out.rejects == []
    assert out.ts_ms.tolist() == [ms, ms]


def test_symbol_cache_keeps_validation_per_batch() -> None:
    decoder = TickDecoder(symbol_cache_size=1)
    for _ in range(3):
        out = decoder.decode_ticks([tick(symbol="A"), tick(symbol="B"), tick(symbol="C D")])
        assert reasons(out) == {2: "bad_symbol"}


def test_decoder_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TickDecoder(max_bytes=0)
    with pytest.raises(ValueError, match="symbol_cache_size"):
        TickDecoder(symbol_cache_size=0)
    with pytest.raises(ValueError, match="chunk_size"):
        TickDecoder(chunk_size=0)


def test_bars_mode() -> None:
    values = [
        bar(),
        bar(high=10.5),
        bar(low=11.5),
        bar(open=0),
        bar(volume=-1),
        bar(close=None),
        bar(ts="2024-11-25T16:00:00Z", symbol="MSFT"),
    ]
    out = TickDecoder(chunk_size=3).decode_bars(values, [b"AAPL"] * 6 + [b"MSFT"])
    assert {r.index: r.reason.value for r in out.rejects} == {
        1: "bad_ohlc",
        2: "bad_ohlc",
        3: "bad_ohlc",
        4: "bad_volume",
        5: "missing_field",
    }
    assert out.index.tolist() == [0, 6]
    assert out.symbols == ["AAPL", "MSFT"]
    assert out.ts_ms.tolist() == [1_732_550_400_000, 1_732_550_400_000]
    assert out.open.tolist() == [10.0, 10.0]
    assert out.high.tolist() == [12.0, 12.0]
    assert out.low.tolist() == [9.0, 9.0]
    assert out.close.tolist() == [11.0, 11.0]
    assert out.volume.tolist() == [500.0, 500.0]


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
symbols = st.one_of(st.sampled_from(["AAPL", "MSFT", "BRK.B", "BTC/USD", "X:Y-1_"]), json_scalars)
timestamps = st.one_of(
    st.integers(-5, MAX_TS_MS + 5),
    st.sampled_from(["2024-11-25T16:00:00.123Z", "2024-11-25T16:00:00", "2024-13-01T00:00Z"]),
    json_scalars,
)
numbers = st.one_of(st.integers(-3, 10**6), st.floats(-1, 1e6), json_scalars)
trade_ids = st.one_of(st.none(), st.integers(-5, 5), st.text(max_size=3), json_scalars)


@st.composite
def tick_values(draw: st.DrawFn) -> bytes | None:
    """A mix of valid ticks, ticks with any field broken, and arbitrary bytes."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.one_of(st.none(), st.binary(max_size=20)))
    if kind == 1:
        return orjson.dumps(draw(st.lists(json_scalars, max_size=3)))
    fields = {
        "symbol": draw(symbols),
        "ts": draw(timestamps),
        "price": draw(numbers),
        "size": draw(numbers),
        "id": draw(trade_ids),
    }
    keep = draw(st.lists(st.sampled_from(list(fields)), unique=True))
    return orjson.dumps({name: fields[name] for name in keep})


@settings(max_examples=examples(150), deadline=None)
@given(values=st.lists(tick_values(), max_size=25), data=st.data())
def test_every_record_is_decoded_or_rejected(values: list[bytes | None], data: st.DataObject) -> None:
    keys = data.draw(
        st.lists(st.sampled_from([None, b"AAPL", b"MSFT"]), min_size=len(values), max_size=len(values))
    )
    out = TickDecoder(max_bytes=200).decode_ticks(values, keys)
    decoded = out.index.tolist()
    rejected = [r.index for r in out.rejects]
    assert sorted(decoded + rejected) == list(range(len(values)))
    assert rejected == sorted(rejected)
    assert all(isinstance(r.reason, RejectReason) and r.detail for r in out.rejects)
    n = len(decoded)
    assert len(out.symbols) == len(out.ts_ms) == len(out.price) == len(out.size) == n
    assert np.all(np.isfinite(out.price) & (out.price > 0))
    assert np.all(np.isfinite(out.size) & (out.size >= 0))
    assert np.all((out.ts_ms >= 0) & (out.ts_ms <= MAX_TS_MS))
    for row, i in enumerate(decoded):
        assert keys[i] == out.symbols[row].encode()
    if out.trade_id is not None:
        assert len(out.trade_id) == n


@settings(max_examples=examples(150), deadline=None)
@given(values=st.lists(tick_values(), max_size=25), chunk_size=st.integers(1, 30))
def test_batch_decoding_equals_record_by_record(values: list[bytes | None], chunk_size: int) -> None:
    decoder = TickDecoder(max_bytes=200, chunk_size=chunk_size)
    batch = decoder.decode_ticks(values)
    singles = [TickDecoder(max_bytes=200).decode_ticks([value]) for value in values]
    assert reasons(batch) == {
        i: single.rejects[0].reason.value for i, single in enumerate(singles) if single.rejects
    }
    kept = [single for single in singles if not single.rejects]
    assert batch.symbols == [s.symbols[0] for s in kept]
    assert batch.ts_ms.tolist() == [s.ts_ms[0] for s in kept]
    assert batch.price.tolist() == [s.price[0] for s in kept]
    assert batch.size.tolist() == [s.size[0] for s in kept]
    ids = [None if s.trade_id is None else s.trade_id[0] for s in kept]
    assert (batch.trade_id or [None] * len(kept)) == ids
