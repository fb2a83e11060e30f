"""What one ``bullflag demo`` run does and sends: its options and the market it replays.

:class:`DemoOptions` holds the checked flags; :func:`plan_demo` generates the market and splits
its ticks into the warm-up (sent as fast as possible) and the live part (sent at ``--speed``).
Pure: nothing here touches Kafka, the model or the terminal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import numpy as np

from bullflag_model.features import SEQ_LEN
from consumer.sources.market import PlantedWindow, SyntheticMarket, synthetic_market
from consumer.sources.tables import BarTable, TradeTable
from consumer.sources.trades import bars_to_trades

__all__ = [
    "DEFAULT_BARS",
    "DEFAULT_MAX_PLOTS",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_SEED",
    "DEFAULT_SPEED",
    "DEFAULT_SYMBOLS",
    "WARMUP_BARS",
    "DemoError",
    "DemoOptions",
    "DemoPlan",
    "default_out_dir",
    "plan_demo",
]

WARMUP_BARS: Final = SEQ_LEN
"""Bars a symbol needs before the worker scores it; sent as fast as possible."""

DEFAULT_SYMBOLS: Final = 24
DEFAULT_BARS: Final = 400
DEFAULT_SPEED: Final = 480.0
"""Eight one-minute bars a second: the 200 live bars take 25 s, which leaves the run 10 s of its 35."""
DEFAULT_MAX_SECONDS: Final = 90.0
DEFAULT_MAX_PLOTS: Final = 50
DEFAULT_SEED: Final = 7


class DemoError(RuntimeError):
    """The demo cannot run or finish as asked; the message says why and what to change."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What one demo run does; see ``bullflag demo --help`` for each field."""

    symbols: int = DEFAULT_SYMBOLS
    bars: int = DEFAULT_BARS
    seed: int = DEFAULT_SEED
    speed: float = DEFAULT_SPEED
    max_seconds: float = DEFAULT_MAX_SECONDS
    threshold: float | None = None
    out: Path = field(default_factory=lambda: default_out_dir(datetime.now(tz=UTC)))
    max_plots: int = DEFAULT_MAX_PLOTS
    checkpoint: Path | None = None
    dashboard_port: int | None = 0
    """Loopback port of the live signals page (0: any free one; ``None``: no page)."""

    def __post_init__(self) -> None:
        """Refuse values the demo cannot run with, naming the flag."""
        if not 1 <= self.symbols <= 1000:
            raise DemoError(f"--symbols {self.symbols}: give 1 to 1000 symbols.")
        if self.bars < WARMUP_BARS:
            raise DemoError(
                f"--bars {self.bars}: give at least {WARMUP_BARS}; the worker scores a symbol once it has "
                f"{WARMUP_BARS} bars."
            )
        if not (math.isfinite(self.speed) and self.speed >= 0):
            raise DemoError(
                f"--speed {self.speed}: give a multiple of real time >= 0 (0: as fast as possible)."
            )
        if not (math.isfinite(self.max_seconds) and self.max_seconds > 0):
            raise DemoError(f"--max-seconds {self.max_seconds}: give a positive number of seconds.")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise DemoError(f"--threshold {self.threshold}: give a probability in [0, 1].")
        if self.max_plots < 0:
            raise DemoError(f"--max-plots {self.max_plots}: give 0 or more.")


def default_out_dir(now: datetime) -> Path:
    """``bullflag-demo-<UTC timestamp>`` in the current directory (ignored by git)."""
    return Path(f"bullflag-demo-{now.strftime('%Y%m%d-%H%M%S')}")


@dataclass(frozen=True, slots=True)
class DemoPlan:
    """The generated market and the ticks the demo sends.

    ``market`` has ``bars + 200`` bars per symbol (so its planted windows end on scored bars);
    ``table`` holds the ``bars + 1`` replayed bars of every symbol; ``warmup`` the ticks of the
    first :data:`WARMUP_BARS` bars, ``live`` the rest, both in event-time order.
    """

    market: SyntheticMarket
    bars: int
    table: BarTable
    warmup: TradeTable
    live: TradeTable

    @property
    def ticks(self) -> int:
        """All ticks to send."""
        return len(self.warmup) + len(self.live)

    @property
    def expected_outputs(self) -> int:
        """CNNOutput documents a full run produces: one per symbol and closed bar from bar 199 on."""
        return len(self.market.symbols) * (self.bars - WARMUP_BARS + 1)

    def bar_index(self, ts_ms: int) -> int:
        """Index of the bar starting at ``ts_ms`` in every symbol's series."""
        return (ts_ms - int(self.market.ts_ms[0])) // self.market.interval_ms

    def scored_windows(self) -> list[PlantedWindow]:
        """Planted windows whose last bar is scored by a full run, in symbol order."""
        return [w for w in self.market.windows if WARMUP_BARS - 1 <= w.last_bar < self.bars]


def plan_demo(symbols: int, bars: int, seed: int) -> DemoPlan:
    """Generate the market and split its ticks into warm-up and live parts (deterministic)."""
    market = synthetic_market(symbols, bars + SEQ_LEN, seed)
    full = market.table()
    keep = full.ts_ms <= market.ts_ms[bars]
    table = BarTable(full.symbols[keep], full.ts_ms[keep], full.ohlcv[keep])
    trades = bars_to_trades(table, seed, interval_ms=market.interval_ms)
    early = trades.ts_ms < market.ts_ms[WARMUP_BARS]
    return DemoPlan(market, bars, table, _rows(trades, early), _rows(trades, ~early))


def _rows(trades: TradeTable, mask: np.ndarray) -> TradeTable:
    """The trades where ``mask`` holds, in order."""
    return TradeTable(trades.symbols[mask], trades.ts_ms[mask], trades.price[mask], trades.size[mask])
