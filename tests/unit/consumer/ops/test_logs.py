"""Log set-up: the Kafka client's repeated errors are rate-limited, our own lines never are."""

from __future__ import annotations

import logging

from consumer.ops.logs import RateLimitFilter


def record(name: str, msg: str, *args: object, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_one_client_line_per_problem_per_interval_then_a_count() -> None:
    now = [0.0]
    limit = RateLimitFilter(interval_s=30.0, clock=lambda: now[0])
    passed = []
    for second in range(0, 95):
        now[0] = float(second)
        for host in ("a", "b"):
            line = record("aiokafka.conn", "Unable connect to %s", host)
            if limit.filter(line):
                passed.append((second, line.getMessage()))
    assert [s for s, _ in passed] == [0, 30, 60, 90]
    assert passed[0][1] == "Unable connect to a"
    assert passed[1][1] == "Unable connect to a [59 more like this in the last 30 s]"


def test_problems_and_levels_are_limited_apart_and_our_loggers_pass() -> None:
    limit = RateLimitFilter(clock=lambda: 0.0)
    assert limit.filter(record("aiokafka.conn", "Unable connect to %s", "a"))
    assert limit.filter(record("aiokafka.consumer", "Unable connect to %s", "a"))
    assert limit.filter(record("aiokafka.conn", "Unable connect to %s", "a", level=logging.WARNING))
    assert not limit.filter(record("aiokafka.conn", "Unable connect to %s", "b"))
    assert all(limit.filter(record("bullflag.worker", "broker unreachable")) for _ in range(5))
