"""Edges of record decoding (consumer.core.ticks, record_fields): limits, defaults, chunks, bars."""

from __future__ import annotations

import dataclasses

import numpy as np
import orjson
import pytest

from consumer.core.record_fields import numbers
from consumer.core.record_rules import BAD, MAX_ID_CHARS, MAX_TS_MS, OK, RejectReason
from consumer.core.ticks import DecodedBars, DecodedTicks, TickDecoder

T0 = 1_732_550_400_000


def tick(**fields: object) -> bytes:
    """A tick value; ``None`` drops a field."""
    value: dict[str, object] = {"symbol": "AAA", "ts": T0, "price": 10.0}
    value.update(fields)
    return orjson.dumps({k: v for k, v in value.items() if v is not None})


def bar(**fields: object) -> bytes:
    """A bar value; ``None`` drops a field."""
    value: dict[str, object] = {
        "symbol": "AAA",
        "ts": T0,
        "open": 10.0,
        "high": 12.0,
        "low": 9.0,
        "close": 11.0,
        "volume": 5,
    }
    value.update(fields)
    return orjson.dumps({k: v for k, v in value.items() if v is not None})


def reasons(decoded: DecodedTicks | DecodedBars) -> list[tuple[int, RejectReason]]:
    return [(r.index, r.reason) for r in decoded.rejects]


def as_plain(decoded: DecodedTicks | DecodedBars) -> dict[str, object]:
    """Columns as lists, for equality."""
    return {
        f.name: v.tolist() if isinstance(v, np.ndarray) else v
        for f in dataclasses.fields(decoded)
        for v in [getattr(decoded, f.name)]
    }


def test_a_value_of_exactly_max_bytes_is_accepted_and_one_byte_more_is_not() -> None:
    value = tick()
    decoder = TickDecoder(max_bytes=len(value))
    assert reasons(decoder.decode_ticks([value, value + b" "], [b"AAA", b"AAA"])) == [
        (1, RejectReason.TOO_LARGE)
    ]


def test_null_and_broken_values_say_what_they_are() -> None:
    decoded = TickDecoder().decode_ticks([None, b"{nope"], [b"AAA", b"AAA"])
    assert reasons(decoded) == [(0, RejectReason.NULL_VALUE), (1, RejectReason.INVALID_JSON)]
    assert decoded.rejects[0].detail == "record value is null (tombstone)"
    assert decoded.rejects[1].detail not in ("", "None")


def test_the_last_representable_time_is_accepted_and_the_next_is_not() -> None:
    values = [tick(ts=MAX_TS_MS), tick(ts=MAX_TS_MS + 1)]
    decoded = TickDecoder().decode_ticks(values, [b"AAA", b"AAA"])
    assert reasons(decoded) == [(1, RejectReason.BAD_TS)]
    assert decoded.ts_ms.tolist() == [MAX_TS_MS]


def test_iso_times_up_to_64_characters_are_read_and_floor_to_the_millisecond() -> None:
    exact = "2024-11-25T16:00:00.000999+00:00"
    longest = "2024-11-25T16:00:00.00099900000000000000000000000000000000+00:00"
    assert len(longest) == 64
    values = [tick(ts=exact), tick(ts=longest), tick(ts=longest.replace("+", "0+"))]
    decoded = TickDecoder().decode_ticks(values, [b"AAA"] * 3)
    assert decoded.ts_ms.tolist() == [1_732_550_400_000] * 2
    assert decoded.ts_ms.dtype == np.int64
    assert reasons(decoded) == [(2, RejectReason.BAD_TS)]


def test_an_integer_beyond_any_float_is_a_bad_number() -> None:
    """orjson never yields one, but a caller's list may: NaN and BAD rather than an error."""
    values, status = numbers([1, 10**400], positive=True)
    assert np.isnan(values[1]) and status.tolist() == [OK, BAD]


def test_the_last_microsecond_of_9999_floors_to_the_last_millisecond() -> None:
    """Exact integer flooring: as a float the time would round up past the last accepted one."""
    decoded = TickDecoder().decode_ticks([tick(ts="9999-12-31T23:59:59.999999+00:00")], [b"AAA"])
    assert decoded.ts_ms.tolist() == [MAX_TS_MS]


def test_size_defaults_to_zero_even_when_other_sizes_are_malformed() -> None:
    values = [tick(size=None), tick(size="ten"), tick(size=3)]
    decoded = TickDecoder().decode_ticks(values, [b"AAA"] * 3)
    assert reasons(decoded) == [(1, RejectReason.BAD_SIZE)]
    assert decoded.size.tolist() == [0.0, 3.0]


def test_a_price_of_the_wrong_type_is_bad_among_good_ones() -> None:
    values = [tick(price="10"), tick(price=True), tick(price=2)]
    decoded = TickDecoder().decode_ticks(values, [b"AAA"] * 3)
    assert reasons(decoded) == [(0, RejectReason.BAD_PRICE), (1, RejectReason.BAD_PRICE)]
    assert decoded.price.tolist() == [2.0]


def test_trade_ids_are_ints_or_strings_of_1_to_128_characters() -> None:
    ids: list[object] = [7, "x", "y" * MAX_ID_CHARS, "", "z" * (MAX_ID_CHARS + 1), 1.5]
    decoded = TickDecoder().decode_ticks([tick(id=i) for i in ids], [b"AAA"] * len(ids))
    assert reasons(decoded) == [(3, RejectReason.BAD_ID), (4, RejectReason.BAD_ID), (5, RejectReason.BAD_ID)]
    assert decoded.trade_id == [7, "x", "y" * MAX_ID_CHARS]


def test_trade_ids_vanish_when_no_accepted_tick_has_one() -> None:
    decoded = TickDecoder().decode_ticks([tick(), tick(price=-1, id=4)], [b"AAA", b"AAA"])
    assert decoded.trade_id is None
    assert len(decoded) == 1
    kept = TickDecoder().decode_ticks([tick(id=9), tick(price=-1)], [b"AAA", b"AAA"])
    assert kept.trade_id == [9]


@pytest.mark.parametrize(
    "ids",
    [[None, None, None, 5, "q"], [1, None, None, None, None], [None] * 5, [3, 4, 5, 6, 7]],
)
def test_chunked_decoding_equals_one_pass_with_ids_in_some_chunks(ids: list[object]) -> None:
    values = [tick(ts=T0 + i, id=v) for i, v in enumerate(ids)]
    values.insert(3, b"[1]")
    keys = [b"AAA"] * len(values)
    whole = TickDecoder().decode_ticks(values, keys)
    chunked = TickDecoder(chunk_size=2).decode_ticks(values, keys)
    assert as_plain(chunked) == as_plain(whole)
    assert whole.trade_id == (None if all(v is None for v in ids) else ids)


def test_chunked_bar_decoding_equals_one_pass() -> None:
    values = [bar(ts=T0 + i * 1000, high=20.0, close=11.0 + i) for i in range(5)]
    values.insert(2, bar(volume=-1))
    keys = [b"AAA"] * len(values)
    whole = TickDecoder().decode_bars(values, keys)
    chunked = TickDecoder(chunk_size=2).decode_bars(values, keys)
    assert as_plain(chunked) == as_plain(whole)
    assert whole.close.tolist() == [11.0, 12.0, 13.0, 14.0, 15.0]
    assert whole.index.tolist() == [0, 1, 3, 4, 5]
    assert reasons(whole) == [(2, RejectReason.BAD_VOLUME)]


def test_bar_keys_must_match_their_symbols() -> None:
    decoded = TickDecoder().decode_bars([bar(), bar()], [b"AAA", b"BBB"])
    assert reasons(decoded) == [(1, RejectReason.KEY_MISMATCH)]
    assert decoded.rejects[0].detail == "key b'BBB' does not match symbol 'AAA'"


def test_bar_prices_must_be_positive_and_volume_may_be_zero() -> None:
    values = [bar(open=0.0, low=0.0), bar(volume=0), bar(volume=-0.5), bar(close=-1.0, low=-1.0)]
    decoded = TickDecoder().decode_bars(values, [b"AAA"] * 4)
    assert reasons(decoded) == [
        (0, RejectReason.BAD_OHLC),
        (2, RejectReason.BAD_VOLUME),
        (3, RejectReason.BAD_OHLC),
    ]
    assert decoded.volume.tolist() == [0.0]


def test_high_and_low_may_touch_open_and_close() -> None:
    values = [
        bar(open=10.0, high=11.0, low=10.0, close=11.0),
        bar(open=10.0, high=10.5, low=9.0, close=11.0),
        bar(open=10.0, high=12.0, low=10.5, close=11.0),
        bar(open=10.0, high=float("nan"), low=9.0, close=11.0),
    ]
    decoded = TickDecoder().decode_bars(values[:3], [b"AAA"] * 3)
    assert reasons(decoded) == [(1, RejectReason.BAD_OHLC), (2, RejectReason.BAD_OHLC)]
    assert decoded.high.tolist() == [11.0] and decoded.low.tolist() == [10.0]


def test_bars_decoded_in_exactly_two_chunks_keep_both() -> None:
    values = [bar(ts=T0 + i * 1000) for i in range(4)]
    decoded = TickDecoder(chunk_size=2).decode_bars(values, [b"AAA"] * 4)
    assert decoded.ts_ms.tolist() == [T0 + i * 1000 for i in range(4)]
    assert decoded.index.tolist() == [0, 1, 2, 3]
