"""``read_rows``: bad rows are skipped and named with file, line and reason; good rows read as before."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.sources.readers import BAD_FIELDS, read_rows, read_table
from consumer.sources.tables import BarTable, TableError, TradeTable

T0 = 1_732_550_400_000
HEADER = ["symbol", "ts", "open", "high", "low", "close", "volume"]
GOOD = ["A", T0, 10.0, 11.0, 9.0, 10.5, 100]
BAD_ROWS: list[tuple[list[object], str]] = [
    (["A", T0, -1.0, 11.0, 9.0, 10.5, 100], "bad_ohlc"),
    (["A", T0, 10.0, 11.0, 9.0, "x", 100], "bad_ohlc"),
    (["A", T0, 10.0, 9.5, 9.0, 10.5, 100], "bad_ohlc"),
    (["A", T0, 10.0, 11.0, 9.0, 10.5, -5], "bad_volume"),
    (["A", "yesterday", 10.0, 11.0, 9.0, 10.5, 100], "bad_ts"),
    (["A", -5, 10.0, 11.0, 9.0, 10.5, 100], "bad_ts"),
    (["bad symbol!", T0, 10.0, 11.0, 9.0, 10.5, 100], "bad_symbol"),
    (["A", T0, 10.0], BAD_FIELDS),
]


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return path


def test_each_bad_row_is_skipped_with_its_line_and_reason(tmp_path: Path) -> None:
    rows: list[list[object]] = []
    expected: dict[int, str] = {}
    for k, (row, reason) in enumerate(BAD_ROWS):
        rows.append([GOOD[0], T0 + 60_000 * (2 * k), *GOOD[2:]])
        rows.append(row)
        expected[2 * k + 3] = reason  # header is line 1, the good row before it line 2k + 2
    path = write_csv(tmp_path / "bars.csv", HEADER, rows)

    read = read_rows(path)

    assert isinstance(read.table, BarTable)
    assert len(read.table) == len(BAD_ROWS)
    got = {int(bad.where.rsplit(" ", 1)[1]): bad.reason for bad in read.bad}
    assert got == expected
    assert [bad.reason for bad in read.bad] == [reason for _, reason in BAD_ROWS], "in file order"
    assert all(bad.where.startswith(f"{path}, line ") and bad.detail for bad in read.bad)
    assert read.lines.tolist() == [2 * k + 2 for k in range(len(BAD_ROWS))]
    with pytest.raises(TableError, match=r"bars\.csv, line 17: 3 fields where the header has 7"):
        read_table(path)


def test_a_time_column_of_iso_times_flags_a_stray_epoch_number(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("symbol,time,price\nA,2024-11-25T16:00:00Z,1\nA,1732550400000,1\nA,noon,1\n")

    read = read_rows(path)

    assert isinstance(read.table, TradeTable)
    assert read.table.ts_ms.tolist() == [T0]
    assert [(bad.where, bad.reason) for bad in read.bad] == [
        (f"{path}, line 3", "bad_ts"),
        (f"{path}, line 4", "bad_ts"),
    ]
    assert "among ISO-8601 times" in read.bad[0].detail


def test_a_file_of_only_bad_rows_reads_as_empty_and_an_empty_file_still_fails(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "bad.csv", ["symbol", "ts", "price"], [["A", T0, -1.0], ["A", "x", 1.0]])
    read = read_rows(path)
    assert len(read.table) == 0 and len(read.bad) == 2
    with pytest.raises(TableError, match="holds no data rows"):
        read_rows(write_csv(tmp_path / "empty.csv", ["symbol", "ts", "price"], []))


def test_parquet_bad_rows_are_named_by_row(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "t.parquet"
    columns = {"symbol": ["A", "A", "B"], "ts": [T0, T0 + 1, T0 + 2], "price": [1.0, float("nan"), 2.0]}
    pq.write_table(pa.table(columns), path)

    read = read_rows(path)

    assert read.table.symbols.tolist() == ["A", "B"]
    assert [(bad.where, bad.reason) for bad in read.bad] == [(f"{path}, row 2", "bad_price")]
    assert read.lines.tolist() == [1, 3]


CELLS = {
    "ts": st.one_of(st.integers(T0, T0 + 10**6).map(str), st.sampled_from(["", "x", "1e400", "-1"])),
    "price": st.one_of(st.floats(0.01, 1e6).map(repr), st.sampled_from(["", "0", "-2", "nan", "inf", "abc"])),
    "size": st.one_of(st.integers(0, 10**6).map(str), st.sampled_from(["-1", "nan", "q"])),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries(CELLS), min_size=1, max_size=30))
def test_every_row_is_kept_or_reported_and_kept_rows_read_as_a_clean_file(
    tmp_path: Path, rows: list[dict[str, str]]
) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "symbol,ts,price,size\n" + "".join(f"S,{r['ts']},{r['price']},{r['size']}\n" for r in rows)
    )

    read = read_rows(path)

    bad_lines = {int(bad.where.rsplit(" ", 1)[1]) for bad in read.bad}
    assert len(bad_lines) == len(read.bad), "one report per bad row"
    assert len(read.table) + len(read.bad) == len(rows)
    assert bad_lines.isdisjoint(read.lines.tolist())
    good = [r for line, r in enumerate(rows, start=2) if line not in bad_lines]
    if good:
        clean = tmp_path / "clean.csv"
        clean.write_text(
            "symbol,ts,price,size\n" + "".join(f"S,{r['ts']},{r['price']},{r['size']}\n" for r in good)
        )
        again = read_table(clean)
        assert isinstance(again, TradeTable) and isinstance(read.table, TradeTable)
        assert np.array_equal(again.ts_ms, read.table.ts_ms)
        assert np.array_equal(again.price, read.table.price)
        assert np.array_equal(again.size, read.table.size)
