"""``bullflag replay``: produce ticks (or bars) to a Kafka topic from a file or a generated market.

Sources: a CSV or Parquet file of OHLCV bars or of trades (columns found by name, or named with
flags), or :func:`synthetic_market`. In ``ticks`` mode OHLCV bars become trades through
:func:`bars_to_ticks`, a seeded, plausible path inside each bar; in ``bars`` mode bars are sent as
they are. Records are keyed by symbol and sent in event-time order, as fast as possible or at a
multiple of real time measured by event time.

The data work is done by pure functions (:func:`read_table`, :func:`bars_to_ticks`,
:func:`bars_to_trades`, :func:`synthetic_market`, :func:`tick_records`, :func:`bar_records`) that
the demo and the benchmarks reuse; :func:`produce_records` is the thin async shell that sends.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gzip
import itertools
import math
import os
import re
import sys
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, Final, Literal

import numpy as np
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from tqdm import tqdm

from bullflag_model.features import CLOSE, OPEN, SEQ_LEN, VOLUME
from bullflag_model.intervals import IntervalError, format_interval, parse_interval
from bullflag_model.synthetic import HEADS, KINDS, GeneratorParams, generate_windows
from consumer.config import env_name
from consumer.core.ticks import MAX_TS_MS, MIN_TS_MS, SYMBOL_PATTERN
from consumer.kafka.topics import TopicError, TopicSpec, ensure_topics
from consumer.validators import finite_number, integer_at_least, probability

__all__ = [
    "COLUMN_ALIASES",
    "DEFAULT_INTERMEDIATE_TICKS",
    "DEFAULT_START_MS",
    "BarTable",
    "ColumnError",
    "ColumnLayout",
    "ColumnNames",
    "ParquetUnavailableError",
    "PlantedWindow",
    "ProduceStats",
    "Record",
    "ReplayError",
    "SyntheticMarket",
    "TableError",
    "Ticks",
    "TradeTable",
    "bar_records",
    "bars_to_ticks",
    "bars_to_trades",
    "detect_columns",
    "infer_interval_ms",
    "produce_records",
    "read_table",
    "synthetic_market",
    "tick_records",
]

Record = tuple[bytes, bytes, int]
"""One Kafka record to send: key, value and timestamp (event time, epoch ms)."""

TimeUnit = Literal["auto", "s", "ms", "us", "ns"]

DEFAULT_START_MS: Final = 1_732_550_400_000
"""First bar of a generated market: 2024-11-25T16:00:00Z."""

DEFAULT_INTERMEDIATE_TICKS: Final = (1, 6)
"""Inclusive range of ticks per bar besides open, high, low and close."""

COLUMN_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "symbol": ("symbol", "ticker", "sym", "instrument"),
    "time": ("timestamp", "ts", "datetime", "time", "date", "open_time", "bar_start", "t"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "price": ("price", "px", "trade_price", "last", "p"),
    "size": ("size", "qty", "quantity", "amount", "volume", "shares", "s"),
}
"""Column names recognised per role, in order of preference, compared after :func:`_normalise`."""

_BAR_PRICES: Final = ("open", "high", "low", "close")
_EPOCH_MS_PER_UNIT: Final = {"s": 1_000.0, "ms": 1.0, "us": 1e-3, "ns": 1e-6}
_AUTO_UNIT_LIMITS: Final = ((1e11, "s"), (1e14, "ms"), (1e17, "us"))
_CSV_SUFFIXES: Final = frozenset({".csv", ".tsv", ".txt"})
_PARQUET_SUFFIXES: Final = frozenset({".parquet", ".pq"})
_CSV_DELIMITERS: Final = ",;\t|"
_SNIFF_CHARS: Final = 64 * 1024
_EXACT_INTEGER_LIMIT: Final = 2.0**53
_NOISE_FRACTION: Final = 0.25
_SETTLE_EVERY: Final = 5_000
_SETTLE_PAUSE_S: Final = 0.05
_MAX_BATCH_BYTES: Final = 256 * 1024
_MARKET_STREAM: Final = 0x6D6B74
_MAD_TO_SIGMA: Final = 1.4826
_MARKET_PRICE_RANGE: Final = (5.0, 500.0)
_MARKET_SIGMA_RANGE: Final = (0.0015, 0.006)
_MARKET_VOLUME_RANGE: Final = (1e3, 1e5)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


class ReplayError(ValueError):
    """The replay cannot run as asked; the message says what to change."""


class TableError(ReplayError):
    """An input file cannot be read or holds unusable data; the message names the file."""


class ColumnError(TableError):
    """The needed columns cannot be found in an input file."""


class ParquetUnavailableError(TableError):
    """A Parquet file was given but pyarrow is not installed."""


@dataclass(frozen=True, slots=True)
class ColumnNames:
    """Column names given by the user per role; ``None`` lets :func:`detect_columns` find one."""

    symbol: str | None = None
    time: str | None = None
    open: str | None = None
    high: str | None = None
    low: str | None = None
    close: str | None = None
    volume: str | None = None
    price: str | None = None
    size: str | None = None


@dataclass(frozen=True, slots=True)
class ColumnLayout:
    """What a file holds (``bars`` or ``trades``) and the column used per role (``None``: absent).

    Roles: ``symbol``, ``time`` and, for bars, ``open``/``high``/``low``/``close``/``volume``, for
    trades ``price``/``size``. Only ``symbol``, ``volume`` and ``size`` may be absent.
    """

    kind: Literal["bars", "trades"]
    columns: dict[str, str | None]

    def column(self, role: str) -> str:
        """The column of a role this layout has (``time``, the prices); raises if it has none."""
        name = self.columns.get(role)
        if name is None:
            raise ColumnError(f"This {self.kind} layout has no {role} column.")
        return name


@dataclass(frozen=True, slots=True)
class BarTable:
    """OHLCV bars sorted by event time: ``symbols`` str[n], ``ts_ms`` int64[n] (bar start),
    ``ohlcv`` float64[n, 5] (open, high, low, close, volume)."""

    symbols: np.ndarray
    ts_ms: np.ndarray
    ohlcv: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True, slots=True)
class TradeTable:
    """Trades sorted by event time: ``symbols`` str[n], ``ts_ms`` int64[n], ``price`` and
    ``size`` float64[n]."""

    symbols: np.ndarray
    ts_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True, slots=True)
class Ticks:
    """The ticks of one symbol's bars, in bar order: ``ts_ms`` int64[m], ``price`` and ``size``
    float64[m], ``bar`` int64[m] (index of the bar each tick was drawn for)."""

    ts_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray
    bar: np.ndarray

    def __len__(self) -> int:
        return len(self.ts_ms)


@dataclass(frozen=True, slots=True)
class PlantedWindow:
    """One generated window inside a market series: bars ``[first_bar, last_bar]`` of ``symbol``.

    ``kind`` is the generator's window kind; ``heads`` names the labels that hold at ``last_bar``
    (e.g. ``("flag", "breakout")``), judged on the 200 bars ending there.
    """

    symbol: str
    kind: str
    first_bar: int
    last_bar: int
    heads: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SyntheticMarket:
    """A generated market: ``bars`` float64[N, B, 5] of ``symbols`` at the common bar starts
    ``ts_ms`` int64[B], and the windows it was built from (``windows``)."""

    symbols: tuple[str, ...]
    ts_ms: np.ndarray
    bars: np.ndarray
    interval_ms: int
    windows: tuple[PlantedWindow, ...]

    def table(self) -> BarTable:
        """All bars as one table in event-time order (symbols in order within a bar start)."""
        n, b, _ = self.bars.shape
        return BarTable(
            symbols=np.tile(np.asarray(self.symbols, dtype=str), b),
            ts_ms=np.repeat(self.ts_ms, n),
            ohlcv=self.bars.transpose(1, 0, 2).reshape(n * b, 5),
        )


@dataclass(frozen=True, slots=True)
class ProduceStats:
    """What :func:`produce_records` sent: record count, wall seconds, first and last event time."""

    records: int
    seconds: float
    first_ts_ms: int | None
    last_ts_ms: int | None


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


def _normalise(name: str) -> str:
    """Compare column names case-insensitively, with spaces and hyphens as underscores."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _find_column(names: Sequence[str], wanted: str) -> str | None:
    """The column matching ``wanted`` exactly, else after :func:`_normalise`; ``None`` if none."""
    if wanted in names:
        return wanted
    target = _normalise(wanted)
    return next((name for name in names if _normalise(name) == target), None)


def detect_columns(
    names: Sequence[str], given: ColumnNames = ColumnNames(), source: str = "table"
) -> ColumnLayout:
    """Decide whether columns ``names`` hold bars or trades and pick the column of each role.

    Columns named in ``given`` must exist; other roles are matched against
    :data:`COLUMN_ALIASES`. Bars need open, high, low and close; trades need price. Raises
    :class:`ColumnError` naming ``source`` and the flag to use when a column is missing.
    """
    chosen: dict[str, str | None] = {}
    for role, aliases in COLUMN_ALIASES.items():
        explicit = getattr(given, role)
        if explicit is not None:
            found = _find_column(names, explicit)
            if found is None:
                raise ColumnError(
                    f"{source}: no column {explicit!r} (--{role}-column); its columns are {_listing(names)}."
                )
            chosen[role] = found
        else:
            chosen[role] = next(
                (hit for alias in aliases if (hit := _find_column(names, alias)) is not None), None
            )
    named_bar = any(getattr(given, role) is not None for role in (*_BAR_PRICES, "volume"))
    named_trade = given.price is not None or given.size is not None
    if named_bar and named_trade:
        raise ColumnError(
            f"{source}: both bar columns (--open/--high/--low/--close/--volume-column) and trade "
            "columns (--price/--size-column) were named; name the columns of one layout only."
        )
    if all(chosen[role] is not None for role in _BAR_PRICES) and not named_trade:
        kind: Literal["bars", "trades"] = "bars"
        roles = ("symbol", "time", *_BAR_PRICES, "volume")
    elif chosen["price"] is not None and not named_bar:
        kind = "trades"
        roles = ("symbol", "time", "price", "size")
    else:
        raise ColumnError(
            f"{source}: cannot tell bars from trades: bars need open, high, low and close columns, "
            f"trades a price column; its columns are {_listing(names)}. Name them with "
            "--open-column/--high-column/--low-column/--close-column or --price-column."
        )
    if chosen["time"] is None:
        raise ColumnError(
            f"{source}: no time column (looked for {', '.join(COLUMN_ALIASES['time'])}); its columns "
            f"are {_listing(names)}. Name it with --time-column."
        )
    return ColumnLayout(kind=kind, columns={role: chosen[role] for role in roles})


def _listing(names: Sequence[str]) -> str:
    """Column names for an error message."""
    return ", ".join(repr(name) for name in names) if names else "(none)"


def read_table(
    path: str | os.PathLike[str],
    columns: ColumnNames = ColumnNames(),
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
        ohlc = [_numbers(raw, layout.column(role), positive=True) for role in _BAR_PRICES]
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
            out[row] = _utc_ms(datetime.fromisoformat(str(value).strip()))
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


def _utc_ms(moment: datetime) -> int:
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
                f"{name}={float(column[row])!r}" for name, column in zip(_BAR_PRICES, ohlc, strict=True)
            )
            raise TableError(
                f"{raw.where(row)}: {role} (column {layout.column(role)!r}) is {rule} ({values}); "
                "fix the bar or name other columns."
            )


def _cell(value: object) -> str:
    """A short repr of an offending cell for error messages."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= 60 else text[:57] + "..."


def infer_interval_ms(symbols: np.ndarray, ts_ms: np.ndarray) -> int | None:
    """The most common positive step between a symbol's consecutive bars; ``None`` if none exists."""
    _, inverse = np.unique(symbols, return_inverse=True)
    order = np.lexsort((ts_ms, inverse))
    steps = np.diff(ts_ms[order])
    same = inverse[order][1:] == inverse[order][:-1]
    steps = steps[same & (steps > 0)]
    if not steps.size:
        return None
    values, counts = np.unique(steps, return_counts=True)
    return int(values[np.argmax(counts)])


def bars_to_ticks(
    bars: np.ndarray,
    ts_ms: np.ndarray,
    symbol: str,
    seed: int,
    *,
    interval_ms: int,
    intermediate: tuple[int, int] = DEFAULT_INTERMEDIATE_TICKS,
) -> Ticks:
    """A plausible trade path inside each OHLCV bar [n, 5] starting at ``ts_ms`` [n].

    Per bar: the open trades first and the close last; the high and the low are both touched, at
    two distinct inner ticks whose order is a coin flip; ``intermediate`` (inclusive range) more
    ticks follow the straight path between those anchors plus noise, kept within [low, high].
    Timestamps are non-decreasing in ``[ts, ts + interval_ms)``, strictly increasing when the bar
    has at least as many milliseconds as ticks (fewer ticks are drawn for shorter bars, at least
    4). Sizes sum to the bar's volume: whole volumes split into whole sizes (each at least 1 when
    the volume allows), fractional ones into fractions. Deterministic from (seed, symbol, inputs).
    """
    bars = np.asarray(bars, dtype=np.float64).reshape(-1, 5)
    starts = np.asarray(ts_ms, dtype=np.int64).reshape(-1)
    lo, hi = intermediate
    if len(starts) != len(bars):
        raise ValueError(f"bars has {len(bars)} rows but ts_ms has {len(starts)}; give one start per bar.")
    if interval_ms < 1 or not 0 <= lo <= hi or seed < 0:
        raise ValueError(
            f"need interval_ms >= 1, 0 <= intermediate[0] <= intermediate[1] and seed >= 0; "
            f"got {interval_ms}, {intermediate}, {seed}."
        )
    n = len(bars)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(symbol.encode())]))
    count = np.minimum(4 + rng.integers(lo, hi + 1, n), max(4, interval_ms))
    width = int(count.max(initial=4))
    j = np.arange(width)[None, :]
    valid = j < count[:, None]
    last = count - 1
    first_extreme = rng.integers(1, last)
    other = rng.integers(1, last - 1)
    other = other + (other >= first_extreme)
    first, second = np.minimum(first_extreme, other), np.maximum(first_extreme, other)
    open_, high, low, close, volume = bars.T
    high_first = rng.random(n) < 0.5
    p_first = np.where(high_first, high, low)
    p_second = np.where(high_first, low, high)
    price = _inner_path(rng, j, (first, second, last), (open_, p_first, p_second, close), (low, high))
    bounds = (np.arange(width + 1)[None, :] * interval_ms) // count[:, None]
    span = np.maximum(np.diff(bounds, axis=1), 1)
    offset = bounds[:, :-1] + np.floor(rng.random((n, width)) * span).astype(np.int64)
    size = _split_volume(rng, volume, count, width)
    return Ticks(
        ts_ms=(starts[:, None] + offset)[valid],
        price=price[valid],
        size=size[valid],
        bar=np.repeat(np.arange(n, dtype=np.int64), count),
    )


def _inner_path(
    rng: np.random.Generator,
    j: np.ndarray,
    anchors: tuple[np.ndarray, np.ndarray, np.ndarray],
    prices: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    bounds: tuple[np.ndarray, np.ndarray],
) -> np.ndarray:
    """Prices [n, width]: anchors exact at 0, ``first``, ``second``, ``last``; noisy lines between.

    The noise is normal with sd ``_NOISE_FRACTION`` of the bar's range, clipped into [low, high].
    """
    first, second, last = (a[:, None] for a in anchors)
    p0, p1, p2, p3 = (p[:, None] for p in prices)
    low, high = (b[:, None] for b in bounds)
    x0 = np.where(j <= first, 0, np.where(j <= second, first, second))
    x1 = np.where(j <= first, first, np.where(j <= second, second, last))
    y0 = np.where(j <= first, p0, np.where(j <= second, p1, p2))
    y1 = np.where(j <= first, p1, np.where(j <= second, p2, p3))
    line = y0 + (y1 - y0) * (j - x0) / np.maximum(x1 - x0, 1)
    noisy = np.clip(line + rng.normal(0.0, _NOISE_FRACTION, line.shape) * (high - low), low, high)
    return np.select([j == 0, j == first, j == second, j == last], [p0, p1, p2, p3], noisy)


def _split_volume(rng: np.random.Generator, volume: np.ndarray, count: np.ndarray, width: int) -> np.ndarray:
    """Sizes [n, width] summing per bar to ``volume`` over its first ``count`` ticks, 0 beyond.

    Weights are Dirichlet(1). Whole volumes (below 2**53) are split by a multinomial draw after
    one unit per tick when the volume covers it; others as weighted fractions, the last tick
    taking the remainder.
    """
    n = len(volume)
    size = np.zeros((n, width))
    whole = (volume == np.floor(volume)) & (volume < _EXACT_INTEGER_LIMIT)
    for k in np.unique(count).tolist():
        rows = np.flatnonzero(count == k)
        weights = rng.exponential(1.0, (len(rows), k)) + 1e-12
        weights /= weights.sum(axis=1, keepdims=True)
        v = volume[rows]
        floor = np.where(whole[rows] & (v >= k), 1, 0)
        rest = np.where(whole[rows], v - floor * k, 0).astype(np.int64)
        units = rng.multinomial(rest, weights) + floor[:, None]
        parts = weights * v[:, None]
        parts[:, -1] = np.maximum(v - parts[:, :-1].sum(axis=1), 0.0)
        size[rows, :k] = np.where(whole[rows, None], units, parts)
    return size


def bars_to_trades(
    table: BarTable,
    seed: int,
    *,
    interval_ms: int,
    intermediate: tuple[int, int] = DEFAULT_INTERMEDIATE_TICKS,
) -> TradeTable:
    """:func:`bars_to_ticks` for every symbol of ``table``, merged into one event-time order.

    A symbol's ticks depend only on its own bars and the seed; equal times keep the symbols'
    sorted order and each bar's tick order.
    """
    names, inverse = np.unique(table.symbols, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    groups = np.split(order, np.searchsorted(inverse[order], np.arange(1, len(names)))) if len(names) else []
    parts = [
        bars_to_ticks(
            table.ohlcv[rows],
            table.ts_ms[rows],
            name,
            seed,
            interval_ms=interval_ms,
            intermediate=intermediate,
        )
        for name, rows in zip(names.tolist(), groups, strict=True)
    ]
    owners = np.repeat(np.arange(len(names)), [len(ticks) for ticks in parts])
    ts = np.concatenate([np.zeros(0, np.int64), *(t.ts_ms for t in parts)])
    merged = np.argsort(ts, kind="stable")
    return TradeTable(
        symbols=names[owners[merged]],
        ts_ms=ts[merged],
        price=np.concatenate([np.zeros(0), *(t.price for t in parts)])[merged],
        size=np.concatenate([np.zeros(0), *(t.size for t in parts)])[merged],
    )


def synthetic_market(
    symbols: int,
    bars: int,
    seed: int,
    interval_ms: int = 60_000,
    start_ms: int = DEFAULT_START_MS,
    flag_fraction: float = 0.3,
) -> SyntheticMarket:
    """A deterministic market of ``symbols`` series of ``bars`` contiguous bars each.

    Each series chains generated 200-bar windows (``flag_fraction`` of them bull flags at every
    phase, the rest random walks and look-alike patterns), each window's log prices shifted to
    start at the previous close and scaled to the symbol's volatility, its volume scaled to the
    symbol's level and rounded to whole shares. The series ends on a window boundary, so the
    windows listed in ``windows`` align with the model's 200-bar view at their last bar.
    """
    if symbols < 1 or bars < 1 or interval_ms < 1 or not 0.0 <= flag_fraction <= 1.0:
        raise ValueError(
            f"need symbols >= 1, bars >= 1, interval_ms >= 1 and flag_fraction in [0, 1]; got "
            f"{symbols}, {bars}, {interval_ms}, {flag_fraction}."
        )
    per_symbol = math.ceil(bars / SEQ_LEN)
    params = GeneratorParams(positive_fraction=flag_fraction, gap_probability=0.0)
    batch = generate_windows(symbols * per_symbol, seed=seed, params=params)
    windows = batch.bars.reshape(symbols, per_symbol, SEQ_LEN, 5)
    rng = np.random.default_rng([seed, _MARKET_STREAM])
    level = np.log(_log_uniform(rng, _MARKET_PRICE_RANGE, symbols))
    sigma = _log_uniform(rng, _MARKET_SIGMA_RANGE, symbols)
    base_volume = _log_uniform(rng, _MARKET_VOLUME_RANGE, symbols)

    logs = np.log(windows[..., :4])
    rel = logs - logs[..., :1, OPEN : OPEN + 1]
    step = np.abs(np.diff(logs[..., CLOSE], axis=-1))
    window_sigma = np.maximum(np.median(step, axis=-1) * _MAD_TO_SIGMA, 1e-12)
    rel *= (sigma[:, None] / window_sigma)[..., None, None]
    carried = np.cumsum(rel[..., -1, CLOSE], axis=1) - rel[..., -1, CLOSE]
    prices = np.exp(level[:, None, None, None] + carried[..., None, None] + rel)
    volume = windows[..., VOLUME]
    median_volume = np.median(np.where(volume > 0, volume, np.nan), axis=-1)
    scale = base_volume[:, None] / np.where(np.isfinite(median_volume), median_volume, 1.0)
    volume = np.rint(volume * scale[..., None])

    series = np.concatenate([prices, volume[..., None]], axis=-1).reshape(symbols, per_symbol * SEQ_LEN, 5)
    skipped = per_symbol * SEQ_LEN - bars
    names = tuple(f"SYN{i:0{max(3, len(str(symbols - 1)))}d}" for i in range(symbols))
    return SyntheticMarket(
        symbols=names,
        ts_ms=start_ms + np.arange(bars, dtype=np.int64) * interval_ms,
        bars=np.ascontiguousarray(series[:, skipped:]),
        interval_ms=interval_ms,
        windows=_planted(names, batch.kind, batch.labels, per_symbol, skipped),
    )


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    """[n] floats log-uniform in ``bounds``."""
    return np.exp(rng.uniform(math.log(bounds[0]), math.log(bounds[1]), n))


def _planted(
    names: tuple[str, ...], kind: np.ndarray, labels: np.ndarray, per_symbol: int, skipped: int
) -> tuple[PlantedWindow, ...]:
    """The windows whose last bar survives the slice to the requested length."""
    out = []
    for index, (k, row) in enumerate(zip(kind.tolist(), labels.tolist(), strict=True)):
        symbol, position = divmod(index, per_symbol)
        last = (position + 1) * SEQ_LEN - 1 - skipped
        if last < 0:
            continue
        heads = tuple(head for head, value in zip(HEADS, row, strict=True) if value)
        out.append(PlantedWindow(names[symbol], KINDS[k], max(last - SEQ_LEN + 1, 0), last, heads))
    return tuple(out)


def _number(value: float) -> int | float:
    """A whole float as an int (``100`` rather than ``100.0`` on the wire)."""
    return int(value) if value.is_integer() else value


def tick_records(trades: TradeTable) -> Iterator[Record]:
    """Tick records ``{"symbol", "ts", "price", "size"}`` keyed by symbol, in table order."""
    keys = {name: name.encode() for name in np.unique(trades.symbols).tolist()}
    rows = zip(
        trades.symbols.tolist(),
        trades.ts_ms.tolist(),
        trades.price.tolist(),
        trades.size.tolist(),
        strict=True,
    )
    for symbol, ts, price, size in rows:
        value = {"symbol": symbol, "ts": ts, "price": price, "size": _number(size)}
        yield keys[symbol], orjson.dumps(value), ts


def bar_records(bars: BarTable) -> Iterator[Record]:
    """Bar records ``{"symbol", "ts", "open", "high", "low", "close", "volume"}`` keyed by symbol."""
    keys = {name: name.encode() for name in np.unique(bars.symbols).tolist()}
    for symbol, ts, (o, h, lo, c, v) in zip(
        bars.symbols.tolist(), bars.ts_ms.tolist(), bars.ohlcv.tolist(), strict=True
    ):
        value = {
            "symbol": symbol,
            "ts": ts,
            "open": o,
            "high": h,
            "low": lo,
            "close": c,
            "volume": _number(v),
        }
        yield keys[symbol], orjson.dumps(value), ts


async def produce_records(
    bootstrap: str,
    topic: str,
    records: Iterable[Record],
    *,
    speed: float = 0.0,
    total: int | None = None,
    linger_ms: int = 20,
    progress: bool | None = False,
    **producer_settings: Any,
) -> ProduceStats:
    """Send ``records`` (key, value, event time ms) to ``topic`` in order; return what was sent.

    ``speed`` 0 sends as fast as the client can; ``speed`` s > 0 sends each record when
    (its event time - the first one's) / s has passed on the wall clock. Sends are never awaited
    one by one: once 10,000 deliveries are outstanding the oldest 5,000 are awaited, and all of
    them before each pause of 50 ms or more, so a failed delivery raises
    :class:`aiokafka.errors.KafkaError` soon after. ``acks="all"``, no idempotence (the embedded
    broker lacks it) and 256 KiB batches unless ``producer_settings`` say otherwise.
    ``progress``: a tqdm bar on stderr (``None``: only on a terminal).
    """
    if not (math.isfinite(speed) and speed >= 0):
        raise ValueError(f"speed must be a finite number >= 0 (0: as fast as possible), not {speed}.")
    settings = {
        "acks": "all",
        "enable_idempotence": False,
        "max_batch_size": _MAX_BATCH_BYTES,
        "linger_ms": linger_ms,
        **producer_settings,
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **settings)
    bar = tqdm(
        total=total,
        unit=" rec",
        unit_scale=True,
        desc=f"replay -> {topic}",
        disable=None if progress is None else not progress,
        file=sys.stderr,
    )
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    first_ts: int | None = None
    last_ts: int | None = None
    sent = 0
    unsettled: list[asyncio.Future[Any]] = []
    try:
        await producer.start()
        begin = loop.time()
        for key, value, ts in records:
            if first_ts is None:
                first_ts = ts
            due = begin + (ts - first_ts) / 1000.0 / speed if speed > 0 else begin
            if due - loop.time() >= _SETTLE_PAUSE_S:
                await _settle(unsettled, bar)
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            unsettled.append(await producer.send(topic, value=value, key=key, timestamp_ms=ts))
            last_ts = ts
            sent += 1
            if len(unsettled) >= 2 * _SETTLE_EVERY:
                await _settle(unsettled, bar, keep=_SETTLE_EVERY)
        await _settle(unsettled, bar)
    finally:
        bar.close()
        await producer.stop()
        await asyncio.gather(*unsettled, return_exceptions=True)
    return ProduceStats(sent, time.monotonic() - started, first_ts, last_ts)


async def _settle(unsettled: list[asyncio.Future[Any]], bar: tqdm, keep: int = 0) -> None:
    """Wait for all but the newest ``keep`` deliveries and drop them from ``unsettled``.

    Every awaited delivery finishes before the first failure among them is raised.
    """
    count = len(unsettled) - keep
    if count <= 0:
        return
    done = unsettled[:count]
    del unsettled[:count]
    results = await asyncio.gather(*done, return_exceptions=True)
    bar.update(count)
    failure = next((result for result in results if isinstance(result, BaseException)), None)
    if failure is not None:
        raise failure


def _speed(text: str) -> float:
    """argparse type: a speed factor, finite and >= 0."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0 (0: as fast as possible)")
    return value


def _interval_ms(text: str) -> int:
    """argparse type: a bar interval such as ``1m`` in milliseconds."""
    try:
        return parse_interval(text)
    except IntervalError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _start_ms(text: str) -> int:
    """argparse type: epoch milliseconds or an ISO-8601 time (UTC without an offset)."""
    if re.fullmatch(r"\d+", text.strip()):
        return int(text)
    try:
        return _utc_ms(datetime.fromisoformat(text.strip()))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch milliseconds nor an ISO-8601 time"
        ) from None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one ``bullflag replay`` run sends: the records, how many, and a line describing them."""

    records: Iterator[Record]
    total: int
    summary: str


def _column_names(args: argparse.Namespace) -> ColumnNames:
    """The ``--*-column`` flags as a :class:`ColumnNames`."""
    return ColumnNames(**{role: getattr(args, f"{role}_column") for role in COLUMN_ALIASES})


def _plan(args: argparse.Namespace) -> _Plan:
    """Load the source named by ``args`` and turn it into the records to send."""
    if (args.path is None) != bool(args.generate):
        raise ReplayError("give either a file to replay or --generate (exactly one of them).")
    interval: int | None = args.bar_interval
    if args.generate:
        market = synthetic_market(
            args.symbols, args.bars, args.seed, interval or 60_000, args.start, args.flag_fraction
        )
        table: BarTable | TradeTable = market.table()
        interval = market.interval_ms
        source = f"a generated market (seed {args.seed})"
    else:
        table = read_table(args.path, _column_names(args), symbol=args.symbol, time_unit=args.time_unit)
        source = str(args.path)
    if args.input == "bars":
        if isinstance(table, TradeTable):
            raise ReplayError(f"{source} holds trades, but --input bars sends OHLCV bars; drop --input bars.")
        records, total, what = bar_records(table), len(table), "bars"
    elif isinstance(table, BarTable):
        interval = interval or infer_interval_ms(table.symbols, table.ts_ms)
        if interval is None:
            raise ReplayError(
                f"{source}: cannot infer the bar length (no symbol has two bars); give --bar-interval."
            )
        trades = bars_to_trades(table, args.seed, interval_ms=interval)
        records, total = tick_records(trades), len(trades)
        what = f"ticks drawn from {len(table)} bars of {format_interval(interval)}"
    else:
        records, total, what = tick_records(table), len(table), "trades"
    if args.limit is not None:
        records, total = itertools.islice(records, args.limit), min(total, args.limit)
    summary = f"{total} {what} of {len(np.unique(table.symbols))} symbols from {source}"
    return _Plan(records, total, summary)


async def _replay(args: argparse.Namespace, bootstrap: str, topic: TopicSpec, plan: _Plan) -> ProduceStats:
    """Create the topic when asked, then produce the plan's records."""
    if args.create_topic:
        await ensure_topics(bootstrap, [topic], client_id=args.client_id)
    return await produce_records(
        bootstrap,
        topic.name,
        plan.records,
        speed=args.speed,
        total=plan.total,
        linger_ms=args.linger_ms,
        progress=args.progress,
        client_id=args.client_id,
    )


def run(args: argparse.Namespace) -> int:
    """Load the source, produce it, and print what was sent; exit 2 on bad input, 1 on Kafka errors."""
    bootstrap = args.bootstrap_servers or os.environ.get(env_name("bootstrap_servers"), "localhost:9092")
    name = args.topic or os.environ.get(env_name("ticks_topic"), "ticks")
    try:
        topic = TopicSpec(name, args.partitions)
        plan = _plan(args)
    except ValueError as exc:
        print(f"bullflag replay: {exc}", file=sys.stderr)
        return 2
    pace = "as fast as possible" if args.speed == 0 else f"at {args.speed:g}x real time"
    print(f"replaying {plan.summary} to topic {name!r} on {bootstrap}, {pace}", flush=True)
    try:
        stats = asyncio.run(_replay(args, bootstrap, topic, plan))
    except (KafkaError, TopicError) as exc:
        print(
            f"bullflag replay: producing to {name!r} on {bootstrap} failed: {exc!r}; check that the "
            "broker is reachable (`bullflag broker` runs one locally).",
            file=sys.stderr,
        )
        return 1
    rate = stats.records / stats.seconds if stats.seconds > 0 else 0.0
    print(f"produced {stats.records} records in {stats.seconds:.2f} s ({rate:,.0f} records/s)", flush=True)
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag replay``."""
    parser = subcommands.add_parser(
        "replay",
        help="Produce ticks (or bars) to a topic from a CSV/Parquet file or a generated market.",
        description="Produce ticks (or bars) keyed by symbol to a Kafka topic, in event-time order, "
        "from a CSV/Parquet file of OHLCV bars or trades, or from a generated market. OHLCV bars "
        "become a seeded, plausible trade path inside each bar unless --input bars is given.",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "path", nargs="?", type=Path, help="CSV (.csv/.tsv/.txt, optionally .gz) or Parquet file."
    )
    source.add_argument(
        "--generate", action="store_true", help="Replay a generated market instead of a file."
    )
    source.add_argument(
        "--symbols", metavar="N", type=integer_at_least(1), default=20, help="Generated symbols (default 20)."
    )
    source.add_argument(
        "--bars",
        metavar="B",
        type=integer_at_least(1),
        default=1000,
        help="Bars per generated symbol (default 1000).",
    )
    source.add_argument(
        "--flag-fraction",
        metavar="F",
        type=probability,
        default=0.3,
        help="Share of generated 200-bar windows that are bull flags (default 0.3).",
    )
    source.add_argument(
        "--start",
        metavar="TIME",
        type=_start_ms,
        default=DEFAULT_START_MS,
        help="Start of the first generated bar: epoch ms or ISO-8601 (default 2024-11-25T16:00:00Z).",
    )
    source.add_argument(
        "--seed",
        metavar="S",
        type=integer_at_least(0),
        default=7,
        help="Seed of the generated market and of the trade paths drawn inside bars (default 7).",
    )
    source.add_argument(
        "--bar-interval",
        metavar="INTERVAL",
        type=_interval_ms,
        default=None,
        help="Bar length, e.g. 1m (default: 1m when generating, inferred from a file's bars).",
    )
    columns = parser.add_argument_group("columns (found by name unless given)")
    columns.add_argument(
        "--symbol",
        metavar="SYMBOL",
        default=None,
        help="Symbol of a file without a symbol column (with one: replay only this symbol's rows).",
    )
    for role, aliases in COLUMN_ALIASES.items():
        columns.add_argument(
            f"--{role}-column",
            default=None,
            metavar="NAME",
            help=f"Default: the first of {', '.join(aliases)}.",
        )
    columns.add_argument(
        "--time-unit",
        choices=("auto", "s", "ms", "us", "ns"),
        default="auto",
        help="Unit of epoch-number times (default auto: from their magnitude).",
    )
    kafka = parser.add_argument_group("output")
    kafka.add_argument(
        "--input",
        choices=("ticks", "bars"),
        default="ticks",
        help="Record kind to send, as the worker's --input (default ticks).",
    )
    kafka.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=None,
        help="Kafka bootstrap servers (default $BULLFLAG_BOOTSTRAP_SERVERS or localhost:9092).",
    )
    kafka.add_argument(
        "--topic",
        metavar="NAME",
        default=None,
        help="Topic to produce to (default $BULLFLAG_TICKS_TOPIC or ticks).",
    )
    kafka.add_argument("--create-topic", action="store_true", help="Create the topic first if it is missing.")
    kafka.add_argument(
        "--partitions",
        metavar="N",
        type=integer_at_least(1),
        default=4,
        help="Partitions of a topic --create-topic makes (default 4).",
    )
    kafka.add_argument(
        "--client-id",
        metavar="ID",
        default="bullflag-replay",
        help="Kafka client id (default bullflag-replay).",
    )
    kafka.add_argument(
        "--speed",
        metavar="FACTOR",
        type=_speed,
        default=0.0,
        help="Speed factor by event time, e.g. 60 = 60x real time (default 0: as fast as possible).",
    )
    kafka.add_argument(
        "--linger-ms",
        metavar="MS",
        type=integer_at_least(0),
        default=20,
        help="Producer batching delay (default 20).",
    )
    kafka.add_argument(
        "--limit", metavar="N", type=integer_at_least(0), default=None, help="Send at most this many records."
    )
    kafka.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Show a progress bar on stderr (default: only on a terminal).",
    )
    parser.set_defaults(handler=run)
