"""Pictures of OHLCV windows: candlesticks, volume bars and a Grad-CAM heat strip under them.

Drawing uses matplotlib's object API on the Agg canvas only (no pyplot, no display), so it is safe
in workers, tests and headless servers. The file format follows the path's suffix (.png or .svg).
:func:`plot_window` draws one picture; a caller drawing many (the demo's drawing processes) keeps
a :class:`WindowFigure` and draws each window on it in turn, at about half the CPU a picture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure, SubFigure
from matplotlib.font_manager import FontProperties

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME

FORMATS = (".png", ".svg")
UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
CAM_COLORMAP = "inferno"
_BODY_WIDTH = 0.7
_VOLUME_WIDTH = 0.8
_HEIGHT_RATIOS = (6.0, 1.6, 0.6)
_DPI = 110
_LABEL_SIZE = 7
_MARGINS_IN = (0.12, 0.45, 0.42)
"""Right, top (two title lines) and bottom (bar labels) margins of a :class:`WindowFigure`, in inches."""
_LABEL_ROOM_IN = 0.2
"""Left of the widest price label: ticks, padding and the volume and map axes' labels, in inches."""


class PlotError(ValueError):
    """The arrays or the output path given to a plot function cannot be drawn."""


def _check_window(bars: np.ndarray, cam: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate one window ``bars [L, 5]`` and its optional ``cam [L]``; returns float arrays."""
    bars = np.asarray(bars, dtype=np.float64)
    if bars.ndim != 2 or bars.shape[1] != 5:
        raise PlotError(f"bars must have shape [L, 5] (open, high, low, close, volume), got {bars.shape}")
    if cam is None:
        return bars, None
    cam = np.asarray(cam, dtype=np.float64)
    if cam.shape != (bars.shape[0],):
        raise PlotError(f"cam must have shape [{bars.shape[0]}] (one value per bar), got {cam.shape}")
    return bars, cam


def _check_path(path: Path | str) -> Path:
    """The output path, with its parent created; the suffix must name a supported format."""
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise PlotError(f"cannot write {path}: use one of the suffixes {', '.join(FORMATS)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _boxes(x: np.ndarray, bottom: np.ndarray, top: np.ndarray, width: float) -> list[np.ndarray]:
    """Rectangles centred on ``x`` from ``bottom`` to ``top``, each as its four corners [4, 2]."""
    left, right = x - width / 2, x + width / 2
    corners = np.stack([left, bottom, left, top, right, top, right, bottom], axis=1)
    return list(corners.reshape(-1, 4, 2))


def _padded(low: float, high: float, margin: float) -> tuple[float, float]:
    """``[low, high]`` widened by ``margin`` of its span on both sides (a flat range by 1 %)."""
    if not (np.isfinite(low) and np.isfinite(high)):
        return 0.0, 1.0
    span = high - low
    pad = margin * span if span > 0 else max(abs(high), 1.0) * 0.01
    return low - pad, high + pad


class WindowAxes:
    """The three axes of one window picture and their artists: candles, volume, Grad-CAM strip.

    Every series is one collection (wicks, bodies, volume bars) rather than one patch per bar,
    and :meth:`show` only swaps data, colours, limits and title, so the same axes can show one
    window after another: building the axes and their artists costs as much as drawing them.
    """

    def __init__(self, fig: Figure | SubFigure) -> None:
        """Add the empty axes and artists to ``fig`` (candles on top, volume, then the strip)."""
        self.price, self.volume, self.cam = fig.subplots(
            3, 1, sharex=True, gridspec_kw={"height_ratios": _HEIGHT_RATIOS, "hspace": 0.05}
        )
        self._wicks = self.price.add_collection(LineCollection([], linewidths=0.6))
        self._bodies = self.price.add_collection(PolyCollection([], edgecolors="none", linewidths=0))
        self._bars = self.volume.add_collection(PolyCollection([], edgecolors="none", linewidths=0))
        self._strip = self.cam.imshow(
            np.zeros((1, 1)), aspect="auto", cmap=CAM_COLORMAP, vmin=0.0, vmax=1.0, interpolation="nearest"
        )
        self._no_map = self.cam.text(
            0.5,
            0.5,
            "no map",
            transform=self.cam.transAxes,
            ha="center",
            va="center",
            fontsize=7,
            color="white",
        )
        for ax in (self.price, self.volume):
            ax.tick_params(labelbottom=False, labelsize=_LABEL_SIZE)
        self.cam.tick_params(labelsize=_LABEL_SIZE)
        self.volume.set_yticks([])
        self.volume.set_ylabel("vol", fontsize=7)
        self.cam.set_yticks([])
        self.cam.set_ylabel("cam", fontsize=7)
        self.cam.set_xlabel("bar (0 = oldest)", fontsize=7)

    def show(self, bars: np.ndarray, cam: np.ndarray | None, title: str) -> None:
        """Show the window ``bars [L, 5]`` with its map ``cam [L]`` (None: an empty strip) and ``title``."""
        bars, cam = _check_window(bars, cam)
        length = bars.shape[0]
        x = np.arange(length, dtype=np.float64)
        colors = np.where(bars[:, CLOSE] >= bars[:, OPEN], UP_COLOR, DOWN_COLOR)
        wicks = np.stack([x, bars[:, LOW], x, bars[:, HIGH]], axis=1).reshape(-1, 2, 2)
        self._wicks.set_segments(list(wicks))
        self._wicks.set_color(list(colors))
        bottom = np.minimum(bars[:, OPEN], bars[:, CLOSE])
        height = np.abs(bars[:, CLOSE] - bars[:, OPEN])
        floor = 1e-3 * max(float(np.ptp(bars[:, [HIGH, LOW]])), 1e-12)
        self._bodies.set_verts(_boxes(x, bottom, bottom + np.maximum(height, floor), _BODY_WIDTH))
        self._bodies.set_facecolor(list(colors))
        volume = bars[:, VOLUME]
        self._bars.set_verts(_boxes(x, np.zeros_like(volume), volume, _VOLUME_WIDTH))
        self._bars.set_facecolor(list(colors))
        self.price.set_ylim(*_padded(float(np.nanmin(bars[:, LOW])), float(np.nanmax(bars[:, HIGH])), 0.05))
        top = float(np.nanmax(volume))
        self.volume.set_ylim(0.0, top * 1.05 if np.isfinite(top) and top > 0 else 1.0)
        strip = np.zeros((1, length)) if cam is None else np.clip(cam, 0.0, 1.0)[None, :]
        self._strip.set_data(strip)
        self._strip.set_extent((-0.5, length - 0.5, 0.0, 1.0))
        self._no_map.set_visible(cam is None)
        self.cam.set_ylim(0.0, 1.0)
        self.price.set_xlim(-1, length)
        self.price.set_title(title, fontsize=8)


def draw_window(fig: Figure | SubFigure, bars: np.ndarray, cam: np.ndarray | None, title: str) -> None:
    """One window on ``fig``: candles on top, volume below them, the Grad-CAM strip at the bottom."""
    WindowAxes(fig).show(bars, cam, title)


class WindowFigure:
    """A figure for one window picture that can be drawn again and again, one window at a time.

    The margins are fixed in inches (room for two title lines and the bar labels) except the
    left one, which is fitted to the widest price label; no layout engine measures every artist
    of every picture. With that and the axes built once, a process drawing many pictures spends
    about half the CPU per picture that a fresh figure with a constrained layout costs. Not
    thread-safe: one per thread.
    """

    def __init__(self, figsize: tuple[float, float] = (10.0, 5.0)) -> None:
        """An empty figure of ``figsize`` inches on the Agg canvas."""
        self._width, height = figsize
        self._figure = Figure(figsize=figsize)
        self._canvas = FigureCanvasAgg(self._figure)
        right, top, bottom = _MARGINS_IN
        self._figure.subplots_adjust(
            right=1 - right / self._width, top=1 - top / height, bottom=bottom / height
        )
        self._axes = WindowAxes(self._figure)

    def draw(self, bars: np.ndarray, cam: np.ndarray | None, title: str, path: Path | str) -> Path:
        """Write the window ``bars [L, 5]``, ``cam [L]`` or None and ``title`` to ``path``; returns it."""
        self._axes.show(bars, cam, title)
        self._figure.subplots_adjust(left=(self._price_labels_in() + _LABEL_ROOM_IN) / self._width)
        out = _check_path(path)
        self._figure.savefig(out, dpi=_DPI)
        return out

    def _price_labels_in(self) -> float:
        """Width in inches of the widest price label the candle axes will show."""
        axis = self._axes.price.yaxis
        low, high = self._axes.price.get_ylim()
        ticks = [tick for tick in axis.get_major_locator()() if low <= tick <= high]
        labels = axis.get_major_formatter().format_ticks(ticks)
        renderer = self._canvas.get_renderer()
        font = FontProperties(size=_LABEL_SIZE)
        widths = [renderer.get_text_width_height_descent(label, font, ismath=False)[0] for label in labels]
        return max(widths, default=0.0) / renderer.dpi


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to ``path`` with the Agg canvas (format from the suffix)."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=_DPI)
    return path


def plot_window(
    bars: np.ndarray,
    cam: np.ndarray | None,
    title: str,
    path: Path | str,
    figsize: tuple[float, float] = (10.0, 5.0),
) -> Path:
    """Write one window picture to ``path`` (.png or .svg); returns the path.

    bars [L, 5] OHLCV (oldest first), cam [L] Grad-CAM intensities in [0, 1] or None (an empty
    strip), title e.g. the symbol and its scores. A caller drawing many keeps a
    :class:`WindowFigure` instead.
    """
    return WindowFigure(figsize).draw(bars, cam, title, path)


def plot_window_grid(
    bars: np.ndarray | Sequence[np.ndarray],
    cams: Sequence[np.ndarray | None] | np.ndarray,
    titles: Sequence[str],
    path: Path | str,
    ncols: int = 3,
    panel_size: tuple[float, float] = (5.5, 3.6),
) -> Path:
    """Write a grid of window pictures to ``path`` (.png or .svg), row by row; returns the path.

    bars [N, L, 5] (or N arrays [L, 5]), cams [N, L] or N maps/None, titles N strings.
    """
    n = len(bars)
    if n == 0 or len(cams) != n or len(titles) != n:
        raise PlotError(
            f"need as many cams and titles as windows (>= 1), got {n}, {len(cams)}, {len(titles)}"
        )
    if ncols < 1:
        raise PlotError(f"ncols must be >= 1, got {ncols}")
    out = _check_path(path)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(panel_size[0] * ncols, panel_size[1] * nrows), layout="constrained")
    panels = np.atleast_1d(fig.subfigures(nrows, ncols, squeeze=False)).ravel()
    for panel, window, cam, title in zip(panels, bars, cams, titles, strict=False):
        draw_window(panel, window, cam, title)
    return _save(fig, out)
