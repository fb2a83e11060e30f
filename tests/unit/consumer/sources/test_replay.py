"""The pure parts of ``bullflag replay``: tick paths inside bars, file reading, the generated market."""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bullflag_model.synthetic import HEADS, KINDS
from consumer.cli import main
from consumer.cli.broker import parse_topic_specs
from consumer.core.ticks import TickDecoder
from consumer.sources.replay import (
    BarTable,
    ColumnError,
    ColumnNames,
    ParquetUnavailableError,
    TableError,
    TradeTable,
    bar_records,
    bars_to_ticks,
    bars_to_trades,
    detect_columns,
    infer_interval_ms,
    produce_records,
    read_table,
    synthetic_market,
    tick_records,
)

T0 = 1_732_550_400_000
MINUTE = 60_000


@st.composite
def ohlcv_bars(draw: st.DrawFn) -> np.ndarray:
    """Bars [n, 5] with consistent OHLC, whole or fractional (or zero) volumes, flat bars included."""
    n = draw(st.integers(1, 12))
    rows = []
    for _ in range(n):
        open_ = draw(st.floats(1e-3, 1e5))
        close = draw(st.one_of(st.just(open_), st.floats(1e-3, 1e5)))
        high = max(open_, close) * (1 + draw(st.floats(0.0, 0.1)))
        low = min(open_, close) * (1 - draw(st.floats(0.0, 0.1)))
        volume = draw(
            st.one_of(
                st.just(0.0),
                st.integers(0, 10**9).map(float),
                st.floats(0.0, 1e6, allow_nan=False, allow_infinity=False),
            )
        )
        rows.append([open_, high, low, close, volume])
    return np.asarray(rows)


def bar_starts(n: int, interval_ms: int) -> np.ndarray:
    """Contiguous bar starts from T0."""
    return T0 + np.arange(n, dtype=np.int64) * interval_ms


@settings(max_examples=150, deadline=None)
@given(
    bars=ohlcv_bars(),
    interval_ms=st.sampled_from([1, 2, 3, 4, 7, 1_000, MINUTE, 86_400_000]),
    seed=st.integers(0, 2**32 - 1),
    intermediate=st.tuples(st.integers(0, 4), st.integers(0, 6)).map(lambda t: (t[0], t[0] + t[1])),
)
def test_bars_to_ticks_keeps_every_bar_intact(
    bars: np.ndarray, interval_ms: int, seed: int, intermediate: tuple[int, int]
) -> None:
    starts = bar_starts(len(bars), interval_ms)
    ticks = bars_to_ticks(bars, starts, "AAPL", seed, interval_ms=interval_ms, intermediate=intermediate)

    assert np.array_equal(np.unique(ticks.bar), np.arange(len(bars)))
    assert np.all(np.diff(ticks.bar) >= 0)
    for i, (open_, high, low, close, volume) in enumerate(bars):
        mine = ticks.bar == i
        ts, price, size = ticks.ts_ms[mine], ticks.price[mine], ticks.size[mine]
        assert 4 <= len(ts) <= 4 + intermediate[1]
        assert price[0] == open_ and price[-1] == close
        assert high in price[1:-1] and low in price[1:-1]
        assert np.all((price >= low) & (price <= high))
        assert np.all((ts >= starts[i]) & (ts < starts[i] + interval_ms))
        assert np.all(np.diff(ts) >= 0)
        if interval_ms >= len(ts):
            assert np.all(np.diff(ts) > 0)
        assert np.all(size >= 0)
        assert size.sum() == pytest.approx(volume, rel=1e-9, abs=1e-9)
        if volume == int(volume):
            assert np.array_equal(size, np.round(size)) and size.sum() == volume
            if volume >= len(ts):
                assert np.all(size >= 1)


def test_bars_to_ticks_is_deterministic_per_seed_and_symbol() -> None:
    bars = synthetic_market(1, 50, seed=3).bars[0]
    starts = bar_starts(50, MINUTE)

    def draw(symbol: str, seed: int) -> tuple[np.ndarray, ...]:
        ticks = bars_to_ticks(bars, starts, symbol, seed, interval_ms=MINUTE)
        return ticks.ts_ms, ticks.price, ticks.size

    first, again = draw("AAPL", 1), draw("AAPL", 1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    for other in (draw("AAPL", 2), draw("MSFT", 1)):
        assert not np.array_equal(first[0], other[0]) or not np.array_equal(first[1], other[1])


def test_high_and_low_come_in_both_orders() -> None:
    bars = np.tile([10.0, 12.0, 8.0, 11.0, 1000.0], (200, 1))
    ticks = bars_to_ticks(bars, bar_starts(200, MINUTE), "X", 0, interval_ms=MINUTE, intermediate=(0, 0))
    path = ticks.price.reshape(200, 4)
    high_first = path[:, 1] == 12.0
    assert 40 < high_first.sum() < 160
    assert np.all(path[high_first, 2] == 8.0) and np.all(path[~high_first, 1] == 8.0)


def test_bars_to_ticks_rejects_unusable_arguments() -> None:
    bars = np.array([[1.0, 1.0, 1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match="one start per bar"):
        bars_to_ticks(bars, np.array([T0, T0]), "X", 0, interval_ms=MINUTE)
    with pytest.raises(ValueError, match="interval_ms >= 1"):
        bars_to_ticks(bars, np.array([T0]), "X", 0, interval_ms=0)
    with pytest.raises(ValueError, match="seed >= 0"):
        bars_to_ticks(bars, np.array([T0]), "X", -1, interval_ms=MINUTE)


def test_bars_to_trades_merges_symbols_in_event_time_and_keeps_each_path() -> None:
    market = synthetic_market(3, 120, seed=5)
    trades = bars_to_trades(market.table(), 9, interval_ms=MINUTE)

    assert np.all(np.diff(trades.ts_ms) >= 0)
    for index, symbol in enumerate(market.symbols):
        alone = bars_to_ticks(market.bars[index], market.ts_ms, symbol, 9, interval_ms=MINUTE)
        mine = trades.symbols == symbol
        assert np.array_equal(trades.ts_ms[mine], alone.ts_ms)
        assert np.array_equal(trades.price[mine], alone.price)
        assert np.array_equal(trades.size[mine], alone.size)
    empty = BarTable(np.array([], dtype=str), np.zeros(0, np.int64), np.zeros((0, 5)))
    assert len(bars_to_trades(empty, 9, interval_ms=MINUTE)) == 0


def test_records_decode_without_rejects() -> None:
    market = synthetic_market(2, 30, seed=1)
    trades = bars_to_trades(market.table(), 0, interval_ms=MINUTE)
    keys, values, stamps = zip(*tick_records(trades), strict=True)
    decoded = TickDecoder().decode_ticks(values, keys)
    assert decoded.rejects == [] and len(decoded) == len(trades)
    assert list(stamps) == trades.ts_ms.tolist() and decoded.symbols == trades.symbols.tolist()
    assert np.array_equal(decoded.size, trades.size)
    assert all(isinstance(orjson.loads(value)["size"], int) for value in values)

    keys, values, _ = zip(*bar_records(market.table()), strict=True)
    bars = TickDecoder().decode_bars(values, keys)
    assert bars.rejects == [] and len(bars) == 60
    assert np.array_equal(bars.ts_ms, market.table().ts_ms)


def test_synthetic_market_is_deterministic_and_plausible() -> None:
    market = synthetic_market(12, 450, seed=11)
    again = synthetic_market(12, 450, seed=11)
    other = synthetic_market(12, 450, seed=12)

    assert np.array_equal(market.bars, again.bars) and market.windows == again.windows
    assert not np.array_equal(market.bars, other.bars)
    assert market.bars.shape == (12, 450, 5) and len(set(market.symbols)) == 12
    assert np.array_equal(market.ts_ms, bar_starts(450, MINUTE))
    open_, high, low, close, volume = np.moveaxis(market.bars, -1, 0)
    assert np.all(low > 0)
    assert np.all(high >= np.maximum(open_, close)) and np.all(low <= np.minimum(open_, close))
    assert np.all(volume >= 0) and np.array_equal(volume, np.round(volume))
    step = np.abs(np.diff(np.log(close), axis=1))
    assert np.all((np.median(step, axis=1) > 1e-4) & (np.median(step, axis=1) < 0.02))
    assert np.abs(open_[:, 1:] / close[:, :-1] - 1).max() < 0.05

    assert {w.kind for w in market.windows} <= set(KINDS)
    ends = {w.symbol: w.last_bar for w in market.windows}
    assert set(ends) == set(market.symbols) and set(ends.values()) == {449}
    flags = [w for w in market.windows if w.kind == "bull_flag"]
    assert flags and len({w.heads for w in flags}) >= 2
    assert all(set(w.heads) <= set(HEADS) for w in market.windows)


def test_synthetic_market_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="symbols >= 1"):
        synthetic_market(0, 10, seed=0)


def test_market_table_is_in_event_time_order() -> None:
    table = synthetic_market(3, 5, seed=2).table()
    assert table.symbols.tolist()[:4] == ["SYN000", "SYN001", "SYN002", "SYN000"]
    assert np.all(np.diff(table.ts_ms) >= 0) and table.ohlcv.shape == (15, 5)
    assert infer_interval_ms(table.symbols, table.ts_ms) == MINUTE


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


def write_csv(
    path: Path, header: Sequence[str], rows: Sequence[Sequence[object]], delimiter: str = ","
) -> Path:
    """A CSV file with ``header`` and ``rows``, floats written exactly (repr)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return path


def test_csv_round_trip_of_a_generated_market(tmp_path: Path) -> None:
    table = synthetic_market(3, 40, seed=4).table()
    rows = [
        [symbol, ts, *bar]
        for symbol, ts, bar in zip(
            table.symbols.tolist(), table.ts_ms.tolist(), table.ohlcv.tolist(), strict=True
        )
    ]
    path = write_csv(
        tmp_path / "market.csv", ["symbol", "ts", "open", "high", "low", "close", "volume"], rows[::-1]
    )

    read = read_table(path)

    assert isinstance(read, BarTable)
    order = np.lexsort((table.symbols, table.ts_ms))
    again = np.lexsort((read.symbols, read.ts_ms))
    assert np.array_equal(read.ts_ms[again], table.ts_ms[order])
    assert np.array_equal(read.symbols[again], table.symbols[order])
    assert np.array_equal(read.ohlcv[again], table.ohlcv[order])
    assert np.all(np.diff(read.ts_ms) >= 0)


def test_trades_file_with_iso_times_and_a_given_symbol(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        handle.write("\ufeffTime;Price;Quantity\n2024-11-25T16:00:01.5Z;10.5;3\n2024-11-25 16:00:00;10;2\n")

    table = read_table(path, symbol="BTC/USD")

    assert isinstance(table, TradeTable)
    assert table.symbols.tolist() == ["BTC/USD", "BTC/USD"]
    assert table.ts_ms.tolist() == [T0, T0 + 1_500]
    assert table.price.tolist() == [10.0, 10.5] and table.size.tolist() == [2.0, 3.0]


@pytest.mark.parametrize(
    ("stamps", "unit", "expected"),
    [
        (["1732550400", "1732550460"], "auto", [T0, T0 + MINUTE]),
        (["1732550400000", "1732550460000"], "auto", [T0, T0 + MINUTE]),
        (["1732550400000000", "1732550460000999"], "auto", [T0, T0 + MINUTE]),
        (["1732550400000000000", "1732550460000000000"], "auto", [T0, T0 + MINUTE]),
        (["1732550400.25", "1732550460.5"], "auto", [T0 + 250, T0 + MINUTE + 500]),
        (["2024-11-25", "2024-11-26T00:00:00+01:00"], "auto", [1_732_492_800_000, 1_732_575_600_000]),
        (["1000", "2000"], "ms", [1_000, 2_000]),
    ],
)
def test_time_formats(tmp_path: Path, stamps: list[str], unit: str, expected: list[int]) -> None:
    path = write_csv(tmp_path / "t.csv", ["date", "symbol", "price"], [[s, "X", 1.0] for s in stamps])
    assert read_table(path, time_unit=unit).ts_ms.tolist() == expected  # type: ignore[arg-type]


def test_symbol_filter_keeps_one_symbol(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "t.csv", ["ts", "ticker", "price"], [[1, "A", 1.0], [2, "B", 2.0], [3, "A", 3.0]]
    )
    assert read_table(path, symbol="A", time_unit="ms").price.tolist() == [1.0, 3.0]
    with pytest.raises(TableError, match="no rows of symbol 'C'"):
        read_table(path, symbol="C")


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (
            ["ts", "symbol", "price"],
            [T0, "AAPL", "abc"],
            r"bad\.csv, line 3: column 'price' has 'abc', not a number",
        ),
        (
            ["ts", "symbol", "price"],
            [T0, "AAPL", "-1"],
            r"line 3: column 'price' has '-1'; expected a finite number > 0",
        ),
        (
            ["ts", "symbol", "price"],
            [T0, "AA PL", 1.0],
            r"line 3: column 'symbol': symbol 'AA PL' is invalid",
        ),
        (["ts", "symbol", "price"], ["yesterday", "AAPL", 1.0], r"line 3: column 'ts' has 'yesterday'"),
        (
            ["ts", "symbol", "price"],
            [-5, "AAPL", 1.0],
            r"line 3: column 'ts' value '-5' is outside 1970-9999",
        ),
        (
            ["ts", "symbol", "price"],
            ["2024-11-25T16:00:00Z", "AAPL", 1.0],
            r"line 2: column 'ts' has the epoch number '1732550340000' among ISO-8601 times",
        ),
        (["ts", "price"], [T0, 1.0], r"no symbol column .* --symbol"),
        (
            ["ts", "symbol", "open", "high", "low", "close"],
            [T0, "AAPL", 10.0, 9.0, 8.0, 9.5],
            r"line 3: high \(column 'high'\) is below max\(open, close\)",
        ),
        (
            ["ts", "symbol", "open", "high", "low", "close", "volume"],
            [T0, "AAPL", 10.0, 11.0, 10.5, 10.7, 5],
            r"line 3: low \(column 'low'\) is above min\(open, close\)",
        ),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, header: list[str], row: list[object], message: str) -> None:
    good = [T0 - MINUTE, "AAPL", *([1.0] * (len(header) - 2))]
    path = write_csv(tmp_path / "bad.csv", header, [good[: len(header)], row])
    with pytest.raises(TableError, match=message):
        read_table(path)


def test_bad_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TableError, match=r"missing\.csv: no such file"):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match=r"empty\.csv: the file is empty"):
        read_table(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("ts,symbol,price\n")
    with pytest.raises(TableError, match=r"header\.csv: the file holds no data rows"):
        read_table(tmp_path / "header.csv")
    (tmp_path / "ragged.csv").write_text("ts,symbol,price\n1,A,1\n2,A\n")
    with pytest.raises(TableError, match=r"ragged\.csv, line 3: 2 fields where the header has 3"):
        read_table(tmp_path / "ragged.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(TableError, match=r"data\.xlsx: unsupported file type"):
        read_table(tmp_path / "data.xlsx")
    (tmp_path / "data.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ParquetUnavailableError, match=r"data\.parquet: .*pip install pyarrow"):
        read_table(tmp_path / "data.parquet")


def test_parquet_bars_with_timestamps(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "Timestamp": pa.array([T0 + MINUTE, T0], type=pa.timestamp("ms", tz="UTC")),
            "Ticker": ["AAPL", "AAPL"],
            "Open": [2.0, 1.0],
            "High": [3.0, 2.0],
            "Low": [1.5, 0.5],
            "Close": [2.5, 1.5],
            "Volume": pa.array([200, 100], type=pa.int64()),
        }
    )
    pq.write_table(table, tmp_path / "bars.parquet")
    read = read_table(tmp_path / "bars.parquet")
    assert isinstance(read, BarTable)
    assert read.ts_ms.tolist() == [T0, T0 + MINUTE] and read.ohlcv[:, 4].tolist() == [100.0, 200.0]


def test_infer_interval_takes_the_most_common_step() -> None:
    symbols = np.array(["A", "A", "A", "A", "B", "B"])
    ts = np.array([0, 60, 120, 300, 0, 60]) * 1000
    assert infer_interval_ms(symbols, ts) == MINUTE
    assert infer_interval_ms(np.array(["A", "B"]), np.array([0, 0])) is None


async def test_produce_records_refuses_a_negative_speed() -> None:
    with pytest.raises(ValueError, match="speed must be a finite number >= 0"):
        await produce_records("127.0.0.1:1", "ticks", [], speed=-1.0)


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--no-progress"]) == 2
    assert "either a file to replay or --generate" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err
    path = write_csv(tmp_path / "t.csv", ["ts", "symbol", "price"], [[T0, "A", 1.0]])
    assert main(["replay", str(path), "--input", "bars"]) == 2
    assert "holds trades, but --input bars" in capsys.readouterr().err
    bars = write_csv(
        tmp_path / "b.csv", ["ts", "symbol", "o", "h", "l", "c"], [[T0, "A", 1.0, 1.0, 1.0, 1.0]]
    )
    assert main(["replay", str(bars)]) == 2
    assert "cannot infer the bar length" in capsys.readouterr().err


def test_broker_topic_list_parses() -> None:
    specs = parse_topic_specs("ticks:4, signals:4,ticks.dlq,bullflag.state:4")
    assert [(s.name, s.partitions) for s in specs] == [
        ("ticks", 4),
        ("signals", 4),
        ("ticks.dlq", 1),
        ("bullflag.state", 4),
    ]
    with pytest.raises(ValueError, match="whole number"):
        parse_topic_specs("ticks:four")
    with pytest.raises(ValueError, match="invalid"):
        parse_topic_specs("bad name:1")
