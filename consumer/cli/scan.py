"""``bullflag scan``: score CSV/Parquet history without Kafka, as the worker would have scored it.

Reads files or folders of trades or OHLCV bars (``consumer.sources.readers.read_rows``: bad rows
are skipped, each reported with its file and line, and counted by reason at the end), treats them
as one partition read in event-time order, and writes the CNNOutput documents ``bullflag run``
would publish for the same records: JSON Lines to ``--out`` or stdout, Parquet with
``--parquet``, a picture per signal with ``--png``. The work is :mod:`consumer.cli.scanning`;
this module is the command (flags, reading, the process pool, progress, the summary).

Settings shared with the worker (bar interval, allowed lateness, threshold, checkpoint,
Grad-CAM, publish mode) come from :class:`consumer.config.Settings`, flag > ``BULLFLAG_*``
environment > default, as for ``bullflag run``. matplotlib, tqdm and pyarrow are imported only
when a picture, a progress bar or a Parquet file is wanted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import IO, Any, Final

import numpy as np

from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.intervals import format_interval
from bullflag_model.model_files import CheckpointError
from consumer.cli.pictures import PictureError, check_picture_path
from consumer.cli.scan_output import ParquetSink, ScanCounts, check_parquet, summary_lines, write_lines
from consumer.cli.scanning import (
    Chunk,
    ChunkResult,
    ScanJob,
    chunks,
    judge_rows,
    load_model,
    scan_chunk,
    start_worker,
)
from consumer.cli.table_flags import add_column_arguments, column_names
from consumer.config import Settings, env_name, load_settings
from consumer.core.record_rules import RejectReason
from consumer.sessions import gap_rule
from consumer.sources.readers import BadRow, read_rows
from consumer.sources.tables import (
    BarTable,
    ReplayError,
    TradeTable,
    infer_interval_ms,
)
from consumer.sources.trades import bars_to_trades
from consumer.validators import event_time_ms, integer_at_least

__all__ = ["add_parser", "run"]

TABLE_SUFFIXES: Final = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz", ".parquet", ".pq")
"""File names a folder is searched for (the suffixes the readers take)."""

SHOWN_BAD_ROWS: Final = 100
"""Bad rows reported one by one on stderr; the rest only in the summary's counts."""

DEFAULT_WORKERS: Final = min(os.cpu_count() or 1, 8)
"""Processes by default, one per core (at most 8: each holds a model), each with one torch
thread: on the 2-core benchmark
machine two such processes score several times faster than one process with torch's two
threads (benchmarks/results/scan.json, docs/operations.md)."""


class ScanError(ReplayError):
    """The scan cannot run as asked; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class _Input:
    """Every file's good rows, merged in event-time order, and where each row came from.

    ``rows`` int64[n]: each table row's input row number, which indexes ``origin`` (the file,
    -1 for trades drawn from bars) and ``lines`` (its line or Parquet row).
    """

    table: BarTable | TradeTable
    rows: np.ndarray
    origin: np.ndarray
    lines: np.ndarray
    places: list[str]
    bad: list[BadRow]


def table_files(paths: Iterable[Path]) -> list[Path]:
    """The files named, with each folder replaced by the table files under it (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES)
            )
            if not inside:
                raise ScanError(
                    f"{path}: no CSV or Parquet files in this folder ({', '.join(TABLE_SUFFIXES)})."
                )
            found += inside
        else:
            found.append(path)
    return found


def _read(args: argparse.Namespace, files: list[Path]) -> _Input:
    """Read every file tolerantly and merge them into one event-time order (stable: file order)."""
    given = column_names(args)
    parts = [read_rows(path, given, symbol=args.symbol, time_unit=args.time_unit) for path in files]
    kinds = {type(part.table) for part in parts}
    if len(kinds) > 1:
        raise ScanError("the files mix trades and OHLCV bars; scan files of one kind at a time.")
    places = [f"{path}, {'row' if path.suffix.lower() in ('.parquet', '.pq') else 'line'}" for path in files]
    origin = np.concatenate([np.full(len(p.table), i, dtype=np.int64) for i, p in enumerate(parts)])
    lines = np.concatenate([p.lines for p in parts])
    table = _concat([p.table for p in parts])
    order = np.argsort(table.ts_ms, kind="stable")
    table, origin, lines = _take(table, order), origin[order], lines[order]
    bad = [row for part in parts for row in part.bad]
    return _Input(table, np.arange(len(table), dtype=np.int64), origin, lines, places, bad)


def _concat(tables: list[BarTable | TradeTable]) -> BarTable | TradeTable:
    """One table of several of the same kind, in order."""
    symbols = np.concatenate([t.symbols.astype(str) for t in tables])
    ts = np.concatenate([t.ts_ms for t in tables])
    if isinstance(tables[0], BarTable):
        return BarTable(symbols, ts, np.concatenate([t.ohlcv for t in tables if isinstance(t, BarTable)]))
    trades = [t for t in tables if isinstance(t, TradeTable)]
    return TradeTable(
        symbols, ts, np.concatenate([t.price for t in trades]), np.concatenate([t.size for t in trades])
    )


def _take(table: BarTable | TradeTable, rows: np.ndarray) -> BarTable | TradeTable:
    """The table's rows ``rows``, in that order."""
    if isinstance(table, BarTable):
        return BarTable(table.symbols[rows], table.ts_ms[rows], table.ohlcv[rows])
    return TradeTable(table.symbols[rows], table.ts_ms[rows], table.price[rows], table.size[rows])


def _settings(args: argparse.Namespace, table: BarTable | TradeTable) -> Settings:
    """The worker settings of this scan; a bars file's own bar length when none is given."""
    settings = load_settings(args, os.environ)
    if args.signals_only:
        settings = dataclasses.replace(settings, publish="signals-only")
    given = args.bar_interval is not None or env_name("bar_interval") in os.environ
    if not given and isinstance(table, BarTable):
        inferred = infer_interval_ms(table.symbols, table.ts_ms)
        if inferred is not None:
            settings = dataclasses.replace(settings, bar_interval=format_interval(inferred))
    return settings


def _as_input(args: argparse.Namespace, data: _Input, settings: Settings) -> tuple[_Input, str]:
    """The rows in the record kind to scan (``--input``, default the files' kind); trades drawn
    from bars span each bar's own length, as ``bullflag replay`` draws them."""
    kind = args.scan_input or ("bars" if isinstance(data.table, BarTable) else "ticks")
    if kind == "bars" and isinstance(data.table, TradeTable):
        raise ScanError("the files hold trades, but --input bars scans OHLCV bars; drop --input bars.")
    if kind == "ticks" and isinstance(data.table, BarTable):
        own = infer_interval_ms(data.table.symbols, data.table.ts_ms) or settings.bar_interval_ms
        trades = bars_to_trades(data.table, args.seed, interval_ms=own)
        drawn = dataclasses.replace(
            data,
            table=trades,
            rows=np.arange(len(trades), dtype=np.int64),
            origin=np.full(len(trades), -1, dtype=np.int64),
            lines=np.zeros(len(trades), dtype=np.int64),
        )
        return drawn, kind
    return data, kind


def _judge_time(data: _Input, settings: Settings) -> tuple[_Input, list[BadRow], np.ndarray, int | None]:
    """Leave out the rows the worker would dead-letter as ``future_ts`` / ``past_ts``, reporting
    each; also the clock after each kept row and the final clock."""
    verdicts = judge_rows(data.table.ts_ms, settings, time.time_ns() // 1_000_000)
    judged = verdicts.future | verdicts.past
    bad = []
    for row in np.flatnonzero(judged).tolist():
        reason = RejectReason.FUTURE_TS if verdicts.future[row] else RejectReason.PAST_TS
        side = "ahead" if verdicts.future[row] else "behind"
        detail = f"ts {int(data.table.ts_ms[row])} is too far {side}"
        bad.append(BadRow(_where(data, int(data.rows[row])), str(reason), detail))
    keep = np.flatnonzero(~judged)
    kept = dataclasses.replace(data, table=_take(data.table, keep), rows=data.rows[keep])
    return kept, bad, verdicts.after[keep], verdicts.end


def _where(data: _Input, row: int) -> str:
    """Where input row ``row`` came from (file and line; drawn trades name their files)."""
    origin = int(data.origin[row])
    if origin < 0:
        files = ", ".join(place.rsplit(", ", 1)[0] for place in data.places)
        return f"a trade drawn from the bars of {files}"
    return f"{data.places[origin]} {int(data.lines[row])}"


def _results(
    job: ScanJob, parts: Iterator[Chunk], workers: int, infer: BullFlagCNNInfer
) -> Iterator[ChunkResult]:
    """Scan the chunks in order: in this process with ``infer``, or in ``workers`` processes
    (spawned: torch's threads and fork do not mix), each loading its own model."""
    if workers == 1:
        start_worker(job, infer)
        yield from map(scan_chunk, parts)
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=start_worker, initargs=(job,)) as pool:
        yield from pool.map(scan_chunk, parts)


def _progress(total: int, wanted: bool | None) -> Any:
    """A tqdm bar on stderr over input rows (``None``: only on a terminal); ``None`` without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total,
        unit=" rows",
        unit_scale=True,
        desc="scan",
        disable=None if wanted is None else not wanted,
        file=sys.stderr,
    )


def _report(bad: list[BadRow], counts: ScanCounts) -> None:
    """Report skipped rows on stderr (the first ``SHOWN_BAD_ROWS``) and count them by reason."""
    for row in bad:
        if sum(counts.skipped.values()) < SHOWN_BAD_ROWS:
            print(f"bullflag scan: skipped {row.where}: {row.reason}: {row.detail}", file=sys.stderr)
        elif sum(counts.skipped.values()) == SHOWN_BAD_ROWS:
            print("bullflag scan: more bad rows skipped; the summary counts them all.", file=sys.stderr)
        counts.skipped[row.reason] += 1


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One scan, settled before any scoring: the rows, the job, the rows skipped, the chunks and
    how many processes scan them."""

    data: _Input
    job: ScanJob
    bad: list[BadRow]
    parts: list[Chunk]
    workers: int


def _prepare(args: argparse.Namespace) -> _Plan:
    """Check the outputs, read the inputs and settle the settings, before any scoring."""
    if args.png is not None:
        check_picture_path(Path("signal.png"))
        args.png.mkdir(parents=True, exist_ok=True)
    if args.parquet is not None:
        check_parquet(args.parquet)
    if args.first_ms is not None and args.last_ms is not None and args.first_ms > args.last_ms:
        raise ScanError("--from is after --to; give an earlier --from or a later --to.")
    files = table_files(args.paths)
    data = _read(args, files)
    settings = _settings(args, data.table)
    data, kind = _as_input(args, data, settings)
    data, future, clock, end_ms = _judge_time(data, settings)
    parts = list(chunks(data.table, data.rows, clock))
    workers = max(1, min(args.workers, len(parts)))
    threads = settings.torch_threads or (max(1, (os.cpu_count() or 1) // workers) if workers > 1 else 0)
    job = ScanJob(
        settings,
        "bars" if kind == "bars" else "ticks",
        end_ms,
        args.first_ms,
        args.last_ms,
        args.png,
        threads,
        gap_rule(settings, "bars" if kind == "bars" else "ticks"),
    )
    return _Plan(data, job, [*data.bad, *future], parts, workers)


def run(args: argparse.Namespace) -> int:
    """Read, scan and write; exit 2 on unusable input or flags (skipped bad rows are not errors),
    1 when the results cannot be written."""
    started = time.perf_counter()
    try:
        plan = _prepare(args)
        infer = load_model(plan.job.settings)
    except (ValueError, CheckpointError, PictureError) as exc:
        print(f"bullflag scan: {exc}", file=sys.stderr)
        return 2
    counts = ScanCounts()
    _report(plan.bad, counts)
    counts.rows = len(plan.data.table)
    try:
        _write(args, plan, infer, counts)
    except (OSError, PictureError) as exc:
        print(f"bullflag scan: writing the results failed: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(counts, len(plan.data.places), time.perf_counter() - started, plan.workers):
        print(f"bullflag scan: {line}", file=sys.stderr)
    return 0


def _write(args: argparse.Namespace, plan: _Plan, infer: BullFlagCNNInfer, counts: ScanCounts) -> None:
    """Scan the chunks and write each one's documents as it comes, with the progress bar."""
    bar = _progress(len(plan.data.table), args.progress)
    with contextlib.ExitStack() as stack:
        if bar is not None:
            stack.callback(bar.close)
        out: IO[bytes] = (
            stack.enter_context(args.out.open("wb")) if args.out is not None else sys.stdout.buffer
        )
        sink = ParquetSink(args.parquet) if args.parquet is not None else None
        if sink is not None:
            stack.callback(sink.close)
        for result in _results(plan.job, iter(plan.parts), plan.workers, infer):
            write_lines(out, result.values)
            if sink is not None:
                sink.write(result.values)
            refused = [BadRow(_where(plan.data, row), why, detail) for row, why, detail in result.refused]
            _report(refused, counts)
            counts.windows += result.windows
            counts.documents += len(result.values)
            counts.signals += result.signals
            counts.pictures += result.pictures
            if bar is not None:
                bar.update(result.rows)
        out.flush()


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag scan``."""
    parser = subcommands.add_parser(
        "scan",
        help="Score CSV/Parquet history files without Kafka, as the worker would (JSON Lines out).",
        description="Read CSV/Parquet files (or folders of them) of trades or OHLCV bars, one or many "
        "symbols per file, and write the CNNOutput documents the worker would publish for them: the "
        "same bars, windows, ids and values. The files are taken as one partition read in event-time "
        "order; at the end, a bar is scored if a later tick of its symbol or the final watermark "
        "(newest event time - allowed lateness) closed it, as the worker has once it consumed them. "
        "Bad rows are skipped, each reported with its file and line, and counted by reason at the end.",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="CSV (.csv/.tsv/.txt, optionally .gz) or Parquet files, or folders of them.",
    )
    source.add_argument(
        "--input",
        dest="scan_input",
        choices=("ticks", "bars"),
        default=None,
        help="Record kind the worker reads, as its --input (default: the files' kind; ticks from a "
        "bars file are drawn inside each bar as bullflag replay draws them, with --seed).",
    )
    source.add_argument(
        "--seed",
        metavar="S",
        type=integer_at_least(0),
        default=7,
        help="Seed of trades drawn inside bars (default 7, as bullflag replay).",
    )
    source.add_argument(
        "--from",
        dest="first_ms",
        metavar="TIME",
        type=event_time_ms,
        default=None,
        help="Score only windows whose last bar ends at or after TIME: epoch ms or ISO-8601 "
        "(UTC without an offset).",
    )
    source.add_argument(
        "--to",
        dest="last_ms",
        metavar="TIME",
        type=event_time_ms,
        default=None,
        help="Score only windows whose last bar ends at or before TIME (earlier rows still fill "
        "the windows).",
    )
    add_column_arguments(
        parser, "Symbol of files without a symbol column (with one: scan only this symbol's rows)."
    )
    model = parser.add_argument_group(
        "worker settings (flag > BULLFLAG_* environment > default, as bullflag run)"
    )
    model.add_argument(
        "--bar-interval",
        metavar="INTERVAL",
        default=None,
        help="Bar length, e.g. 1m (default: $BULLFLAG_BAR_INTERVAL, else a bars file's own, else 1m).",
    )
    model.add_argument(
        "--allowed-lateness",
        metavar="DURATION",
        default=None,
        help="How late (event time) a tick may arrive and still count (default 5s).",
    )
    model.add_argument(
        "--gaps",
        choices=("auto", "flat", "skip", "session"),
        default=None,
        help="Intervals without trades: flat bars, none (skip), or flat only inside --calendar's "
        "sessions (default auto: flat for trades, skip for bars, as the worker).",
    )
    model.add_argument(
        "--calendar", metavar="NAME", default=None, help="Exchange calendar of --gaps session, e.g. XNYS."
    )
    model.add_argument(
        "--threshold",
        metavar="P",
        default=None,
        help="Signal threshold on sequence_score (default: the checkpoint's serving threshold).",
    )
    model.add_argument(
        "--checkpoint",
        metavar="FILE",
        default=None,
        help="Model checkpoint file (default: the one shipped in the package).",
    )
    model.add_argument(
        "--gradcam",
        metavar="BOOL",
        default=None,
        help="Attach Grad-CAM maps to outputs at or above the threshold (default true).",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out", metavar="FILE", type=Path, default=None, help="JSON Lines file to write (default: stdout)."
    )
    output.add_argument(
        "--parquet",
        metavar="FILE",
        type=Path,
        default=None,
        help="Also write the documents to this Parquet file (needs pyarrow).",
    )
    output.add_argument(
        "--signals-only",
        action="store_true",
        help="Write only documents at or above the threshold (the worker's --publish signals-only).",
    )
    output.add_argument(
        "--png",
        metavar="DIR",
        type=Path,
        default=None,
        help="Draw a picture of each signal's window into DIR (needs matplotlib).",
    )
    output.add_argument(
        "--workers",
        metavar="N",
        type=integer_at_least(1),
        default=DEFAULT_WORKERS,
        help=f"Processes scanning groups of symbols, sharing the cores' torch threads (default "
        f"{DEFAULT_WORKERS}, one per core up to 8: on 2 cores two processes beat one with two threads, see "
        "docs/operations.md); never more than there are groups.",
    )
    output.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Show a progress bar on stderr when tqdm is installed (default: only on a terminal).",
    )
    parser.set_defaults(handler=run)
