"""Read a CSV (optionally gzipped) or Parquet file of OHLCV bars or trades into a table.

Two entry points: :func:`read_table` (``bullflag replay``) refuses a file at its first bad row,
naming the file, line and column, so nothing bad is sent to the worker; :func:`read_rows`
(``bullflag scan``) skips bad rows instead and returns each with where it is and why, the reason
being the worker's dead-letter reason for the same fault. Columns are found by
:func:`consumer.sources.tables.detect_columns`, times in any common form become epoch ms.
"""

from __future__ import annotations

import csv
import functools
import gzip
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal

import numpy as np

from consumer.core.record_rules import MAX_TS_MS, MIN_TS_MS, SYMBOL_PATTERN, RejectReason
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

__all__ = ["BAD_FIELDS", "BadRow", "RowsRead", "TimeUnit", "read_rows", "read_table", "utc_ms"]

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

BAD_FIELDS: Final = "bad_fields"
"""Reason of a CSV line whose field count differs from the header's (no worker reason fits)."""


@dataclass(frozen=True, slots=True)
class BadRow:
    """A data row :func:`read_rows` skipped: ``where`` (file and line, or Parquet row), the
    ``reason`` code (a worker dead-letter reason, or :data:`BAD_FIELDS`) and a ``detail``."""

    where: str
    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class RowsRead:
    """What :func:`read_rows` read: the good rows as a table sorted by event time, the line (CSV)
    or 1-based row (Parquet) of each table row in ``lines`` int64[n], and the rows skipped."""

    table: BarTable | TradeTable
    lines: np.ndarray
    bad: list[BadRow]


@dataclass(frozen=True, slots=True)
class _RawTable:
    """A file's header and its columns as read, before conversion (CSV text or Arrow values)."""

    source: str
    names: list[str]
    columns: dict[str, Any] = field(repr=False)
    lines: list[int] | None = field(default=None, repr=False)
    bad: list[tuple[int, BadRow]] = field(default_factory=list, repr=False)

    def where(self, row: int) -> str:
        """Where data row ``row`` (0-based) lives, for error messages."""
        if self.lines is not None:
            return f"{self.source}, line {self.lines[row]}"
        return f"{self.source}, row {row + 1}"

    def line_numbers(self, n: int) -> np.ndarray:
        """int64[n]: the line (CSV) or 1-based row (Parquet) of each data row."""
        if self.lines is not None:
            return np.asarray(self.lines, dtype=np.int64)
        return np.arange(1, n + 1, dtype=np.int64)


class _Checks:
    """Where bad rows go: ``strict`` raises :class:`TableError` at the first one (as before any
    row is used), otherwise each bad row is remembered with its first reason and skipped."""

    def __init__(self, raw: _RawTable, strict: bool) -> None:
        self.raw = raw
        self.strict = strict
        self.found: dict[int, tuple[str, str]] = {}

    def flag(self, bad: np.ndarray, reason: str, message: Callable[[int], str]) -> None:
        """Report rows where ``bad`` holds; ``message(row)`` says what is wrong with one."""
        rows = np.flatnonzero(bad).tolist()
        if rows and self.strict:
            raise TableError(f"{self.raw.where(rows[0])}: {message(rows[0])}")
        for row in rows:
            if row not in self.found:
                self.found[row] = (reason, message(row))

    def bad_rows(self, n: int) -> list[BadRow]:
        """The rows flagged among ``n`` data rows and the lines the CSV reader left out, in file order."""
        lines = self.raw.line_numbers(n)
        flagged = [(int(lines[row]), BadRow(self.raw.where(row), *self.found[row])) for row in self.found]
        return [bad for _, bad in sorted([*self.raw.bad, *flagged], key=lambda item: item[0])]

    def good(self, n: int) -> np.ndarray:
        """bool[n]: rows nothing was flagged on."""
        keep = np.ones(n, dtype=bool)
        keep[list(self.found)] = False
        return keep


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
    return _read(Path(path), columns, symbol, time_unit, strict=True).table


def read_rows(
    path: str | os.PathLike[str],
    columns: ColumnNames = _DETECT_ALL,
    *,
    symbol: str | None = None,
    time_unit: TimeUnit = "auto",
) -> RowsRead:
    """:func:`read_table` that skips bad rows instead of refusing the file.

    The same checks apply; a row failing one is left out and returned in :attr:`RowsRead.bad`
    with the first reason it failed. File-level faults (unreadable, no header, no usable
    columns, no data rows at all) still raise :class:`TableError`. A file whose every row is
    bad gives an empty table.
    """
    return _read(Path(path), columns, symbol, time_unit, strict=False)


def _read(
    path: Path, columns: ColumnNames, symbol: str | None, time_unit: TimeUnit, *, strict: bool
) -> RowsRead:
    """Read, check and sort one file; ``strict`` raises at the first bad row."""
    raw = _read_raw(path, columns, strict)
    checks = _Checks(raw, strict)
    layout = detect_columns(raw.names, columns, raw.source)
    symbol_column = layout.columns["symbol"]
    ts_ms = _epoch_ms(raw, layout.column("time"), time_unit, checks)
    n = len(ts_ms)
    symbols = _symbols(raw, symbol_column, symbol, n, checks)
    if layout.kind == "bars":
        reasons = (RejectReason.BAD_OHLC,) * 4
        ohlc = [
            _numbers(raw, layout.column(role), checks, reason, positive=True)
            for role, reason in zip(BAR_PRICES, reasons, strict=True)
        ]
        volume = _optional_numbers(raw, layout.columns["volume"], n, checks, RejectReason.BAD_VOLUME)
        _check_ohlc(ohlc, layout, checks)
        table: BarTable | TradeTable = BarTable(symbols, ts_ms, np.column_stack([*ohlc, volume]))
    else:
        price = _numbers(raw, layout.column("price"), checks, RejectReason.BAD_PRICE, positive=True)
        size = _optional_numbers(raw, layout.columns["size"], n, checks, RejectReason.BAD_SIZE)
        table = TradeTable(symbols, ts_ms, price, size)
    if not n and not raw.bad:
        raise TableError(f"{raw.source}: the file holds no data rows.")
    keep = checks.good(n)
    if symbol_column is not None and symbol is not None:
        keep &= symbols == symbol
        if not keep.any() and not (symbols == symbol).any():
            raise TableError(f"{raw.source}: no rows of symbol {symbol!r} in column {symbol_column!r}.")
    rows = np.flatnonzero(keep)
    rows = rows[np.argsort(ts_ms[rows], kind="stable")]
    return RowsRead(_take(table, rows), raw.line_numbers(n)[rows], checks.bad_rows(n))


def _take(table: BarTable | TradeTable, rows: np.ndarray) -> BarTable | TradeTable:
    """The table's rows ``rows``, in that order."""
    if isinstance(table, BarTable):
        return BarTable(table.symbols[rows], table.ts_ms[rows], table.ohlcv[rows])
    return TradeTable(table.symbols[rows], table.ts_ms[rows], table.price[rows], table.size[rows])


def _read_raw(path: Path, given: ColumnNames, strict: bool) -> _RawTable:
    """Read ``path`` by its suffix (``.csv``, ``.tsv``, ``.txt``, each maybe ``.gz``; ``.parquet``)."""
    name = path.name.lower()
    compressed = name.endswith(".gz")
    suffix = Path(name.removesuffix(".gz")).suffix
    if not path.is_file():
        raise TableError(f"{path}: no such file.")
    if suffix in _CSV_SUFFIXES:
        return _read_csv(path, compressed, strict)
    if suffix in _PARQUET_SUFFIXES and not compressed:
        return _read_parquet(path, given)
    raise TableError(
        f"{path}: unsupported file type; give a .csv, .tsv or .txt file (optionally .gz) or a .parquet file."
    )


def _read_csv(path: Path, compressed: bool, strict: bool) -> _RawTable:
    """Read a delimited text file (delimiter sniffed among , ; tab |) into text columns.

    A line with another field count than the header is an error (``strict``) or skipped.
    """
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
    bad: list[tuple[int, BadRow]] = []
    for row, line in zip(rows, lines, strict=True):
        if len(row) != len(names):
            detail = f"{len(row)} fields where the header has {len(names)}; fix the line or the delimiter."
            if strict:
                raise TableError(f"{path}, line {line}: {detail}")
            bad.append((line, BadRow(f"{path}, line {line}", BAD_FIELDS, detail)))
    if bad:
        fits = [len(row) == len(names) for row in rows]
        rows = [row for row, ok in zip(rows, fits, strict=True) if ok]
        lines = [line for line, ok in zip(lines, fits, strict=True) if ok]
    columns = dict(zip(names, zip(*rows, strict=True), strict=True)) if rows else dict.fromkeys(names, ())
    return _RawTable(str(path), names, columns, lines, bad)


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


def _epoch_ms(raw: _RawTable, column: str, unit: TimeUnit, checks: _Checks) -> np.ndarray:
    """Event times of ``column`` as int64 epoch ms (epoch numbers, ISO-8601 text or datetimes)."""
    values = np.asarray(raw.columns[column])
    if values.dtype.kind == "M":
        ms = values.astype("datetime64[ms]")
        checks.flag(np.isnat(ms), RejectReason.BAD_TS, lambda row: f"column {column!r} has no time.")
        out = np.where(np.isnat(ms), np.datetime64(0, "ms"), ms).astype(np.int64)
    elif values.dtype.kind in "iu":
        out = _scale_epoch(column, values.astype(np.int64), unit, checks)
    else:
        out = _text_times(raw, column, values, unit, checks)
    checks.flag(
        (out < MIN_TS_MS) | (out > MAX_TS_MS),
        RejectReason.BAD_TS,
        lambda row: (
            f"column {column!r} value {_cell(values[row])} is outside 1970-9999 as epoch "
            "milliseconds; give --time-unit if the numbers are not in the unit guessed."
        ),
    )
    return out


def _text_times(
    raw: _RawTable, column: str, values: np.ndarray, unit: TimeUnit, checks: _Checks
) -> np.ndarray:
    """Times from text or floats: whole epoch numbers, fractional ones, else ISO-8601 strings.

    Per row, only when the column is not all numbers: a value that is neither a number nor
    ISO-8601 is bad, and so is an epoch number among ISO-8601 times (one format per column).
    """
    for dtype in (np.int64, np.float64):
        try:
            numbers = values.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            continue
        return _scale_epoch(column, numbers, unit, checks)
    n = len(values)
    out = np.zeros(n, dtype=np.int64)
    iso = np.zeros(n, dtype=bool)
    numeric = np.zeros(n, dtype=bool)
    for row, value in enumerate(values.tolist()):
        try:
            out[row] = utc_ms(datetime.fromisoformat(str(value).strip()))
            iso[row] = True
        except ValueError:
            numeric[row] = _is_number(value)
    checks.flag(
        ~iso & ~numeric,
        RejectReason.BAD_TS,
        lambda row: (
            f"column {column!r} has {_cell(values[row])}, which is neither an epoch number "
            "nor an ISO-8601 time; name the time column with --time-column."
        ),
    )
    if iso.any():
        checks.flag(
            numeric,
            RejectReason.BAD_TS,
            lambda row: (
                f"column {column!r} has the epoch number {_cell(values[row])} among ISO-8601 "
                "times; use one format in the column."
            ),
        )
    elif numeric.any():
        floats = np.array([float(v) if ok else 0.0 for v, ok in zip(values.tolist(), numeric, strict=True)])
        out[numeric] = _scale_epoch(column, floats[numeric], unit, checks, rows=np.flatnonzero(numeric))
    return out


def utc_ms(moment: datetime) -> int:
    """Epoch milliseconds of ``moment`` (floored); a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def _scale_epoch(
    column: str,
    numbers: np.ndarray,
    unit: TimeUnit,
    checks: _Checks,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """Epoch numbers in ``unit`` (``auto``: by the largest magnitude) as int64 milliseconds.

    ``rows`` are the data rows of ``numbers`` when they are a subset of the column.
    """
    if numbers.dtype.kind == "f" and not np.isfinite(numbers).all():
        bad = ~np.isfinite(numbers)
        where = np.zeros(len(checks.raw.columns[column]), dtype=bool)
        where[np.flatnonzero(bad) if rows is None else rows[bad]] = True
        values = np.asarray(checks.raw.columns[column])
        checks.flag(
            where, RejectReason.BAD_TS, lambda row: f"column {column!r} has {_cell(values[row])}, not a time."
        )
        numbers = np.where(bad, 0.0, numbers)
    if unit == "auto":
        largest = float(np.abs(numbers).max()) if len(numbers) else 0.0
        unit = next((name for limit, name in _AUTO_UNIT_LIMITS if largest < limit), "ns")
    if numbers.dtype.kind == "i":
        if unit == "s":
            return numbers * 1_000
        return numbers // round(1 / _EPOCH_MS_PER_UNIT[unit])
    return np.floor(np.round(numbers * _EPOCH_MS_PER_UNIT[unit], 3)).astype(np.int64)


def _symbols(raw: _RawTable, column: str | None, symbol: str | None, n: int, checks: _Checks) -> np.ndarray:
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
    bad = np.fromiter((SYMBOL_PATTERN.fullmatch(value) is None for value in values), bool, len(values))
    checks.flag(bad, RejectReason.BAD_SYMBOL, lambda row: _bad_symbol_text(values[row], f"column {column!r}"))
    return np.asarray(values, dtype=str)


def _bad_symbol_text(symbol: str, what: str) -> str:
    """What is wrong with a symbol the worker would dead-letter."""
    return f"{what}: symbol {symbol!r} is invalid; use 1-32 characters from [A-Za-z0-9._:/-]."


def _bad_symbol(symbol: str, where: str) -> TableError:
    """The error for a symbol the worker would dead-letter."""
    return TableError(_bad_symbol_text(symbol, where))


def _numbers(raw: _RawTable, column: str, checks: _Checks, reason: str, *, positive: bool) -> np.ndarray:
    """``column`` as finite float64, each > 0 (``positive``) or >= 0; bad cells flagged as ``reason``."""
    values = np.asarray(raw.columns[column])
    try:
        out = values.astype(np.float64)
    except (ValueError, TypeError):
        listed = values.tolist()
        text = np.fromiter((not _is_number(value) for value in listed), bool, len(listed))
        checks.flag(text, reason, lambda row: f"column {column!r} has {_cell(values[row])}, not a number.")
        out = np.array([np.nan if bad else float(v) for v, bad in zip(listed, text, strict=True)])
        out[text] = 1.0
    rule = "a finite number > 0" if positive else "a finite number >= 0"
    checks.flag(
        ~np.isfinite(out) | ((out <= 0) if positive else (out < 0)),
        reason,
        lambda row: f"column {column!r} has {_cell(values[row])}; expected {rule}.",
    )
    return out


def _optional_numbers(raw: _RawTable, column: str | None, n: int, checks: _Checks, reason: str) -> np.ndarray:
    """A volume or size column (>= 0), or zeros when the file has none."""
    return np.zeros(n) if column is None else _numbers(raw, column, checks, reason, positive=False)


def _is_number(value: object) -> bool:
    """Whether ``float(value)`` succeeds."""
    try:
        float(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def _check_ohlc(ohlc: list[np.ndarray], layout: ColumnLayout, checks: _Checks) -> None:
    """Flag bars whose high or low does not bound their open and close."""
    open_, high, low, close = ohlc
    for bad, role, rule in (
        (high < np.maximum(open_, close), "high", "below max(open, close)"),
        (low > np.minimum(open_, close), "low", "above min(open, close)"),
    ):
        checks.flag(
            bad,
            RejectReason.BAD_OHLC,
            functools.partial(_ohlc_text, ohlc, layout, role, rule),
        )


def _ohlc_text(ohlc: list[np.ndarray], layout: ColumnLayout, role: str, rule: str, row: int) -> str:
    """What is wrong with a bar whose ``role`` price breaks ``rule``."""
    values = ", ".join(
        f"{name}={float(column[row])!r}" for name, column in zip(BAR_PRICES, ohlc, strict=True)
    )
    return f"{role} (column {layout.column(role)!r}) is {rule} ({values}); fix the bar or name other columns."


def _cell(value: object) -> str:
    """A short repr of an offending cell for error messages."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."
