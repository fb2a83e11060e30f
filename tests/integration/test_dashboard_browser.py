"""The live signals page in a real browser: broker, worker and dashboard running, Chromium looking.

Chromium comes from the system (Debian's ``chromium`` package, installed by ``.ci/run``) and is
driven by Playwright for Python with ``executable_path`` set to it; where either is missing the
test is skipped saying which. The page is opened before any tick is produced, so every row it
shows arrived live over the event stream. Every wait is on a condition in the page.
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.synthetic import KINDS, generate_windows
from consumer.dashboard import Dashboard
from consumer.kafka.worker import Worker
from consumer.sources.trades import bars_to_ticks
from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import (
    FAST_CONSUMER,
    INTERVAL_MS,
    START_MS,
    produce,
    running,
    wait_for,
    wait_until,
    worker_settings,
)

playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright for Python is not installed (pip install playwright)"
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LEAD = 30
WINDOWS = LEAD + 1
WAIT_MS = 60_000
BACKGROUND = (15, 20, 32)
STRIP_PIXELS = """(canvas, background) => {
  const ctx = canvas.getContext("2d");
  const top = Math.floor(canvas.height * 0.87), h = Math.floor(canvas.height * 0.08);
  const data = ctx.getImageData(70, top, canvas.width - 90, h).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) {
    const off = [0, 1, 2].reduce((sum, k) => sum + Math.abs(data[i + k] - background[k]), 0);
    if (off > 30) lit++;
  }
  return [lit, data.length / 4];
}"""
"""Pixels of the strip's area that differ from the canvas background, and all of them."""


def chromium() -> str:
    """The system Chromium; skips, saying how to get it, where there is none."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Chromium is not installed: apt-get install -y chromium (.ci/run does this as root)")
    return path


def probe_url(worker: Worker) -> str | None:
    """The worker's probe server URL once it listens, else None."""
    try:
        return None if worker.health_server is None else worker.health_server.url
    except RuntimeError:
        return None


def planted_market() -> dict[str, np.ndarray]:
    """Two symbols' bars: a bull flag the model scores high (FLAG) and a random walk (WALK).

    As in the worker's planted-flag test, each symbol's last scored window is one generated
    200-bar window; ``LEAD`` bars before it (its own first bars, rescaled to end where it begins)
    give the table earlier windows with other scores, and one bar after it closes the last.
    """
    windows = generate_windows(96, seed=3)
    infer = BullFlagCNNInfer()
    serving = float(infer.metadata["serving_threshold"])
    scores = infer.score(build_features(windows.bars)).sequence
    flag = int(np.flatnonzero((windows.labels.min(axis=1) == 1) & (scores >= serving + 0.05))[0])
    walk = int(np.flatnonzero((np.asarray(KINDS)[windows.kind] == "random_walk") & (scores < 0.01))[0])
    market = {}
    for symbol, row in (("FLAG", flag), ("WALK", walk)):
        window = windows.bars[row]
        lead = window[:LEAD].copy()
        lead[:, :4] *= window[0, 0] / lead[-1, 3]
        market[symbol] = np.concatenate([lead, window, window[-1:]])
    return market


def market_ticks() -> list[tuple[bytes | None, bytes | None]]:
    """The planted market as trades, in event-time order."""
    ticks = []
    for n, (symbol, bars) in enumerate(planted_market().items()):
        starts = START_MS + np.arange(len(bars), dtype=np.int64) * INTERVAL_MS
        path = bars_to_ticks(bars, starts, symbol, seed=n, interval_ms=INTERVAL_MS)
        ticks += [
            (int(ts), symbol.encode(), orjson.dumps({"symbol": symbol, "ts": int(ts), "price": p, "size": s}))
            for ts, p, s in zip(path.ts_ms, path.price.tolist(), path.size.tolist(), strict=True)
        ]
    return [(key, value) for _, key, value in sorted(ticks)]


@pytest.fixture
async def topics(topic_factory: TopicFactory) -> dict[str, str]:
    """One-partition ticks, signals and dead-letter topics of this test."""
    return {"ticks": await topic_factory(1), "signals": await topic_factory(1), "dlq": await topic_factory(1)}


@pytest.fixture
async def browser_page() -> AsyncIterator[Any]:
    """A fresh page in headless system Chromium."""
    executable = chromium()
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1500, "height": 820})
            yield page
        finally:
            await browser.close()


async def test_signals_appear_live_draw_their_window_and_filter(
    kafka_bootstrap: str,
    topics: dict[str, str],
    group_id: str,
    browser_page: Any,
    tmp_path: Path,
) -> None:
    page = browser_page
    expect = playwright_api.expect
    settings = worker_settings(kafka_bootstrap, topics, group_id)
    worker = Worker(settings, consumer_options=FAST_CONSUMER)
    async with running(worker):
        await wait_for(lambda: probe_url(worker) is not None)
        async with Dashboard(settings, metrics_url=probe_url(worker)) as dashboard:
            await page.goto(dashboard.url)
            await expect(page.locator("#connection")).to_have_text("live", timeout=WAIT_MS)
            assert await page.locator("tr.signal-row").count() == 0

            await produce(kafka_bootstrap, topics["ticks"], market_ticks())
            await produce(kafka_bootstrap, topics["signals"], [(b"X", b"{not a CNNOutput"), (b"X", b"[]")])
            rows = page.locator("tr.signal-row")
            await expect(rows.first).to_be_visible(timeout=WAIT_MS)
            await expect(page.locator("#error-count")).to_have_text("2", timeout=WAIT_MS)
            await expect(page.locator("#worker")).to_have_text("worker: ready", timeout=WAIT_MS)

            # Newest first; every window of both symbols arrives.
            expected = 2 * WINDOWS
            await expect(rows).to_have_count(expected, timeout=WAIT_MS)
            times = await rows.evaluate_all("rs => rs.map(r => r.cells[1].textContent)")
            assert times == sorted(times, reverse=True)

            scores = await rows.evaluate_all("rs => rs.map(r => Number(r.dataset.score))")
            best = rows.nth(int(np.argmax(scores)))
            assert await best.get_attribute("data-symbol") == "FLAG"
            document_id = await best.get_attribute("data-id")

            async def window_complete() -> bool:
                # The bars come from the state topic, read beside the signals, and may trail them.
                reply = await page.request.get(f"{dashboard.url}api/window/{document_id}")
                return bool(reply.ok and (await reply.json())["complete"])

            await wait_until(window_complete)
            await best.click()
            chart = page.locator(f'canvas#chart[data-drawn="{document_id}"][data-complete="true"]')
            await expect(chart).to_have_attribute("data-strip", "map", timeout=WAIT_MS)
            assert await chart.get_attribute("data-bars") == "200"
            lit, total = await chart.evaluate(STRIP_PIXELS, list(BACKGROUND))
            assert lit > total * 0.5, f"the Grad-CAM strip is mostly background ({lit} of {total} pixels lit)"
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            symbols = sorted(set(await rows.evaluate_all("rs => rs.map(r => r.dataset.symbol)")))
            assert len(symbols) == 2
            assert symbols == ["FLAG", "WALK"]
            await page.fill("#symbol-filter", "fla")
            await expect(rows).to_have_count(WINDOWS)
            assert set(await rows.evaluate_all("rs => rs.map(r => r.dataset.symbol)")) == {"FLAG"}

            scores = sorted(float(s) for s in await rows.evaluate_all("rs => rs.map(r => r.dataset.score)"))
            cut = float(np.median(scores))
            cut = float(f"{cut:.6f}")
            await page.fill("#min-score", str(cut))
            shown = sum(s >= cut for s in scores)
            assert 0 < shown < WINDOWS
            await expect(rows).to_have_count(shown)
            assert (
                min(float(s) for s in await rows.evaluate_all("rs => rs.map(r => r.dataset.score)"))
                >= cut - 1e-6
            )

            await page.fill("#symbol-filter", "")
            await page.fill("#min-score", "")
            await expect(rows).to_have_count(expected)
            assert dashboard.store.stats()["errors"] == {"invalid_json": 1, "invalid_document": 1}
