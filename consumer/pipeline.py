"""From one batch of Kafka records to dead letters and the windows to score: no I/O, no asyncio.

``BarPipeline`` holds one ``BarAggregator`` per assigned partition and one ``RingBuffers`` for
all of them (key = symbol, so a symbol lives in exactly one partition). For each partition's
records it decodes, aggregates, and for every bar that closed builds the 200-bar window that
ends at that bar, then appends the bars to the buffers. Every closed bar of a symbol with at
least 200 bars is scored, so what is published never depends on how records were batched.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from consumer.bars import AggregateResult, BarAggregator, ClosedBars
from consumer.buffers import RingBuffers
from consumer.ticks import DecodedBars, DecodedTicks, Reject, RejectReason, TickDecoder

InputKind = Literal["ticks", "bars"]
Decoded = TypeVar("Decoded", DecodedTicks, DecodedBars)
NO_TIME = np.iinfo(np.int64).min
_FUTURE_PASSES = 8


@dataclass(frozen=True)
class Windows:
    """Windows to score, one per closed bar: ``bars`` float64[n, L, 5] oldest bar first.

    ``symbols`` the n symbols, ``bar_end_ts`` / ``window_start_ts`` int64[n] epoch ms.
    """

    symbols: list[str]
    bars: np.ndarray
    bar_end_ts: np.ndarray
    window_start_ts: np.ndarray

    def __len__(self) -> int:
        return len(self.symbols)

    @staticmethod
    def concat(parts: Sequence[Windows], seq_len: int) -> Windows:
        """All windows of ``parts`` in order (an empty set has shape [0, seq_len, 5])."""
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return Windows([], np.zeros((0, seq_len, 5)), empty, empty)
        return Windows(
            [s for part in parts for s in part.symbols],
            np.concatenate([part.bars for part in parts]),
            np.concatenate([part.bar_end_ts for part in parts]),
            np.concatenate([part.window_start_ts for part in parts]),
        )


@dataclass(frozen=True)
class PartitionOutcome:
    """What one partition's records produced: dead letters, counts, and windows to score."""

    rejects: list[Reject]
    duplicates: int
    trade_bars: int
    gap_bars: int
    refused_symbols: list[str]
    windows: Windows
    newest_bar_end_ms: int | None = field(default=None)


class BarPipeline:
    """Decode -> aggregate -> buffer -> windows, per partition of the input topic."""

    def __init__(
        self,
        interval_ms: int,
        allowed_lateness_ms: int,
        *,
        input_kind: InputKind = "ticks",
        seq_len: int = 200,
        max_symbols: int = 100_000,
        max_record_bytes: int = 65_536,
        max_time_jump_ms: int = 7 * 86_400_000,
        max_clock_skew_ms: int = 3_600_000,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    ) -> None:
        self.max_time_jump_ms = max_time_jump_ms
        self.max_clock_skew_ms = max_clock_skew_ms
        self.clock_ms = clock_ms
        self.interval_ms = interval_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.input_kind = input_kind
        self.seq_len = seq_len
        self.max_symbols = max_symbols
        self.decoder = TickDecoder(max_bytes=max_record_bytes)
        self.buffers = RingBuffers(capacity=seq_len, max_symbols=max_symbols)
        self.aggregators: dict[int, BarAggregator] = {}

    def aggregator(self, partition: int) -> BarAggregator:
        """The partition's aggregator, created on first use."""
        if partition not in self.aggregators:
            self.aggregators[partition] = BarAggregator(
                self.interval_ms, self.allowed_lateness_ms, max_symbols=self.max_symbols
            )
        return self.aggregators[partition]

    def drop_partition(self, partition: int) -> int:
        """Forget a revoked partition's bars and buffers; returns the symbols dropped."""
        aggregator = self.aggregators.pop(partition, None)
        return self.buffers.remove(aggregator.symbols) if aggregator is not None else 0

    def process(
        self, partition: int, values: Sequence[bytes | None], keys: Sequence[bytes | None]
    ) -> PartitionOutcome:
        """Run one partition's batch of records (values and keys in offset order)."""
        aggregator = self.aggregator(partition)
        watermark = aggregator.watermark_ms
        partition_max = NO_TIME if watermark is None else watermark + self.allowed_lateness_ms
        if self.input_kind == "ticks":
            ticks = self._drop_future(self.decoder.decode_ticks(values, keys), partition_max)
            decode_rejects, result = ticks.rejects, aggregator.add(ticks)
        else:
            bars = self._drop_future(self.decoder.decode_bars(values, keys), partition_max)
            decode_rejects, result = bars.rejects, aggregator.add_bars(bars)
        return self._outcome(decode_rejects, result)

    def _drop_future(self, decoded: Decoded, partition_max: int) -> Decoded:
        """Reject records too far ahead of the partition or the wall clock (``future_ts``).

        One tick from the year 3000 would otherwise move the watermark past every open bar.
        """
        future = future_mask(
            decoded.ts_ms, partition_max, self.max_time_jump_ms, self.clock_ms() + self.max_clock_skew_ms
        )
        if not future.any():
            return decoded
        keep = ~future
        rejects = [
            Reject(
                int(decoded.index[i]), RejectReason.FUTURE_TS, f"ts {int(decoded.ts_ms[i])} is too far ahead"
            )
            for i in np.flatnonzero(future).tolist()
        ]
        columns = {
            f.name: getattr(decoded, f.name)[keep]
            for f in dataclasses.fields(decoded)
            if isinstance(getattr(decoded, f.name), np.ndarray)
        }
        kept = np.flatnonzero(keep).tolist()
        trade_id = getattr(decoded, "trade_id", None)
        if trade_id is not None:
            columns["trade_id"] = [trade_id[i] for i in kept]
        return dataclasses.replace(
            decoded,
            symbols=[decoded.symbols[i] for i in kept],
            rejects=sorted([*decoded.rejects, *rejects], key=lambda r: r.index),
            **columns,
        )

    def _outcome(self, decode_rejects: list[Reject], result: AggregateResult) -> PartitionOutcome:
        closed = result.bars
        windows, refused = self._close(closed)
        gap = int(np.count_nonzero(closed.count == 0))
        newest = int(closed.bar_start.max()) + self.interval_ms if len(closed) else None
        return PartitionOutcome(
            rejects=sorted([*decode_rejects, *result.rejects], key=lambda r: r.index),
            duplicates=result.duplicates,
            trade_bars=len(closed) - gap,
            gap_bars=gap,
            refused_symbols=refused,
            windows=windows,
            newest_bar_end_ms=newest,
        )

    def _close(self, closed: ClosedBars) -> tuple[Windows, list[str]]:
        """Windows ending at each newly closed bar of a warm symbol, then append the bars."""
        if not len(closed):
            return Windows.concat([], self.seq_len), []
        first = np.flatnonzero(np.r_[True, closed.symbol_ids[1:] != closed.symbol_ids[:-1]])
        symbols = [closed.symbols[i] for i in first.tolist()]
        slots = self.buffers.slots(symbols)
        history = np.full((len(symbols), self.seq_len, 5), np.nan)
        history_start = np.full((len(symbols), self.seq_len), np.iinfo(np.int64).min)
        if (slots >= 0).any():
            history[slots >= 0], history_start[slots >= 0] = self.buffers.windows(slots[slots >= 0])
        group = np.repeat(np.arange(len(symbols)), np.diff(first, append=len(closed)))
        fresh = np.flatnonzero(closed.bar_start > history_start[group, -1])
        windows = _windows_ending_at_each_bar(
            history,
            history_start,
            self.buffers.counts(symbols),
            group[fresh],
            closed.bar_start[fresh],
            closed.ohlcv()[fresh],
            [closed.symbols[i] for i in fresh.tolist()],
            self.interval_ms,
        )
        appended = self.buffers.append(closed.symbols, closed.bar_start, closed.ohlcv())
        return windows, appended.refused


def future_mask(ts: np.ndarray, partition_max: int, max_jump_ms: int, latest_allowed_ms: int) -> np.ndarray:
    """bool[n]: records whose event time is too far ahead, judged in arrival order.

    A record is too far ahead when its ``ts`` exceeds ``latest_allowed_ms`` (the wall clock
    plus allowed skew) or the largest ``ts`` accepted before it (starting from
    ``partition_max``) by more than ``max_jump_ms``. Rejected records do not move that
    maximum, so a run of bad records is caught too.
    """
    future = ts > latest_allowed_ms
    for _ in range(_FUTURE_PASSES):
        accepted = np.where(future, NO_TIME, ts)
        previous = np.maximum.accumulate(np.r_[partition_max, accepted])[:-1]
        flagged = future | ((previous != NO_TIME) & (ts > previous + max_jump_ms))
        if (flagged == future).all():
            return future
        future = flagged
    return _future_mask_sequential(ts, partition_max, max_jump_ms, future)


def _future_mask_sequential(
    ts: np.ndarray, partition_max: int, max_jump_ms: int, future: np.ndarray
) -> np.ndarray:
    """The exact arrival-order rule as a loop, for the rare batch with long runs of bad records."""
    result = future.copy()
    highest = partition_max
    for i, t in enumerate(ts.tolist()):
        if result[i] or (highest != NO_TIME and t > highest + max_jump_ms):
            result[i] = True
        else:
            highest = max(highest, t)
    return result


def _windows_ending_at_each_bar(
    history: np.ndarray,
    history_start: np.ndarray,
    counts: np.ndarray,
    group: np.ndarray,
    bar_start: np.ndarray,
    ohlcv: np.ndarray,
    symbols: list[str],
    interval_ms: int,
) -> Windows:
    """For the j-th new bar of symbol g: the last L bars of (g's stored bars ++ its new bars 0..j).

    ``history`` float64[G, L, 5] and ``history_start`` int64[G, L] hold each symbol's stored
    window (newest last), ``counts`` int64[G] how many bars it has had; the m new bars
    (``group`` int64[m] sorted, ``bar_start`` int64[m], ``ohlcv`` float64[m, 5]) are all newer
    than the stored ones. A bar is scored once its symbol has L bars.
    """
    groups, seq_len = history.shape[:2]
    run_first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    run_first = np.repeat(run_first, np.diff(run_first, append=len(group)))
    rank = np.arange(len(group)) - run_first
    rows = np.flatnonzero(counts[group] + rank + 1 >= seq_len)
    take = rank[rows, None] + 1 + np.arange(seq_len)
    index = np.where(
        take < seq_len,
        group[rows, None] * seq_len + np.minimum(take, seq_len - 1),
        groups * seq_len + run_first[rows, None] + take - seq_len,
    )
    flat_bars = np.concatenate([history.reshape(-1, 5), ohlcv])
    flat_start = np.concatenate([history_start.reshape(-1), bar_start])
    return Windows(
        symbols=[symbols[i] for i in rows.tolist()],
        bars=flat_bars[index],
        bar_end_ts=bar_start[rows] + interval_ms,
        window_start_ts=flat_start[index[:, 0]],
    )
