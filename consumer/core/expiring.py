"""Applies ``--symbol-ttl`` (:mod:`consumer.core.expiry`) to a ``BarPipeline``: no I/O.

Per batch of one partition, with the clock after each record known:

1. :func:`plan`: the positions where the batch must be cut (a symbol returns after expiring
   once it already traded earlier in the batch), or else the symbols that return in it;
2. :func:`retire` those before the batch is aggregated: their open bars close (and are scored
   when warm, as the watermark would have closed them before the returning record), their
   buffers are freed, their state records become tombstones, and they start afresh;
3. :func:`finish`: after the batch, the symbols idle past the TTL at the batch's clock go the
   same way, and the bars this batch stored for them are not written; when the batch refused
   symbols at ``max_symbols``, those without any bar (all their ticks late) are forgotten too.

:func:`merge` joins the outcomes of a cut batch's pieces. Every step depends only on the
records in offset order, so the outcome does not depend on how records were batched; except
at ``max_symbols``, where idle symbols' slots are freed at batch ends only, so a new symbol
arriving in the batch in which others expire is refused for that batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from itertools import compress, pairwise
from typing import TYPE_CHECKING

import numpy as np

from consumer.core.bar_columns import NO_BAR
from consumer.core.bar_kernels import segmented_cummax
from consumer.core.clock import NO_CLOCK, ClockVerdict, state_of
from consumer.core.expiry import Expired, held_slots, idle, returning

if TYPE_CHECKING:
    from consumer.core.pipeline import BarPipeline, PartitionOutcome, StoredBars, Windows
    from consumer.core.ticks import DecodedBars, DecodedTicks


@dataclasses.dataclass(frozen=True)
class Retired:
    """What retiring symbols before a batch produced: windows of their closed open bars, how
    many bars that was, and what to delete from the state; or, when ``cuts`` is not empty, the
    positions where the batch must be cut instead (nothing was retired)."""

    windows: Windows
    bars: int
    expired: Expired
    cuts: list[int] = dataclasses.field(default_factory=list)


def before(
    pipeline: BarPipeline,
    partition: int,
    decoded: DecodedTicks | DecodedBars,
    after: np.ndarray,
    verdict: ClockVerdict | None,
) -> Retired:
    """Retire the symbols that return in a batch of decoded records (``after`` int64[n]: the
    clock after each); or, when it must be cut, put the partition's clock back as it was before
    ``verdict`` and return the cuts."""
    cuts, back = plan(pipeline, partition, decoded.symbols, decoded.ts_ms, decoded.index, after)
    if not cuts:
        return retire(pipeline, partition, back)
    if verdict is not None:
        pipeline.clocks[partition] = state_of(
            *(column[0] for column in verdict.states_before(np.zeros(1, np.int64)))
        )
    return dataclasses.replace(retire(pipeline, partition, []), cuts=cuts)


def in_pieces(
    pipeline: BarPipeline,
    partition: int,
    batch: tuple[Sequence[bytes | None], Sequence[bytes | None], np.ndarray, np.ndarray | None],
    cuts: list[int],
) -> PartitionOutcome:
    """Process a batch (values, keys, offsets, supplied clock) as the pieces between ``cuts``."""
    values, keys, offsets, clock = batch
    bounds = [0, *cuts, len(values)]
    pieces = [
        (
            lo,
            pipeline.process(
                partition, values[lo:hi], keys[lo:hi], offsets[lo:hi], None if clock is None else clock[lo:hi]
            ),
        )
        for lo, hi in pairwise(bounds)
    ]
    return merge(pieces, pipeline.seq_len)


def plan(
    pipeline: BarPipeline,
    partition: int,
    symbols: list[str],
    ts_ms: np.ndarray,
    index: np.ndarray,
    after: np.ndarray,
) -> tuple[list[int], list[str]]:
    """(cut positions, returning symbols) of a batch's decoded records: ``ts_ms`` int64[n],
    ``index`` int64[n] their positions in the batch, ``after`` int64[n] the clock after each."""
    ttl, interval = pipeline.symbol_ttl_ms, pipeline.interval_ms
    started = after != NO_CLOCK
    if not started.any():
        return [], []
    aggregator = pipeline.aggregator(partition)
    latest = aggregator.latest_starts()
    stored = np.where(latest == NO_BAR, NO_BAR, latest + interval)
    bar_end = ts_ms // interval * interval + interval
    newest = int(after.max())
    stale = bool((stored[stored != NO_BAR] < newest - ttl).any())
    # A record returns after an earlier one of the batch only past the TTL after its bar's end.
    spans = newest - int(bar_end.min()) > ttl
    if not stale and not spans:
        return [], []
    sid = aggregator.ids_of(symbols)
    stored_end = np.full(len(sid), NO_BAR, dtype=np.int64)
    stored_end[sid >= 0] = stored[sid[sid >= 0]]
    # Without a span longer than the TTL, a record can only return against its symbol's stored
    # activity, so symbols new to the batch (id -1) need no names of their own.
    code = np.unique(np.asarray(symbols), return_inverse=True)[1] if spans else sid
    lateness = pipeline.allowed_lateness_ms
    returns, active_before = returning(code, stored_end, bar_end, after, lateness, ttl)
    cuts = _cuts(code, bar_end > after - lateness, returns & active_before) if spans else []
    if cuts:
        return [int(index[row]) for row in cuts], []
    return [], list(dict.fromkeys(symbols[i] for i in np.flatnonzero(returns).tolist()))


def _cuts(code: np.ndarray, active: np.ndarray, candidates: np.ndarray) -> list[int]:
    """Rows to cut the batch before: candidates whose symbol had an active record since the last
    cut (the others return at the start of their piece, where :func:`retire` handles them)."""
    order = np.argsort(code, kind="stable")
    first = np.ones(len(code), dtype=bool)
    first[1:] = code[order][1:] != code[order][:-1]
    upto = segmented_cummax(np.where(active[order], order, -1), first)
    previous = np.full(len(code), -1, dtype=np.int64)
    previous[order[1:]] = np.where(first[1:], -1, upto[:-1])
    cuts: list[int] = []
    for row in np.flatnonzero(candidates).tolist():
        if previous[row] >= (cuts[-1] if cuts else 0):
            cuts.append(row)
    return cuts


def retire(pipeline: BarPipeline, partition: int, symbols: Sequence[str]) -> Retired:
    """Forget ``symbols`` of the partition: close their open bars (windows returned), free their
    buffers, and name the state records to delete."""
    if not symbols:
        return Retired(_no_windows(pipeline), 0, Expired())
    closed = pipeline.aggregator(partition).retire(symbols).bars
    windows, _, _ = pipeline._close(closed)
    buffers = pipeline.buffers
    slots = buffers.slots(symbols)
    have = slots >= 0
    held = list(compress(symbols, have.tolist()))
    _, starts = buffers.windows(slots[have])
    row, slot = held_slots(
        starts, buffers.counts(held), pipeline.interval_ms, pipeline.seq_len, pipeline.by_sequence
    )
    buffers.remove(symbols)
    return Retired(windows, len(closed), Expired(list(symbols), [held[i] for i in row.tolist()], slot))


def _no_windows(pipeline: BarPipeline) -> Windows:
    """Zero windows of the pipeline's length."""
    from consumer.core.pipeline import Windows

    return Windows.concat([], pipeline.seq_len)


def finish(
    pipeline: BarPipeline,
    partition: int,
    outcome: PartitionOutcome,
    retired: Retired,
    verdict: ClockVerdict | None,
    after: np.ndarray,
) -> PartitionOutcome:
    """The outcome with the symbols retired before the batch, and those idle at its clock after
    it (``verdict``'s, or the supplied clock's ``after``)."""
    from consumer.core.pipeline import Windows

    if verdict is not None:
        clock = verdict.end.clock
    else:
        clock = int(after.max()) if len(after) and after.max() != NO_CLOCK else None
    expired, windows, idle_now = retired.expired, [retired.windows, outcome.windows], Expired()
    if clock is not None:
        aggregator = pipeline.aggregator(partition)
        opened = aggregator.open_starts() != NO_BAR
        gone = idle(aggregator.latest_starts(), opened, clock, pipeline.interval_ms, pipeline.symbol_ttl_ms)
        if gone.any():
            names = aggregator.symbols
            retiring = retire(pipeline, partition, [names[i] for i in np.flatnonzero(gone).tolist()])
            idle_now = retiring.expired
            windows.append(retiring.windows)
    if outcome.refused_symbols:
        # At the limit, a symbol that never got a bar is worth less than the one refused.
        aggregator = pipeline.aggregator(partition)
        aggregator.retire(aggregator.without_bars())
    return dataclasses.replace(
        outcome,
        windows=Windows.concat([part for part in windows if len(part)] or windows[1:2], pipeline.seq_len),
        # Bars of symbols that came back belong to their new life; those of idle ones are gone.
        stored=without(outcome.stored, set(idle_now.symbols)),
        trade_bars=outcome.trade_bars + retired.bars,
        expired=expired + idle_now,
    )


def without(stored: StoredBars, symbols: set[str]) -> StoredBars:
    """``stored`` less the bars of ``symbols``."""
    if not symbols or not stored.symbols:
        return stored
    keep = np.fromiter((s not in symbols for s in stored.symbols), bool, len(stored.symbols))
    rows = np.flatnonzero(keep)
    return dataclasses.replace(
        stored,
        symbols=list(compress(stored.symbols, keep.tolist())),
        bar_start=stored.bar_start[rows],
        ohlcv=stored.ohlcv[rows],
        sequence=stored.sequence[rows] if len(stored.sequence) else stored.sequence,
    )


def merge(pieces: list[tuple[int, PartitionOutcome]], seq_len: int) -> PartitionOutcome:
    """One outcome for a batch cut into pieces, each given with its first position: rejects
    renumbered, counts added, bars of symbols a later piece expired left out, the last commit."""
    from consumer.core.pipeline import StoredBars, Windows

    outcomes = [outcome for _, outcome in pieces]
    stored = []
    for k, outcome in enumerate(outcomes):
        gone = {s for later in outcomes[k + 1 :] for s in later.expired.symbols}
        stored.append(without(outcome.stored, gone))
    expired = Expired()
    for outcome in outcomes:
        expired += outcome.expired
    last = outcomes[-1]
    newest = [o.newest_bar_end_ms for o in outcomes if o.newest_bar_end_ms is not None]
    return dataclasses.replace(
        last,
        rejects=[dataclasses.replace(r, index=r.index + lo) for lo, o in pieces for r in o.rejects],
        duplicates=sum(o.duplicates for o in outcomes),
        trade_bars=sum(o.trade_bars for o in outcomes),
        gap_bars=sum(o.gap_bars for o in outcomes),
        refused_symbols=sorted({s for o in outcomes for s in o.refused_symbols}),
        windows=Windows.concat([o.windows for o in outcomes], seq_len),
        stored=StoredBars(
            [s for part in stored for s in part.symbols],
            np.concatenate([part.bar_start for part in stored]),
            np.concatenate([part.ohlcv for part in stored]),
            np.concatenate([part.sequence for part in stored]),
        ),
        replayed=sum(o.replayed for o in outcomes),
        newest_bar_end_ms=max(newest) if newest else None,
        expired=expired,
    )
