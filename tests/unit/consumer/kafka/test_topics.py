"""Topic specs are validated before any request reaches a broker."""

from __future__ import annotations

import pytest

from consumer.kafka.topics import TopicSpec, ensure_topics

# Nothing listens on port 1: a test that reached the network would fail, not pass.
UNREACHABLE = "127.0.0.1:1"


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "ticks topic", "ticks/1", "tïcks", "ticks\n"])
def test_illegal_topic_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="Topic name"):
        TopicSpec(name, 1)


@pytest.mark.parametrize("name", ["ticks", "bullflag.ticks-v1_2", "a" * 249, "..."])
def test_legal_topic_names_are_accepted(name: str) -> None:
    assert TopicSpec(name, 1).name == name


@pytest.mark.parametrize("partitions", [0, -1])
def test_partition_count_must_be_positive(partitions: int) -> None:
    with pytest.raises(ValueError, match="at least 1 partition"):
        TopicSpec("ticks", partitions)


def test_replication_factor_must_be_positive() -> None:
    with pytest.raises(ValueError, match="replication factor"):
        TopicSpec("ticks", 3, replication_factor=0)


def test_config_values_must_be_strings() -> None:
    with pytest.raises(ValueError, match=r"retention\.ms"):
        TopicSpec("ticks", 3, {"retention.ms": 1000})  # type: ignore[dict-item]


def test_new_topic_request_carries_the_spec() -> None:
    spec = TopicSpec("changelog", 6, {"cleanup.policy": "compact"}, replication_factor=3)
    request = spec.to_new_topic()
    assert (request.name, request.num_partitions, request.replication_factor) == (
        "changelog",
        6,
        3,
    )
    assert request.topic_configs == {"cleanup.policy": "compact"}


async def test_no_specs_needs_no_broker() -> None:
    assert await ensure_topics(UNREACHABLE, []) == frozenset()


async def test_two_specs_for_one_topic_are_refused() -> None:
    with pytest.raises(ValueError, match="'ticks' is listed twice"):
        await ensure_topics(UNREACHABLE, [TopicSpec("ticks", 3), TopicSpec("ticks", 3)])
