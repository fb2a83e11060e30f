"""Scoring backends: cost per window and what a scoring thread leaves to the event loop.

Run: ``python -m benchmarks.bench_backends``. Windows are the generator's training mix, scored
with ``BullFlagCNNInfer.score`` at the serving threshold, so the closed-form Grad-CAM runs on the
rows that signal (about 9 %), as in the worker. Two measurements, every configuration
interleaved round by round so a busy shared machine slows them alike:

- ``cost``: wall and CPU (process) time per window at B = 64, 256 and 512, the median of the
  rounds, for eager torch (its default threads) and ONNX Runtime (one thread, spinning off: the
  worker's default); ratios are eager / onnx;
- ``loop``: a scoring thread scores B = 512 windows, rests 5 ms and scores again (bursts of bar
  closes), while the main thread runs a pure-Python loop standing in for the event loop; the
  loop's iterations per second against the same loop with no scoring, and the windows scored per
  second, for torch and ONNX Runtime at one and two threads, with spinning on and off.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.report import print_table, write_json
from bullflag_model.features import features_in_chunks
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.model_files import default_checkpoint_path, onnx_path_for
from bullflag_model.onnx_backend import OnnxBackend
from bullflag_model.synthetic import generate_windows

BATCHES = (64, 256, 512)


def scorer(backend: str, threads: int = 0, spinning: bool = False) -> BullFlagCNNInfer:
    """A scorer at the serving threshold with Grad-CAM on; ONNX Runtime with the given pool."""
    infer = BullFlagCNNInfer(backend=backend, enable_gradcam=True, threads=threads)
    infer.resolve_threshold(None)
    if backend == "onnx" and spinning:
        infer.backend = OnnxBackend(onnx_path_for(default_checkpoint_path()), threads, spinning=True)
    if backend == "torch" and threads:
        infer.set_threads(threads)
    return infer


def timed(fn: Callable[[], object], windows: int, calls: int) -> tuple[float, float]:
    """Wall and CPU microseconds per window over ``calls`` calls of ``fn``."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (
        (time.perf_counter() - wall) / (calls * windows) * 1e6,
        (time.process_time() - cpu) / (calls * windows) * 1e6,
    )


def bench_cost(features: np.ndarray, rounds: int) -> list[dict[str, Any]]:
    """Median wall and CPU us per window per backend and batch size, interleaved round by round."""
    backends = {"torch": scorer("torch"), "onnx": scorer("onnx")}
    samples: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for batch in BATCHES:
            x = features[:batch]
            calls = max(2, 2048 // batch)
            for name, infer in backends.items():
                infer.score(x)
                sample = timed(lambda i=infer, x=x: i.score(x), batch, calls)
                samples.setdefault((name, batch), []).append(sample)
    rows = []
    for batch in BATCHES:
        torch_wall, torch_cpu = (statistics.median(s) for s in zip(*samples[("torch", batch)], strict=True))
        onnx_wall, onnx_cpu = (statistics.median(s) for s in zip(*samples[("onnx", batch)], strict=True))
        rows.append(
            {
                "batch": batch,
                "torch_wall_us": torch_wall,
                "torch_cpu_us": torch_cpu,
                "onnx_wall_us": onnx_wall,
                "onnx_cpu_us": onnx_cpu,
                "wall_ratio": torch_wall / onnx_wall,
                "cpu_ratio": torch_cpu / onnx_cpu,
            }
        )
    return rows


def loop_rate(seconds: float) -> float:
    """Iterations per second of a pure-Python loop (the event loop's stand-in) for ``seconds``."""
    count, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        count += 1
    return count / seconds


def _score_bursts(
    infer: BullFlagCNNInfer, x: np.ndarray, threads: int, stop: threading.Event, scored: list[int]
) -> None:
    """The scoring thread: score ``x``, rest 5 ms, again, until ``stop``; counts into ``scored``."""
    if infer.backend_name == "torch" and threads:
        infer.set_threads(threads)
    while not stop.is_set():
        infer.score(x)
        scored[0] += len(x)
        time.sleep(0.005)


def bench_loop(features: np.ndarray, seconds: float) -> list[dict[str, Any]]:
    """The loop's share and the scoring rate with a scoring thread beside it, per configuration."""
    configs = [
        ("torch", 0, False),
        ("torch", 1, False),
        ("onnx", 1, False),
        ("onnx", 2, False),
        ("onnx", 1, True),
        ("onnx", 2, True),
    ]
    x = features[:512]
    rows = []
    for backend, threads, spinning in configs:
        alone = loop_rate(seconds / 2)
        infer = scorer(backend, threads, spinning)
        stop, scored = threading.Event(), [0]
        thread = threading.Thread(target=_score_bursts, args=(infer, x, threads, stop, scored))
        thread.start()
        time.sleep(0.2)
        scored[0], started = 0, time.perf_counter()
        beside = loop_rate(seconds)
        rate = scored[0] / (time.perf_counter() - started)
        stop.set()
        thread.join()
        rows.append(
            {
                "backend": backend,
                "threads": threads or "default",
                "spinning": "n/a" if backend == "torch" else ("on" if spinning else "off"),
                "loop_share": beside / alone,
                "windows_per_s": rate,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop-seconds", type=float, default=4.0)
    args = parser.parse_args()
    features = features_in_chunks(generate_windows(512, seed=31).bars)
    cost = bench_cost(features, args.rounds)
    print_table(
        ["B", "eager wall us", "eager CPU us", "onnx wall us", "onnx CPU us", "wall ratio", "CPU ratio"],
        [list(r.values()) for r in cost],
    )
    loop = bench_loop(features, args.loop_seconds)
    print_table(
        ["backend", "threads", "spinning", "event-loop share", "windows/s"],
        [list(r.values()) for r in loop],
    )
    write_json("backends", {"cost": cost, "loop": loop})


if __name__ == "__main__":
    main()
