"""The tables of market data and their column layouts: what a file of bars or trades holds.

:class:`BarTable` and :class:`TradeTable` are what the readers return and the tick simulation,
the producer and the pictures take; :func:`detect_columns` decides from a header which layout a
file has. The :class:`TableError` family names the file and what to change.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np

__all__ = [
    "BAR_PRICES",
    "COLUMN_ALIASES",
    "BarTable",
    "ColumnError",
    "ColumnLayout",
    "ColumnNames",
    "ParquetUnavailableError",
    "ReplayError",
    "TableError",
    "TradeTable",
    "detect_columns",
    "infer_interval_ms",
]

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

BAR_PRICES: Final = ("open", "high", "low", "close")
"""The price roles of a bar, in OHLCV order."""


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
    named_bar = any(getattr(given, role) is not None for role in (*BAR_PRICES, "volume"))
    named_trade = given.price is not None or given.size is not None
    if named_bar and named_trade:
        raise ColumnError(
            f"{source}: both bar columns (--open/--high/--low/--close/--volume-column) and trade "
            "columns (--price/--size-column) were named; name the columns of one layout only."
        )
    if all(chosen[role] is not None for role in BAR_PRICES) and not named_trade:
        kind: Literal["bars", "trades"] = "bars"
        roles: tuple[str, ...] = ("symbol", "time", *BAR_PRICES, "volume")
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
