"""Window pictures: PNG and SVG files with candles, volume and the Grad-CAM strip; bad input refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bullflag_model.plot import PlotError, plot_window, plot_window_grid
from tests.strategies import random_bars


@pytest.fixture(scope="module")
def bars() -> np.ndarray:
    return random_bars(3, seed=11)


def test_png_and_svg_are_written(tmp_path: Path, bars: np.ndarray) -> None:
    cam = np.linspace(0.0, 1.0, 200)
    png = plot_window(bars[0], cam, "TEST seq 0.912", tmp_path / "window.png")
    svg = plot_window(bars[0], None, "TEST no map", tmp_path / "sub" / "window.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5_000
    text = svg.read_text()
    assert "<svg" in text and "TEST no map" in text


def test_grid_writes_one_file(tmp_path: Path, bars: np.ndarray) -> None:
    cams = [np.random.default_rng(0).random(200), None, np.zeros(200)]
    path = plot_window_grid(bars, cams, ["a", "b", "c"], tmp_path / "grid.png", ncols=2)
    assert path.stat().st_size > 5_000


@pytest.mark.parametrize(
    ("window", "cam", "name", "message"),
    [
        (np.zeros((200, 4)), None, "w.png", r"\[L, 5\]"),
        (np.ones((200, 5)), np.zeros(199), "w.png", r"cam must have shape \[200\]"),
        (np.ones((200, 5)), None, "w.jpg", r"\.png, \.svg"),
    ],
)
def test_bad_input_is_refused(
    tmp_path: Path, window: np.ndarray, cam: np.ndarray | None, name: str, message: str
) -> None:
    with pytest.raises(PlotError, match=message):
        plot_window(window, cam, "bad", tmp_path / name)
    assert not (tmp_path / name).exists()


def test_grid_needs_matching_lengths(tmp_path: Path, bars: np.ndarray) -> None:
    with pytest.raises(PlotError, match="as many cams and titles"):
        plot_window_grid(bars, [None], ["a", "b", "c"], tmp_path / "grid.png")
