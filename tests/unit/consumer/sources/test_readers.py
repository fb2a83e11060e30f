"""Reading CSV and Parquet files into tables: layouts, time formats, and bad rows named."""

from __future__ import annotations

import csv
import gzip
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from consumer.sources.market import synthetic_market
from consumer.sources.readers import read_table
from consumer.sources.tables import BarTable, ParquetUnavailableError, TableError, TradeTable

T0 = 1_732_550_400_000
MINUTE = 60_000


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
