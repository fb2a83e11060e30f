"""Wall time of ``bullflag demo`` with its default flags, on a quiet machine and beside a busy loop.

Run: ``python -m benchmarks.bench_demo`` (``--help`` for the number of runs; about 40 s a run).
Each run starts ``python -m consumer.cli demo`` in a session of its own and times it from start
to exit (interpreter start-up included), reads the drawing time from its summary, counts the
PNGs it wrote, and after it exited looks for any process of its session still alive (the broker,
the drawing processes): there must be none. ``busy`` runs beside one ``python -c "while True:
pass"`` started just before the demo and killed after it, the CPU-bound neighbour the demo must
finish beside within 35 s. Each run records the one-minute load average before it, since other
work on a shared machine counts too. Writes ``benchmarks/results/demo.json``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from benchmarks.report import print_table, write_json

ROOT: Final = Path(__file__).resolve().parents[1]
TARGET_S: Final = 35.0
GRACE_S: Final = 5.0
"""How long helpers may take to notice their parent has gone before they count as left behind."""

_SUMMARY = re.compile(r"^summary \((?P<how>[^,]+), (?P<seconds>[\d.]+) s\)$", re.MULTILINE)
_PICTURES = re.compile(r"^  pictures +(?P<count>\d+) PNGs? in ", re.MULTILINE)
_DRAWING = re.compile(
    r"^  drawing +\d+ PNGs? by (?P<processes>\d+) process(?:es)? while the stream ran: (?P<busy>[\d.]+) s "
    r"\((?P<cpu>[\d.]+) s of CPU, [\d.]+ s a picture\); "
    r"the last one (?P<after>[\d.]+) s after the stream ended$",
    re.MULTILINE,
)
COLUMNS: Final = (
    "mode",
    "runs",
    "wall_s_median",
    "wall_s_min",
    "wall_s_max",
    "drawing_s_median",
    "after_s_max",
)


def session_members(session: int) -> list[int]:
    """Pids of the live (not zombie) processes whose session id is ``session``, from ``/proc``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session:
            members.append(int(stat.parent.name))
    return members


def left_behind(session: int) -> list[int]:
    """The session's processes still alive :data:`GRACE_S` after its leader exited."""
    deadline = time.monotonic() + GRACE_S
    while (members := session_members(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return members


@contextmanager
def neighbour(busy: bool) -> Iterator[None]:
    """One CPU-bound process beside the demo while the block runs (none unless ``busy``)."""
    if not busy:
        yield
        return
    loop = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        loop.kill()
        loop.wait()


def run_once(busy: bool, out: Path) -> dict[str, Any]:
    """One demo run with default flags; its wall time, drawing time, PNGs and leftovers."""
    command = [sys.executable, "-m", "consumer.cli", "demo", "--out", str(out)]
    load = os.getloadavg()[0]
    with neighbour(busy):
        started = time.monotonic()
        done = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        printed, _ = done.communicate()
        wall = time.monotonic() - started
    leftovers = left_behind(done.pid)
    summary, pictures, drawing = _SUMMARY.search(printed), _PICTURES.search(printed), _DRAWING.search(printed)
    if done.returncode != 0 or summary is None or pictures is None or drawing is None:
        raise SystemExit(f"bullflag demo failed (exit {done.returncode}):\n{printed}")
    return {
        "mode": "busy" if busy else "quiet",
        "load_1min_before": round(load, 2),
        "exit": done.returncode,
        "stopped_by": summary["how"],
        "wall_s": round(wall, 2),
        "summary_s": float(summary["seconds"]),
        "pngs_reported": int(pictures["count"]),
        "pngs_written": len(list(out.glob("*.png"))),
        "drawing_s": float(drawing["busy"]),
        "drawing_cpu_s": float(drawing["cpu"]),
        "drawing_processes": int(drawing["processes"]),
        "after_stream_s": float(drawing["after"]),
        "left_behind": len(leftovers),
    }


def summarise(mode: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and spread of one mode's runs."""
    walls = [r["wall_s"] for r in runs]
    return {
        "mode": mode,
        "runs": len(runs),
        "wall_s_median": round(statistics.median(walls), 2),
        "wall_s_min": min(walls),
        "wall_s_max": max(walls),
        "drawing_s_median": round(statistics.median(r["drawing_s"] for r in runs), 2),
        "after_s_max": max(r["after_stream_s"] for r in runs),
    }


def main() -> None:
    """Run the demo ``--runs`` times per mode, alternating quiet and busy; print and save."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="Runs per mode (default 3).")
    parser.add_argument("--modes", default="quiet,busy", help="Comma-separated: quiet, busy (default both).")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"quiet", "busy"}:
        parser.error(f"--modes {args.modes}: give quiet, busy or both.")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as scratch:
        for index in range(args.runs):
            for mode in modes:
                run = run_once(mode == "busy", Path(scratch) / f"{mode}-{index}")
                print(" ".join(f"{k}={v}" for k, v in run.items()), flush=True)
                runs.append(run)
    summaries = [summarise(m, [r for r in runs if r["mode"] == m]) for m in modes]
    print_table(COLUMNS, [[s[c] for c in COLUMNS] for s in summaries])
    complete = all(
        r["stopped_by"] == "complete" and r["pngs_written"] == r["pngs_reported"] and not r["left_behind"]
        for r in runs
    )
    within = all(r["wall_s"] <= TARGET_S for r in runs)
    print(f"every run complete, all PNGs written, nothing left behind: {complete}")
    print(f"every run within {TARGET_S:g} s: {within}")
    path = write_json(
        "demo",
        {
            "command": "python -m consumer.cli demo --out DIR (default flags)",
            "target_s": TARGET_S,
            "summaries": summaries,
            "runs": runs,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
