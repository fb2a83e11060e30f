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

from consumer.core import expiring
from consumer.core.bars import NO_BAR, AggregateResult, BarAggregator, ClosedBars
from consumer.core.buffers import RingBuffers
from consumer.core.clock import DEFAULT_WINDOW, NO_CLOCK, ClockState, ClockVerdict, EventClock, state_of
from consumer.core.expiry import Expired, check_ttl
from consumer.core.gaps import GapRule
from consumer.core.idle import closes_any
from consumer.core.record_rules import Reject, RejectReason
from consumer.core.state import RestoredPartition
from consumer.core.ticks import DecodedBars, DecodedTicks, TickDecoder
from consumer.core.windows import Windows, windows_ending_at_each_bar

InputKind = Literal["ticks", "bars"]
Decoded = TypeVar("Decoded", DecodedTicks, DecodedBars)


@dataclass(frozen=True)
class StoredBars:
    """Bars appended to the ring buffers by one batch (what the state changelog must record);
    ``sequence`` int64[m] is each bar's number within its symbol (0 for its first)."""

    symbols: list[str]
    bar_start: np.ndarray
    ohlcv: np.ndarray
    sequence: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@dataclass(frozen=True)
class PartitionOutcome:
    """What one partition's records produced: dead letters, counts, windows, state to save.

    ``commit`` is the offset to commit once all of it is acknowledged: the first tick of the
    oldest bar still open (its ticks must be read again after a restart), or the batch end;
    ``mark`` is the partition's event-time clock just before ``commit`` (None when the caller
    supplied the clock).
    ``replayed`` counts dead letters not sent again because a run before a restart sent them;
    ``expired`` the symbols it expired (``--symbol-ttl``) and their state records to delete.
    """

    rejects: list[Reject]
    duplicates: int
    trade_bars: int
    gap_bars: int
    refused_symbols: list[str]
    """New symbols turned away at the symbol limit (by the aggregator or the buffers), sorted."""
    windows: Windows
    stored: StoredBars
    commit: int
    mark: ClockState | None
    replayed: int = 0
    newest_bar_end_ms: int | None = field(default=None)
    expired: Expired = field(default_factory=Expired)


@dataclass
class _Progress:
    """Per partition: where each open bar's first tick is, and how far a restart must replay.

    By aggregator symbol id: ``first_offset`` int64[symbols], the offset of the first tick of
    the symbol's open bar, and the clock state just before that tick: ``clock`` int64[symbols],
    ``window`` int64[symbols, size], ``fill`` int64[symbols] (see ``ClockVerdict.states_before``).
    """

    size: int
    first_offset: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    clock: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    window: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    fill: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    replay_until: int = -1

    def grow(self, n: int) -> None:
        """Room for ``n`` symbols."""
        if n > len(self.first_offset):
            extra = n - len(self.first_offset)
            self.first_offset = np.r_[self.first_offset, np.zeros(extra, dtype=np.int64)]
            self.clock = np.r_[self.clock, np.full(extra, NO_CLOCK, dtype=np.int64)]
            self.window = np.r_[self.window.reshape(-1, self.size), np.zeros((extra, self.size), np.int64)]
            self.fill = np.r_[self.fill, np.zeros(extra, dtype=np.int64)]

    def mark(self, sid: int) -> ClockState:
        """The clock state before the first tick of symbol ``sid``'s open bar."""
        return state_of(int(self.clock[sid]), self.window[sid], int(self.fill[sid]))


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
        clock_window: int = DEFAULT_WINDOW,
        clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        gap_rule: GapRule | None = None,
        symbol_ttl_ms: int = 0,
    ) -> None:
        self.symbol_ttl_ms = check_ttl(symbol_ttl_ms, interval_ms, allowed_lateness_ms)
        self.clock = EventClock(clock_window, max_time_jump_ms)
        self.clocks: dict[int, ClockState] = {}
        self.max_time_jump_ms = max_time_jump_ms
        self.max_clock_skew_ms = max_clock_skew_ms
        self.clock_ms = clock_ms
        self.interval_ms = interval_ms
        self.allowed_lateness_ms = allowed_lateness_ms
        self.input_kind = input_kind
        self.seq_len = seq_len
        self.max_symbols = max_symbols
        self.gap_rule = gap_rule if gap_rule is not None else GapRule.flat()
        self.decoder = TickDecoder(max_bytes=max_record_bytes)
        self.buffers = RingBuffers(capacity=seq_len, max_symbols=max_symbols)
        self.aggregators: dict[int, BarAggregator] = {}
        self.progress: dict[int, _Progress] = {}

    def aggregator(self, partition: int) -> BarAggregator:
        """The partition's aggregator, created on first use."""
        if partition not in self.aggregators:
            self.aggregators[partition] = BarAggregator(
                self.interval_ms,
                self.allowed_lateness_ms,
                max_symbols=self.max_symbols,
                gap_rule=self.gap_rule,
            )
        return self.aggregators[partition]

    @property
    def by_sequence(self) -> bool:
        """Whether state records are slotted by bar sequence (gaps are not all filled)."""
        return self.gap_rule.policy != "flat"

    def drop_partition(self, partition: int) -> int:
        """Forget a revoked partition's bars and buffers; returns the symbols dropped."""
        aggregator = self.aggregators.pop(partition, None)
        self.progress.pop(partition, None)
        self.clocks.pop(partition, None)
        return self.buffers.remove(aggregator.symbols) if aggregator is not None else 0

    def restore_partition(self, partition: int, restored: RestoredPartition, committed: int | None) -> int:
        """Load a partition's saved bars before its records are read again from ``committed``.

        Buffers get the saved bars; the aggregator learns each symbol's last closed bar and the
        partition's event-time clock before ``committed``; records before the checkpoint's end
        were fully handled before the restart, so their dead letters are not sent again.
        Returns the number of symbols restored.
        """
        self.drop_partition(partition)
        aggregator = self.aggregator(partition)
        progress = self._progress(partition)
        if restored.symbols:
            sequences: list[int | None] = [*restored.sequences] or [None] * len(restored.symbols)
            for symbol, starts, bars, count in zip(
                restored.symbols, restored.bar_start, restored.ohlcv, sequences, strict=True
            ):
                self.buffers.restore_bars(symbol, starts, bars, count)
            last = np.array([starts[-1] for starts in restored.bar_start], dtype=np.int64)
            close = np.array([bars[-1, 3] for bars in restored.ohlcv])
            aggregator.seed(restored.symbols, last, close)
        checkpoint = restored.checkpoint
        if checkpoint is not None:
            mark = checkpoint.mark_for(committed)
            if mark is not None:
                self.clocks[partition] = mark
                if mark.clock is not None:
                    aggregator.advance_watermark(mark.clock)
            progress.replay_until = checkpoint.end
        floor = restored.idle.split(committed).floor_ms
        if floor is not None:
            aggregator.advance_watermark(floor)
        return len(restored.symbols)

    def process(
        self,
        partition: int,
        values: Sequence[bytes | None],
        keys: Sequence[bytes | None],
        offsets: np.ndarray | None = None,
        clock: np.ndarray | None = None,
    ) -> PartitionOutcome:
        """Run one partition's batch of records (values, keys and offsets in offset order).

        ``offsets`` int64[n] default to 0..n-1 (for callers without Kafka offsets). ``clock``
        int64[n], for a caller that judged time over more records than it passes here (``bullflag
        scan``): the clock after each record, which is then not judged again; the outcome's
        ``mark`` is then None.
        """
        offsets = np.arange(len(values), dtype=np.int64) if offsets is None else np.asarray(offsets, np.int64)
        aggregator = self.aggregator(partition)
        progress = self._progress(partition)
        open_before = aggregator.open_starts()
        raw: DecodedTicks | DecodedBars
        if self.input_kind == "ticks":
            raw = self.decoder.decode_ticks(values, keys)
        else:
            raw = self.decoder.decode_bars(values, keys)
        verdict: ClockVerdict | None = None
        if clock is None:
            verdict = self.clock.judge(
                self.clocks.get(partition, ClockState()), raw.ts_ms, self.clock_ms() + self.max_clock_skew_ms
            )
            self.clocks[partition] = verdict.end
            decoded, kept = _without_judged(raw, verdict)  # type: ignore[type-var]
            after = verdict.after[kept]
        else:
            decoded, kept, after = raw, np.arange(len(raw), dtype=np.int64), np.asarray(clock)[raw.index]
        retired = expiring.before(self, partition, decoded, after, verdict) if self.symbol_ttl_ms else None
        if retired is not None and retired.cuts:
            return expiring.in_pieces(self, partition, (values, keys, offsets, clock), retired.cuts)
        if isinstance(decoded, DecodedTicks):
            result = aggregator.add(decoded, after)
        else:
            result = aggregator.add_bars(decoded, after)
        rejects = sorted([*decoded.rejects, *result.rejects], key=lambda r: r.index)
        self._track_open_bars(aggregator, progress, decoded, result, open_before, offsets, verdict, kept)
        end = int(offsets[-1]) + 1 if len(offsets) else 0
        commit, mark = self._commit_point(aggregator, progress, end, partition, verdict is not None)
        fresh = [r for r in rejects if offsets[r.index] >= progress.replay_until]
        outcome = self._outcome(fresh, len(rejects) - len(fresh), result, commit, mark)
        refused_here = _refused_symbols(decoded, result.rejects)
        if refused_here:
            outcome = dataclasses.replace(
                outcome, refused_symbols=sorted({*outcome.refused_symbols, *refused_here})
            )
        if retired is not None:
            outcome = expiring.finish(self, partition, outcome, retired, verdict, after)
        return outcome

    def close_expired(self, partition: int, event_time_ms: int) -> Windows:
        """Raise the partition's clock to ``event_time_ms`` without a record (its watermark to
        that - lateness); return the windows of the bars that closed (appended to the buffers).

        For a caller that splits one partition's records by symbol (``bullflag scan``): each
        part's pipeline, once fed, is moved to the whole input's final clock, so it closes
        exactly the bars one pipeline over every record would have closed by then.
        """
        state = self.clocks.get(partition, ClockState())
        clock = event_time_ms if state.clock is None else max(state.clock, event_time_ms)
        self.clocks[partition] = ClockState(clock, state.window)
        closed = self.aggregator(partition).advance_watermark(event_time_ms).bars
        windows, _, _ = self._close(closed)
        return windows

    def idle_close_due(self, partition: int, event_time_ms: int) -> bool:
        """Whether raising the partition's event time to ``event_time_ms`` closes an open bar."""
        aggregator = self.aggregators.get(partition)
        return aggregator is not None and closes_any(
            aggregator.open_starts(), self.interval_ms, self.allowed_lateness_ms, event_time_ms
        )

    def close_idle(self, partition: int, event_time_ms: int, end: int) -> PartitionOutcome:
        """An idle close of a partition read up to offset ``end``: raise its event time (not its
        clock, which only records move) to ``event_time_ms``; the bars that closed are scored and
        stored as if a record had closed them, and later ticks for them are ``late``."""
        aggregator = self.aggregator(partition)
        result = aggregator.advance_watermark(event_time_ms)
        commit, mark = self._commit_point(aggregator, self._progress(partition), end, partition, True)
        return self._outcome([], 0, result, commit, mark)

    def _progress(self, partition: int) -> _Progress:
        """The partition's open-bar bookkeeping, created on first use."""
        if partition not in self.progress:
            self.progress[partition] = _Progress(self.clock.size)
        return self.progress[partition]

    def _track_open_bars(
        self,
        aggregator: BarAggregator,
        progress: _Progress,
        decoded: DecodedTicks | DecodedBars,
        result: AggregateResult,
        open_before: np.ndarray,
        offsets: np.ndarray,
        verdict: ClockVerdict | None,
        kept: np.ndarray,
    ) -> None:
        """Record, for bars opened by this batch, the offset of their first tick and the clock
        state just before it (``kept`` maps decoded rows to the rows the clock judged)."""
        open_after = aggregator.open_starts()
        progress.grow(len(open_after))
        before = np.full(len(open_after), NO_BAR, dtype=np.int64)
        before[: len(open_before)] = open_before
        opened = (open_after != NO_BAR) & (open_after != before)
        if not opened.any() or not len(decoded.symbols):
            return
        sid = aggregator.ids_of(decoded.symbols)
        refused = {r.index for r in result.rejects}
        accepted = ~np.isin(decoded.index, list(refused)) if refused else np.ones(len(sid), dtype=bool)
        bar = decoded.ts_ms // self.interval_ms * self.interval_ms
        valid = accepted & (sid >= 0)
        starts_bar = valid & opened[np.maximum(sid, 0)] & (bar == open_after[np.maximum(sid, 0)])
        rows = np.flatnonzero(starts_bar)
        symbols, first = np.unique(sid[rows], return_index=True)
        progress.first_offset[symbols] = offsets[decoded.index[rows[first]]]
        if verdict is None:
            progress.clock[symbols] = NO_CLOCK
            progress.fill[symbols] = 0
            return
        clock, window, fill = verdict.states_before(kept[rows[first]])
        progress.clock[symbols], progress.window[symbols], progress.fill[symbols] = clock, window, fill

    def _commit_point(
        self, aggregator: BarAggregator, progress: _Progress, end: int, partition: int, judged: bool
    ) -> tuple[int, ClockState | None]:
        """(offset to commit, the clock just before it) for the partition after a batch."""
        open_now = aggregator.open_starts() != NO_BAR
        if open_now.any():
            oldest = np.flatnonzero(open_now)[np.argmin(progress.first_offset[: len(open_now)][open_now])]
            return int(progress.first_offset[oldest]), progress.mark(int(oldest)) if judged else None
        return end, self.clocks.get(partition, ClockState()) if judged else None

    def _outcome(
        self,
        rejects: list[Reject],
        replayed: int,
        result: AggregateResult,
        commit: int,
        mark: ClockState | None,
    ) -> PartitionOutcome:
        closed = result.bars
        windows, refused, stored = self._close(closed)
        gap = int(np.count_nonzero(closed.count == 0))
        newest = int(closed.bar_start.max()) + self.interval_ms if len(closed) else None
        return PartitionOutcome(
            rejects=rejects,
            duplicates=result.duplicates,
            trade_bars=len(closed) - gap,
            gap_bars=gap,
            refused_symbols=refused,
            windows=windows,
            stored=stored,
            commit=commit,
            mark=mark,
            replayed=replayed,
            newest_bar_end_ms=newest,
        )

    def _close(self, closed: ClosedBars) -> tuple[Windows, list[str], StoredBars]:
        """Windows ending at each newly closed bar of a warm symbol, then append the bars."""
        if not len(closed):
            empty = StoredBars([], np.zeros(0, dtype=np.int64), np.zeros((0, 5)))
            return Windows.concat([], self.seq_len), [], empty
        first = np.flatnonzero(np.r_[True, closed.symbol_ids[1:] != closed.symbol_ids[:-1]])
        symbols = [closed.symbols[i] for i in first.tolist()]
        slots = self.buffers.slots(symbols)
        counts = self.buffers.counts(symbols)
        group = np.repeat(np.arange(len(symbols)), np.diff(first, append=len(closed)))
        fresh = closed.bar_start > self.buffers.latest(slots)[group]
        # Only symbols that reach seq_len bars in this batch need their stored window gathered.
        scoring = counts + np.bincount(group[fresh], minlength=len(symbols)) >= self.seq_len
        rows = np.flatnonzero(fresh & scoring[group])
        chosen = np.flatnonzero(scoring)
        known = slots[chosen] >= 0
        if known.all():
            history, history_start = self.buffers.windows(slots[chosen])
        else:
            history = np.full((len(chosen), self.seq_len, 5), np.nan)
            history_start = np.full((len(chosen), self.seq_len), np.iinfo(np.int64).min)
            history[known], history_start[known] = self.buffers.windows(slots[chosen][known])
        renumber = np.cumsum(scoring) - 1
        windows = windows_ending_at_each_bar(
            history,
            history_start,
            counts[chosen],
            renumber[group[rows]],
            closed.bar_start[rows],
            closed.ohlcv()[rows],
            [closed.symbols[i] for i in rows.tolist()],
            self.interval_ms,
        )
        ohlcv = closed.ohlcv()
        appended = self.buffers.append(closed.symbols, closed.bar_start, ohlcv)
        rows = np.flatnonzero(appended.stored)
        head = np.flatnonzero(np.r_[True, group[rows][1:] != group[rows][:-1]]) if len(rows) else rows
        rank = np.arange(len(rows)) - np.repeat(head, np.diff(head, append=len(rows)))
        stored = StoredBars(
            [closed.symbols[i] for i in rows.tolist()],
            closed.bar_start[rows],
            ohlcv[rows],
            counts[group[rows]] + rank,
        )
        return windows, appended.refused, stored


def _refused_symbols(decoded: DecodedTicks | DecodedBars, rejects: list[Reject]) -> set[str]:
    """The symbols whose records the aggregator refused for ``max_symbols`` in this batch."""
    positions = [r.index for r in rejects if r.reason is RejectReason.MAX_SYMBOLS]
    if not positions:
        return set()
    rows = np.flatnonzero(np.isin(decoded.index, positions)).tolist()
    return {decoded.symbols[i] for i in rows}


def _without_judged(decoded: Decoded, verdict: ClockVerdict) -> tuple[Decoded, np.ndarray]:
    """The records the clock accepted, with a ``future_ts`` / ``past_ts`` reject for each other,
    and the rows kept."""
    judged = verdict.future | verdict.past
    kept = np.flatnonzero(~judged)
    if len(kept) == len(judged):
        return decoded, kept
    rejects: list[Reject] = []
    for i in np.flatnonzero(judged).tolist():
        ts, clock = int(decoded.ts_ms[i]), int(verdict.before[i])
        if verdict.past[i]:
            reason, detail = RejectReason.PAST_TS, f"ts {ts} is too far behind the partition's clock {clock}"
        elif clock != NO_CLOCK and ts > clock:
            reason = RejectReason.FUTURE_TS
            detail = f"ts {ts} is too far ahead of the partition's clock {clock}"
        else:
            reason, detail = RejectReason.FUTURE_TS, f"ts {ts} is too far ahead of the wall clock"
        rejects.append(Reject(int(decoded.index[i]), reason, detail))
    columns = {
        f.name: getattr(decoded, f.name)[kept]
        for f in dataclasses.fields(decoded)
        if isinstance(getattr(decoded, f.name), np.ndarray)
    }
    rows = kept.tolist()
    trade_id = getattr(decoded, "trade_id", None)
    if trade_id is not None:
        columns["trade_id"] = [trade_id[i] for i in rows]
    replaced = dataclasses.replace(
        decoded,
        symbols=[decoded.symbols[i] for i in rows],
        rejects=sorted([*decoded.rejects, *rejects], key=lambda r: r.index),
        **columns,
    )
    return replaced, kept
