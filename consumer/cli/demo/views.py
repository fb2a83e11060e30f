"""How the demo shows a run: progress and signal lines, a redrawn terminal block or plain lines.

:class:`LiveView` redraws a status block in place on a terminal; :class:`LineView` writes plain
lines for pipes and logs. Both take :class:`Progress` snapshots and :class:`SignalEvent` values.
"""

from __future__ import annotations

import collections
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol, TextIO

from bullflag_model.output import CNNDocument
from consumer.cli.pictures import utc_text

__all__ = [
    "LineView",
    "LiveView",
    "Progress",
    "SignalEvent",
    "View",
    "progress_line",
    "progress_parts",
    "signal_line",
    "signal_row",
]

_PROGRESS_EVERY_S: Final = 2.0
_RECENT_SIGNALS: Final = 8
_HEAD_SHORT: Final = ("flag", "brkout", "retest", "contin")
_HEAD_LONG: Final = ("flag", "breakout", "retest", "continuation")


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One signal as shown: the document and the picture it gets (``None``: over ``--max-plots``)."""

    document: CNNDocument
    png: Path | None


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
