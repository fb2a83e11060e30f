"""The demo's drawing processes: pictures written off the event loop's process, the pool stopped after."""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from consumer.cli.demo.drawing import Painter, drawing_processes
from consumer.cli.pictures import PictureError
from tests.strategies import random_bars

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bars() -> np.ndarray:
    return random_bars(3, seed=5)


def test_pictures_are_drawn_in_processes_and_the_pool_stops(tmp_path: Path, bars: np.ndarray) -> None:
    cams = [np.linspace(0.0, 1.0, 200), None, np.zeros(200)]

    async def draw() -> tuple[list[Path], float]:
        with Painter(2) as painter:
            for k, (window, cam) in enumerate(zip(bars, cams, strict=True)):
                painter.draw(window, cam, f"window {k}\nsecond line", tmp_path / f"w{k}.png", f"id{k}")
            assert painter.queued == 3
            stream_end = time.monotonic()
            paths, times = await painter.finish(stream_end, cancel=False)
            assert painter.written == 3
            return paths, times.after_stream_s

    paths, after = asyncio.run(draw())

    assert paths == [tmp_path / f"w{k}.png" for k in range(3)]
    assert all(p.read_bytes()[:8] == PNG for p in paths)
    assert after >= 0.0
    assert multiprocessing.active_children() == []


def test_the_times_count_every_picture(tmp_path: Path, bars: np.ndarray) -> None:
    async def draw() -> tuple[int, int, float, float]:
        with Painter(1) as painter:
            painter.draw(bars[0], None, "one", tmp_path / "one.png", "id")
            painter.draw(bars[1], None, "two", tmp_path / "two.png", "id")
            _, times = await painter.finish(0.0, cancel=False)
            return times.pictures, times.processes, times.busy_s, times.cpu_s

    pictures, processes, busy, cpu = asyncio.run(draw())

    assert (pictures, processes) == (2, 1)
    assert busy > 0.0 and cpu > 0.0


def test_nothing_queued_starts_no_process() -> None:
    async def finish() -> int:
        with Painter(2) as painter:
            paths, times = await painter.finish(time.monotonic(), cancel=False)
            assert paths == []
            return times.pictures

    assert asyncio.run(finish()) == 0
    assert multiprocessing.active_children() == []


def test_cancelling_drops_the_pictures_not_started(tmp_path: Path, bars: np.ndarray) -> None:
    async def draw() -> int:
        with Painter(1) as painter:
            for k in range(12):
                painter.draw(bars[k % 3], None, f"w{k}", tmp_path / f"w{k}.png", f"id{k}")
            paths, _ = await painter.finish(time.monotonic(), cancel=True)
            return len(paths)

    written = asyncio.run(draw())

    assert written < 12
    assert len(list(tmp_path.glob("*.png"))) == written


def test_a_picture_that_cannot_be_drawn_is_reported(tmp_path: Path, bars: np.ndarray) -> None:
    async def draw() -> None:
        with Painter(1) as painter:
            painter.draw(bars[0], None, "bad", tmp_path / "w.jpg", "abc123")
            await painter.finish(time.monotonic(), cancel=False)

    with pytest.raises(PictureError, match=r"cannot draw CNNOutput abc123 to .*w\.jpg: .*\.png, \.svg"):
        asyncio.run(draw())


def test_the_drawing_modules_load_neither_torch_nor_the_worker() -> None:
    heavy = ("torch", "aiokafka", "consumer.kafka.worker")
    code = f"import sys, consumer.cli.demo.drawing; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_at_least_one_and_at_most_two_processes_draw() -> None:
    assert 1 <= drawing_processes() <= 2
