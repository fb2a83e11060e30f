"""The demo's pictures, drawn by a few worker processes while the stream runs.

Drawing one window takes about a tenth of a second of CPU and holds the GIL the whole time; on
the event loop's process it would slow the worker and leave most pictures for after the stream
(the signals of a run cluster at its end). A :class:`Painter` hands each picture to a
``ProcessPoolExecutor`` instead, so the pictures are drawn on the other core as the signals
arrive. Its processes are started by a fork server (``spawn`` where the platform has none) that
imports matplotlib once: this process runs threads, an event loop and torch, and is never forked.
The drawing processes ignore SIGINT, which a terminal sends to its whole process group: the
demo handles Ctrl-C itself and stops the pool cleanly.

The processes are handed plain arrays and strings (:func:`consumer.cli.pictures.render_window`),
never a :class:`~bullflag_model.output.CNNDocument`, whose module loads torch.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final

import numpy as np

from consumer.cli.pictures import PictureError, render_window, window_figure

if TYPE_CHECKING:
    from bullflag_model.plot import WindowFigure

__all__ = ["DrawingTimes", "Painter", "Picture", "drawing_processes"]

_PRELOAD: Final = ["consumer.cli.demo.drawing", "bullflag_model.plot"]
"""What the fork server imports once for every drawing process (matplotlib among it)."""

_MAX_PROCESSES: Final = 2


def drawing_processes() -> int:
    """How many processes draw: two, or one where only one CPU is available to this process."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(_MAX_PROCESSES, available or 1))


@dataclass(frozen=True, slots=True)
class Picture:
    """A written picture, the seconds it took in its drawing process and the CPU seconds of those."""

    path: Path
    seconds: float
    cpu_s: float


@dataclass(frozen=True, slots=True)
class DrawingTimes:
    """How the pictures of a run were drawn.

    ``busy_s`` sums the seconds each picture took in its process (longer than ``cpu_s``, their
    CPU seconds, when the processes wait for a core); ``after_stream_s`` is how long after the
    end of the stream the last picture was written (0 when all were ready before).
    """

    pictures: int
    processes: int
    busy_s: float
    cpu_s: float
    after_stream_s: float


@cache
def _figure() -> WindowFigure:
    """This drawing process's figure: built for its first picture, drawn on again for the others."""
    return window_figure()


def _draw(bars: np.ndarray, cam: np.ndarray | None, title: str, path: Path, document_id: str) -> Picture:
    """Draw one picture in a drawing process and time it."""
    started, cpu = time.perf_counter(), time.process_time()
    written = render_window(bars, cam, title, path, document_id, _figure())
    return Picture(written, time.perf_counter() - started, time.process_time() - cpu)


def _ignore_interrupts() -> None:
    """Leave Ctrl-C to the demo, which stops the pool itself (the terminal signals every process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _context() -> multiprocessing.context.BaseContext:
    """A fork server that preloads the drawing modules, or ``spawn`` where there is none."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


class Painter:
    """Pictures queued from the event loop, drawn by up to ``processes`` processes.

    The pool starts with the first picture (a run without signals starts none). Use it as a
    context manager: leaving it shuts the pool down, waiting for the pictures being drawn and
    dropping the rest, so no drawing process outlives the run, however it ends.
    """

    def __init__(self, processes: int) -> None:
        """Draw with at most ``processes`` processes."""
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None
        self._plots: list[Future[Picture]] = []
        self._written_at: list[float] = []

    def __enter__(self) -> Painter:
        """The painter itself."""
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Shut the pool down: the pictures being drawn are finished, the queued ones dropped."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def queued(self) -> int:
        """Pictures queued and not cancelled."""
        return sum(1 for plot in self._plots if not plot.cancelled())

    @property
    def written(self) -> int:
        """Pictures written so far."""
        return len(self._written_at)

    def draw(
        self, bars: np.ndarray, cam: np.ndarray | None, title: str, path: Path, document_id: str
    ) -> None:
        """Queue a picture of ``bars`` and ``cam`` to ``path`` (see ``render_window``)."""
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=_context(), initializer=_ignore_interrupts
            )
        try:
            plot = self._pool.submit(_draw, bars, cam, title, path, document_id)
        except BrokenProcessPool as exc:
            raise _broken(exc) from None
        plot.add_done_callback(self._note_written)
        self._plots.append(plot)

    def _note_written(self, plot: Future[Picture]) -> None:
        """Remember when a picture was written (called on the pool's thread)."""
        if not plot.cancelled() and plot.exception() is None:
            self._written_at.append(time.monotonic())

    async def finish(self, stream_end: float, *, cancel: bool) -> tuple[list[Path], DrawingTimes]:
        """Wait for the queued pictures (dropping the unstarted ones when ``cancel``), stop the pool.

        Returns the written paths in queue order and the times, measured against
        ``stream_end`` (a :func:`time.monotonic` reading). A failed picture is raised as a
        :class:`PictureError`, the first one in queue order.
        """
        if cancel:
            for plot in self._plots:
                plot.cancel()
        results = await asyncio.gather(*(asyncio.wrap_future(p) for p in self._plots), return_exceptions=True)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.shutdown, wait=True)
        failure = next((r for r in results if isinstance(r, Exception)), None)
        if isinstance(failure, BrokenProcessPool):
            raise _broken(failure)
        if failure is not None:
            raise failure
        pictures = [r for r in results if isinstance(r, Picture)]
        times = DrawingTimes(
            pictures=len(pictures),
            processes=self.processes,
            busy_s=sum(p.seconds for p in pictures),
            cpu_s=sum(p.cpu_s for p in pictures),
            after_stream_s=max(max(self._written_at, default=stream_end) - stream_end, 0.0),
        )
        return [p.path for p in pictures], times


def _broken(exc: BrokenProcessPool) -> PictureError:
    """A pool whose process died (killed, out of memory) as the error the demo reports in one line."""
    return PictureError(f"a drawing process ended unexpectedly, so its pictures are missing ({exc}).")
