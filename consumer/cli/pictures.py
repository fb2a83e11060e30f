"""A CNNOutput's window as a picture: its bars cut from a table, its title, the file it is drawn to.

Pure functions shared by ``bullflag explain`` and ``bullflag demo``; drawing itself is
:func:`bullflag_model.plot.plot_window`, imported only when a picture is drawn, because
matplotlib comes with the ``demo`` extra and the base install (the worker) does without it.
:class:`~bullflag_model.output.CNNDocument` is named for type checking only: the demo's drawing
processes import this module and :func:`render_window`'s arguments, not the document class
(whose module loads torch).
"""

from __future__ import annotations

import importlib
import os
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Final

import numpy as np

from consumer.sources.tables import BarTable

if TYPE_CHECKING:
    from bullflag_model.output import CNNDocument
    from bullflag_model.plot import WindowFigure

_HEAD_LABELS: Final = ("flag", "breakout", "retest", "continuation")


class PictureError(ValueError):
    """A document's picture cannot be drawn from the bars given; the message says why."""


class CoverageError(PictureError):
    """The bars given do not cover the document's window; the message names the source and the id."""


def utc_text(ts_ms: int) -> str:
    """Epoch milliseconds as a compact UTC time for messages and titles (``2024-11-25 16:00Z``)."""
    moment = datetime.fromtimestamp(ts_ms / 1000.0, tz=UTC)
    seconds = ":%S" if moment.second or moment.microsecond else ""
    return moment.strftime(f"%Y-%m-%d %H:%M{seconds}Z")


def window_bars(table: BarTable, document: CNNDocument, source: str) -> np.ndarray:
    """The window's bars float64[n_bars, 5] (OHLCV, oldest first) from ``table``'s rows of its symbol.

    Every bar start ``window_start_ts + k * interval`` must be present exactly once; otherwise
    :class:`CoverageError` names ``source``, the document id and the first missing or doubled bar.
    """
    start, end, step = document.window_start_ts, document.bar_end_ts, document.interval_ms
    rows = np.flatnonzero((table.symbols == document.symbol) & (table.ts_ms >= start) & (table.ts_ms < end))
    ts = table.ts_ms[rows]
    offgrid = ts[(ts - start) % step != 0]
    what = f"{source}: the bars of {document.symbol} for CNNOutput {document.id}"
    window = f"[{utc_text(start)}, {utc_text(end)})"
    if offgrid.size:
        raise CoverageError(
            f"{what}: the bar at {utc_text(int(offgrid[0]))} is not on the {document.interval} grid of "
            f"the window {window}; give bars of the document's interval ({document.interval})."
        )
    slots = (ts - start) // step
    counts = np.bincount(slots, minlength=document.n_bars)
    if (counts > 1).any():
        twice = int(np.argmax(counts > 1))
        raise CoverageError(
            f"{what}: two bars start at {utc_text(start + twice * step)}; keep one per interval."
        )
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        first = utc_text(start + int(missing[0]) * step)
        raise CoverageError(
            f"{what} cover {document.n_bars - missing.size} of the {document.n_bars} bars of the "
            f"window {window}: {missing.size} missing, the first at {first}. "
            "Give a file or topic holding every bar of the window."
        )
    bars = np.empty((document.n_bars, 5), dtype=np.float64)
    bars[slots] = table.ohlcv[rows]
    return bars


def output_title(document: CNNDocument) -> str:
    """Two title lines: symbol, last bar, score and threshold; then the heads and the map's peak."""
    heads = "  ".join(f"{label} {p:.3f}" for label, p in zip(_HEAD_LABELS, document.probs, strict=True))
    peak = document.cam_peak
    where = "no activation map" if peak is None else f"map peak: bar {peak} of {document.n_bars}"
    verdict = "SIGNAL" if document.signal else "below threshold"
    return (
        f"{document.symbol} {document.interval}, last bar {utc_text(document.last_bar_ts)}: "
        f"sequence score {document.sequence_score:.3f} vs threshold {document.threshold:.3f} ({verdict})\n"
        f"{heads}  |  {where}"
    )


def check_picture_path(path: Path) -> None:
    """Refuse, before any work, a picture path whose suffix cannot be drawn or a missing matplotlib."""
    formats = _plot().FORMATS
    if path.suffix.lower() not in formats:
        raise PictureError(f"--out {path}: use a file name ending in {' or '.join(formats)}.")


def render_output(document: CNNDocument, bars: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Draw the window ``bars`` [n_bars, 5] of ``document`` to ``path`` (.png or .svg); returns it."""
    return render_window(bars, document.cam, output_title(document), path, document.id)


def render_window(
    bars: np.ndarray,
    cam: np.ndarray | None,
    title: str,
    path: str | os.PathLike[str],
    document_id: str,
    figure: WindowFigure | None = None,
) -> Path:
    """Draw ``bars`` [n_bars, 5], the map ``cam`` and ``title`` to ``path``; returns it.

    :func:`render_output` with the document's parts taken out (``document_id`` names it in a
    failure), so that a process drawing pictures is handed plain arrays and strings. ``figure``:
    one to draw on again (see :func:`window_figure`); by default a fresh one.
    """
    plot = _plot()
    PlotError = plot.PlotError  # noqa: N806
    try:
        if figure is None:
            return plot.plot_window(bars, cam, title, Path(path))
        return figure.draw(bars, cam, title, Path(path))
    except PlotError as exc:
        raise PictureError(f"cannot draw CNNOutput {document_id} to {path}: {exc}.") from None


def window_figure() -> WindowFigure:
    """A :class:`bullflag_model.plot.WindowFigure` for a caller that draws many pictures."""
    figure: WindowFigure = _plot().WindowFigure()
    return figure


def _plot() -> ModuleType:
    """:mod:`bullflag_model.plot`, or a :class:`PictureError` saying how to install matplotlib."""
    try:
        return importlib.import_module("bullflag_model.plot")
    except ImportError as exc:
        raise PictureError(
            f"drawing needs matplotlib ({exc}); install it with: pip install 'bullflag-stream[demo]'"
        ) from None


def default_out(document: CNNDocument) -> Path:
    """``<symbol>-<last bar, UTC>.png`` in the current directory."""
    stamp = datetime.fromtimestamp(document.last_bar_ts / 1000.0, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in document.symbol)
    return Path(f"{safe}-{stamp}.png")
