"""The demo's summary: outputs joined with the planted windows, signals counted by window kind."""

from __future__ import annotations

from pathlib import Path

from consumer.cli.demo.drawing import DrawingTimes
from consumer.cli.demo.plan import plan_demo
from consumer.cli.demo.report import DemoReport, DemoStats, planted_results, signals_by_kind, summary_lines
from consumer.sources.market import PlantedWindow

FLAG = PlantedWindow("AAA", "bull_flag", 0, 199, ("flag", "breakout", "retest", "continuation"))
WALK = PlantedWindow("AAA", "random_walk", 200, 399, ())


def test_planted_results_take_the_output_at_the_last_bar() -> None:
    results = planted_results([FLAG, WALK], {("AAA", 199): (0.9, True)})
    assert [(r.window, r.score, r.signal) for r in results] == [(FLAG, 0.9, True), (WALK, None, None)]


def test_signals_are_counted_by_the_window_they_fall_in() -> None:
    counts = signals_by_kind([FLAG, WALK], [("AAA", 150), ("AAA", 250), ("AAA", 260), ("BBB", 10)])
    assert counts == {"bull_flag": 1, "random_walk": 2, "outside": 1}


def test_summary_counts_and_names_the_pictures() -> None:
    plan = plan_demo(1, 200, seed=1)
    drawing = DrawingTimes(pictures=1, processes=2, busy_s=0.42, cpu_s=0.12, after_stream_s=0.05)
    stats = DemoStats(outputs=1, signals=2, plots_queued=1, pngs=[Path("out/a.png")], drawing=drawing)
    report = DemoReport(
        plan=plan,
        stats=stats,
        out=Path("out"),
        max_plots=1,
        stopped_by="complete",
        seconds=1.25,
        ticks_sent=plan.ticks,
        bars_closed=200,
        model_version="bullflag-cnn+test",
        threshold=0.5,
        trained=False,
    )

    lines = summary_lines(report)

    assert lines[1] == "summary (complete, 1.2 s)"
    assert f"  ticks replayed {plan.ticks:,} of {plan.ticks:,}" in lines
    assert "  outputs        1 CNNOutput documents of 1 expected" in lines
    assert "  signals        2 at threshold 0.5 (model bullflag-cnn+test, UNTRAINED)" in lines
    assert "  pictures       1 PNG in out/ (signals not drawn: 1 over --max-plots 1)" in lines
    assert "  first picture  out/a.png" in lines
    assert (
        "  drawing        1 PNG by 2 processes while the stream ran: 0.4 s (0.1 s of CPU, 0.12 s a picture); "
        "the last one 0.1 s after the stream ended"
    ) in lines
