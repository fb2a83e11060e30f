"""Duration and bar interval strings ("250ms", "1s", "1m", "5m", "1h", "1d") <-> milliseconds.

Shared by the CNNOutput document (its `interval` field) and every setting or flag that takes a
duration. Standard library only.
"""

from __future__ import annotations

import re
from typing import Final

UNIT_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
"""Milliseconds per interval unit; ``m`` is minutes (months are not a fixed length)."""

_PATTERN: Final = re.compile(r"([1-9][0-9]{0,9})(ms|s|m|h|d)")
_DURATION: Final = re.compile(r"([0-9]{1,10})(ms|s|m|h|d)")


class IntervalError(ValueError):
    """An interval string that is not ``<positive int><unit>``."""


def parse_duration_ms(text: str) -> int:
    """Milliseconds in a duration such as ``"500ms"`` or ``"0s"`` (zero allowed)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise IntervalError(f"{text!r} is not a duration like 500ms, 1s, 1m, 5m, 1h or 1d")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def parse_interval(text: str) -> int:
    """Milliseconds in an interval such as ``"5m"``; raises :class:`IntervalError` otherwise."""
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        units = ", ".join(UNIT_MS)
        raise IntervalError(
            f"invalid bar interval {text!r}: expected a positive integer followed by one of "
            f"{units} (e.g. '1s', '1m', '5m', '1h', '1d')"
        )
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def format_interval(interval_ms: int) -> str:
    """Shortest interval string for ``interval_ms`` (60000 -> ``"1m"``), the inverse of parsing."""
    if interval_ms <= 0:
        raise IntervalError(f"interval must be a positive number of milliseconds, got {interval_ms}")
    for unit in ("d", "h", "m", "s"):
        if interval_ms % UNIT_MS[unit] == 0:
            return f"{interval_ms // UNIT_MS[unit]}{unit}"
    return f"{interval_ms}ms"
