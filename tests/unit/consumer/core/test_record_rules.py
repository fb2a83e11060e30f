"""The readable details of rejects (consumer.core.record_rules): what the dead-letter header says."""

from __future__ import annotations

import orjson

from consumer.core.record_rules import RejectReason, describe, preview
from consumer.core.ticks import TickDecoder


def test_preview_keeps_short_values_and_cuts_long_ones_to_80_characters() -> None:
    assert preview("x" * 78) == repr("x" * 78)
    assert len(repr("x" * 78)) == 80
    cut = preview("x" * 79)
    assert cut == repr("x" * 79)[:77] + "..."
    assert len(cut) == 80


def test_each_field_reject_names_the_value_and_the_rule() -> None:
    obj: dict[str, object] = {"price": -3.0, "size": "ten", "ts": "soon"}
    assert describe(RejectReason.BAD_PRICE, "price", obj, "AAA", None, 0) == (
        "price=-3.0: expected a finite number > 0"
    )
    assert describe(RejectReason.BAD_SIZE, "size", obj, "AAA", None, 0) == (
        "size='ten': expected a finite number >= 0"
    )
    assert describe(RejectReason.MISSING_FIELD, "price", {}, "AAA", None, 0) == (
        "missing required field 'price'"
    )


def test_key_details_name_the_key_and_the_symbol() -> None:
    keys = [b"AAA", b"BBB"]
    assert describe(RejectReason.KEY_MISMATCH, "symbol", {}, "AAA", keys, 1) == (
        "key b'BBB' does not match symbol 'AAA'"
    )
    assert describe(RejectReason.MISSING_KEY, "symbol", {}, "AAA", [None], 0) == (
        "record has no key; key it by its symbol 'AAA' so a symbol stays in one partition"
    )
    # Without keys a mismatch cannot be described by them; the symbol field's rule is given.
    assert describe(RejectReason.BAD_SYMBOL, "symbol", {"symbol": ""}, "", keys, 0) == (
        "symbol='': expected a string of 1-32 characters from [A-Za-z0-9._:/-]"
    )


def test_an_inconsistent_bar_lists_its_four_prices() -> None:
    value = {"symbol": "AAA", "ts": 1_732_550_400_000, "open": 10.0, "high": 9.0, "low": 8.0, "close": 9.5}
    decoded = TickDecoder().decode_bars([orjson.dumps(value | {"volume": 1})], [b"AAA"])
    assert [(r.reason, r.detail) for r in decoded.rejects] == [
        (
            RejectReason.BAD_OHLC,
            "inconsistent bar (open=10.0, high=9.0, low=8.0, close=9.5): "
            "need high >= max(open, close), low <= min(open, close)",
        )
    ]


def test_a_record_level_reject_keeps_its_own_detail() -> None:
    decoded = TickDecoder().decode_ticks([b"{broken", b"[1]"], [b"AAA", b"AAA"])
    assert [r.reason for r in decoded.rejects] == [RejectReason.INVALID_JSON, RejectReason.NOT_OBJECT]
    assert all(r.detail for r in decoded.rejects)
    assert [r.index for r in decoded.rejects] == [0, 1]
