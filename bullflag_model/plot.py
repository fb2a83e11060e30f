"""Pictures of OHLCV windows: candlesticks, volume bars and a Grad-CAM heat strip under them.

Drawing uses matplotlib's object API on the Agg canvas only (no pyplot, no display), so it is safe
in workers, tests and headless servers. The file format follows the path's suffix (.png or .svg).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure, SubFigure

from bullflag_model.features import CLOSE, HIGH, LOW, OPEN, VOLUME

FORMATS = (".png", ".svg")
UP_COLOR = "#26a69a"
DOWN_COLOR = "#ef5350"
CAM_COLORMAP = "inferno"
_BODY_WIDTH = 0.7
_HEIGHT_RATIOS = (6.0, 1.6, 0.6)


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


def draw_candles(ax: Axes, bars: np.ndarray) -> None:
    """Candlesticks of ``bars [L, 5]`` on ``ax``: wick from low to high, body from open to close."""
    x = np.arange(bars.shape[0])
    up = bars[:, CLOSE] >= bars[:, OPEN]
    colors = [UP_COLOR if rising else DOWN_COLOR for rising in up]
    ax.vlines(x, bars[:, LOW], bars[:, HIGH], colors=colors, linewidth=0.6)
    bottom = np.minimum(bars[:, OPEN], bars[:, CLOSE])
    height = np.abs(bars[:, CLOSE] - bars[:, OPEN])
    floor = 1e-3 * max(float(np.ptp(bars[:, [HIGH, LOW]])), 1e-12)
    ax.bar(x, np.maximum(height, floor), _BODY_WIDTH, bottom=bottom, color=colors, linewidth=0)
    ax.set_xlim(-1, bars.shape[0])
    ax.tick_params(labelbottom=False, labelsize=7)


def draw_volume(ax: Axes, bars: np.ndarray) -> None:
    """Volume bars of ``bars [L, 5]`` on ``ax``, coloured like their candles."""
    x = np.arange(bars.shape[0])
    colors = np.where(bars[:, CLOSE] >= bars[:, OPEN], UP_COLOR, DOWN_COLOR)
    ax.bar(x, bars[:, VOLUME], 0.8, color=colors, linewidth=0)
    ax.set_xlim(-1, bars.shape[0])
    ax.set_yticks([])
    ax.tick_params(labelbottom=False, labelsize=7)
    ax.set_ylabel("vol", fontsize=7)


def draw_cam_strip(ax: Axes, cam: np.ndarray | None, length: int) -> None:
    """Grad-CAM intensity ``cam [L]`` in [0, 1] as a one-row heat strip aligned with the bars."""
    strip = np.zeros((1, length)) if cam is None else np.clip(cam, 0.0, 1.0)[None, :]
    ax.imshow(
        strip,
        aspect="auto",
        cmap=CAM_COLORMAP,
        vmin=0.0,
        vmax=1.0,
        extent=(-0.5, length - 0.5, 0.0, 1.0),
        interpolation="nearest",
    )
    ax.set_xlim(-1, length)
    ax.set_yticks([])
    ax.set_ylabel("cam", fontsize=7)
    ax.tick_params(labelsize=7)
    if cam is None:
        ax.text(length / 2, 0.5, "no map", ha="center", va="center", fontsize=7, color="white")


def draw_window(fig: Figure | SubFigure, bars: np.ndarray, cam: np.ndarray | None, title: str) -> None:
    """One window on ``fig``: candles on top, volume below them, the Grad-CAM strip at the bottom."""
    bars, cam = _check_window(bars, cam)
    price_ax, volume_ax, cam_ax = fig.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": _HEIGHT_RATIOS, "hspace": 0.05}
    )
    draw_candles(price_ax, bars)
    draw_volume(volume_ax, bars)
    draw_cam_strip(cam_ax, cam, bars.shape[0])
    cam_ax.set_xlabel("bar (0 = oldest)", fontsize=7)
    price_ax.set_title(title, fontsize=8)


def _save(fig: Figure, path: Path) -> Path:
    """Render ``fig`` to ``path`` with the Agg canvas (format from the suffix)."""
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110)
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
    strip), title e.g. the symbol and its scores.
    """
    bars, cam = _check_window(bars, cam)
    out = _check_path(path)
    fig = Figure(figsize=figsize, layout="constrained")
    draw_window(fig, bars, cam, title)
    return _save(fig, out)


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
