"""``bullflag demo`` end to end on its own embedded broker, and ``bullflag explain`` on topics.

The demo starts and stops its own broker and its drawing processes, so these tests run it as a
command in a session of its own and check that nothing of that session is left running once
the command has returned, and that every picture it announced was written.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from bullflag_model.output import cnn_output
from consumer.cli import main
from consumer.cli.explain import fetch_bars
from consumer.sources.market import synthetic_market
from consumer.sources.producer import bar_records, produce_records
from tests.integration.conftest import TopicFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = [sys.executable, "-m", "consumer.cli", "demo"]
SMALL_RUN = ["--symbols", "6", "--threshold", "0.0", "--max-seconds", "40"]
PICTURE = re.compile(r" -> (\S+\.png)$", re.MULTILINE)
PICTURES_WRITTEN = re.compile(r"^  pictures +(\d+) PNGs? in ", re.MULTILINE)
GUARD_S = 120.0
"""Only turns a hang into a failure (a first signal that never comes, a stop that never ends)."""


def session_members(session: int) -> list[str]:
    """``pid command`` of each live process in session ``session``, read from ``/proc``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z" and int(fields[3]) == session:
            members.append(f"{stat.parent.name} {command.strip()}")
    return members


def left_behind(session: int) -> list[str]:
    """The processes of the demo's session still alive a few seconds after the demo exited."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc on this platform to look for processes left behind")
    deadline = time.monotonic() + GUARD_S
    while (members := session_members(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return members


def start_demo(flags: list[str]) -> subprocess.Popen[str]:
    """``bullflag demo`` with ``flags`` in a new session (so its processes can be found afterwards)."""
    return subprocess.Popen(
        [*DEMO, *flags],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def assert_pictures_written(printed: str, out: Path) -> list[Path]:
    """Every PNG the demo said it wrote is in ``out``, and nothing else; returns them."""
    written = PICTURES_WRITTEN.search(printed)
    assert written is not None, printed
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == int(written.group(1)), printed
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    return pngs


def test_demo_runs_to_completion_and_draws_signals(broker_binary: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    process = start_demo([*SMALL_RUN, "--bars", "215", "--speed", "0", "--max-plots", "8", "--out", str(out)])
    try:
        printed, _ = process.communicate(timeout=GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, printed
    assert left_behind(process.pid) == [], printed
    expected = 6 * (215 - 199)
    assert "summary (complete" in printed
    assert f"outputs        {expected} CNNOutput documents of {expected} expected" in printed
    assert f"signals        {expected} at threshold 0" in printed
    assert "bars closed    1,290" in printed
    signal_lines = [line for line in printed.splitlines() if line.startswith("signal ")]
    assert len(signal_lines) == expected
    assert all("cam peak bar" in line for line in signal_lines)
    announced = sorted(Path(p) for p in PICTURE.findall(printed))
    assert assert_pictures_written(printed, out) == announced and len(announced) == 8
    assert f"8 PNGs in {out}/ (signals not drawn: {expected - 8} over --max-plots 8)" in printed
    assert re.search(r"^  drawing +8 PNGs by [12] process(es)? while the stream ran: ", printed, re.MULTILINE)
    assert "planted windows with bull-flag labels" in printed
    assert "metrics  http://127.0.0.1:" in printed


def test_ctrl_c_stops_worker_and_broker_cleanly(broker_binary: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    process = start_demo(
        [*SMALL_RUN, "--bars", "400", "--speed", "60", "--max-plots", "1", "--out", str(out)]
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("signal "):
                break
        assert lines and lines[-1].startswith("signal "), "the demo ended before a signal:\n" + "".join(lines)
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=GUARD_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    printed = "".join(lines) + rest
    assert process.returncode == 0, printed
    assert "stopping: worker, replay and broker are shutting down" in printed
    assert "summary (interrupted" in printed
    assert left_behind(process.pid) == [], printed
    assert_pictures_written(printed, out)


def output_for(market: Any, symbol: int, last: int) -> dict[str, Any]:
    """A CNNOutput for the 200 bars of ``market`` symbol ``symbol`` ending with bar ``last``."""
    result = {
        "flag_prob": 0.8,
        "breakout_prob": 0.6,
        "retest_prob": 0.4,
        "continuation_prob": 0.2,
        "sequence_score": 0.45,
        "activation_map": np.linspace(1.0, 0.0, 200).tolist(),
    }
    return cnn_output(
        result,
        symbol=market.symbols[symbol],
        interval="1m",
        bar_end_ts=int(market.ts_ms[last]) + market.interval_ms,
        window_start_ts=int(market.ts_ms[last - 199]),
        model_version="bullflag-cnn+test000000",
        threshold=0.4,
    )


async def test_explain_reads_document_and_bars_from_topics(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = synthetic_market(2, 210, seed=5)
    signals, bars_topic = await topic_factory(2), await topic_factory(3)
    wanted, other = output_for(market, 1, 205), output_for(market, 0, 205)
    await produce_records(kafka_bootstrap, bars_topic, bar_records(market.table()))
    documents = [(d["symbol"].encode(), orjson.dumps(d), d["bar_end_ts"]) for d in (other, wanted)]
    await produce_records(kafka_bootstrap, signals, documents)
    out = tmp_path / "window.svg"
    flags = ["--bars-topic", bars_topic, "--bootstrap-servers", kafka_bootstrap, "--out", str(out)]

    code = await asyncio.to_thread(main, ["explain", "--from-topic", signals, "--id", wanted["id"], *flags])

    assert code == 0, capsys.readouterr().err
    assert "<svg" in out.read_text() and market.symbols[1] in capsys.readouterr().out
    table = await fetch_bars(kafka_bootstrap, bars_topic, market.symbols[1])
    np.testing.assert_array_equal(table.ohlcv, market.bars[1])

    missing = "0" * 32
    code = await asyncio.to_thread(main, ["explain", "--from-topic", signals, "--id", missing, *flags])

    assert code == 2
    assert (
        f"no CNNOutput with id '{missing}' on topic '{signals}' (2 records read)" in capsys.readouterr().err
    )
