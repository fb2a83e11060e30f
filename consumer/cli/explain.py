"""``bullflag explain``: draw the picture behind one CNNOutput document.

A CNNOutput names a symbol and a window ``[window_start_ts, bar_end_ts)`` and may carry a
Grad-CAM map with one intensity per bar. Given the document (a JSON file, or found by ``id`` on
the signals topic) and the bars of that window (a CSV/Parquet file read with
:func:`consumer.sources.readers.read_table`, or a topic in the worker's ``bars`` input format), this
command draws candlesticks, volume and the map as a heat strip (:mod:`consumer.cli.pictures`)
to a PNG or SVG file. Documents are read and validated by :mod:`bullflag_model.output`; topics
are read with :mod:`consumer.kafka.topic_reader`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
from aiokafka import ConsumerRecord, TopicPartition

from bullflag_model.output import CNNDocument, DocumentError, load_document
from consumer.cli.pictures import (
    PictureError,
    check_picture_path,
    default_out,
    output_title,
    render_output,
    window_bars,
)
from consumer.config import Settings, connection_settings, env_name
from consumer.core.ticks import TickDecoder
from consumer.kafka.clients import Connection
from consumer.kafka.topic_reader import TopicReadError, read_topic
from consumer.sources.readers import read_table
from consumer.sources.tables import BarTable, TableError, TradeTable
from consumer.validators import positive_seconds

DEFAULT_TIMEOUT_S: Final = 30.0
CLIENT_ID: Final = "bullflag-explain"


class ExplainError(ValueError):
    """The picture cannot be drawn as asked; the message says what to change."""


async def fetch_document(
    connection: Connection, topic: str, document_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> CNNDocument:
    """The first CNNOutput with id ``document_id`` on ``topic``; :class:`DocumentError` if none."""
    found: list[Any] = []
    needle = document_id.encode()
    read = 0

    def visit(_: TopicPartition, records: list[ConsumerRecord]) -> bool:
        nonlocal read
        for record in records:
            read += 1
            if record.value is None or needle not in record.value:
                continue
            try:
                data = orjson.loads(record.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict) and data.get("id") == document_id:
                found.append(data)
                return True
        return False

    await read_topic(connection, topic, visit, client_id=CLIENT_ID, timeout_s=timeout_s)
    if not found:
        raise DocumentError(f"no CNNOutput with id {document_id!r} on topic {topic!r} ({read} records read).")
    return CNNDocument.from_json(found[0], f"topic {topic!r}")


async def fetch_bars(
    connection: Connection, topic: str, symbol: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> BarTable:
    """Every valid bar of ``symbol`` on ``topic`` (the worker's ``bars`` input format).

    Records of other symbols and records that do not decode as bars are skipped. A bar start
    seen twice keeps its latest record, as a replay of an at-least-once topic should.
    """
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    wanted = symbol.encode()

    def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
        for record in records:
            if record.key == wanted:
                values.append(record.value)
                keys.append(record.key)

    await read_topic(connection, topic, visit, client_id=CLIENT_ID, timeout_s=timeout_s)
    decoded = TickDecoder().decode_bars(values, keys)
    mine = (
        np.flatnonzero(np.asarray(decoded.symbols, dtype=str) == symbol) if len(decoded) else np.zeros(0, int)
    )
    ts = decoded.ts_ms[mine]
    latest = len(ts) - 1 - np.unique(ts[::-1], return_index=True)[1]
    rows = mine[np.sort(latest)]
    ohlcv = np.column_stack(
        [decoded.open[rows], decoded.high[rows], decoded.low[rows], decoded.close[rows], decoded.volume[rows]]
    )
    return BarTable(np.full(len(rows), symbol), decoded.ts_ms[rows], ohlcv.reshape(-1, 5))


def _read_bar_file(path: Path, symbol: str) -> BarTable:
    """The bars of ``symbol`` in a CSV/Parquet file; a file of trades is refused with a hint."""
    table = read_table(path, symbol=symbol)
    if isinstance(table, TradeTable):
        raise ExplainError(
            f"{path} holds trades, not OHLCV bars; give a file with open, high, low and close columns."
        )
    return table


async def _explain(args: argparse.Namespace, settings: Settings) -> tuple[CNNDocument, Path]:
    """Load the document and its bars as the flags say, then draw the picture."""
    if args.from_topic is not None:
        document = await fetch_document(settings, args.from_topic, args.id, timeout_s=args.timeout)
    else:
        document = await asyncio.to_thread(load_document, args.document, args.id)
    if args.bars_topic is not None:
        table = await fetch_bars(settings, args.bars_topic, document.symbol, timeout_s=args.timeout)
        source = f"topic {args.bars_topic!r}"
    else:
        table = await asyncio.to_thread(_read_bar_file, args.bars, document.symbol)
        source = str(args.bars)
    bars = window_bars(table, document, source)
    out = args.out if args.out is not None else default_out(document)
    return document, await asyncio.to_thread(render_output, document, bars, out)


def _check_args(args: argparse.Namespace) -> None:
    """Exactly one document source and one bar source; ``--from-topic`` needs ``--id``."""
    if (args.document is None) == (args.from_topic is None):
        raise ExplainError("give either a document file or --from-topic TOPIC --id ID (exactly one).")
    if args.from_topic is not None and args.id is None:
        raise ExplainError(f"--from-topic {args.from_topic} needs --id: the id of the CNNOutput to draw.")
    if (args.bars is None) == (args.bars_topic is None):
        raise ExplainError("give either --bars FILE or --bars-topic TOPIC (exactly one).")
    if args.out is not None:
        check_picture_path(args.out)


def run(args: argparse.Namespace) -> int:
    """Draw the picture; exit 2 on bad input (naming the file or id), 1 when a topic cannot be read."""
    settings = connection_settings(args.bootstrap_servers)
    try:
        _check_args(args)
        document, path = asyncio.run(_explain(args, settings))
    except TopicReadError as exc:
        print(f"bullflag explain: {exc}", file=sys.stderr)
        return 1
    except (ExplainError, DocumentError, PictureError, TableError) as exc:
        print(f"bullflag explain: {exc}", file=sys.stderr)
        return 2
    title = output_title(document).replace("\n", "; ")
    print(f"wrote {path}: {title}")
    if document.cam is None:
        print(
            f"CNNOutput {document.id} has no activation map (its score is below the threshold, or "
            "Grad-CAM was off): drawn without the heat strip."
        )
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag explain``."""
    parser = subcommands.add_parser(
        "explain",
        help="Draw a CNNOutput's window (candles, volume, Grad-CAM strip) to PNG or SVG.",
        description="Draw the window of one CNNOutput document: candlesticks, volume and its Grad-CAM "
        "activation map as a heat strip. The document comes from a JSON file or from the signals "
        "topic by id; the bars from a CSV/Parquet file or a topic in the worker's bars format.",
    )
    parser.add_argument(
        "document", nargs="?", type=Path, help="CNNOutput JSON file (one object, an array, or JSON Lines)."
    )
    parser.add_argument("--id", default=None, help="Id of the CNNOutput to draw (32 hex characters).")
    parser.add_argument(
        "--from-topic", metavar="TOPIC", default=None, help="Find the document on this topic."
    )
    parser.add_argument(
        "--bars", metavar="FILE", type=Path, default=None, help="CSV or Parquet file of bars."
    )
    parser.add_argument(
        "--bars-topic", metavar="TOPIC", default=None, help="Topic of bars in the worker's bars input format."
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=None,
        help=f"Kafka for the topic options (default ${env_name('bootstrap_servers')} or localhost:9092).",
    )
    parser.add_argument(
        "--out",
        metavar="PATH",
        type=Path,
        default=None,
        help="Picture to write, .png or .svg (default <symbol>-<last bar time>.png here).",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT_S,
        help=f"Longest time to read a topic (default {DEFAULT_TIMEOUT_S:g}).",
    )
    parser.set_defaults(handler=run)
