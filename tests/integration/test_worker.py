"""The worker against a real broker: ticks in, CNNOutput documents and dead letters out."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.output import cnn_output_schema, output_id
from bullflag_model.synthetic import KINDS, generate_windows
from consumer.config import Settings
from consumer.kafka.restore import StateRestoreError, read_state
from consumer.kafka.topic_reader import read_topic
from consumer.kafka.topics import TopicMissingError, existing_topics
from consumer.kafka.worker import Worker
from consumer.sources.trades import bars_to_ticks
from tests.integration.conftest import TopicFactory
from tests.reference import reference_run

INTERVAL_MS = 1_000
BARS = 215
SYMBOLS = ("AAA", "BBB.X", "CCC:Y")
QUIET = "QUIET"
QUIET_LAST_BAR = 207
BAD_RECORDS: list[tuple[bytes | None, bytes | None, str]] = [
    (b"AAA", b"{broken", "invalid_json"),
    (b"AAA", b"\xff\xfe not utf-8", "invalid_json"),
    (b"AAA", b'{"symbol": "AAA", "ts": 1732550400000, "price": 1e400}', "invalid_json"),
    (b"AAA", b"[1, 2, 3]", "not_object"),
    (b"AAA", b'{"symbol": "AAA", "price": 1.0}', "missing_field"),
    (b"AAA", b'{"symbol": "AAA", "ts": 1732550400000, "price": "1.0"}', "bad_price"),
    (b"AAA", b'{"symbol": "AAA", "ts": 1732550400000, "price": -3.0}', "bad_price"),
    (b"AAA", b'{"symbol": "AAA", "ts": 1732550400000, "price": 1.0, "size": -1}', "bad_size"),
    (b"", b'{"symbol": "", "ts": 1732550400000, "price": 1.0}', "bad_symbol"),
    (b"X" * 40, b'{"symbol": "' + b"X" * 40 + b'", "ts": 1732550400000, "price": 1.0}', "bad_symbol"),
    (b"BBB.X", b'{"symbol": "AAA", "ts": 1732550400000, "price": 1.0}', "key_mismatch"),
    (None, b'{"symbol": "AAA", "ts": 1732550400000, "price": 1.0}', "missing_key"),
    (
        b"AAA",
        b'{"symbol": "AAA", "ts": 1732550400000, "price": 1.0, "pad": "' + b"x" * 70_000 + b'"}',
        "too_large",
    ),
    (b"AAA", b'{"symbol": "AAA", "ts": "3000-01-01T00:00:00Z", "price": 1.0}', "future_ts"),
    (b"AAA", b'{"symbol": "AAA", "ts": "2024-11-25T16:00:00", "price": 1.0}', "bad_ts"),
    (b"AAA", None, "null_value"),
]
START_MS = 1_732_550_400_000
FAST_CONSUMER = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "fetch_max_wait_ms": 100}


def tick_records(seed: int = 0) -> list[tuple[bytes | None, bytes | None]]:
    """Two ticks per bar per symbol, interleaved in event time, plus records that must be rejected."""
    rng = np.random.default_rng(seed)
    records: list[tuple[bytes | None, bytes | None]] = []
    prices = dict.fromkeys((*SYMBOLS, QUIET), 100.0)
    for bar in range(BARS):
        for offset_ms in (100, 600):
            for symbol in (*SYMBOLS, QUIET) if bar <= QUIET_LAST_BAR else SYMBOLS:
                prices[symbol] *= float(np.exp(rng.normal(0, 0.002)))
                tick = {
                    "symbol": symbol,
                    "ts": START_MS + bar * INTERVAL_MS + offset_ms,
                    "price": round(prices[symbol], 4),
                    "size": int(rng.integers(1, 500)),
                }
                records.append((symbol.encode(), orjson.dumps(tick)))
    for position, (key, value, _) in enumerate(BAD_RECORDS):
        records.insert(50 + 7 * position, (key, value))
    records.insert(600, (b"AAA", orjson.dumps({"symbol": "AAA", "ts": START_MS, "price": 1.0})))
    return records


def expected_dead_letters() -> list[tuple[int, str]]:
    """(offset, reason) of every record the worker must dead-letter."""
    reasons = [(50 + 7 * position, reason) for position, (_, _, reason) in enumerate(BAD_RECORDS)]
    return sorted([*reasons, (600, "late")])


def accepted_ticks(records: list[tuple[bytes | None, bytes | None]]) -> list[tuple[int, str, int]]:
    """(offset, symbol, ts) of the records of ``tick_records`` the worker must accept."""
    rejected = {offset for offset, _ in expected_dead_letters()}
    ticks = [(i, orjson.loads(value)) for i, (_, value) in enumerate(records) if i not in rejected and value]
    return [(offset, tick["symbol"], tick["ts"]) for offset, tick in ticks]


def expected_bars(records: list[tuple[bytes | None, bytes | None]]) -> set[tuple[str, int]]:
    """(symbol, bar_end_ts) of every window an uninterrupted worker scores, by the reference model."""
    return reference_run(accepted_ticks(records), len(records), INTERVAL_MS).scored


def expected_commit(records: list[tuple[bytes | None, bytes | None]]) -> int:
    """Where the worker commits after all records: the first tick of the oldest bar still open."""
    return reference_run(accepted_ticks(records), len(records), INTERVAL_MS).commit


async def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60.0) -> list[Any]:
    """Records of ``topic`` from the start until ``expected`` arrived (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task[None]]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def wait_for(condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll ``condition`` until it holds; the timeout only turns a hang into a failure."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def wait_until(condition: Callable[[], Awaitable[bool]], timeout_s: float = 60.0) -> None:
    """``wait_for`` for a condition that has to ask the broker (a committed offset, say)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of every partition of ``topic`` up to its end now, in offset order per partition."""
    records: list[ConsumerRecord] = []

    def visit(_: TopicPartition, batch: list[ConsumerRecord]) -> None:
        records.extend(batch)

    await read_topic(bootstrap, topic, visit, timeout_s=60)
    return records


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The group's committed offset, read by a non-member (manual assignment joins no group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


@pytest.fixture
async def topics(topic_factory: TopicFactory) -> dict[str, str]:
    return {"ticks": await topic_factory(1), "signals": await topic_factory(1), "dlq": await topic_factory(1)}


def worker_settings(bootstrap: str, topics: dict[str, str], group_id: str, **overrides: Any) -> Settings:
    return Settings(
        bootstrap_servers=bootstrap,
        ticks_topic=topics["ticks"],
        signals_topic=topics["signals"],
        dlq_topic=topics["dlq"],
        group_id=group_id,
        bar_interval="1s",
        allowed_lateness="0s",
        metrics_host="127.0.0.1",
        metrics_port=0,
        threshold=0.0,
        **overrides,
    )


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k, value=v) for k, v in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def http_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
async def test_ticks_become_documents_dead_letters_and_commits(
    kafka_bootstrap: str, topics: dict[str, str], group_id: str, backend: str
) -> None:
    records = tick_records()
    expected = expected_bars(records)
    quiet_last_end = START_MS + (QUIET_LAST_BAR + 1) * INTERVAL_MS
    assert (QUIET, quiet_last_end) in expected, "the quiet symbol's last bar closes by watermark"
    assert len(expected) == len(SYMBOLS) * (BARS - 200) + QUIET_LAST_BAR + 1 - 199
    await produce(kafka_bootstrap, topics["ticks"], records)

    # Small batches, so many are in flight one behind another (ingest overlapping finish).
    worker = Worker(
        worker_settings(kafka_bootstrap, topics, group_id, max_poll_records=97, backend=backend),
        consumer_options=FAST_CONSUMER,
        producer_options={},
    )
    assert worker.infer.backend_name == backend
    tp = TopicPartition(topics["ticks"], 0)

    async def commit_reached() -> bool:
        return await committed(kafka_bootstrap, group_id, tp) == expected_commit(records)

    async with running(worker):
        # Everything is consumed and finished once the commit reaches the reference's point.
        await wait_until(commit_reached)
        assert worker.ready
        status, body = await asyncio.to_thread(http_get, worker.health_server.url + "/metrics")
        assert status == 200
        assert b"bullflag_outputs_published_total" in body
        assert (await asyncio.to_thread(http_get, worker.health_server.url + "/readyz"))[0] == 200
        assert expected_commit(records) > len(records) - 2 * len(SYMBOLS) - 4, "only open bars are re-read"
    # The worker has stopped: the topics read to their end hold all it will ever publish.
    signals = await read_to_end(kafka_bootstrap, topics["signals"])

    documents = [orjson.loads(r.value) for r in signals]
    assert {(d["symbol"], d["bar_end_ts"]) for d in documents} == expected
    assert len(documents) == len(expected)
    for symbol in SYMBOLS:
        ends = [d["bar_end_ts"] for d in documents if d["symbol"] == symbol]
        assert ends == sorted(ends), f"{symbol}: batches must be published in fetch order"
    validator = jsonschema.Draft202012Validator(cnn_output_schema())
    for record, document in zip(signals, documents, strict=True):
        validator.validate(document)
        assert record.key == document["symbol"].encode()
        assert dict(record.headers)["model_version"] == document["model_version"].encode()
        assert document["id"] == output_id(
            document["symbol"], "1s", document["bar_end_ts"], document["model_version"]
        )
        assert document["window_start_ts"] == document["bar_end_ts"] - 200 * INTERVAL_MS
        assert document["activation_map"] is not None

    dead = await read_to_end(kafka_bootstrap, topics["dlq"])
    headers = [dict(r.headers) for r in dead]
    got = sorted((int(h["bullflag.source.offset"]), h["bullflag.reason"].decode()) for h in headers)
    assert got == expected_dead_letters()
    for record, header in zip(dead, headers, strict=True):
        original_key, original_value = records[int(header["bullflag.source.offset"])]
        assert (record.key, record.value) == (original_key, original_value)
        assert header["bullflag.source.topic"] == topics["ticks"].encode()
        assert header["bullflag.source.partition"] == b"0"
        assert header["bullflag.detail"]


@pytest.mark.parametrize("backend", ["torch", "onnx"])
async def test_a_planted_bull_flag_signals_with_a_map_and_a_random_walk_does_not(
    kafka_bootstrap: str, topics: dict[str, str], group_id: str, backend: str
) -> None:
    windows = generate_windows(96, seed=3)
    infer = BullFlagCNNInfer(backend="torch")
    serving = float(infer.metadata["serving_threshold"])
    scores = infer.score(build_features(windows.bars)).sequence
    flag = int(np.flatnonzero((windows.labels.min(axis=1) == 1) & (scores >= serving + 0.05))[0])
    walk = int(np.flatnonzero((np.asarray(KINDS)[windows.kind] == "random_walk") & (scores < 0.01))[0])
    ticks = []
    for symbol, row in (("FLAG", flag), ("WALK", walk)):
        bars = np.concatenate([windows.bars[row], windows.bars[row][-1:]])
        starts = START_MS + np.arange(len(bars), dtype=np.int64) * INTERVAL_MS
        path = bars_to_ticks(bars, starts, symbol, seed=row, interval_ms=INTERVAL_MS)
        ticks += [
            (int(ts), symbol.encode(), orjson.dumps({"symbol": symbol, "ts": int(ts), "price": p, "size": s}))
            for ts, p, s in zip(path.ts_ms, path.price.tolist(), path.size.tolist(), strict=True)
        ]
    await produce(kafka_bootstrap, topics["ticks"], [(key, value) for _, key, value in sorted(ticks)])
    settings = worker_settings(kafka_bootstrap, topics, group_id, backend=backend)
    worker = Worker(dataclasses.replace(settings, threshold=None), consumer_options=FAST_CONSUMER)
    async with running(worker):
        outputs = await read_all(kafka_bootstrap, topics["signals"], 2)
    documents = {d["symbol"]: d for d in (orjson.loads(r.value) for r in outputs)}
    assert documents.keys() == {"FLAG", "WALK"}
    assert documents["FLAG"]["threshold"] == pytest.approx(serving, abs=1e-6)
    assert documents["FLAG"]["signal"] is True
    assert documents["FLAG"]["sequence_score"] == pytest.approx(float(scores[flag]), abs=1e-4)
    assert len(documents["FLAG"]["activation_map"]["intensities"]) == 200
    assert documents["WALK"]["signal"] is False
    assert documents["WALK"]["activation_map"] is None


async def test_a_missing_ticks_topic_stops_the_worker_and_is_not_created(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = {"ticks": f"bullflag-test-missing-{uuid.uuid4().hex}", "signals": await topic_factory(1)}
    worker = Worker(worker_settings(kafka_bootstrap, topics | {"dlq": await topic_factory(1)}, group_id))
    with pytest.raises(TopicMissingError, match=f"no topic '{topics['ticks']}'.*--ticks-topic"):
        await worker.run(asyncio.Event())
    on_cluster = await existing_topics(kafka_bootstrap)
    assert topics["ticks"] not in on_cluster and topics["signals"] in on_cluster


async def test_lost_state_is_reported_loudly_and_a_vanished_state_topic_is_not_recreated(
    kafka_bootstrap: str,
    topics: dict[str, str],
    group_id: str,
    kafka_admin: AIOKafkaAdminClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await produce(kafka_bootstrap, topics["ticks"], tick_records()[:600])
    settings = worker_settings(kafka_bootstrap, topics, group_id)
    tp = TopicPartition(topics["ticks"], 0)
    first = Worker(settings, consumer_options=FAST_CONSUMER)
    async with running(first):
        await wait_for(lambda: first.metrics.registry.get_sample_value("bullflag_commits_total") or 0)
    committed_before = await committed(kafka_bootstrap, group_id, tp)
    assert committed_before, "the first worker committed its progress"

    await kafka_admin.delete_topics([settings.state_topic])
    with pytest.raises(StateRestoreError, match=f"state topic '{settings.state_topic}' is gone"):
        await read_state(settings, settings.state_topic, [0], 1_000, 200)
    assert settings.state_topic not in await existing_topics(kafka_bootstrap), "reading did not create it"

    caplog.set_level(logging.ERROR, logger="bullflag.worker")
    second = Worker(settings, consumer_options=FAST_CONSUMER)
    async with running(second):
        await wait_for(lambda: second.ready)
    lost = [r.getMessage() for r in caplog.records if "saved state was lost" in r.getMessage()]
    assert lost == [
        f"partition 0: committed offset {committed_before}, yet the state topic holds nothing for it: "
        "the saved state was lost (reset); buffers start cold, so its symbols need 200 new bars to be scored"
    ]
