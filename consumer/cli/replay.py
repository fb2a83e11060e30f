"""``bullflag replay``: produce ticks (or bars) to a Kafka topic from a file or a generated market.

Sources: a CSV or Parquet file of OHLCV bars or of trades (columns found by name, or named with
flags), or :func:`consumer.sources.market.synthetic_market`. In ``ticks`` mode OHLCV bars become
trades through :func:`consumer.sources.trades.bars_to_ticks`, a seeded, plausible path inside
each bar; in ``bars`` mode bars are sent as they are. Records are keyed by symbol and sent in
event-time order, as fast as possible or at a multiple of real time measured by event time.

This module is the command only (flags, the plan of what to send, exit codes); the data work is
done by the pure functions of :mod:`consumer.sources`, and the connection comes from the
``BULLFLAG_*`` settings (:func:`consumer.config.connection_settings`), so SASL and SSL apply.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from aiokafka.errors import KafkaError

from bullflag_model.intervals import IntervalError, format_interval, parse_interval
from consumer.cli.table_flags import add_column_arguments, column_names
from consumer.config import Settings, connection_settings
from consumer.kafka.topics import TopicError, TopicSpec, ensure_topics
from consumer.sources.market import DEFAULT_START_MS, synthetic_market
from consumer.sources.producer import ProduceStats, Record, bar_records, produce_records, tick_records
from consumer.sources.readers import read_table
from consumer.sources.tables import (
    BarTable,
    ReplayError,
    TradeTable,
    infer_interval_ms,
)
from consumer.sources.trades import bars_to_trades
from consumer.validators import event_time_ms, finite_number, integer_at_least, probability

__all__ = ["add_parser", "run"]


def _speed(text: str) -> float:
    """argparse type: a speed factor, finite and >= 0."""
    value = finite_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a number >= 0 (0: as fast as possible)")
    return value


def _interval_ms(text: str) -> int:
    """argparse type: a bar interval such as ``1m`` in milliseconds."""
    try:
        return parse_interval(text)
    except IntervalError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class _Plan:
    """What one ``bullflag replay`` run sends: the records, how many, and a line describing them."""

    records: Iterator[Record]
    total: int
    summary: str


def _plan(args: argparse.Namespace) -> _Plan:
    """Load the source named by ``args`` and turn it into the records to send."""
    if (args.path is None) != bool(args.generate):
        raise ReplayError("give either a file to replay or --generate (exactly one of them).")
    interval: int | None = args.bar_interval
    if args.generate:
        market = synthetic_market(
            args.symbols, args.bars, args.seed, interval or 60_000, args.start, args.flag_fraction
        )
        table: BarTable | TradeTable = market.table()
        interval = market.interval_ms
        source = f"a generated market (seed {args.seed})"
    else:
        table = read_table(args.path, column_names(args), symbol=args.symbol, time_unit=args.time_unit)
        source = str(args.path)
    if args.input == "bars":
        if isinstance(table, TradeTable):
            raise ReplayError(f"{source} holds trades, but --input bars sends OHLCV bars; drop --input bars.")
        records, total, what = bar_records(table), len(table), "bars"
    elif isinstance(table, BarTable):
        interval = interval or infer_interval_ms(table.symbols, table.ts_ms)
        if interval is None:
            raise ReplayError(
                f"{source}: cannot infer the bar length (no symbol has two bars); give --bar-interval."
            )
        trades = bars_to_trades(table, args.seed, interval_ms=interval)
        records, total = tick_records(trades), len(trades)
        what = f"ticks drawn from {len(table)} bars of {format_interval(interval)}"
    else:
        records, total, what = tick_records(table), len(table), "trades"
    if args.limit is not None:
        records, total = itertools.islice(records, args.limit), min(total, args.limit)
    summary = f"{total} {what} of {len(np.unique(table.symbols))} symbols from {source}"
    return _Plan(records, total, summary)


async def _replay(
    args: argparse.Namespace, settings: Settings, topic: TopicSpec, plan: _Plan
) -> ProduceStats:
    """Create the topic when asked, then produce the plan's records."""
    if args.create_topic:
        await ensure_topics(settings, [topic], client_id=args.client_id)
    return await produce_records(
        settings,
        topic.name,
        plan.records,
        speed=args.speed,
        total=plan.total,
        linger_ms=args.linger_ms,
        progress=args.progress,
        client_id=args.client_id,
    )


def run(args: argparse.Namespace) -> int:
    """Load the source, produce it, and print what was sent; exit 2 on bad input, 1 on Kafka errors."""
    settings = connection_settings(args.bootstrap_servers)
    bootstrap = settings.bootstrap_servers
    name = args.topic or settings.ticks_topic
    try:
        topic = TopicSpec(name, args.partitions)
        plan = _plan(args)
    except ValueError as exc:
        print(f"bullflag replay: {exc}", file=sys.stderr)
        return 2
    pace = "as fast as possible" if args.speed == 0 else f"at {args.speed:g}x real time"
    print(f"replaying {plan.summary} to topic {name!r} on {bootstrap}, {pace}", flush=True)
    try:
        stats = asyncio.run(_replay(args, settings, topic, plan))
    except (KafkaError, TopicError) as exc:
        print(
            f"bullflag replay: producing to {name!r} on {bootstrap} failed: {exc!r}; check that the "
            "broker is reachable (`bullflag broker` runs one locally).",
            file=sys.stderr,
        )
        return 1
    rate = stats.records / stats.seconds if stats.seconds > 0 else 0.0
    print(f"produced {stats.records} records in {stats.seconds:.2f} s ({rate:,.0f} records/s)", flush=True)
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag replay``."""
    parser = subcommands.add_parser(
        "replay",
        help="Produce ticks (or bars) to a topic from a CSV/Parquet file or a generated market.",
        description="Produce ticks (or bars) keyed by symbol to a Kafka topic, in event-time order, "
        "from a CSV/Parquet file of OHLCV bars or trades, or from a generated market. OHLCV bars "
        "become a seeded, plausible trade path inside each bar unless --input bars is given.",
    )
    source = parser.add_argument_group("source")
    source.add_argument(
        "path", nargs="?", type=Path, help="CSV (.csv/.tsv/.txt, optionally .gz) or Parquet file."
    )
    source.add_argument(
        "--generate", action="store_true", help="Replay a generated market instead of a file."
    )
    source.add_argument(
        "--symbols", metavar="N", type=integer_at_least(1), default=20, help="Generated symbols (default 20)."
    )
    source.add_argument(
        "--bars",
        metavar="B",
        type=integer_at_least(1),
        default=1000,
        help="Bars per generated symbol (default 1000).",
    )
    source.add_argument(
        "--flag-fraction",
        metavar="F",
        type=probability,
        default=0.3,
        help="Share of generated 200-bar windows that are bull flags (default 0.3).",
    )
    source.add_argument(
        "--start",
        metavar="TIME",
        type=event_time_ms,
        default=DEFAULT_START_MS,
        help="Start of the first generated bar: epoch ms or ISO-8601 (default 2024-11-25T16:00:00Z).",
    )
    source.add_argument(
        "--seed",
        metavar="S",
        type=integer_at_least(0),
        default=7,
        help="Seed of the generated market and of the trade paths drawn inside bars (default 7).",
    )
    source.add_argument(
        "--bar-interval",
        metavar="INTERVAL",
        type=_interval_ms,
        default=None,
        help="Bar length, e.g. 1m (default: 1m when generating, inferred from a file's bars).",
    )
    add_column_arguments(
        parser, "Symbol of a file without a symbol column (with one: replay only this symbol's rows)."
    )
    kafka = parser.add_argument_group("output")
    kafka.add_argument(
        "--input",
        choices=("ticks", "bars"),
        default="ticks",
        help="Record kind to send, as the worker's --input (default ticks).",
    )
    kafka.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=None,
        help="Kafka bootstrap servers (default $BULLFLAG_BOOTSTRAP_SERVERS or localhost:9092).",
    )
    kafka.add_argument(
        "--topic",
        metavar="NAME",
        default=None,
        help="Topic to produce to (default $BULLFLAG_TICKS_TOPIC or ticks).",
    )
    kafka.add_argument("--create-topic", action="store_true", help="Create the topic first if it is missing.")
    kafka.add_argument(
        "--partitions",
        metavar="N",
        type=integer_at_least(1),
        default=4,
        help="Partitions of a topic --create-topic makes (default 4).",
    )
    kafka.add_argument(
        "--client-id",
        metavar="ID",
        default="bullflag-replay",
        help="Kafka client id (default bullflag-replay).",
    )
    kafka.add_argument(
        "--speed",
        metavar="FACTOR",
        type=_speed,
        default=0.0,
        help="Speed factor by event time, e.g. 60 = 60x real time (default 0: as fast as possible).",
    )
    kafka.add_argument(
        "--linger-ms",
        metavar="MS",
        type=integer_at_least(0),
        default=20,
        help="Producer batching delay (default 20).",
    )
    kafka.add_argument(
        "--limit", metavar="N", type=integer_at_least(0), default=None, help="Send at most this many records."
    )
    kafka.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Show a progress bar on stderr when tqdm is installed (default: only on a terminal).",
    )
    parser.set_defaults(handler=run)
