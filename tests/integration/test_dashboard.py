"""The dashboard's topic readers against a real broker: a missing topic is waited for, never created."""

from __future__ import annotations

import uuid

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from consumer.config import Settings
from consumer.dashboard import Dashboard
from consumer.kafka.topics import TopicSpec, ensure_topics
from tests.integration.test_worker import produce, wait_for
from tests.unit.consumer.dashboard.test_store import document


async def test_a_topic_created_after_the_dashboard_is_waited_for_then_followed(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient
) -> None:
    signals, state = (f"bullflag-test-{uuid.uuid4().hex}" for _ in range(2))
    settings = Settings(bootstrap_servers=kafka_bootstrap, signals_topic=signals, state_topic=state)
    try:
        async with Dashboard(settings) as dashboard:
            await wait_for(lambda: "waiting for topic" in topics_status(dashboard, "signals"), 30)
            assert "waiting for topic" in topics_status(dashboard, "state")
            assert not {signals, state} & set(await kafka_admin.list_topics())

            await ensure_topics(kafka_bootstrap, [TopicSpec(signals, 2), TopicSpec(state, 2)])
            await wait_for(lambda: topics_status(dashboard, "signals") == "following", 30)
            first, second = document(symbol="AAA"), document(symbol="BBB")
            await produce(
                kafka_bootstrap,
                signals,
                [
                    (b"AAA", orjson.dumps(first)),
                    (b"BBB", orjson.dumps(second)),
                    (b"AAA", orjson.dumps(first)),
                ],
            )
            await wait_for(lambda: dashboard.store.received == 3, 30)
            assert {row["id"] for row in dashboard.store.rows()} == {first["id"], second["id"]}
            assert dashboard.store.duplicates == 1
    finally:
        created = sorted({signals, state} & set(await kafka_admin.list_topics()))
        if created:
            await kafka_admin.delete_topics(created)


def topics_status(dashboard: Dashboard, name: str) -> str:
    """What the page shows about one of the dashboard's topic readers."""
    status: str = dashboard.status()["topics"][name]["status"]
    return status
