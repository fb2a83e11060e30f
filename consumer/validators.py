"""The one set of value parsers behind every setting and every command-line flag.

Each parser takes text and returns the value or raises :class:`InvalidValueError` with a message
that says what was expected. ``InvalidValueError`` is both a ``ValueError`` (settings read from the
environment report it naming the setting) and an ``argparse.ArgumentTypeError`` (a flag's
``type=`` shows the message as it is). May import the standard library and
``bullflag_model.intervals``.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bullflag_model.intervals import IntervalError, parse_duration_ms, parse_interval


class InvalidValueError(ValueError, argparse.ArgumentTypeError):
    """A text does not parse as the value asked for; the message says what was expected."""


def integer_at_least(minimum: int) -> Callable[[str], int]:
    """A parser of integers >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise InvalidValueError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise InvalidValueError(f"{text!r} must be at least {minimum}")
        return value

    parse.__doc__ = f"An integer >= {minimum}."
    return parse


positive_int = integer_at_least(1)
non_negative_int = integer_at_least(0)


def finite_number(text: str) -> float:
    """A finite float."""
    try:
        value = float(text)
    except ValueError:
        raise InvalidValueError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise InvalidValueError(f"{text!r} is not a finite number")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = finite_number(text)
    if not 0.0 <= value <= 1.0:
        raise InvalidValueError(f"{text!r} is not in [0, 1]")
    return value


def positive_seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    value = finite_number(text)
    if value <= 0:
        raise InvalidValueError(f"{text!r} must be a positive number of seconds")
    return value


def port(text: str) -> int:
    """A TCP port, 0 (pick a free one) to 65535."""
    value = integer_at_least(0)(text)
    if value > 65535:
        raise InvalidValueError(f"{text!r} is not a TCP port")
    return value


def boolean(text: str) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off``."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise InvalidValueError(f"{text!r} is not a boolean (true/false)")


def duration(text: str) -> str:
    """A duration (``"250ms"``, ``"5s"``, ``"7d"``), validated and kept as text."""
    try:
        parse_duration_ms(text)
    except IntervalError as exc:
        raise InvalidValueError(str(exc)) from None
    return text.strip()


def positive_duration(text: str) -> str:
    """A duration longer than zero, kept as text (``"3s"``)."""
    if parse_duration_ms(duration(text)) <= 0:
        raise InvalidValueError(f"{text!r} must be longer than 0 (e.g. 500ms, 3s)")
    return text.strip()


def bootstrap_servers(text: str) -> str:
    """A comma-separated list of ``host:port`` (port 1-65535), kept as text."""
    entries = [entry.strip() for entry in text.split(",")]
    for entry in entries:
        host, _, port_text = entry.rpartition(":")
        if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise InvalidValueError(
                f"{entry!r} is not host:port with a port from 1 to 65535 (e.g. kafka-1:9092,kafka-2:9092)"
            )
    return ",".join(entries)


def bar_interval(text: str) -> str:
    """A bar interval: a duration longer than zero, kept as text (``"1m"``)."""
    try:
        parse_interval(text)
    except IntervalError as exc:
        raise InvalidValueError(str(exc)) from None
    return text.strip()


def event_time_ms(text: str) -> int:
    """An event time: epoch milliseconds, or an ISO-8601 time (UTC when it has no offset)."""
    if re.fullmatch(r"\d+", text.strip()):
        return int(text)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidValueError(f"{text!r} is neither epoch milliseconds nor an ISO-8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def optional_path(text: str) -> Path | None:
    """A file path, or empty for the default."""
    return Path(text) if text.strip() else None


def device(text: str) -> str:
    """A torch device name: ``cpu``, ``cuda`` or ``cuda:N``."""
    if text in ("cpu", "cuda") or (text.startswith("cuda:") and text[5:].isdigit()):
        return text
    raise InvalidValueError(f"{text!r} is not a device: cpu, cuda or cuda:N")


def choice(*options: str) -> Callable[[str], str]:
    """A parser that accepts exactly one of ``options``."""

    def parse(text: str) -> str:
        if text not in options:
            raise InvalidValueError(f"{text!r} is not one of {', '.join(options)}")
        return text

    parse.__doc__ = f"One of {', '.join(options)}."
    return parse
