"""One record cannot move a partition's event time, against the real broker.

Defect 1: a first record at ``ts = 0`` made every later tick ``future_ts`` (0 outputs), and the
partition stayed stuck after a restart. Defect 2: one tick 50 minutes ahead of the stream,
inside ``--max-time-jump`` and ``--max-clock-skew``, closed every open bar of its partition and
made the other symbols' later ticks ``late``. The expectations come from a plain count of bars,
not from the pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from consumer.config import Settings
from consumer.kafka.topic_reader import read_topic
from consumer.kafka.worker import Worker
from tests.integration.conftest import TopicFactory

INTERVAL_MS = 1_000
START_MS = 1_732_550_400_000
SYMBOLS = ("AAA", "BBB", "CCC")
FAST = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "fetch_max_wait_ms": 100}

Record = tuple[bytes | None, bytes]


def ticks(first_bar: int, bars: int) -> list[Record]:
    """Two ticks per bar and symbol (at +100 ms and +600 ms), interleaved in event time."""
    out: list[Record] = []
    for bar in range(first_bar, first_bar + bars):
        for offset in (100, 600):
            for i, symbol in enumerate(SYMBOLS):
                price = 100.0 + i + 0.01 * (bar % 37)
                tick = {"symbol": symbol, "ts": START_MS + bar * INTERVAL_MS + offset, "price": price}
                out.append((symbol.encode(), orjson.dumps(tick)))
    return out


def scored_bars(symbols: tuple[str, ...], bars: int) -> set[tuple[str, int]]:
    """(symbol, bar end) a worker scores after bars 0..bars-1 of ``ticks``: from each symbol's
    200th bar on, every bar but the last, which stays open (no later tick, and the clock, the
    median of the last records, is inside it)."""
    return {(s, START_MS + (k + 1) * INTERVAL_MS) for s in symbols for k in range(199, bars - 1)}


def settings_for(bootstrap: str, topics: dict[str, str], group_id: str) -> Settings:
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
        gradcam=False,
    )


async def produce(bootstrap: str, topic: str, records: list[Record]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, key=key, value=value) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def read_until(
    bootstrap: str, topic: str, done: Callable[[list[ConsumerRecord]], bool], timeout_s: float = 90.0
) -> list[ConsumerRecord]:
    """Records of ``topic`` from its start until ``done`` holds for them; fails at the timeout."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not done(records):
            assert asyncio.get_running_loop().time() < deadline, (
                f"{topic}: condition not met, {len(records)} read"
            )
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for rs in batch.values() for r in rs]
    finally:
        await consumer.stop()
    return records


async def committed(bootstrap: str, group: str, tp: TopicPartition) -> int | None:
    """The group's committed offset, read by a non-member."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        return await consumer.committed(tp)
    finally:
        await consumer.stop()


async def wait_for(condition: Callable[[], Any], timeout_s: float = 60.0) -> None:
    """Poll an observable condition (awaitable or not) until it holds; fail at the timeout."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def whole_topic(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every record of ``topic`` up to its end now (high watermarks from fetch responses)."""
    records: list[ConsumerRecord] = []

    def keep(_: TopicPartition, batch: list[ConsumerRecord]) -> bool:
        records.extend(batch)
        return False

    await read_topic(bootstrap, topic, keep, timeout_s=30)
    return records


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def _is(value: Any, expected: object) -> bool:
    """Whether the awaited ``value`` equals ``expected``."""
    return bool(await value == expected)


def bars_of(records: list[ConsumerRecord]) -> set[tuple[str, int]]:
    documents = [orjson.loads(r.value) for r in records]
    return {(d["symbol"], d["bar_end_ts"]) for d in documents}


def reasons(records: list[ConsumerRecord]) -> list[tuple[str, str]]:
    """(symbol key, reason) of each dead letter."""
    out = []
    for record in records:
        headers: dict[str, Any] = dict(record.headers)
        out.append(((record.key or b"").decode(), headers["bullflag.reason"].decode()))
    return out


async def topics_for(topic_factory: TopicFactory) -> dict[str, str]:
    return {"ticks": await topic_factory(1), "signals": await topic_factory(1), "dlq": await topic_factory(1)}


async def test_a_first_tick_at_ts_0_stops_nothing_and_a_restart_goes_on(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = await topics_for(topic_factory)
    zero: Record = (b"ZERO", orjson.dumps({"symbol": "ZERO", "ts": 0, "price": 1}))
    first = [zero, *ticks(0, 215)]
    await produce(kafka_bootstrap, topics["ticks"], first)
    expected = scored_bars(SYMBOLS, 215)
    settings = settings_for(kafka_bootstrap, topics, group_id)
    tp = TopicPartition(topics["ticks"], 0)

    last_bar_first_tick = 1 + 214 * 2 * len(SYMBOLS)

    async with running(Worker(settings, consumer_options=FAST)):
        signals = await read_until(kafka_bootstrap, topics["signals"], lambda rs: bars_of(rs) >= expected)
        await wait_for(lambda: _is(committed(kafka_bootstrap, group_id, tp), last_bar_first_tick))
    assert bars_of(signals) == expected, "the commit point is the first tick of the last, open bar"

    await produce(kafka_bootstrap, topics["ticks"], ticks(215, 10))
    more = scored_bars(SYMBOLS, 225)
    async with running(Worker(settings, consumer_options=FAST)):
        signals = await read_until(kafka_bootstrap, topics["signals"], lambda rs: bars_of(rs) >= more)
        await wait_for(lambda: _is(committed(kafka_bootstrap, group_id, tp), last_bar_first_tick + 60))
    assert bars_of(signals) == more
    assert reasons(await whole_topic(kafka_bootstrap, topics["dlq"])) == [], "no tick is dead-lettered"


async def test_one_tick_50_minutes_ahead_closes_no_other_symbols_bars(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = await topics_for(topic_factory)
    records = ticks(0, 215)
    ahead = START_MS + 100 * INTERVAL_MS + 50 * 60_000
    records.insert(600, (b"AAA", orjson.dumps({"symbol": "AAA", "ts": ahead, "price": 100.0})))
    await produce(kafka_bootstrap, topics["ticks"], records)
    others = scored_bars(("BBB", "CCC"), 215)
    later_aaa = sum(1 for key, value in records[601:] if key == b"AAA")

    async with running(Worker(settings_for(kafka_bootstrap, topics, group_id), consumer_options=FAST)):
        signals = await read_until(
            kafka_bootstrap, topics["signals"], lambda rs: {b for b in bars_of(rs) if b[0] != "AAA"} >= others
        )
        dlq = await read_until(kafka_bootstrap, topics["dlq"], lambda rs: len(rs) >= later_aaa)
    assert {b for b in bars_of(signals) if b[0] != "AAA"} == others
    assert reasons(dlq) == [("AAA", "late")] * later_aaa, "only the moved symbol's own later ticks are late"
