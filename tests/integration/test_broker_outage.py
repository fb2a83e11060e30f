"""A broker that stops answering mid-run: the worker reports not ready, waits, and loses nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request

import orjson
import pytest

from consumer.kafka.embedded_broker import EmbeddedBroker
from consumer.kafka.topics import TopicSpec, ensure_topics
from consumer.kafka.worker import Worker
from tests.integration.test_worker import (
    FAST_CONSUMER,
    expected_bars,
    produce,
    read_all,
    read_to_end,
    running,
    tick_records,
    wait_for,
    worker_settings,
)


def readyz(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "/readyz", timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


async def test_worker_waits_out_a_frozen_broker(broker_binary: object, tmp_path: object) -> None:
    if os.environ.get("BULLFLAG_TEST_BOOTSTRAP"):
        pytest.skip("freezes a broker process of its own; not applicable to an external cluster")
    records = tick_records(seed=5)
    split = len(records) * 3 // 4
    async with EmbeddedBroker(log_dir=tmp_path) as broker:
        topics = {"ticks": "ticks", "signals": "signals", "dlq": "dlq"}
        await ensure_topics(broker.bootstrap, [TopicSpec(name, 1) for name in topics.values()])
        await produce(broker.bootstrap, topics["ticks"], records[:split])
        worker = Worker(worker_settings(broker.bootstrap, topics, "outage"), consumer_options=FAST_CONSUMER)
        async with running(worker) as task:
            await wait_for(lambda: worker.ready)
            assert worker.health_server is not None
            url = worker.health_server.url
            os.kill(broker.pid, signal.SIGSTOP)
            try:
                await wait_for(lambda: not worker.ready, timeout_s=30)
                assert await asyncio.to_thread(readyz, url) == 503
            finally:
                os.kill(broker.pid, signal.SIGCONT)
            await wait_for(lambda: worker.ready, timeout_s=60)
            assert not task.done(), "the worker kept running"
            await produce(broker.bootstrap, topics["ticks"], records[split:])
            expected = expected_bars(records)
            await read_all(broker.bootstrap, topics["signals"], len(expected), timeout_s=90)
        documents = [orjson.loads(o.value) for o in await read_to_end(broker.bootstrap, topics["signals"])]
    assert {(d["symbol"], d["bar_end_ts"]) for d in documents} == expected
    by_id = {d["id"]: d for d in documents}
    assert all(by_id[d["id"]] == d for d in documents), "a document sent again has the same content"
