"""``bullflag demo``: the whole streaming pipeline on one machine, with only Python installed.

One process, one event loop: the embedded Kafka-protocol broker on a free loopback port, the
topics created explicitly, a generated market (:func:`consumer.sources.market.synthetic_market`, some
symbols carrying bull flags at different phases) replayed as ticks, the real
:class:`consumer.kafka.worker.Worker` scoring every bar close, and a watcher on the signals topic that
shows each signal and draws its window (candles, volume, Grad-CAM strip) to a PNG. The run ends
by itself once every expected output has arrived (or at ``--max-seconds``, or on Ctrl-C) and
prints a summary that compares the signals with the patterns planted in the market.

The first 200 bars of every symbol (the warm-up before the worker can score anything) are sent
as fast as possible, the rest at ``--speed`` times real time, so the scoring is visible.

The market is generated with one extra 200-bar window at its end and replayed up to and including
bar ``--bars``: that bar's ticks close bar ``--bars - 1`` (a bar closes when a later trade
arrives) and it stays open, like the current bar of a live feed. The planted windows of the
generator therefore end on scored bars (``199``, ..., ``--bars - 1``).

``--offline`` (or ``--windows N``) keeps the quick mode without Kafka: score N generated windows
in one batch and print them.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TextIO

import numpy as np
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from bullflag_model.checkpoint import CheckpointError
from bullflag_model.features import SEQ_LEN, build_features
from bullflag_model.infer import PROB_KEYS, BullFlagCNNInfer
from bullflag_model.intervals import format_interval
from bullflag_model.output import CNNDocument, DocumentError
from bullflag_model.synthetic import KINDS, generate_windows
from consumer.cli.pictures import PictureError, default_out, render_output, utc_text, window_bars
from consumer.config import Settings
from consumer.kafka.embedded_broker import BrokerError, BrokerUnavailableError, EmbeddedBroker
from consumer.kafka.topic_reader import TopicReadError, read_partitions
from consumer.kafka.topics import TopicError, TopicSpec, ensure_topics
from consumer.kafka.worker import Worker
from consumer.sources.market import PlantedWindow, SyntheticMarket, synthetic_market
from consumer.sources.producer import Record, produce_records, tick_records
from consumer.sources.tables import BarTable, TradeTable
from consumer.sources.trades import bars_to_trades
from consumer.validators import finite_number, integer_at_least, probability

__all__ = [
    "DemoError",
    "DemoOptions",
    "DemoPlan",
    "DemoReport",
    "DemoStats",
    "LineView",
    "LiveView",
    "PlantedResult",
    "Progress",
    "SignalEvent",
    "View",
    "bars_closed",
    "demo_settings",
    "plan_demo",
    "planted_results",
    "progress_line",
    "run_demo",
    "run_offline",
    "signal_line",
    "signals_by_kind",
    "summary_lines",
    "topic_specs",
]

WARMUP_BARS: Final = SEQ_LEN
"""Bars a symbol needs before the worker scores it; sent as fast as possible."""

DEFAULT_SYMBOLS: Final = 24
DEFAULT_BARS: Final = 400
DEFAULT_SPEED: Final = 420.0
DEFAULT_MAX_SECONDS: Final = 90.0
DEFAULT_MAX_PLOTS: Final = 50
DEFAULT_SEED: Final = 7

TICKS_PARTITIONS: Final = 4
SIGNALS_PARTITIONS: Final = 4
DLQ_PARTITIONS: Final = 1
FAST_CONSUMER: Final = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "fetch_max_wait_ms": 100}
"""A fast group join on the embedded broker; valid on Apache Kafka too."""

_REFRESH_S: Final = 0.25
_PROGRESS_EVERY_S: Final = 2.0
_DRAIN_TIMEOUT_S: Final = 10.0
_POLL_MS: Final = 200
_RECENT_SIGNALS: Final = 8
_HEAD_SHORT: Final = ("flag", "brkout", "retest", "contin")
_HEAD_LONG: Final = ("flag", "breakout", "retest", "continuation")


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


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One signal as shown: the document and the picture it gets (``None``: over ``--max-plots``)."""

    document: CNNDocument
    png: Path | None


@dataclass
class DemoStats:
    """What the watcher has seen on the signals topic so far (updated on the event loop only)."""

    ticks_sent: int = 0
    outputs: int = 0
    signals: int = 0
    scores: dict[tuple[str, int], tuple[float, bool]] = field(default_factory=dict)
    signal_bars: list[tuple[str, int]] = field(default_factory=list)
    plots_queued: int = 0
    pngs: list[Path] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True, slots=True)
class PlantedResult:
    """A planted window and what the worker said at its last bar (``None``: not scored)."""

    window: PlantedWindow
    score: float | None
    signal: bool | None


def planted_results(
    windows: Iterable[PlantedWindow], scores: Mapping[tuple[str, int], tuple[float, bool]]
) -> list[PlantedResult]:
    """Join planted windows with the outputs at their last bars."""
    results = []
    for window in windows:
        score, flagged = scores.get((window.symbol, window.last_bar), (None, None))
        results.append(PlantedResult(window, score, flagged))
    return results


def signals_by_kind(
    windows: Iterable[PlantedWindow], signal_bars: Iterable[tuple[str, int]]
) -> collections.Counter[str]:
    """How many signals fell inside planted windows of each kind (by the bar the signal scored)."""
    spans: dict[str, list[PlantedWindow]] = collections.defaultdict(list)
    for window in windows:
        spans[window.symbol].append(window)
    counts: collections.Counter[str] = collections.Counter()
    for symbol, bar in signal_bars:
        kind = next((w.kind for w in spans[symbol] if w.first_bar <= bar <= w.last_bar), "outside")
        counts[kind] += 1
    return counts


@dataclass(frozen=True, slots=True)
class DemoReport:
    """Everything the summary says about one run."""

    plan: DemoPlan
    stats: DemoStats
    out: Path
    max_plots: int
    stopped_by: str
    seconds: float
    ticks_sent: int
    bars_closed: int
    model_version: str
    threshold: float
    trained: bool


def summary_lines(report: DemoReport) -> list[str]:
    """The closing summary: counts, the picture folder, and the planted patterns against the signals."""
    plan, stats = report.plan, report.stats
    symbols = plan.market.symbols
    interval = format_interval(plan.market.interval_ms)
    pictures = f"{len(stats.pngs)} PNG{'s' if len(stats.pngs) != 1 else ''} in {report.out}/"
    skipped = [
        f"{count} {why}"
        for count, why in (
            (stats.signals - stats.plots_queued, f"over --max-plots {report.max_plots}"),
            (stats.plots_queued - len(stats.pngs), "cut short by the stop"),
        )
        if count
    ]
    if skipped:
        pictures += f" (signals not drawn: {', '.join(skipped)})"
    lines = [
        "",
        f"summary ({report.stopped_by}, {report.seconds:.1f} s)",
        f"  symbols        {len(symbols)} generated ({symbols[0]} .. {symbols[-1]}), {interval} bars",
        f"  ticks replayed {report.ticks_sent:,} of {plan.ticks:,}",
        f"  bars closed    {report.bars_closed:,}",
        f"  outputs        {stats.outputs:,} CNNOutput documents of {plan.expected_outputs:,} expected",
        f"  signals        {stats.signals:,} at threshold {report.threshold:g} "
        f"(model {report.model_version}{'' if report.trained else ', UNTRAINED'})",
        f"  pictures       {pictures}",
    ]
    if stats.pngs:
        lines.append(f"  first picture  {stats.pngs[0]}")
    results = planted_results(plan.scored_windows(), stats.scores)
    patterns = [r for r in results if r.window.heads]
    others = [r for r in results if not r.window.heads and r.score is not None]
    lines.append("  planted windows with bull-flag labels at their last bar, and the worker's verdict there:")
    for result in patterns:
        lines.append("    " + _planted_line(result, plan))
    if not patterns:
        lines.append("    (none among the scored windows; try more --symbols or another --seed)")
    complete = [r for r in patterns if r.score is not None and _complete(r.window)]
    partial = [r for r in patterns if r.score is not None and not _complete(r.window)]
    lines.append(
        f"  flagged {sum(1 for r in complete if r.signal)} of {len(complete)} complete patterns "
        f"(all four phases); {sum(1 for r in partial if r.signal)} of {len(partial)} patterns still "
        f"in progress and {sum(1 for r in others if r.signal)} of {len(others)} windows without "
        "one signalled"
    )
    kinds = signals_by_kind(plan.market.windows, stats.signal_bars)
    if kinds:
        listing = ", ".join(f"{kind} {count}" for kind, count in kinds.most_common())
        lines.append(f"  signals by planted window kind: {listing}")
    return lines


def _complete(window: PlantedWindow) -> bool:
    """Whether the pattern has completed every phase by its last bar (so a signal is expected)."""
    return "continuation" in window.heads


def _planted_line(result: PlantedResult, plan: DemoPlan) -> str:
    """One planted window: where it ends, its kind and labels, and the score and verdict there."""
    window = result.window
    last = utc_text(int(plan.market.ts_ms[window.last_bar]))
    labels = "+".join(window.heads)
    if result.score is None:
        verdict = "not scored (the run stopped before this bar)"
    elif _complete(window):
        verdict = f"score {result.score:.3f} {'FLAGGED' if result.signal else 'missed'}"
    else:
        verdict = f"score {result.score:.3f} {'early signal' if result.signal else 'quiet (in progress)'}"
    return f"{window.symbol:<8} bar {window.last_bar:>4} ({last})  {window.kind:<16} {labels:<34} {verdict}"


@dataclass(frozen=True, slots=True)
class Progress:
    """A snapshot for the live view; ``pngs_done`` pictures are written of ``pngs`` queued."""

    phase: str
    seconds: float
    ticks_sent: int
    ticks_total: int
    bars_closed: int
    outputs: int
    expected_outputs: int
    signals: int
    pngs_done: int
    pngs: int
    market_ts: int | None


def progress_parts(progress: Progress) -> tuple[str, str]:
    """The status (phase, elapsed time, market time) and the counters, as two strings."""
    market = utc_text(progress.market_ts) if progress.market_ts is not None else "-"
    status = f"[{progress.phase}] {progress.seconds:5.1f}s  market {market}"
    counters = (
        f"ticks {progress.ticks_sent:,}/{progress.ticks_total:,}  bars closed {progress.bars_closed:,}  "
        f"outputs {progress.outputs:,}/{progress.expected_outputs:,}  signals {progress.signals:,}  "
        f"PNGs {progress.pngs_done}/{progress.pngs}"
    )
    return status, counters


def progress_line(progress: Progress) -> str:
    """The status and the counters on one line."""
    return "  ".join(progress_parts(progress))


def signal_line(event: SignalEvent) -> str:
    """One line per signal: symbol, last bar, the four heads, the score and the map's peak."""
    document = event.document
    heads = " ".join(f"{name} {p:.3f}" for name, p in zip(_HEAD_LONG, document.probs, strict=True))
    peak = document.cam_peak
    where = "no map" if peak is None else f"cam peak bar {peak}/{document.n_bars - 1}"
    picture = f"  -> {event.png}" if event.png is not None else ""
    return (
        f"signal {document.symbol:<8} {utc_text(document.last_bar_ts)}  {heads}  "
        f"score {document.sequence_score:.3f}  {where}{picture}"
    )


def signal_row(document: CNNDocument) -> str:
    """A signal as one row of the live table (see :data:`_TABLE_HEADER`)."""
    probs = " ".join(f"{p:6.3f}" for p in document.probs)
    peak = "-" if document.cam_peak is None else str(document.cam_peak)
    last = datetime.fromtimestamp(document.last_bar_ts / 1000.0, tz=UTC).strftime("%m-%d %H:%M")
    return f"  {document.symbol:<8} {last}  {probs} {document.sequence_score:6.3f} {peak:>5}"


_TABLE_HEADER: Final = (
    f"  {'symbol':<8} {'last bar':<11}  " + " ".join(f"{h:>6}" for h in _HEAD_SHORT) + "  score  peak"
)


class View(Protocol):
    """Where the demo shows what happens: a redrawn terminal block, or plain lines."""

    def note(self, text: str) -> None:
        """Show a line of text that stays."""

    def signal(self, event: SignalEvent) -> None:
        """Show one signal."""

    def progress(self, progress: Progress) -> None:
        """Show the counters (called several times a second)."""

    def close(self, progress: Progress) -> None:
        """Show the final counters and leave the output in a clean state."""


class LineView:
    """Plain lines for pipes and logs: one per signal, a progress line every two seconds."""

    def __init__(self, stream: TextIO) -> None:
        """Write to ``stream``."""
        self._stream = stream
        self._last = -math.inf
        self._phase = ""

    def note(self, text: str) -> None:
        """Print ``text``."""
        print(text, file=self._stream, flush=True)

    def signal(self, event: SignalEvent) -> None:
        """Print the signal's line."""
        self.note(signal_line(event))

    def progress(self, progress: Progress) -> None:
        """Print a progress line when the phase changes, else at most every :data:`_PROGRESS_EVERY_S` s."""
        if progress.phase != self._phase or progress.seconds - self._last >= _PROGRESS_EVERY_S:
            self._last = progress.seconds
            self._phase = progress.phase
            self.note(progress_line(progress))

    def close(self, progress: Progress) -> None:
        """Print the final progress line."""
        self.note(progress_line(progress))


class LiveView:
    """A status block redrawn in place with ANSI escapes: counters and the latest signals."""

    def __init__(self, stream: TextIO) -> None:
        """Draw on ``stream`` (a terminal)."""
        self._stream = stream
        self._recent: collections.deque[str] = collections.deque(maxlen=_RECENT_SIGNALS)
        self._drawn = 0
        self._progress: Progress | None = None

    def note(self, text: str) -> None:
        """Print ``text`` above the block."""
        self._clear()
        print(text, file=self._stream)
        self._draw()

    def signal(self, event: SignalEvent) -> None:
        """Add the signal to the table (drawn on the next refresh)."""
        self._recent.append(signal_row(event.document))

    def progress(self, progress: Progress) -> None:
        """Redraw the block with new counters."""
        self._progress = progress
        self._clear()
        self._draw()

    def close(self, progress: Progress) -> None:
        """Draw the final block and leave it on screen."""
        self.progress(progress)
        self._drawn = 0

    def _clear(self) -> None:
        """Move to the block's first line and erase to the end of the screen."""
        if self._drawn:
            self._stream.write(f"\x1b[{self._drawn}F\x1b[J")

    def _draw(self) -> None:
        """Write the block, each line cut to the terminal width so the line count stays exact."""
        if self._progress is None:
            self._drawn = 0
            self._stream.flush()
            return
        width = max(shutil.get_terminal_size().columns - 1, 20)
        lines = [*progress_parts(self._progress), _TABLE_HEADER, *self._recent]
        for line in lines:
            self._stream.write(line[:width] + "\n")
        self._drawn = len(lines)
        self._stream.flush()


def demo_settings(bootstrap: str, options: DemoOptions, interval_ms: int) -> Settings:
    """Worker settings for the demo: default topic names, loopback metrics on a free port."""
    return Settings(
        bootstrap_servers=bootstrap,
        group_id="bullflag-demo",
        client_id="bullflag-demo",
        bar_interval=format_interval(interval_ms),
        threshold=options.threshold,
        checkpoint=options.checkpoint,
        metrics_host="127.0.0.1",
        metrics_port=0,
    )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker uses; the state changelog has the ticks topic's partition count."""
    return [
        TopicSpec(settings.ticks_topic, TICKS_PARTITIONS),
        TopicSpec(settings.state_topic, TICKS_PARTITIONS, {"cleanup.policy": "compact"}),
        TopicSpec(settings.signals_topic, SIGNALS_PARTITIONS),
        TopicSpec(settings.dlq_topic, DLQ_PARTITIONS),
    ]


def bars_closed(worker: Worker) -> int:
    """Bars the worker has closed so far (built from trades or filled in), from its metrics."""
    registry = worker.metrics.registry
    values = (registry.get_sample_value("bullflag_bars_closed_total", {"kind": k}) for k in ("trades", "gap"))
    return int(sum(v or 0.0 for v in values))


class _Session:
    """One run against a started broker: the worker, the replay, the signal watcher and the pictures."""

    def __init__(
        self, plan: DemoPlan, options: DemoOptions, settings: Settings, worker: Worker, view: View
    ) -> None:
        self.plan = plan
        self.options = options
        self.settings = settings
        self.worker = worker
        self.view = view
        self.stats = DemoStats()
        self.phase = "starting"
        self.started = time.monotonic()
        self.market_ts: int | None = None
        self.metrics_url = ""
        self._all_seen = asyncio.Event()
        self._draining = asyncio.Event()
        self._plotter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bullflag-demo-plot")
        self._plots: list[Future[Path]] = []

    def progress(self) -> Progress:
        """The counters now."""
        return Progress(
            phase=self.phase,
            seconds=time.monotonic() - self.started,
            ticks_sent=self.stats.ticks_sent,
            ticks_total=self.plan.ticks,
            bars_closed=bars_closed(self.worker),
            outputs=self.stats.outputs,
            expected_outputs=self.plan.expected_outputs,
            signals=self.stats.signals,
            pngs_done=sum(1 for plot in self._plots if _drawn(plot)),
            pngs=sum(1 for plot in self._plots if not plot.cancelled()),
            market_ts=self.market_ts,
        )

    async def run(self, interrupt: asyncio.Event) -> str:
        """Run until every expected output arrived, the time cap, or ``interrupt``; say which."""
        stop = asyncio.Event()
        worker_task = asyncio.create_task(self.worker.run(stop), name="bullflag-demo-worker")
        watch_task = asyncio.create_task(self._watch(), name="bullflag-demo-watch")
        replay_task = asyncio.create_task(self._replay(), name="bullflag-demo-replay")
        refresh_task = asyncio.create_task(self._refresh(), name="bullflag-demo-refresh")
        try:
            return await self._wait(interrupt, worker_task, replay_task, watch_task)
        finally:
            try:
                await self._shut_down(
                    stop, worker_task, replay_task, watch_task, cancel_plots=interrupt.is_set()
                )
            finally:
                refresh_task.cancel()
                await asyncio.gather(refresh_task, return_exceptions=True)
                self.phase = "done"

    async def _shut_down(
        self,
        stop: asyncio.Event,
        worker_task: asyncio.Task[None],
        replay_task: asyncio.Task[None],
        watch_task: asyncio.Task[None],
        *,
        cancel_plots: bool,
    ) -> None:
        """Stop the replay and the worker, read the outputs left on the topic, finish the pictures.

        The worker commits and stops first, so reading the signals topic to its end afterwards
        sees every output it published. A failure of the worker or of a picture is raised last.
        """
        self.phase = "stopping"
        stop.set()
        replay_task.cancel()
        await asyncio.gather(replay_task, return_exceptions=True)
        (worker_outcome,) = await asyncio.gather(worker_task, return_exceptions=True)
        self._draining.set()
        await asyncio.wait({watch_task}, timeout=_DRAIN_TIMEOUT_S)
        watch_task.cancel()
        await asyncio.gather(watch_task, return_exceptions=True)
        self.phase = "drawing"
        await self._finish_plots(cancel=cancel_plots)
        if isinstance(worker_outcome, Exception):
            raise worker_outcome

    async def _wait(
        self,
        interrupt: asyncio.Event,
        worker_task: asyncio.Task[None],
        replay_task: asyncio.Task[None],
        watch_task: asyncio.Task[None],
    ) -> str:
        """Block until a reason to stop; failures of the replay, worker or watcher are raised.

        The run is complete once the replay has sent everything and every expected output arrived.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_seconds
        all_seen = asyncio.create_task(self._all_seen.wait())
        interrupted = asyncio.create_task(interrupt.wait())
        pending: set[asyncio.Task[Any]] = {all_seen, interrupted, worker_task, replay_task, watch_task}
        try:
            while True:
                done, _ = await asyncio.wait(
                    pending, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    return f"stopped at the --max-seconds cap of {self.options.max_seconds:g} s"
                if interrupted in done:
                    return "interrupted"
                for task in done & {worker_task, watch_task}:
                    task.result()
                    raise DemoError(f"{task.get_name()} ended before the run was complete.")
                if replay_task in done:
                    replay_task.result()
                pending -= done
                if not pending & {all_seen, replay_task}:
                    return "complete"
        finally:
            for task in (all_seen, interrupted):
                task.cancel()
            await asyncio.gather(all_seen, interrupted, return_exceptions=True)

    async def _replay(self) -> None:
        """Send the warm-up ticks as fast as possible, then the live ticks at ``--speed``."""
        bootstrap, topic = self.settings.bootstrap_servers, self.settings.ticks_topic
        self.phase = "warm-up"
        await produce_records(
            bootstrap, topic, self._counted(tick_records(self.plan.warmup)), client_id="bullflag-demo"
        )
        self.phase = "live"
        await produce_records(
            bootstrap,
            topic,
            self._counted(tick_records(self.plan.live)),
            speed=self.options.speed,
            client_id="bullflag-demo",
        )
        self.phase = "draining"

    def _counted(self, records: Iterator[Record]) -> Iterator[Record]:
        """``records``, counting each one handed to the producer."""
        for record in records:
            self.stats.ticks_sent += 1
            yield record

    async def _refresh(self) -> None:
        """Redraw the view a few times a second; announce the metrics URL once it is serving."""
        while True:
            if not self.metrics_url and self.worker.health_server is not None:
                try:
                    self.metrics_url = f"{self.worker.health_server.url}/metrics"
                except RuntimeError:
                    pass
                else:
                    self.view.note(f"metrics  {self.metrics_url}  (/healthz, /readyz alongside)")
            self.view.progress(self.progress())
            await asyncio.sleep(_REFRESH_S)

    async def _watch(self) -> None:
        """Follow the signals topic from its start; after the worker stopped, read to its end."""
        topic = self.settings.signals_topic

        def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
            for record in records:
                self._on_output(record.value)

        await read_partitions(
            self.settings,
            [TopicPartition(topic, p) for p in range(SIGNALS_PARTITIONS)],
            visit,
            client_id="bullflag-demo-watch",
            follow=lambda: not self._draining.is_set(),
        )

    def _on_output(self, value: bytes | None) -> None:
        """Count one CNNOutput; show a signal and queue its picture."""
        document = CNNDocument.from_bytes(value, f"topic {self.settings.signals_topic!r}")
        if document.id in self.stats.seen_ids:
            return
        stats = self.stats
        stats.seen_ids.add(document.id)
        stats.outputs += 1
        bar = self.plan.bar_index(document.last_bar_ts)
        stats.scores[(document.symbol, bar)] = (document.sequence_score, document.signal)
        self.market_ts = max(self.market_ts or document.last_bar_ts, document.last_bar_ts)
        if stats.outputs >= self.plan.expected_outputs:
            self._all_seen.set()
        if not document.signal:
            return
        stats.signals += 1
        stats.signal_bars.append((document.symbol, bar))
        png = None
        if len(self._plots) < self.options.max_plots:
            png = self.options.out / default_out(document).name
            bars = window_bars(self.plan.table, document, "the replayed market")
            self._plots.append(self._plotter.submit(render_output, document, bars, png))
            stats.plots_queued += 1
        self.view.signal(SignalEvent(document, png))

    async def _finish_plots(self, *, cancel: bool) -> None:
        """Wait for the queued pictures (dropping the unstarted ones when ``cancel``); raise a failure."""
        self._plotter.shutdown(wait=False, cancel_futures=cancel)
        results = await asyncio.gather(*(asyncio.wrap_future(f) for f in self._plots), return_exceptions=True)
        self.stats.pngs = [r for r in results if isinstance(r, Path)]
        failure = next((r for r in results if isinstance(r, Exception)), None)
        if failure is not None:
            raise failure


def _drawn(plot: Future[Path]) -> bool:
    """Whether a queued picture has been written."""
    return plot.done() and not plot.cancelled() and plot.exception() is None


@contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, interrupt: asyncio.Event, view: View) -> Iterator[None]:
    """SIGINT and SIGTERM set ``interrupt`` (a clean stop); a second SIGINT aborts at once.

    Signal handlers can only be installed from the main thread; elsewhere the caller stops the
    run by other means (``--max-seconds``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int) -> None:
        if interrupt.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        interrupt.set()
        view.note("stopping: worker, replay and broker are shutting down (Ctrl-C again to abort)")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def run_demo(options: DemoOptions, view: View) -> DemoReport:
    """Broker, topics, worker, replay and watcher in this event loop; return what happened."""
    started = time.monotonic()
    plan = plan_demo(options.symbols, options.bars, options.seed)
    interval = format_interval(plan.market.interval_ms)
    live = "as fast as possible" if options.speed == 0 else f"at {options.speed:g}x real time"
    view.note(
        f"bullflag demo: {options.symbols} symbols x {options.bars} bars of {interval} "
        f"(seed {options.seed}), {plan.ticks:,} ticks; {WARMUP_BARS} warm-up bars as fast as possible, "
        f"the rest {live}"
    )
    options.out.mkdir(parents=True, exist_ok=True)
    interrupt = asyncio.Event()
    with _stop_on_signals(asyncio.get_running_loop(), interrupt, view):
        async with EmbeddedBroker() as broker:
            settings = demo_settings(broker.bootstrap, options, plan.market.interval_ms)
            specs = topic_specs(settings)
            await ensure_topics(broker.bootstrap, specs, client_id="bullflag-demo")
            topics = ", ".join(f"{spec.name} ({spec.partitions})" for spec in specs)
            view.note(f"broker   embedded Tansu on {broker.bootstrap} (pid {broker.pid}); topics {topics}")
            worker = Worker(settings, consumer_options=dict(FAST_CONSUMER))
            trained = bool(worker.infer.metadata.get("trained", True))
            view.note(
                f"model    {worker.infer.model_version}, threshold {worker.infer.threshold:g}"
                + ("" if trained else " (UNTRAINED checkpoint: its scores are meaningless)")
            )
            view.note(f"pictures {options.out}/ (one PNG per signal, at most {options.max_plots})")
            session = _Session(plan, options, settings, worker, view)
            try:
                stopped_by = await session.run(interrupt)
            finally:
                view.close(session.progress())
    return DemoReport(
        plan=plan,
        stats=session.stats,
        out=options.out,
        max_plots=options.max_plots,
        stopped_by=stopped_by,
        seconds=time.monotonic() - started,
        ticks_sent=session.stats.ticks_sent,
        bars_closed=bars_closed(worker),
        model_version=worker.infer.model_version,
        threshold=worker.infer.threshold,
        trained=trained,
    )


def run_offline(windows: int, seed: int, threshold: float | None, checkpoint: Path | None) -> int:
    """Score ``windows`` generated windows in one batch without Kafka; one line per window."""
    batch = generate_windows(windows, seed=seed)
    infer = BullFlagCNNInfer(checkpoint, enable_gradcam=True)
    infer.resolve_threshold(threshold)
    scores = infer.score(build_features(batch.bars))
    trained = infer.metadata.get("trained", True)
    print(f"model {infer.model_version}{'' if trained else ' (UNTRAINED: scores are meaningless)'}")
    print(
        f"{'#':>3} {'kind':<18} {'labels':<8} "
        + " ".join(f"{k[:5]:>6}" for k in PROB_KEYS)
        + "  score  cam peak"
    )
    for i in range(len(scores.sequence)):
        labels = "".join(str(int(v)) for v in batch.labels[i])
        probs = " ".join(f"{p:6.3f}" for p in scores.probs[i])
        peak = f"bar {int(np.argmax(scores.cams[i])):>3}" if scores.has_cam[i] else ""
        mark = "*" if scores.has_cam[i] else " "
        print(f"{i:>3} {KINDS[batch.kind[i]]:<18} {labels:<8} {probs} {scores.sequence[i]:6.3f}{mark} {peak}")
    signals = int(scores.has_cam.sum())
    print(f"{signals} of {len(scores.sequence)} windows at or above threshold {infer.threshold}")
    return 0


def _options(args: argparse.Namespace) -> DemoOptions:
    """The parsed flags as :class:`DemoOptions`."""
    values: dict[str, Any] = {
        "symbols": args.symbols,
        "bars": args.bars,
        "seed": args.seed,
        "speed": args.speed,
        "max_seconds": args.max_seconds,
        "threshold": args.threshold,
        "max_plots": args.max_plots,
        "checkpoint": args.checkpoint,
    }
    if args.out is not None:
        values["out"] = args.out
    return DemoOptions(**values)


def run(args: argparse.Namespace) -> int:
    """Run the streaming demo (or the offline scoring); exit 0 after a complete or requested stop."""
    if args.offline or args.windows is not None:
        return run_offline(args.windows or 40, args.seed, args.threshold, args.checkpoint)
    try:
        options = _options(args)
    except DemoError as exc:
        print(f"bullflag demo: {exc}", file=sys.stderr)
        return 2
    view: View = LiveView(sys.stdout) if sys.stdout.isatty() else LineView(sys.stdout)
    try:
        report = asyncio.run(run_demo(options, view))
    except BrokerUnavailableError as exc:
        print(
            f"bullflag demo: no embedded Kafka broker on this platform ({exc}); "
            "`bullflag demo --offline` scores a generated market without Kafka.",
            file=sys.stderr,
        )
        return 1
    except (
        DemoError,
        BrokerError,
        CheckpointError,
        TopicError,
        TopicReadError,
        KafkaError,
        DocumentError,
        PictureError,
    ) as exc:
        print(f"bullflag demo: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(report):
        print(line)
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag demo``."""
    parser = subcommands.add_parser(
        "demo",
        help="Run broker, replay and worker locally and watch bull-flag signals arrive.",
        description="Start the embedded Kafka-protocol broker, replay a generated market as ticks, run "
        "the worker against it and show the signals as they arrive, drawing each one's window to a "
        "PNG. Stops by itself; Ctrl-C stops it early and cleanly.",
    )
    parser.add_argument(
        "--symbols",
        metavar="N",
        type=integer_at_least(1),
        default=DEFAULT_SYMBOLS,
        help=f"Symbols (default {DEFAULT_SYMBOLS}).",
    )
    parser.add_argument(
        "--bars",
        metavar="B",
        type=integer_at_least(WARMUP_BARS),
        default=DEFAULT_BARS,
        help=f"Bars closed per symbol, the first {WARMUP_BARS} a warm-up (default {DEFAULT_BARS}).",
    )
    parser.add_argument(
        "--speed",
        metavar="X",
        type=finite_number,
        default=DEFAULT_SPEED,
        help=f"Replay speed after the warm-up, times real time; 0: as fast as possible "
        f"(default {DEFAULT_SPEED:g}: {DEFAULT_SPEED / 60:g} one-minute bars a second).",
    )
    parser.add_argument(
        "--max-seconds",
        metavar="SECONDS",
        type=finite_number,
        default=DEFAULT_MAX_SECONDS,
        help=f"Stop after this many seconds even if outputs are still due (default {DEFAULT_MAX_SECONDS:g}).",
    )
    parser.add_argument(
        "--threshold",
        metavar="P",
        type=probability,
        default=None,
        help="Signal threshold on sequence_score (default: the checkpoint's serving threshold).",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="Folder for the PNGs (default ./bullflag-demo-<time>/).",
    )
    parser.add_argument(
        "--max-plots",
        metavar="N",
        type=integer_at_least(0),
        default=DEFAULT_MAX_PLOTS,
        help=f"Most signals drawn to PNG (default {DEFAULT_MAX_PLOTS}).",
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=integer_at_least(0),
        default=DEFAULT_SEED,
        help="Seed of the generated market.",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        default=None,
        help="Checkpoint file (default: the shipped one).",
    )
    parser.add_argument(
        "--offline", action="store_true", help="Score generated windows in one batch, without Kafka."
    )
    parser.add_argument(
        "--windows",
        metavar="N",
        type=integer_at_least(1),
        default=None,
        help="Windows to score offline (implies --offline; default 40).",
    )
    parser.set_defaults(handler=run)
