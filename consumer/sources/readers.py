"""Read a CSV (optionally gzipped) or Parquet file of OHLCV bars or trades into a table.

One entry point, :func:`read_table`: columns found by :func:`consumer.sources.tables.detect_columns`,
times in any common form converted to epoch milliseconds, every value checked so that a bad row
is reported with its file, line and column instead of being sent to the worker.
"""

from __future__ import annotations

import csv
import gzip
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal

import numpy as np

from consumer.core.record_rules import MAX_TS_MS, MIN_TS_MS, SYMBOL_PATTERN
from consumer.sources.tables import (
    BAR_PRICES,
    COLUMN_ALIASES,
    BarTable,
    ColumnError,
    ColumnLayout,
    ColumnNames,
    ParquetUnavailableError,
    TableError,
    TradeTable,
    detect_columns,
)

__all__ = ["TimeUnit", "read_table", "utc_ms"]

TimeUnit = Literal["auto", "s", "ms", "us", "ns"]

_EPOCH_MS_PER_UNIT: Final = {"s": 1_000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_AUTO_UNIT_LIMITS: Final[tuple[tuple[float, TimeUnit], ...]] = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_CSV_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
_CSV_DELIMITERS: Final = ",;\t|"
_SNIFF_CHARS: Final = 64 * 1024
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_DETECT_ALL: Final = ColumnNames()


@dataclass(frozen=True, slots=True)
class _RawTable:
    """A file's header and its columns as read, before conversion (CSV text or Arrow values)."""

    source: str
    names: list[str]
    columns: dict[str, Any] = field(repr=False)
    lines: list[int] | None = field(default=None, repr=False)

    def where(self, row: int) -> str:
        """Where data row ``row`` (0-based) lives, for error messages."""
        if self.lines is not None:
            return f"{self.source}, line {self.lines[row]}"
        return f"{self.source}, row {row + 1}"


def read_table(
    path: str | os.PathLike[str],
    columns: ColumnNames = _DETECT_ALL,
    *,
    symbol: str | None = None,
    time_unit: TimeUnit = "auto",
) -> BarTable | TradeTable:
    """Read a CSV (optionally gzipped) or Parquet file of OHLCV bars or trades, sorted by event time.

    Columns are found by :func:`detect_columns`. Times may be epoch numbers (``time_unit``; ``auto``
    picks seconds, ms, us or ns from their magnitude), ISO-8601 strings or dates (without an offset
    they are UTC) or Parquet timestamps. A file without a symbol column needs ``symbol``; with one,
    ``symbol`` keeps that symbol's rows only. Values are validated (prices > 0, sizes >= 0,
    ``low <= min(open, close)``, ``high >= max(open, close)``, symbols the worker accepts); a bad
    one raises :class:`TableError` naming the file, the line and the column.
    """
    path = Path(path)
    raw = _read_raw(path, columns)
    layout = detect_columns(raw.names, columns, raw.source)
    symbol_column = layout.columns["symbol"]
    ts_ms = _epoch_ms(raw, layout.column("time"), time_unit)
    symbols = _symbols(raw, symbol_column, symbol, len(ts_ms))
    if layout.kind == "bars":
        ohlc = [_numbers(raw, layout.column(role), positive=True) for role in BAR_PRICES]
        volume = _optional_numbers(raw, layout.columns["volume"], len(ts_ms))
        _check_ohlc(raw, ohlc, layout)
        table: BarTable | TradeTable = BarTable(symbols, ts_ms, np.column_stack([*ohlc, volume]))
    else:
        price = _numbers(raw, layout.column("price"), positive=True)
        table = TradeTable(symbols, ts_ms, price, _optional_numbers(raw, layout.columns["size"], len(ts_ms)))
    if symbol_column is not None and symbol is not None:
        table = _take(table, np.flatnonzero(symbols == symbol))
        if not len(table):
            raise TableError(f"{raw.source}: no rows of symbol {symbol!r} in column {symbol_column!r}.")
    if not len(table):
        raise TableError(f"{raw.source}: the file holds no data rows.")
    return _take(table, np.argsort(table.ts_ms, kind="stable"))


def _take(table: BarTable | TradeTable, rows: np.ndarray) -> BarTable | TradeTable:
    """The table's rows ``rows``, in that order."""
    if isinstance(table, BarTable):
        return BarTable(table.symbols[rows], table.ts_ms[rows], table.ohlcv[rows])
    return TradeTable(table.symbols[rows], table.ts_ms[rows], table.price[rows], table.size[rows])


def _read_raw(path: Path, given: ColumnNames) -> _RawTable:
    """Read ``path`` by its suffix (``.csv``, ``.tsv``, ``.txt``, each maybe ``.gz``; ``.parquet``)."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if not path.is_file():
        raise TableError(f"{path}: no such file.")
    if suffix in _CSV_SUFFIXES:
        return _read_csv(path, compressed)
    if suffix in _PARQUET_SUFFIXES and not compressed:
        return _read_parquet(path, given)
    raise TableError(
        f"{path}: unsupported file type; give a .csv, .tsv or .txt file (optionally .gz) or a .parquet file."
    )


def _read_csv(path: Path, compressed: bool) -> _RawTable:
    """Read a delimited text file (delimiter sniffed among , ; tab |) into text columns."""
    try:
        with _open_text(path, compressed) as handle:
            sample = handle.read(_SNIFF_CHARS)
            handle.seek(0)
            try:
                dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, _CSV_DELIMITERS)
            except csv.Error:
                dialect = csv.excel
            reader = csv.reader(handle, dialect)
            header = next(reader, None)
            rows: list[list[str]] = []
            lines: list[int] = []
            for row in reader:
                if row:
                    rows.append(row)
                    lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"{path}: cannot read it as CSV: {exc}") from exc
    if header is None:
        raise TableError(f"{path}: the file is empty; expected a header line of column names.")
    names = [name.strip() for name in header]
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(names):
            raise TableError(
                f"{path}, line {line}: {len(row)} fields where the header has {len(names)}; "
                "fix the line or the delimiter."
            )
    columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else dict.fromkeys(names, ())
    return _RawTable(str(path), names, columns, lines)


def _open_text(path: Path, compressed: bool) -> IO[str]:
    """Open a text file for the csv module, gunzipping on the fly; a UTF-8 BOM is skipped."""
    if compressed:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _read_parquet(path: Path, given: ColumnNames) -> _RawTable:
    """Read the columns a layout needs from a Parquet file (pyarrow required, loaded on demand)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ParquetUnavailableError(
            f"{path}: reading Parquet needs pyarrow, which is not installed; run "
            "`pip install pyarrow` or convert the file to CSV."
        ) from exc
    try:
        names = list(pq.read_schema(path).names)
        layout = detect_columns(names, given, str(path))
        wanted = [name for name in dict.fromkeys(layout.columns.values()) if name is not None]
        table = pq.read_table(path, columns=wanted)
    except (OSError, pa.ArrowException) as exc:
        raise TableError(f"{path}: cannot read it as Parquet: {exc}") from exc
    columns = {name: table.column(name).to_numpy(zero_copy_only=False) for name in wanted}
    return _RawTable(str(path), names, columns)


def _epoch_ms(raw: _RawTable, column: str, unit: TimeUnit) -> np.ndarray:
    """Event times of ``column`` as int64 epoch ms (epoch numbers, ISO-8601 text or datetimes)."""
    values = np.asarray(raw.columns[column])
    if values.dtype.kind == "M":
        ms = values.astype("datetime64[ms]")
        if np.isnat(ms).any():
            raise TableError(f"{raw.where(int(np.argmax(np.isnat(ms))))}: column {column!r} has no time.")
        out = ms.astype(np.int64)
    elif values.dtype.kind in "iu":
        out = _scale_epoch(raw, column, values.astype(np.int64), unit)
    else:
        out = _text_times(raw, column, values, unit)
    bad = (out < MIN_TS_MS) | (out > MAX_TS_MS)
    if bad.any():
        row = int(np.argmax(bad))
        raise TableError(
            f"{raw.where(row)}: column {column!r} value {_cell(values[row])} is outside 1970-9999 "
            "as epoch milliseconds; give --time-unit if the numbers are not in the unit guessed."
        )
    return out


def _text_times(raw: _RawTable, column: str, values: np.ndarray, unit: TimeUnit) -> np.ndarray:
    """Times from text or floats: whole epoch numbers, fractional ones, else ISO-8601 strings."""
    for dtype in (np.int64, np.float64):
        try:
            numbers = values.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            continue
        return _scale_epoch(raw, column, numbers, unit)
    out = np.empty(len(values), dtype=np.int64)
    numeric_row: int | None = None
    for row, value in enumerate(values.tolist()):
        try:
            out[row] = utc_ms(datetime.fromisoformat(str(value).strip()))
        except ValueError:
            if not _is_number(value):
                raise TableError(
                    f"{raw.where(row)}: column {column!r} has {_cell(value)}, which is neither an epoch "
                    "number nor an ISO-8601 time; name the time column with --time-column."
                ) from None
            numeric_row = row if numeric_row is None else numeric_row
    if numeric_row is not None:
        raise TableError(
            f"{raw.where(numeric_row)}: column {column!r} has the epoch number "
            f"{_cell(values[numeric_row])} among ISO-8601 times; use one format in the column."
        )
    return out


def utc_ms(moment: datetime) -> int:
    """Epoch milliseconds of ``moment`` (floored); a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def _scale_epoch(raw: _RawTable, column: str, numbers: np.ndarray, unit: TimeUnit) -> np.ndarray:
    """Epoch numbers in ``unit`` (``auto``: by the largest magnitude) as int64 milliseconds."""
    if numbers.dtype.kind == "f" and not np.isfinite(numbers).all():
        row = int(np.argmax(~np.isfinite(numbers)))
        raise TableError(f"{raw.where(row)}: column {column!r} has {_cell(numbers[row])}, not a time.")
    if unit == "auto":
        largest = float(np.abs(numbers).max()) if len(numbers) else 0.0
        unit = next((name for limit, name in _AUTO_UNIT_LIMITS if largest < limit), "ns")
    if numbers.dtype.kind == "i":
        if unit == "s":
            return numbers * 1_000
        return numbers // round(1 / _EPOCH_MS_PER_UNIT[unit])
    return np.floor(np.round(numbers * _EPOCH_MS_PER_UNIT[unit], 3)).astype(np.int64)


def _symbols(raw: _RawTable, column: str | None, symbol: str | None, n: int) -> np.ndarray:
    """The symbol of every row: from ``column``, else ``symbol``; each must be one the worker takes."""
    if column is None:
        if symbol is None:
            raise ColumnError(
                f"{raw.source}: no symbol column (looked for {', '.join(COLUMN_ALIASES['symbol'])}); "
                "give the symbol with --symbol or name the column with --symbol-column."
            )
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise _bad_symbol(symbol, f"{raw.source}: --symbol")
        return np.full(n, symbol)
    values = [str(value).strip() if value is not None else "" for value in raw.columns[column]]
    for row, value in enumerate(values):
        if not SYMBOL_PATTERN.fullmatch(value):
            raise _bad_symbol(value, f"{raw.where(row)}: column {column!r}")
    return np.asarray(values, dtype=str)


def _bad_symbol(symbol: str, where: str) -> TableError:
    """The error for a symbol the worker would dead-letter."""
    return TableError(f"{where}: symbol {symbol!r} is invalid; use 1-32 characters from [A-Za-z0-9._:/-].")


def _numbers(raw: _RawTable, column: str, *, positive: bool) -> np.ndarray:
    """``column`` as finite float64, each > 0 (``positive``) or >= 0."""
    values = np.asarray(raw.columns[column])
    try:
        out = values.astype(np.float64)
    except (ValueError, TypeError):
        row = next(row for row, value in enumerate(values.tolist()) if not _is_number(value))
        raise TableError(
            f"{raw.where(row)}: column {column!r} has {_cell(values[row])}, not a number."
        ) from None
    bad = ~np.isfinite(out) | ((out <= 0) if positive else (out < 0))
    if bad.any():
        row = int(np.argmax(bad))
        rule = "a finite number > 0" if positive else "a finite number >= 0"
        raise TableError(f"{raw.where(row)}: column {column!r} has {_cell(values[row])}; expected {rule}.")
    return out


def _optional_numbers(raw: _RawTable, column: str | None, n: int) -> np.ndarray:
    """A volume or size column (>= 0), or zeros when the file has none."""
    return np.zeros(n) if column is None else _numbers(raw, column, positive=False)


def _is_number(value: object) -> bool:
    """Whether ``float(value)`` succeeds."""
    try:
        float(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def _check_ohlc(raw: _RawTable, ohlc: list[np.ndarray], layout: ColumnLayout) -> None:
    """Refuse bars whose high or low does not bound their open and close."""
    open_, high, low, close = ohlc
    for bad, role, rule in (
        (high < np.maximum(open_, close), "high", "below max(open, close)"),
        (low > np.minimum(open_, close), "low", "above min(open, close)"),
    ):
        if bad.any():
            row = int(np.argmax(bad))
            values = ", ".join(
                f"{name}={float(column[row])!r}" for name, column in zip(BAR_PRICES, ohlc, strict=True)
            )
            raise TableError(
                f"{raw.where(row)}: {role} (column {layout.column(role)!r}) is {rule} ({values}); "
                "fix the bar or name other columns."
            )


def _cell(value: object) -> str:
    """A short repr of an offending cell for error messages."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."
