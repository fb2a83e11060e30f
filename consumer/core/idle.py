"""Idle closes: when a quiet partition's open bars close, and the log that replays them exactly.

A partition with no records for ``--idle-close-after`` (wall clock) has its watermark moved to
the wall clock minus the allowed lateness, closing every open bar whose end that reaches (for
a replay of history: all of them). The wall clock differs on every run, so each such decision
is recorded before its outputs count as done: an :class:`IdleDecision` says "before the record
at offset ``at``, raise the partition's event time to ``event_time_ms``". After a crash the
partition's records are read again from the committed offset, and a decision whose ``at`` lies
ahead is applied again at the same point, so the same bars close with the same contents and
every later record is judged against the same watermark (a tick for a bar it closed is
``late``, as it was before the crash).

:class:`IdleLog` is the state topic's ``idle`` record of a partition: decisions ahead of the
last successful commit (still to be replayed), and the highest event time of those behind it
(``floor_ms``: already reflected in the state, but the restored watermark must not fall
below it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

from consumer.core.bars import NO_BAR

IDLE_KEY = b"idle"
"""State-topic key of a partition's idle log."""
IDLE_LOG_VERSION = 1


class IdleLogError(ValueError):
    """An idle-log record this code cannot read (another version, or corrupt)."""


@dataclass(frozen=True, slots=True)
class IdleDecision:
    """Before the record at offset ``at``, the partition's event time rose to ``event_time_ms``."""

    at: int
    event_time_ms: int


def closes_any(open_starts: np.ndarray, interval_ms: int, lateness_ms: int, event_time_ms: int) -> bool:
    """Whether raising the event time to ``event_time_ms`` closes an open bar.

    ``open_starts`` int64[symbols] is each symbol's open bar start (``NO_BAR`` when none): a
    bar closes once ``event_time - lateness`` reaches its end.
    """
    starts = open_starts[open_starts != NO_BAR]
    return bool(len(starts)) and int(starts.min()) + interval_ms <= event_time_ms - lateness_ms


@dataclass(frozen=True)
class IdleLog:
    """A partition's idle decisions: ``pending`` after the last commit, in offset order, and
    ``floor_ms``, the highest event time of those at or before it (None: none yet)."""

    floor_ms: int | None = None
    pending: tuple[IdleDecision, ...] = ()

    def split(self, committed: int | None) -> IdleLog:
        """The log for a restart at ``committed``: decisions at or before it fold into the floor."""
        if committed is None:
            return self
        done = [d.event_time_ms for d in self.pending if d.at <= committed]
        floor = max([*done, *([] if self.floor_ms is None else [self.floor_ms])], default=None)
        return IdleLog(floor, tuple(d for d in self.pending if d.at > committed))

    def with_decision(self, decision: IdleDecision, committed: int | None) -> IdleLog:
        """This log plus ``decision`` (at or after every pending one), folded at ``committed``."""
        if self.pending and decision.at < self.pending[-1].at:
            last = self.pending[-1].at
            raise ValueError(f"idle decision at {decision.at} comes before the pending one at {last}")
        return IdleLog(self.floor_ms, (*self.pending, decision)).split(committed)

    def encode(self) -> bytes:
        """The record value."""
        return orjson.dumps(
            {
                "v": IDLE_LOG_VERSION,
                "floor_ms": self.floor_ms,
                "pending": [[d.at, d.event_time_ms] for d in self.pending],
            }
        )

    @staticmethod
    def decode(value: bytes) -> IdleLog:
        """Parse a record value; ``IdleLogError`` on another version or a corrupt one."""
        try:
            raw = orjson.loads(value)
            version = raw.get("v")
        except (orjson.JSONDecodeError, AttributeError) as exc:
            raise IdleLogError(f"corrupt idle log record: {exc}") from exc
        if version != IDLE_LOG_VERSION:
            raise IdleLogError(
                f"idle log version {version!r}: this code reads version {IDLE_LOG_VERSION}; "
                "run the release that wrote it, or start a new --group-id to rebuild the state"
            )
        try:
            floor = raw["floor_ms"]
            pending = tuple(IdleDecision(_int(at), _int(ms)) for at, ms in raw["pending"])
            return IdleLog(None if floor is None else _int(floor), pending)
        except (KeyError, TypeError, ValueError) as exc:
            raise IdleLogError(f"corrupt idle log record: {exc}") from exc


def _int(value: object) -> int:
    """``value`` if it is an integer (not a bool), else ``TypeError``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{value!r:.40} is not an integer")
    return value
