"""The work of ``bullflag scan``: history tables -> the worker's bars, windows and CNNOutput documents.

Records are encoded exactly as ``bullflag replay`` sends them
(:func:`consumer.sources.producer.tick_records` / ``bar_records``) and go through the worker's
own :class:`consumer.core.pipeline.BarPipeline` and :class:`consumer.core.scoring.Scorer`, so a
document is byte for byte what ``bullflag run`` publishes for the same records.

The input is treated as one partition read from its start: event-time order, one watermark.
It is split into :class:`Chunk` s of whole symbols, each scanned by its own pipeline (in a
process pool when asked); what would make a part differ from the whole is settled here first:
the partition's event-time clock (:mod:`consumer.core.clock`) judges every row once, in input
order (:func:`judge_rows`: ``future_ts`` / ``past_ts``), each chunk's pipeline is given the
clock after each of its rows instead of judging its own, and at the end each part is moved to
the whole input's final clock (``end_ms``). End of input: a bar is scored when a later tick of
its symbol closed it or when that final watermark (final clock - allowed lateness) reached its
end, which is what the worker has published once it has consumed the whole file; each symbol's
last bar is otherwise still open, so not scored.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np

from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.output import CNNDocument
from consumer.cli.pictures import default_out, render_output
from consumer.config import Settings
from consumer.core.clock import ClockState, EventClock
from consumer.core.gaps import GapRule
from consumer.core.pipeline import BarPipeline, InputKind
from consumer.core.record_rules import MAX_TS_MS
from consumer.core.scoring import PublishMode, Scorer
from consumer.core.windows import Windows
from consumer.sources.producer import bar_records, tick_records
from consumer.sources.tables import BarTable, TradeTable

__all__ = [
    "Chunk",
    "ChunkResult",
    "ScanJob",
    "TimeVerdicts",
    "chunks",
    "judge_rows",
    "load_model",
    "scan_chunk",
    "start_worker",
]

CHUNK_ROWS: Final = 20_000
"""Rows per chunk (whole symbols, so a busier symbol makes a bigger one): the unit of work
handed to a process and of progress, small enough that a chunk's documents stay in memory."""

BATCH_RECORDS: Final = 4_096
"""Records per pipeline call: bounds one batch's windows to about 33 MB (results never depend
on the batching)."""

_NO_LIMIT: Final = MAX_TS_MS
"""Time jump and clock skew that never trigger: time is judged over the whole input."""

JUDGE_ROWS: Final = 65_536
"""Rows judged by the clock per call (bounds its working arrays; verdicts never depend on it)."""

_SIGNAL: Final = b'"signal":true'
"""In every signal document as orjson writes it (compact): a cheap test before parsing one."""


@dataclass(frozen=True)
class ScanJob:
    """What every chunk is scanned with (picklable, sent once to each process).

    ``first_ms`` / ``last_ms``: score only windows whose last bar ends within them (inclusive);
    ``end_ms``: the whole input's final event-time clock (None: it never started);
    ``png_dir``: draw each signal there.
    """

    settings: Settings
    input_kind: InputKind
    end_ms: int | None
    first_ms: int | None = None
    last_ms: int | None = None
    png_dir: Path | None = None
    torch_threads: int = 0
    gaps: GapRule = field(default_factory=GapRule.flat)


@dataclass(frozen=True)
class Chunk:
    """Every row of some symbols, in event-time order; ``rows`` int64[n] their input row numbers,
    ``clock`` int64[n] the whole input's event-time clock after each of them."""

    table: BarTable | TradeTable
    rows: np.ndarray
    clock: np.ndarray


@dataclass(frozen=True)
class ChunkResult:
    """A chunk's documents sorted by (symbol, bar end), rows the pipeline refused, and counts.

    ``refused`` holds (input row, reason, detail); ``rows`` how many rows the chunk had.
    """

    values: list[bytes]
    refused: list[tuple[int, str, str]]
    rows: int
    windows: int
    signals: int
    pictures: int


@dataclass
class _Worker:
    """The per-process model and scorer, built once by :func:`start_worker`."""

    job: ScanJob
    scorer: Scorer


_worker: _Worker | None = None


def load_model(settings: Settings) -> BullFlagCNNInfer:
    """The worker's model for ``settings`` (checkpoint, Grad-CAM, threshold resolved as it does)."""
    infer = BullFlagCNNInfer(settings.checkpoint, **settings.scoring_options)
    infer.resolve_threshold(settings.threshold)
    return infer


def start_worker(job: ScanJob, infer: BullFlagCNNInfer | None = None) -> None:
    """Load the model for this process (process-pool initializer; in-process with ``infer``)."""
    global _worker
    infer = infer or load_model(job.settings)
    if job.torch_threads > 0:
        infer.set_threads(job.torch_threads)
    publish: PublishMode = "signals-only" if job.settings.publish == "signals-only" else "all"
    _worker = _Worker(job, Scorer(infer, job.settings.bar_interval, publish))


@dataclass(frozen=True)
class TimeVerdicts:
    """The clock's judgement of every row: ``future`` / ``past`` bool[n] rows refused,
    ``before`` / ``after`` int64[n] the clock each row met and the clock after it, ``end`` the
    final clock (None: it never started)."""

    future: np.ndarray
    past: np.ndarray
    before: np.ndarray
    after: np.ndarray
    end: int | None


def judge_rows(ts_ms: np.ndarray, settings: Settings, now_ms: int) -> TimeVerdicts:
    """Judge the event times of one input, in order, as the worker judges one partition read
    from the start, so that splitting the input by symbol afterwards cannot change the verdict."""
    clock = EventClock(settings.clock_window, settings.max_time_jump_ms)
    latest = now_ms + settings.max_clock_skew_ms
    state = ClockState()
    parts = []
    for lo in range(0, len(ts_ms), JUDGE_ROWS):
        verdict = clock.judge(state, ts_ms[lo : lo + JUDGE_ROWS], latest)
        parts.append((verdict.future, verdict.past, verdict.before, verdict.after))
        state = verdict.end
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return TimeVerdicts(empty.astype(bool), empty.astype(bool), empty, empty, None)
    future, past, before, after = (np.concatenate(column) for column in zip(*parts, strict=True))
    return TimeVerdicts(future, past, before, after, state.clock)


def chunks(
    table: BarTable | TradeTable, rows: np.ndarray, clock: np.ndarray, target_rows: int | None = None
) -> Iterator[Chunk]:
    """Split an event-time-ordered table into chunks of whole symbols, in symbol order; ``clock``
    int64[n] the clock after each row (:func:`judge_rows`) goes along.

    Deterministic from the table alone (not from the number of processes), so the output order,
    symbol by symbol, is the same however many processes scan it. ``target_rows`` defaults to
    :data:`CHUNK_ROWS`.
    """
    target = CHUNK_ROWS if target_rows is None else target_rows
    names, inverse = np.unique(table.symbols, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse, minlength=len(names))
    group = np.zeros(len(names), dtype=np.int64)
    filled = 0
    current = 0
    for i, count in enumerate(counts.tolist()):
        if filled and filled + count > target:
            current += 1
            filled = 0
        group[i] = current
        filled += count
    by_group = group[inverse[order]]
    bounds = np.flatnonzero(np.r_[True, by_group[1:] != by_group[:-1], True])
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        picked = np.sort(order[lo:hi])
        yield Chunk(_take(table, picked), rows[picked], clock[picked])


def _take(table: BarTable | TradeTable, rows: np.ndarray) -> BarTable | TradeTable:
    """The table's rows ``rows``, in that order."""
    if isinstance(table, BarTable):
        return BarTable(table.symbols[rows], table.ts_ms[rows], table.ohlcv[rows])
    return TradeTable(table.symbols[rows], table.ts_ms[rows], table.price[rows], table.size[rows])


def scan_chunk(chunk: Chunk) -> ChunkResult:
    """Aggregate, window and score one chunk as the worker would; draw its signals when asked."""
    if _worker is None:
        raise RuntimeError("start_worker() must run in this process before scan_chunk().")
    job, scorer = _worker.job, _worker.scorer
    settings = job.settings
    pipeline = BarPipeline(
        settings.bar_interval_ms,
        settings.allowed_lateness_ms,
        input_kind=job.input_kind,
        seq_len=scorer.infer.seq_len,
        max_symbols=settings.max_symbols,
        max_record_bytes=settings.max_record_bytes,
        max_time_jump_ms=_NO_LIMIT,
        max_clock_skew_ms=_NO_LIMIT,
        gap_rule=job.gaps,
        symbol_ttl_ms=settings.symbol_ttl_ms,
    )
    encoded = bar_records(chunk.table) if isinstance(chunk.table, BarTable) else tick_records(chunk.table)
    keys, values, _ = zip(*encoded, strict=True) if len(chunk.table) else ((), (), ())
    out = _Collector(job, scorer)
    refused: list[tuple[int, str, str]] = []
    for lo in range(0, len(values), BATCH_RECORDS):
        hi = lo + BATCH_RECORDS
        outcome = pipeline.process(0, values[lo:hi], keys[lo:hi], clock=chunk.clock[lo:hi])
        refused += [(int(chunk.rows[lo + r.index]), str(r.reason), r.detail) for r in outcome.rejects]
        out.add(outcome.windows)
    if job.end_ms is not None:
        out.add(pipeline.close_expired(0, job.end_ms))
    return out.result(refused, len(chunk.table))


class _Collector:
    """Scores a chunk's windows batch by batch and keeps the documents and counts."""

    def __init__(self, job: ScanJob, scorer: Scorer) -> None:
        self.job = job
        self.scorer = scorer
        self.keyed: list[tuple[str, int, bytes]] = []
        self.windows = self.signals = self.pictures = 0

    def add(self, windows: Windows) -> None:
        """Score the windows inside ``--from/--to``, keep their documents, draw their signals."""
        keep = np.ones(len(windows), dtype=bool)
        if self.job.first_ms is not None:
            keep &= windows.bar_end_ts >= self.job.first_ms
        if self.job.last_ms is not None:
            keep &= windows.bar_end_ts <= self.job.last_ms
        if not keep.any():
            return
        if not keep.all():
            rows = np.flatnonzero(keep)
            windows = Windows(
                [windows.symbols[i] for i in rows.tolist()],
                windows.bars[rows],
                windows.bar_end_ts[rows],
                windows.window_start_ts[rows],
            )
        scored = self.scorer.score(windows)
        self.windows += scored.windows
        self.signals += scored.signals
        if self.scorer.publish == "all":
            ends = windows.bar_end_ts.tolist()
        else:
            ends = [CNNDocument.from_bytes(value, "scan").bar_end_ts for value in scored.values]
        self.keyed += zip(scored.symbols, ends, scored.values, strict=True)
        if self.job.png_dir is not None:
            self._draw(windows, scored.values)

    def _draw(self, windows: Windows, values: list[bytes]) -> None:
        """One picture per signal, of the very bars that were scored."""
        assert self.job.png_dir is not None
        row_of = {
            (s, int(e)): i for i, (s, e) in enumerate(zip(windows.symbols, windows.bar_end_ts, strict=True))
        }
        for value in values:
            if _SIGNAL not in value:
                continue
            document = CNNDocument.from_bytes(value, "scan")
            if document.signal:
                bars = windows.bars[row_of[(document.symbol, document.bar_end_ts)]]
                render_output(document, bars, self.job.png_dir / default_out(document).name)
                self.pictures += 1

    def result(self, refused: list[tuple[int, str, str]], rows: int) -> ChunkResult:
        """The documents in (symbol, bar end) order, with the counts."""
        self.keyed.sort(key=lambda item: (item[0], item[1]))
        values = [value for _, _, value in self.keyed]
        return ChunkResult(values, refused, rows, self.windows, self.signals, self.pictures)
