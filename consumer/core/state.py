"""The state changelog: closed bars and per-partition checkpoints, kept in a Kafka topic.

The state topic has the input topic's partition count; partition p holds the state of input
partition p. Three kinds of record:

- **bar**: key ``b|<symbol>|<slot>``, value the bar (49 bytes). Under the ``flat`` gap policy
  a symbol's bars are contiguous and ``slot = (bar_start // interval) % 200``; under ``skip``
  and ``session`` they are not, and ``slot = n % 200`` for the symbol's n-th bar (its
  sequence), so the 200 newest bars never share a slot. Slots are reused, so with
  ``cleanup.policy=compact`` the topic keeps exactly the last 200 bars of each symbol; without
  compaction replay applies the latest record per key and reaches the same state, it only
  reads more. A state topic is read with the slot rule it was written with: changing
  ``--gaps`` between flat and the others needs a new state topic.
- **checkpoint**: key ``checkpoint``, written after the bars of a batch: the batch's end offset
  (everything before it is in the state), the offset the worker is about to commit (the first
  tick of the oldest open bar, so those ticks are read again after a restart) with the
  partition's event-time clock just before it (:class:`consumer.core.clock.ClockState`: the
  clock and its window of recent event times), and the last commit known to have succeeded.
  Version 2; a version-1 checkpoint (the highest event time instead of the clock) is read as a
  clock at that time with an empty window, and says so (``migrated_from``).
- **idle**: key ``idle``, the partition's idle-close decisions (:mod:`consumer.core.idle`),
  written before the outputs of a close that no record caused; the latest one counts.

Restore reads a partition from the beginning to its high watermark and applies bar records
only up to the last checkpoint: bars after it belong to a batch whose state was not complete,
whose ticks are read again anyway. The idle log applies as soon as it is read: its decisions
must be replayed even when the batch they started did not finish. Every record carries its
writer's fencing generation (:mod:`consumer.kafka.fencing`; checkpoints also name the group
generation and member): a record of a lower generation than one already read is a stale
writer's (a paused worker that resumed after its partitions moved) and is skipped, so restore
never uses an older owner's checkpoint written after a newer owner's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import orjson

from consumer.core.clock import ClockState, ClockStateError
from consumer.core.idle import IDLE_KEY, IdleLog

BAR_VERSION = 1
"""Version byte of bar records."""
CHECKPOINT_VERSION = 2
"""Version of checkpoint records (2: the clock state; 1: the highest event time)."""
BAR_KEY_PREFIX = b"b|"
CHECKPOINT_KEY = b"checkpoint"
BAR_DTYPE = np.dtype([("version", "u1"), ("start", "<i8"), ("ohlcv", "<f8", (5,))])


class StateError(ValueError):
    """A state record this code cannot read (another version, or corrupt)."""


@dataclass(frozen=True)
class Checkpoint:
    """Progress of one input partition, as recorded in its state partition.

    ``end``: offset up to which every closed bar is in the state; ``commit`` / ``mark``: the
    offset being committed and the event-time clock just before it; ``last_commit`` /
    ``last_mark``: the previous commit that succeeded (used if the newest one did not);
    ``migrated_from``: the version of an older record this was read from, else None;
    ``generation`` / ``member``: the writer's fencing generation and group member id.
    """

    end: int
    commit: int
    mark: ClockState | None
    last_commit: int | None = None
    last_mark: ClockState | None = None
    migrated_from: int | None = None
    generation: int | None = None
    member: str | None = None

    def encode(self) -> bytes:
        """The record value."""
        return orjson.dumps(
            {
                "v": CHECKPOINT_VERSION,
                "end": self.end,
                "commit": self.commit,
                "mark": None if self.mark is None else self.mark.to_json(),
                "last_commit": self.last_commit,
                "last_mark": None if self.last_mark is None else self.last_mark.to_json(),
                "generation": self.generation,
                "member": self.member,
            }
        )

    @staticmethod
    def decode(value: bytes) -> Checkpoint:
        """Parse a record value (version 2, or 1 migrated); ``StateError`` on anything else."""
        try:
            raw = orjson.loads(value)
            version = raw.get("v")
            if version not in (1, CHECKPOINT_VERSION):
                raise StateError(
                    f"checkpoint version {version!r}: this code reads versions 1 and {CHECKPOINT_VERSION}; "
                    "run the release that wrote it, or start a new --group-id to rebuild the state"
                )
            mark, last_mark = (_mark(raw["mark"], version), _mark(raw["last_mark"], version))
            return Checkpoint(
                raw["end"],
                raw["commit"],
                mark,
                raw["last_commit"],
                last_mark,
                None if version == CHECKPOINT_VERSION else version,
                raw.get("generation"),
                raw.get("member"),
            )
        except (orjson.JSONDecodeError, KeyError, AttributeError, TypeError, ClockStateError) as exc:
            raise StateError(f"corrupt checkpoint record: {exc}") from exc

    def mark_for(self, committed: int | None) -> ClockState | None:
        """The clock just before the committed offset ``committed``, if this checkpoint knows it."""
        if committed == self.commit:
            return self.mark
        if committed is not None and committed == self.last_commit:
            return self.last_mark
        return None


def _mark(raw: object, version: int) -> ClockState | None:
    """A checkpoint's clock: version 2 stores the state, version 1 the highest event time."""
    if raw is None:
        return None
    if version == 1:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise StateError(f"corrupt version-1 checkpoint: mark {raw!r:.80} is not an integer")
        return ClockState(raw, ())
    return ClockState.from_json(raw)


def bar_records(
    symbols: Sequence[str],
    bar_start: np.ndarray,
    ohlcv: np.ndarray,
    interval_ms: int,
    slots: int,
    sequence: np.ndarray | None = None,
) -> list[tuple[bytes, bytes]]:
    """(key, value) state records of closed bars: ``bar_start`` int64[m], ``ohlcv`` float64[m, 5].

    Slots by bar time, or by ``sequence`` int64[m] (each bar's number within its symbol) when given.
    """
    packed = np.empty(len(symbols), dtype=BAR_DTYPE)
    packed["version"] = BAR_VERSION
    packed["start"] = bar_start
    packed["ohlcv"] = ohlcv
    slot = (bar_start // interval_ms if sequence is None else np.asarray(sequence, np.int64)) % slots
    raw = packed.tobytes()
    size = BAR_DTYPE.itemsize
    return [(key, raw[i * size : (i + 1) * size]) for i, key in enumerate(bar_keys(symbols, slot))]


def bar_keys(symbols: Sequence[str], slots: np.ndarray) -> list[bytes]:
    """Keys ``b|<symbol>|<slot:03d>`` of bar records (a tombstone deletes one: a key, no value)."""
    return [
        b"%s%s|%03d" % (BAR_KEY_PREFIX, s.encode(), k) for s, k in zip(symbols, slots.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class RestoredPartition:
    """One partition's state: per symbol its bars oldest first, and the last checkpoint.

    ``sequences``: per symbol the number its next bar will have (slots by sequence), else empty.
    """

    symbols: list[str]
    bar_start: list[np.ndarray]
    ohlcv: list[np.ndarray]
    checkpoint: Checkpoint | None
    records: int
    generation: int = -1
    """The highest fencing generation in the partition's state (-1: none)."""
    stale: int = 0
    """Records skipped as a stale writer's."""
    sequences: list[int] = field(default_factory=list)
    idle: IdleLog = field(default_factory=IdleLog)
    """The partition's idle-close decisions, as last written."""

    @property
    def bars(self) -> int:
        """Bars restored, all symbols together."""
        return sum(len(starts) for starts in self.bar_start)


class StateReplay:
    """Applies a state partition's records in offset order; ``result()`` gives the restored state.

    ``by_sequence``: the bar records' slots are sequence numbers (gap policies ``skip`` and
    ``session``) rather than bar times.
    """

    def __init__(self, interval_ms: int, seq_len: int, by_sequence: bool = False) -> None:
        self.interval_ms = interval_ms
        self.seq_len = seq_len
        self.by_sequence = by_sequence
        self._applied: dict[bytes, bytes] = {}
        self._pending: dict[bytes, bytes | None] = {}
        self._checkpoint: Checkpoint | None = None
        self._records = 0
        self._generation = -1
        self._stale = 0
        self._idle = IdleLog()

    def apply(
        self,
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
        generations: Sequence[int] | None = None,
    ) -> None:
        """Feed records (in offset order) of the state partition, with each one's fencing
        generation (default -1, as for records written without one)."""
        self._records += len(keys)
        pending = self._pending
        for key, value, generation in zip(
            keys, values, generations if generations is not None else [-1] * len(keys), strict=True
        ):
            if generation < self._generation:
                self._stale += 1
                continue
            if generation > self._generation:
                self._generation = generation
                pending.clear()
            if key == CHECKPOINT_KEY and value is not None:
                self._checkpoint = Checkpoint.decode(value)
                for bar_key, bar in pending.items():
                    if bar is None:
                        self._applied.pop(bar_key, None)
                    else:
                        self._applied[bar_key] = bar
                pending.clear()
            elif key == IDLE_KEY and value is not None:
                self._idle = IdleLog.decode(value)
            elif key is not None and key.startswith(BAR_KEY_PREFIX):
                pending[key] = value

    def result(self) -> RestoredPartition:
        """Bars per symbol as of the last checkpoint: the newest ``seq_len`` contiguous ones when
        slots are bar times, every slot's bar when they are sequence numbers. A tombstone
        (a record without a value) removes its slot's bar."""
        if not self._applied:
            return RestoredPartition(
                [], [], [], self._checkpoint, self._records, self._generation, self._stale, idle=self._idle
            )
        keys = list(self._applied)
        values = b"".join(self._applied.values())
        if len(values) != len(keys) * BAR_DTYPE.itemsize:
            raise StateError("corrupt bar record in the state topic: unexpected value size")
        packed = np.frombuffer(values, dtype=BAR_DTYPE)
        if (packed["version"] != BAR_VERSION).any():
            raise StateError(f"bar records of another version than {BAR_VERSION}")
        names = [key[len(BAR_KEY_PREFIX) : key.rindex(b"|")].decode() for key in keys]
        order = sorted(range(len(names)), key=lambda i: (names[i], int(packed["start"][i])))
        symbols, starts, bars, sequences = [], [], [], []
        for symbol, rows in _runs([names[i] for i in order], np.array(order, dtype=np.int64)):
            start = packed["start"][rows]
            if self.by_sequence:
                recent = np.ones(len(rows), dtype=bool)
                newest_slot = int(keys[int(rows[-1])][keys[int(rows[-1])].rindex(b"|") + 1 :])
                full = len(rows) >= self.seq_len
                sequences.append(self.seq_len + (newest_slot + 1) % self.seq_len if full else len(rows))
            else:
                recent = start > start[-1] - self.seq_len * self.interval_ms
            symbols.append(symbol)
            starts.append(start[recent].astype(np.int64))
            bars.append(packed["ohlcv"][rows][recent].astype(np.float64))
        return RestoredPartition(
            symbols,
            starts,
            bars,
            self._checkpoint,
            self._records,
            self._generation,
            self._stale,
            sequences,
            self._idle,
        )


def _runs(names: list[str], rows: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """Consecutive equal names with their rows."""
    runs = []
    first = 0
    for i in range(1, len(names) + 1):
        if i == len(names) or names[i] != names[first]:
            runs.append((names[first], rows[first:i]))
            first = i
    return runs


class CheckpointBook:
    """Builds each partition's checkpoint and remembers its last commit that succeeded."""

    def __init__(self) -> None:
        self._committed: dict[int, tuple[int, ClockState | None]] = {}

    def checkpoint(
        self,
        partition: int,
        end: int,
        commit: int,
        mark: ClockState | None,
        generation: int | None = None,
        member: str | None = None,
    ) -> Checkpoint:
        """The checkpoint to write after a batch's bars, before committing ``commit``."""
        last_commit, last_mark = self._committed.get(partition, (None, None))
        return Checkpoint(end, commit, mark, last_commit, last_mark, None, generation, member)

    def committed(self, partition: int, commit: int, mark: ClockState | None) -> None:
        """Record that ``commit`` (with its ``mark``) was committed."""
        self._committed[partition] = (commit, mark)

    def last_commit(self, partition: int) -> int | None:
        """The partition's last commit known to have succeeded (None: none this assignment)."""
        return self._committed.get(partition, (None, None))[0]

    def forget(self, partition: int) -> None:
        """Drop a revoked partition."""
        self._committed.pop(partition, None)
