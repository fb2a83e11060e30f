"""The closing summary of a demo run: the counts, and the planted patterns against the signals.

The generated market records which windows it was built from; :func:`summary_lines` joins them
with the worker's outputs at their last bars, so the summary says which bull flags were flagged.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bullflag_model.intervals import format_interval
from consumer.cli.demo.drawing import DrawingTimes
from consumer.cli.demo.plan import DemoPlan
from consumer.cli.pictures import utc_text
from consumer.sources.market import PlantedWindow

__all__ = [
    "DemoReport",
    "DemoStats",
    "PlantedResult",
    "drawing_text",
    "planted_results",
    "signals_by_kind",
    "summary_lines",
]


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
    drawing: DrawingTimes | None = None
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
    if stats.drawing is not None and stats.drawing.pictures:
        lines.append(f"  drawing        {drawing_text(stats.drawing)}")
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


def drawing_text(times: DrawingTimes) -> str:
    """How long the pictures took while the stream ran, their CPU, and how long the run waited."""
    pngs = f"{times.pictures} PNG{'s' if times.pictures != 1 else ''}"
    processes = f"{times.processes} process{'es' if times.processes != 1 else ''}"
    return (
        f"{pngs} by {processes} while the stream ran: {times.busy_s:.1f} s "
        f"({times.cpu_s:.1f} s of CPU, {times.cpu_s / times.pictures:.2f} s a picture); "
        f"the last one {times.after_stream_s:.1f} s after the stream ended"
    )


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
