"""``bullflag broker``: the topic list it creates at start."""

from __future__ import annotations

import pytest

from consumer.cli.broker import parse_topic_specs


def test_broker_topic_list_parses() -> None:
    specs = parse_topic_specs("ticks:4, signals:4,ticks.dlq,bullflag.state:4")
    assert [(s.name, s.partitions) for s in specs] == [
        ("ticks", 4),
        ("signals", 4),
        ("ticks.dlq", 1),
        ("bullflag.state", 4),
    ]
    with pytest.raises(ValueError, match="whole number"):
        parse_topic_specs("ticks:four")
    with pytest.raises(ValueError, match="invalid"):
        parse_topic_specs("bad name:1")
