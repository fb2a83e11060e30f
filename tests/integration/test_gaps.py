"""Gap policies against a real broker: windows hold no bars outside trading, across a restart."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from aiokafka import TopicPartition

from consumer.kafka.worker import Worker
from tests.integration.conftest import TopicFactory
from tests.integration.test_worker import (
    FAST_CONSUMER,
    committed,
    produce,
    read_all,
    running,
    worker_settings,
)

DAY = 86_400_000
MINUTE = 60_000
MONDAY = 1_704_067_200_000  # 2024-01-01 00:00 UTC, a Monday


def bar_record(symbol: str, start: int, close: float) -> tuple[bytes, bytes]:
    value = {"symbol": symbol, "ts": start, "open": close, "high": close + 1, "low": close - 1}
    return symbol.encode(), orjson.dumps({**value, "close": close, "volume": 10.0})


def documents(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Documents by id (a restart may publish one twice, identical)."""
    return {d["id"]: d for d in (orjson.loads(r.value) for r in records)}


def expected_windows(starts: list[int], interval: int) -> set[tuple[int, int]]:
    """(window start, bar end) of each closed bar with 199 bars before it; the newest stays open."""
    return {(starts[i - 199], starts[i] + interval) for i in range(199, len(starts) - 1)}


async def test_skip_daily_bars_over_weekends_survive_a_restart(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    topics = {
        "ticks": await topic_factory(1),
        "signals": await topic_factory(1),
        "dlq": await topic_factory(1),
    }
    days = [MONDAY + d * DAY for d in range(300) if d % 7 < 5][:230]
    records = [bar_record("DAILY", start, 100.0 + i % 13) for i, start in enumerate(days)]
    expected = expected_windows(days, DAY)
    settings = dataclasses.replace(
        worker_settings(kafka_bootstrap, topics, group_id, input="bars", max_poll_records=7),
        bar_interval="1d",
    )
    await produce(kafka_bootstrap, topics["ticks"], records[:215])
    async with running(Worker(settings, consumer_options=FAST_CONSUMER)):
        first = await read_all(kafka_bootstrap, topics["signals"], 215 - 200)
    tp = TopicPartition(topics["ticks"], 0)
    assert await committed(kafka_bootstrap, group_id, tp) is not None
    await produce(kafka_bootstrap, topics["ticks"], records[215:])
    restarted = Worker(settings, consumer_options=FAST_CONSUMER)
    async with running(restarted):
        signals = await read_all(kafka_bootstrap, topics["signals"], len(expected))

    published = documents(signals)
    got = {(d["window_start_ts"], d["bar_end_ts"]) for d in published.values()}
    assert len(first) == 15
    assert got == expected
    weekend = {(start - MONDAY) // DAY % 7 for start, _ in got} | {
        (end - DAY - MONDAY) // DAY % 7 for _, end in got
    }
    assert weekend <= {0, 1, 2, 3, 4}, "no window starts or ends on a Saturday or Sunday"


async def test_session_fills_only_inside_sessions_and_skip_not_overnight(
    kafka_bootstrap: str, topic_factory: TopicFactory, group_id: str
) -> None:
    # XNYS on 2024-01-02/03 (EST): 14:30-21:00 UTC. The last 150 minutes of Tuesday, then
    # Wednesday's first 120, a few minutes without trades in each.
    opens = [MONDAY + DAY + 870 * MINUTE, MONDAY + 2 * DAY + 870 * MINUTE]
    traded = [opens[0] + m * MINUTE for m in range(240, 390) if m % 9 != 4]
    traded += [opens[1] + m * MINUTE for m in range(0, 120) if m % 11 != 6]
    records = [bar_record("INTRA", start, 50.0 + i % 7) for i, start in enumerate(traded)]
    in_session = [
        s for s in range(traded[0], traded[-1] + 1, MINUTE) if any(o <= s < o + 390 * MINUTE for o in opens)
    ]
    results: dict[str, set[tuple[int, int]]] = {}
    for gaps in ("session", "skip"):
        topics = {
            "ticks": await topic_factory(1),
            "signals": await topic_factory(1),
            "dlq": await topic_factory(1),
        }
        await produce(kafka_bootstrap, topics["ticks"], records)
        settings = dataclasses.replace(
            worker_settings(
                kafka_bootstrap,
                topics,
                f"{group_id}-{gaps}",
                input="bars",
                gaps=gaps,
                calendar="XNYS",
                max_poll_records=50,
            ),
            bar_interval="1m",
        )
        starts = in_session if gaps == "session" else traded
        async with running(Worker(settings, consumer_options=FAST_CONSUMER)):
            signals = await read_all(
                kafka_bootstrap, topics["signals"], len(expected_windows(starts, MINUTE))
            )
        results[gaps] = {(d["window_start_ts"], d["bar_end_ts"]) for d in documents(signals).values()}
        assert results[gaps] == expected_windows(starts, MINUTE), gaps

    night = (opens[0] + 390 * MINUTE, opens[1])
    for gaps, windows in results.items():
        assert not any(night[0] <= end - MINUTE < night[1] for _, end in windows), gaps
    assert len(results["session"]) > len(results["skip"]), "session fills the minutes without trades"
