"""Column detection: which layout a header holds and which column plays each role."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.sources.tables import ColumnError, ColumnNames, detect_columns, infer_interval_ms

MINUTE = 60_000


@pytest.mark.parametrize(
    ("header", "kind", "expected"),
    [
        (
            ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"],
            "bars",
            {"symbol": None, "time": "Date", "open": "Open", "close": "Close", "volume": "Volume"},
        ),
        (
            ["ticker", "v", "o", "c", "h", "l", "t", "n"],
            "bars",
            {"symbol": "ticker", "time": "t", "open": "o", "high": "h", "volume": "v"},
        ),
        (
            ["Open time", "Open", "High", "Low", "Close", "Volume", "Close time"],
            "bars",
            {"time": "Open time", "close": "Close"},
        ),
        (
            ["timestamp", "SYMBOL", "Price", "Qty"],
            "trades",
            {"symbol": "SYMBOL", "price": "Price", "size": "Qty"},
        ),
        (["ts", "sym", "px"], "trades", {"symbol": "sym", "price": "px", "size": None}),
    ],
)
def test_detect_columns_finds_common_layouts(
    header: list[str], kind: str, expected: dict[str, str | None]
) -> None:
    layout = detect_columns(header)
    assert layout.kind == kind
    assert {role: layout.columns[role] for role in expected} == expected


def test_named_columns_override_detection() -> None:
    header = ["when", "what", "bid", "last", "amount"]
    layout = detect_columns(header, ColumnNames(time="when", symbol="WHAT", price="bid"))
    assert layout.kind == "trades"
    assert layout.columns == {"symbol": "what", "time": "when", "price": "bid", "size": "amount"}


@pytest.mark.parametrize(
    ("header", "given", "message"),
    [
        (["ts", "foo"], ColumnNames(), "cannot tell bars from trades"),
        (["foo", "price"], ColumnNames(), "no time column"),
        (["ts", "price"], ColumnNames(price="cost"), "no column 'cost' \\(--price-column\\)"),
        (["ts", "open", "price"], ColumnNames(open="open", price="price"), "one layout only"),
    ],
)
def test_detect_columns_explains_what_is_missing(header: list[str], given: ColumnNames, message: str) -> None:
    with pytest.raises(ColumnError, match=message):
        detect_columns(header, given, "prices.csv")


def test_infer_interval_takes_the_most_common_step() -> None:
    symbols = np.array(["A", "A", "A", "A", "B", "B"])
    ts = np.array([0, 60, 120, 300, 0, 60]) * 1000
    assert infer_interval_ms(symbols, ts) == MINUTE
    assert infer_interval_ms(np.array(["A", "B"]), np.array([0, 0])) is None
