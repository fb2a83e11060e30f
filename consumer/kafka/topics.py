"""Explicit topic creation and verification, correct for Apache Kafka and the embedded broker.

Topics are never left to auto-creation: the defaults differ between brokers (Kafka makes 1
partition, the embedded broker 4), and a state changelog must match its source topic's
partition count, so every topic the worker uses is created with a stated partition count and
checked on each start.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from consumer.kafka.clients import Connection, as_settings, new_admin

__all__ = [
    "TopicCreationError",
    "TopicError",
    "TopicMismatchError",
    "TopicMissingError",
    "TopicSpec",
    "ensure_topics",
    "existing_topics",
]

_LEGAL_NAME = re.compile(r"[a-zA-Z0-9._-]+")
_MAX_NAME_LENGTH = 249
_RETRY_INTERVAL_S = 0.1


class TopicError(RuntimeError):
    """Base class for topic set-up failures."""


class TopicCreationError(TopicError):
    """The broker refused to create a topic for a reason other than it already existing."""

    def __init__(self, topic: str, error: str, detail: str | None) -> None:
        """Record which topic failed and the broker's error."""
        self.topic = topic
        self.error = error
        suffix = f": {detail}" if detail else ""
        super().__init__(f"Could not create topic {topic!r}: {error}{suffix}")


class TopicMissingError(TopicError):
    """A topic the worker reads but does not own is not on the cluster."""

    def __init__(self, topic: str, bootstrap: str, setting: str) -> None:
        """Record the topic and where it was looked for."""
        self.topic = topic
        super().__init__(
            f"there is no topic {topic!r} on {bootstrap}; create it with the partitions you want "
            f"(e.g. bullflag broker --create-topics {topic}:4 locally) or correct {setting}"
        )


class TopicMismatchError(TopicError):
    """An existing topic has a different partition count from the one required."""

    def __init__(self, topic: str, expected: int, actual: int) -> None:
        """Record the topic and both partition counts."""
        self.topic = topic
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"Topic {topic!r} has {actual} partitions but {expected} are required; "
            f"delete and recreate it with {expected} partitions, or change the "
            "configuration to match (partition counts cannot be lowered in Kafka)."
        )


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic the application needs: its name, partition count and topic-level settings."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)
    replication_factor: int = 1

    def __post_init__(self) -> None:
        """Reject specs Kafka would refuse, before any request is sent."""
        if not self.name or self.name in {".", ".."} or len(self.name) > _MAX_NAME_LENGTH:
            raise ValueError(
                f"Topic name {self.name!r} is invalid: use 1-{_MAX_NAME_LENGTH} characters "
                "other than '.' or '..' alone."
            )
        if not _LEGAL_NAME.fullmatch(self.name):
            raise ValueError(
                f"Topic name {self.name!r} is invalid: only ASCII letters, digits, '.', '_' "
                "and '-' are allowed."
            )
        if self.partitions < 1:
            raise ValueError(f"Topic {self.name!r} needs at least 1 partition, not {self.partitions}.")
        if self.replication_factor < 1:
            raise ValueError(
                f"Topic {self.name!r} needs a replication factor of at least 1, "
                f"not {self.replication_factor}."
            )
        for key, value in self.config.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise ValueError(
                    f"Topic {self.name!r} config entry {key!r}={value!r} must map a string "
                    "to a string (Kafka topic settings are strings)."
                )

    def to_new_topic(self) -> NewTopic:
        """Build the admin-client request object for this spec."""
        return NewTopic(
            name=self.name,
            num_partitions=self.partitions,
            replication_factor=self.replication_factor,
            topic_configs=dict(self.config),
        )


async def ensure_topics(
    connection: Connection,
    specs: Iterable[TopicSpec],
    *,
    timeout_s: float = 30.0,
    client_id: str | None = None,
) -> frozenset[str]:
    """Create the missing topics and verify every partition count; return the names created.

    The admin client comes from the client factory, so security settings apply. Raises
    :class:`TopicMismatchError` for an existing topic whose partition count differs,
    :class:`TopicCreationError` when the broker refuses a topic, and :class:`TopicError` when the
    cluster does not answer within ``timeout_s``.
    """
    wanted = _unique_by_name(specs)
    if not wanted:
        return frozenset()
    admin = new_admin(connection, client_id=client_id)
    bootstrap = as_settings(connection).bootstrap_servers
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            created = await _create(admin, wanted, timeout_s)
            counts = await _partition_counts(admin, [spec.name for spec in wanted])
    except TimeoutError as exc:
        raise TopicError(
            f"Topics {[spec.name for spec in wanted]} were not ready on {bootstrap} within "
            f"{timeout_s:g} s; check that the cluster is reachable and healthy."
        ) from exc
    finally:
        await admin.close()
    for spec in wanted:
        if counts[spec.name] != spec.partitions:
            raise TopicMismatchError(spec.name, spec.partitions, counts[spec.name])
    return created


async def existing_topics(
    connection: Connection, *, timeout_s: float = 30.0, client_id: str | None = None
) -> dict[str, int]:
    """Every topic on the cluster with its partition count, from one metadata request for all.

    Asking for all topics creates none: naming a topic in a metadata request auto-creates it on
    brokers that allow that, which would turn a mistyped name into a topic.
    """
    admin = new_admin(connection, client_id=client_id)
    bootstrap = as_settings(connection).bootstrap_servers
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            topics = await admin.describe_topics()
    except TimeoutError as exc:
        raise TopicError(f"{bootstrap} did not list its topics within {timeout_s:g} s") from exc
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in topics if t["error_code"] == 0}


def _unique_by_name(specs: Iterable[TopicSpec]) -> list[TopicSpec]:
    """Return the specs in order, refusing two specs for one topic name."""
    by_name: dict[str, TopicSpec] = {}
    for spec in specs:
        if spec.name in by_name:
            raise ValueError(f"Topic {spec.name!r} is listed twice; give each topic one spec.")
        by_name[spec.name] = spec
    return list(by_name.values())


async def _create(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float) -> frozenset[str]:
    """Send one CreateTopics request; return the names created, tolerating existing ones."""
    response = await admin.create_topics(
        [spec.to_new_topic() for spec in specs], timeout_ms=int(timeout_s * 1000)
    )
    created: set[str] = set()
    for result in response.to_object()["topic_errors"]:
        code = result["error_code"]
        if code == 0:
            created.add(result["topic"])
        elif code != TopicAlreadyExistsError.errno:
            error = for_code(code).__name__
            raise TopicCreationError(result["topic"], error, result.get("error_message"))
    return frozenset(created)


async def _partition_counts(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, int]:
    """Read each topic's partition count, waiting while new topics propagate to the metadata."""
    counts: dict[str, int] = {}
    while True:
        pending = [name for name in names if name not in counts]
        for topic in await admin.describe_topics(pending):
            code = topic["error_code"]
            if code == 0 and topic["partitions"]:
                counts[topic["topic"]] = len(topic["partitions"])
            elif code != 0 and not for_code(code).retriable:
                raise TopicError(f"Cannot describe topic {topic['topic']!r}: {for_code(code).__name__}.")
        if len(counts) == len(names):
            return counts
        await asyncio.sleep(_RETRY_INTERVAL_S)
