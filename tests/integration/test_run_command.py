"""`bullflag run` as a process: it serves, and SIGTERM makes it commit and exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import orjson
from aiokafka import TopicPartition

from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import (
    committed,
    expected_bars,
    expected_commit,
    produce,
    read_all,
    read_to_end,
    tick_records,
)


async def test_sigterm_commits_and_exits_zero(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    ticks, signals, dlq = [await topic_factory(1) for _ in range(3)]
    records = tick_records(seed=3)
    await produce(kafka_bootstrap, ticks, records)
    env = os.environ | {
        "BULLFLAG_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BULLFLAG_TICKS_TOPIC": ticks,
        "BULLFLAG_SIGNALS_TOPIC": signals,
        "BULLFLAG_DLQ_TOPIC": dlq,
        "BULLFLAG_GROUP_ID": group_id,
        "BULLFLAG_BAR_INTERVAL": "1s",
        "BULLFLAG_ALLOWED_LATENESS": "0s",
        "BULLFLAG_METRICS_HOST": "127.0.0.1",
        "BULLFLAG_METRICS_PORT": "0",
        "BULLFLAG_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "consumer.cli", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        outputs = await read_all(kafka_bootstrap, signals, len(expected_bars(records)))
        assert len(outputs) == len(expected_bars(records))
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-2000:]
    published = [orjson.loads(r.value) for r in await read_to_end(kafka_bootstrap, signals)]
    assert {(d["symbol"], d["bar_end_ts"]) for d in published} == expected_bars(records)
    assert len(published) == len(expected_bars(records)), "nothing published twice, nothing after SIGTERM"
    assert await committed(kafka_bootstrap, group_id, TopicPartition(ticks, 0)) == expected_commit(records)
    assert all(line.startswith("{") for line in stderr.strip().splitlines()), "json logs, one per line"
