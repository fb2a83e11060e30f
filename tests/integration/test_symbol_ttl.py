"""Symbols that leave (``--symbol-ttl``) with real worker processes against a real broker.

Junk symbols fill ``--max-symbols`` and a real symbol is refused; event time moves on with a
steady symbol's ticks, the junk expires (its state tombstoned) and the real symbol is accepted.
A worker restarted there restores only the two live symbols, the state topic replays to
exactly those, and the outputs (after one more restart, by SIGKILL) equal an uninterrupted
run's, deduplicated by ``id``.
"""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiokafka import ConsumerRecord, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from consumer.core.state import StateReplay
from consumer.kafka.topic_reader import read_topic
from tests.integration.conftest import TopicFactory
from tests.integration.test_recovery import (
    WorkerProcess,
    collect,
    make_topics,
    read_all_outputs,
    signal_reader,
    worker_env,
    workers,
)
from tests.integration.test_worker import produce

INTERVAL_MS = 1_000
START_MS = 1_732_550_400_000
SEQ_LEN = 200
LAST_BAR = 260
"""Bars 0 .. LAST_BAR - 1; each symbol's last bar stays open."""
REAL_FROM = 40
"""The real symbol trades again from this bar, long after the junk expired (about bar 7)."""
PHASE_ONE = 101
"""Bars produced before the restart."""
JUNK = ["J0", "J1", "J2"]
EXPECTED = (LAST_BAR - 1 - SEQ_LEN + 1) + (LAST_BAR - 1 - REAL_FROM - SEQ_LEN + 1)
"""Windows scored: the steady symbol's closed bars from its 200th, the real symbol's likewise."""


def market() -> list[tuple[int, bytes, bytes]]:
    """(bar, key, value) ticks: A twice a bar throughout; the junk at bars 0-1; REAL at bars 2-5
    (refused: the junk and A fill the limit) and from REAL_FROM on."""
    rng = np.random.default_rng(5)
    price = {"A": 50.0, "REAL": 20.0, **dict.fromkeys(JUNK, 1.0)}
    rows = []
    for bar in range(LAST_BAR):
        trading = [("A", 100), ("A", 600)]
        trading += [(j, 200) for j in JUNK] if bar < 2 else []
        trading += [("REAL", 300)] if 2 <= bar < 6 or bar >= REAL_FROM else []
        for symbol, offset in sorted(trading, key=lambda t: t[1]):
            price[symbol] *= float(np.exp(rng.normal(0, 0.004)))
            tick = {
                "symbol": symbol,
                "ts": START_MS + bar * INTERVAL_MS + offset,
                "price": price[symbol],
                "size": 1,
            }
            rows.append((bar, symbol.encode(), orjson.dumps(tick)))
    return rows


def env_with_ttl(bootstrap: str, topics: dict[str, str], group: str) -> dict[str, str]:
    return worker_env(bootstrap, topics, group) | {
        "BULLFLAG_MAX_SYMBOLS": "4",
        "BULLFLAG_SYMBOL_TTL": "5s",
        "BULLFLAG_MAX_POLL_RECORDS": "20",
    }


async def metrics(worker: WorkerProcess) -> dict[str, float]:
    """The worker's /metrics samples by name (summed over labels), {} until it serves them."""
    found = re.search(r"listening on (http://\S+)", worker.log.read_text())
    if found is None:
        return {}

    def scrape() -> str:
        with urllib.request.urlopen(found.group(1).rstrip("/") + "/metrics", timeout=5) as response:
            return str(response.read().decode())

    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(await asyncio.to_thread(scrape)):
        for sample in family.samples:
            samples[sample.name] = samples.get(sample.name, 0.0) + sample.value
    return samples


async def wait_for_metrics(worker: WorkerProcess, condition: Any, timeout_s: float = 90) -> dict[str, float]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition(seen := await metrics(worker)):
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert asyncio.get_running_loop().time() < deadline, f"metrics never met the condition: {seen}"
        await asyncio.sleep(0.2)
    return seen


async def wait_for_log(worker: WorkerProcess, pattern: str, timeout_s: float = 60) -> re.Match[str]:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while (found := re.search(pattern, worker.log.read_text())) is None:
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        assert asyncio.get_running_loop().time() < deadline, f"no {pattern!r} in the log"
        await asyncio.sleep(0.1)
    return found


async def replayed_state(bootstrap: str, topic: str) -> list[str]:
    """The symbols the state topic holds bars for, replayed as a restore does."""
    replay = StateReplay(INTERVAL_MS, SEQ_LEN)

    def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
        replay.apply([r.key for r in records], [r.value for r in records])

    await read_topic(bootstrap, topic, visit, timeout_s=30)
    return replay.result().symbols


async def test_junk_symbols_expire_and_a_restart_does_not_bring_them_back(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str, tmp_path: Path
) -> None:
    rows = market()
    records = [(key, value) for _, key, value in rows]

    clean_topics = await make_topics(topic_factory, 1)
    await produce(kafka_bootstrap, clean_topics["ticks"], records)
    reference: dict[str, Any] = {}
    with workers(env_with_ttl(kafka_bootstrap, clean_topics, f"{group_id}-clean"), 1, tmp_path / "clean") as (
        w,
    ):
        async with signal_reader(kafka_bootstrap, clean_topics["signals"]) as poll:
            await collect(poll, reference, lambda: len(reference) >= EXPECTED, 120)
        w.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(w.process.wait, 30) == 0
    await read_all_outputs(kafka_bootstrap, clean_topics["signals"], reference)
    assert len(reference) == EXPECTED
    assert {d["symbol"] for d in reference.values()} == {"A", "REAL"}

    topics = await make_topics(topic_factory, 1)
    env = env_with_ttl(kafka_bootstrap, topics, group_id)
    await produce(kafka_bootstrap, topics["ticks"], [(k, v) for bar, k, v in rows if bar < PHASE_ONE])
    with workers(env, 1, tmp_path / "first") as (first,):
        seen = await wait_for_metrics(
            first,
            lambda m: (
                m.get("bullflag_symbols_expired_total", 0) >= len(JUNK)
                and m.get("bullflag_symbols_refused_total", 0) > 0
                and m.get("bullflag_symbols") == 2
            ),
        )
        assert seen["bullflag_symbols_expired_total"] == len(JUNK)
        first.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(first.process.wait, 30) == 0
    assert sorted(await replayed_state(kafka_bootstrap, topics["state"])) == ["A", "REAL"]

    outputs: dict[str, Any] = {}
    await produce(kafka_bootstrap, topics["ticks"], [(k, v) for bar, k, v in rows if bar >= PHASE_ONE])
    async with signal_reader(kafka_bootstrap, topics["signals"]) as poll:
        with workers(env, 1, tmp_path / "second") as (second,):
            restored = await wait_for_log(second, r"restored (\d+) symbols")
            assert restored.group(1) == "2"
            await collect(poll, outputs, lambda: len(outputs) >= EXPECTED // 3, 120)
            second.process.send_signal(signal.SIGKILL)
        with workers(env, 1, tmp_path / "third") as (third,):
            await collect(poll, outputs, lambda: len(outputs) >= EXPECTED, 120)
            third.process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(third.process.wait, 30) == 0
    await read_all_outputs(kafka_bootstrap, topics["signals"], outputs)
    assert outputs.keys() == reference.keys()
    for output_id, document in reference.items():
        assert outputs[output_id] == document
