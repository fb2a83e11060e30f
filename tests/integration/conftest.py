"""Fixtures for tests against a real Kafka-protocol broker.

One broker serves the whole session: the cluster named by ``BULLFLAG_TEST_BOOTSTRAP``, else
Apache Kafka in a container when ``BULLFLAG_TEST_BROKER=testcontainers`` (needs a Docker
engine), else the embedded broker. Each test gets its own topics and consumer group, so tests stay
independent without restarting the broker, and the same tests run unchanged on real Kafka.
Every test in this folder is marked ``integration``.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from pathlib import Path
from typing import Any, Protocol

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumer.kafka.embedded_broker import BrokerUnavailableError, EmbeddedBroker, resolve_broker_binary
from consumer.kafka.topics import TopicSpec, ensure_topics

BOOTSTRAP_ENV_VAR = "BULLFLAG_TEST_BOOTSTRAP"
BROKER_ENV_VAR = "BULLFLAG_TEST_BROKER"
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
DEFAULT_TEST_PARTITIONS = 3
_ASSIGNMENT_TIMEOUT_S = 30.0

# Fast on the embedded broker and still valid on Apache Kafka (idempotence needs
# InitProducerId v3, which the embedded broker does not serve).
CONSUMER_SETTINGS: dict[str, Any] = {
    "session_timeout_ms": 6000,
    "heartbeat_interval_ms": 500,
    "fetch_max_wait_ms": 100,
    "auto_offset_reset": "earliest",
    "enable_auto_commit": False,
}
PRODUCER_SETTINGS: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": False,
    "linger_ms": 5,
}

_BROKER_KEY = pytest.StashKey[EmbeddedBroker]()


class TopicFactory(Protocol):
    """Creates a uniquely named topic and returns its name."""

    def __call__(
        self, partitions: int = DEFAULT_TEST_PARTITIONS, *, config: dict[str, str] | None = None
    ) -> Awaitable[str]:
        """Create a topic with ``partitions`` partitions and optional topic settings."""


WaitForAssignment = Callable[[AIOKafkaConsumer, int], Awaitable[frozenset[TopicPartition]]]


def _unique_topic_name() -> str:
    """A topic name no other test (or earlier run on a shared cluster) uses."""
    return f"bullflag-test-{uuid.uuid4().hex}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder as an integration test."""
    folder = Path(__file__).parent
    for item in items:
        if folder in item.path.parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the embedded broker's log tail to the report of a failing test."""
    report = yield
    broker = item.config.stash.get(_BROKER_KEY, None)
    if report.failed and broker is not None:
        report.sections.append((f"embedded broker log {broker.log_path}", broker.log_tail()))
    return report


@pytest.fixture(scope="session")
def broker_binary() -> Path:
    """The embedded broker's executable; skips the test where this platform has none."""
    try:
        return resolve_broker_binary()
    except BrokerUnavailableError as exc:
        pytest.skip(f"embedded Kafka broker unavailable: {exc}")


@pytest.fixture(scope="session")
def kafka_bootstrap(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``host:port`` of the session's broker: ``$BULLFLAG_TEST_BOOTSTRAP``, a container, or embedded."""
    external = os.environ.get(BOOTSTRAP_ENV_VAR)
    if external:
        yield external
        return
    if os.environ.get(BROKER_ENV_VAR, "embedded") == "testcontainers":
        yield from _container_kafka()
        return
    try:
        binary = resolve_broker_binary()
    except BrokerUnavailableError as exc:
        pytest.skip(f"no embedded Kafka broker ({exc}); set {BOOTSTRAP_ENV_VAR} to use a cluster")
    broker = EmbeddedBroker(binary=binary, log_dir=tmp_path_factory.mktemp("broker"))
    with broker:
        pytestconfig.stash[_BROKER_KEY] = broker
        try:
            yield broker.bootstrap
        finally:
            del pytestconfig.stash[_BROKER_KEY]


def _container_kafka() -> Iterator[str]:
    """Apache Kafka (KRaft) in a container for the session; skips, saying why, without a Docker engine."""
    from docker.errors import DockerException
    from testcontainers.community.kafka import KafkaContainer

    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if docker_host.startswith("unix://") and not Path(docker_host.removeprefix("unix://")).exists():
        pytest.skip(f"{BROKER_ENV_VAR}=testcontainers, but there is no Docker engine at {docker_host}")
    try:
        container = KafkaContainer(KAFKA_IMAGE).with_kraft()
        container.start()
    except DockerException as exc:
        pytest.skip(f"{BROKER_ENV_VAR}=testcontainers, but no Docker engine answers: {exc}")
    try:
        yield container.get_bootstrap_server()
    finally:
        container.stop()


@pytest.fixture
def consumer_settings() -> dict[str, Any]:
    """A fresh copy of the fast, Kafka-valid consumer settings (manual commit)."""
    return dict(CONSUMER_SETTINGS)


@pytest.fixture
def producer_settings() -> dict[str, Any]:
    """A fresh copy of the fast, Kafka-valid producer settings (acks=all, no idempotence)."""
    return dict(PRODUCER_SETTINGS)


@pytest.fixture
def group_id() -> str:
    """A consumer group id no other test uses (re-joining a group is slow on the broker)."""
    return f"bullflag-test-{uuid.uuid4().hex}"


@pytest.fixture
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client for the session's broker, closed when the test ends."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        await admin.start()
        yield admin
    finally:
        await admin.close()


@pytest.fixture
async def topic_factory(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient
) -> AsyncIterator[TopicFactory]:
    """Create uniquely named topics on demand; delete them when the test ends."""
    created: list[str] = []

    async def create(
        partitions: int = DEFAULT_TEST_PARTITIONS, *, config: dict[str, str] | None = None
    ) -> str:
        name = _unique_topic_name()
        await ensure_topics(kafka_bootstrap, [TopicSpec(name, partitions, config or {})])
        created.append(name)
        return name

    yield create
    if created:
        await kafka_admin.delete_topics(created)


@pytest.fixture
async def unique_topic(topic_factory: TopicFactory) -> str:
    """A new topic with 3 partitions: neither Kafka's (1) nor the embedded broker's (4) default."""
    return await topic_factory(DEFAULT_TEST_PARTITIONS)


async def _wait_for_assignment(consumer: AIOKafkaConsumer, partitions: int) -> frozenset[TopicPartition]:
    """Wait until a subscribed consumer owns ``partitions`` partitions; fail after 30 s."""
    deadline = time.monotonic() + _ASSIGNMENT_TIMEOUT_S
    while len(assignment := consumer.assignment()) < partitions:
        if time.monotonic() > deadline:
            pytest.fail(
                f"consumer got {len(assignment)} of {partitions} partitions within "
                f"{_ASSIGNMENT_TIMEOUT_S:g} s"
            )
        await asyncio.sleep(0.05)
    return frozenset(assignment)


@pytest.fixture
def wait_for_assignment() -> WaitForAssignment:
    """``await wait_for_assignment(consumer, n)``: block until ``consumer`` owns n partitions."""
    return _wait_for_assignment
