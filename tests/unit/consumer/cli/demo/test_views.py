"""What the demo shows: the progress line, throttled plain lines, and the redrawn terminal block."""

from __future__ import annotations

import dataclasses
import io

from consumer.cli.demo.views import LineView, LiveView, Progress, progress_line

START = Progress(
    phase="warm-up",
    seconds=0.0,
    ticks_sent=1_500,
    ticks_total=20_000,
    bars_closed=12,
    outputs=3,
    expected_outputs=400,
    signals=1,
    pngs_done=0,
    pngs=1,
    market_ts=1_732_550_400_000,
)


def test_progress_line() -> None:
    assert progress_line(START) == (
        "[warm-up]   0.0s  market 2024-11-25 16:00Z  ticks 1,500/20,000  bars closed 12  "
        "outputs 3/400  signals 1  PNGs 0/1"
    )
    assert "market -" in progress_line(dataclasses.replace(START, market_ts=None))


def test_line_view_prints_on_a_new_phase_else_every_two_seconds() -> None:
    stream = io.StringIO()
    view = LineView(stream)
    for phase, seconds in [("warm-up", 0.0), ("warm-up", 1.0), ("warm-up", 2.5), ("live", 2.6)]:
        view.progress(dataclasses.replace(START, phase=phase, seconds=seconds))
    printed = stream.getvalue().splitlines()
    assert [line.split("]")[0] for line in printed] == ["[warm-up", "[warm-up", "[live"]


def test_live_view_redraws_its_block_in_place() -> None:
    stream = io.StringIO()
    view = LiveView(stream)
    view.progress(START)
    view.note("a note")
    drawn = stream.getvalue()
    assert drawn.count("[warm-up]") == 2 and "\x1b[3F\x1b[J" in drawn
    assert drawn.index("a note") > drawn.index("\x1b[3F")
