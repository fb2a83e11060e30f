"""``bullflag demo`` starts the live signals page, prints its URL, and the page answers while it runs."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from tests.integration.test_demo import assert_pictures_written, left_behind, start_demo

PAGE_LINE = re.compile(r"^page +(http://127\.0\.0\.1:\d+/) ")
SEEN_DEADLINE_S = 60.0
"""A failure guard only: the test moves on as soon as the page shows what it waits for."""
POLL_S = 0.1
"""How often the page is asked again (a polling interval, not a wait for anything)."""


def get_json(url: str) -> Any:
    """The JSON body of ``GET url`` (a loopback URL the demo printed)."""
    with urllib.request.urlopen(url, timeout=5) as answer:
        return orjson.loads(answer.read())


def page_answers(url: str) -> bool:
    """Whether anything answers HTTP at ``url``."""
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except (urllib.error.URLError, OSError):
        return False


def test_the_demo_serves_its_signals_page_while_it_runs(broker_binary: Path, tmp_path: Path) -> None:
    out = tmp_path / "pictures"
    run = ["--symbols", "6", "--bars", "260", "--speed", "240", "--threshold", "0.0", "--max-plots", "2"]
    process = start_demo([*run, "--max-seconds", "60", "--out", str(out)])
    assert process.stdout is not None
    lines: list[str] = []
    rows: list[dict[str, Any]] = []
    status: dict[str, Any] = {}
    try:
        url = ""
        for line in process.stdout:
            lines.append(line)
            if found := PAGE_LINE.match(line):
                url = found.group(1)
                break
        assert url, "the demo printed no page URL:\n" + "".join(lines)
        assert b'<canvas id="chart"' in urllib.request.urlopen(url, timeout=5).read()
        deadline = time.monotonic() + SEEN_DEADLINE_S
        while not (rows and status.get("worker", {}).get("ready")) and process.poll() is None:
            listing = get_json(url + "api/signals")
            rows, status = listing["rows"], listing
            assert time.monotonic() < deadline, f"the page never showed a signal: {listing}"
            time.sleep(POLL_S)
        assert process.poll() is None, "the demo ended before its page showed a signal and a ready worker"
        window = get_json(f"{url}api/window/{rows[0]['id']}")
        while not window["bars"] and process.poll() is None:
            # The bars come from the state topic, read beside the signals: wait for them too.
            assert time.monotonic() < deadline, f"the page never had the window's bars: {window}"
            time.sleep(POLL_S)
            window = get_json(f"{url}api/window/{rows[0]['id']}")
        assert window["bars"], "the demo ended before its page had a signal's bars"
        rest, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    printed = "".join(lines) + rest
    assert process.returncode == 0, printed
    signalled = {line.split()[1] for line in printed.splitlines() if line.startswith("signal ")}
    assert rows[0]["symbol"] in signalled, printed
    assert len(window["cam"]) == 200, window
    assert status["topics"]["signals"]["name"] == "signals"
    assert not page_answers(url), "the page still answers after the demo exited"
    assert left_behind(process.pid) == [], printed
    assert_pictures_written(printed, out)
