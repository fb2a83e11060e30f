"""`bullflag run` as a process: it serves, SIGTERM makes it commit and exit 0, and with the onnx
backend it serves in an interpreter where torch cannot be imported."""

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

TORCH_FREE_RUN = """
import atexit, importlib.abc, sys

class RefuseTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] == "torch":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, RefuseTorch())
atexit.register(lambda: print("torch loaded:", "torch" in sys.modules, file=sys.stderr))
from consumer.cli import main
sys.exit(main(["run"]))
"""
"""``bullflag run`` behind an import blocker installed before anything else loads."""


def run_env(kafka_bootstrap: str, ticks: str, signals: str, dlq: str, group_id: str) -> dict[str, str]:
    """The environment of a worker process on these topics."""
    return os.environ | {
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


async def test_sigterm_commits_and_exits_zero(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    ticks, signals, dlq = [await topic_factory(1) for _ in range(3)]
    records = tick_records(seed=3)
    await produce(kafka_bootstrap, ticks, records)
    env = run_env(kafka_bootstrap, ticks, signals, dlq, group_id)
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


async def test_the_onnx_worker_serves_where_torch_cannot_be_imported(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    ticks, signals, dlq = [await topic_factory(1) for _ in range(3)]
    records = tick_records(seed=4)
    await produce(kafka_bootstrap, ticks, records)
    env = run_env(kafka_bootstrap, ticks, signals, dlq, group_id)
    env |= {"BULLFLAG_BACKEND": "onnx", "BULLFLAG_THRESHOLD": "0"}
    process = subprocess.Popen(
        [sys.executable, "-c", TORCH_FREE_RUN], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        outputs = await read_all(kafka_bootstrap, signals, len(expected_bars(records)))
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.to_thread(process.communicate, timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == "torch loaded: False"
    assert "backend onnx" in stderr
    documents = [orjson.loads(record.value) for record in outputs]
    assert {(d["symbol"], d["bar_end_ts"]) for d in documents} == expected_bars(records)
    assert all(len(d["activation_map"]["intensities"]) == 200 for d in documents), "maps in numpy"
    assert await committed(kafka_bootstrap, group_id, TopicPartition(ticks, 0)) == expected_commit(records)
