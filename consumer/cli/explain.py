"""``bullflag explain``: draw the picture behind one CNNOutput document.

A CNNOutput names a symbol and a window ``[window_start_ts, bar_end_ts)`` and may carry a
Grad-CAM map with one intensity per bar. Given the document (a JSON file, or found by ``id`` on
the signals topic) and the bars of that window (a CSV/Parquet file read with
:func:`consumer.sources.replay.read_table`, or a topic in the worker's ``bars`` input format), this
command draws candlesticks, volume and the map as a heat strip (:func:`bullflag_model.plot.plot_window`)
to a PNG or SVG file.

The data work is done by pure functions (:meth:`CNNDocument.from_json`, :func:`load_document`,
:func:`window_bars`, :func:`output_title`, :func:`render_output`) that the demo reuses; reading a
topic is the thin async shell :func:`scan_topic`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from bullflag_model.infer import PROB_KEYS
from bullflag_model.plot import FORMATS, PlotError, plot_window
from consumer.cli.types import positive_seconds
from consumer.config import env_name
from consumer.core.intervals import IntervalError, parse_interval
from consumer.core.ticks import TickDecoder
from consumer.sources.replay import BarTable, TableError, TradeTable, read_table

__all__ = [
    "CNNDocument",
    "CoverageError",
    "DocumentError",
    "ExplainError",
    "TopicReadError",
    "default_out",
    "fetch_bars",
    "fetch_document",
    "load_document",
    "output_title",
    "reached_end",
    "render_output",
    "scan_topic",
    "utc_text",
    "window_bars",
]

DEFAULT_TIMEOUT_S: Final = 30.0
_POLL_MS: Final = 200
_HEAD_LABELS: Final = ("flag", "breakout", "retest", "continuation")


class ExplainError(ValueError):
    """The picture cannot be drawn as asked; the message says what to change."""


class DocumentError(ExplainError):
    """The CNNOutput document is missing, ambiguous or malformed; the message names its source."""


class CoverageError(ExplainError):
    """The bars given do not cover the document's window; the message names the source and the id."""


class TopicReadError(ExplainError):
    """A topic could not be read to its end; the message names the topic and the brokers."""


def utc_text(ts_ms: int) -> str:
    """Epoch milliseconds as a compact UTC time for messages and titles (``2024-11-25 16:00Z``)."""
    moment = datetime.fromtimestamp(ts_ms / 1000.0, tz=UTC)
    seconds = ":%S" if moment.second or moment.microsecond else ""
    return moment.strftime(f"%Y-%m-%d %H:%M{seconds}Z")


@dataclass(frozen=True, slots=True)
class CNNDocument:
    """The fields of a CNNOutput document that a picture needs, validated.

    ``probs`` are the four head probabilities in :data:`bullflag_model.infer.PROB_KEYS` order;
    ``cam`` float64[n_bars] is the activation map's intensities, ``None`` when the document has none.
    """

    id: str
    symbol: str
    interval: str
    interval_ms: int
    window_start_ts: int
    bar_end_ts: int
    model_version: str
    probs: tuple[float, ...]
    sequence_score: float
    threshold: float
    signal: bool
    cam: np.ndarray | None

    @property
    def n_bars(self) -> int:
        """Bars in the window."""
        return (self.bar_end_ts - self.window_start_ts) // self.interval_ms

    @property
    def last_bar_ts(self) -> int:
        """Start (epoch ms) of the window's last bar, the bar whose close was scored."""
        return self.bar_end_ts - self.interval_ms

    @property
    def cam_peak(self) -> int | None:
        """Index of the bar (0 the oldest) where the activation map peaks; ``None`` without a map."""
        return None if self.cam is None else int(np.argmax(self.cam))

    @classmethod
    def from_json(cls, data: Any, source: str) -> CNNDocument:
        """Validate a decoded CNNOutput object; raise :class:`DocumentError` naming ``source``."""
        if not isinstance(data, Mapping):
            raise DocumentError(f"{source}: a CNNOutput is a JSON object, not {type(data).__name__}.")
        where = f"{source} (id {data.get('id')!r})" if "id" in data else source
        fields = {
            "id": str,
            "symbol": str,
            "interval": str,
            "window_start_ts": int,
            "bar_end_ts": int,
            "model_version": str,
            "sequence_score": float,
            "threshold": float,
            "signal": bool,
        }
        fields |= dict.fromkeys(PROB_KEYS, float)
        values = {name: _field(data, name, kind, where) for name, kind in fields.items()}
        try:
            interval_ms = parse_interval(values["interval"])
        except IntervalError as exc:
            raise DocumentError(f"{where}: {exc}.") from None
        span = values["bar_end_ts"] - values["window_start_ts"]
        if span <= 0 or span % interval_ms:
            raise DocumentError(
                f"{where}: the window [{values['window_start_ts']}, {values['bar_end_ts']}) is not a "
                f"positive whole number of {values['interval']} bars."
            )
        return cls(
            id=values["id"],
            symbol=values["symbol"],
            interval=values["interval"],
            interval_ms=interval_ms,
            window_start_ts=values["window_start_ts"],
            bar_end_ts=values["bar_end_ts"],
            model_version=values["model_version"],
            probs=tuple(values[key] for key in PROB_KEYS),
            sequence_score=values["sequence_score"],
            threshold=values["threshold"],
            signal=values["signal"],
            cam=_activation_map(data.get("activation_map"), span // interval_ms, where),
        )


_KIND_NAMES: Final = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false"}


def _field(data: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    """``data[name]`` checked against ``kind``: JSON integers count as floats, booleans as neither."""
    if name not in data or data[name] is None:
        raise DocumentError(f"{where}: the field {name!r} is missing; is this a CNNOutput document?")
    value = data[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is float and number and (isinstance(value, int) or math.isfinite(value)):
        return float(value)
    if kind is int and number and isinstance(value, int):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise DocumentError(f"{where}: the field {name!r} must be {_KIND_NAMES[kind]}, not {value!r}.")


def _activation_map(value: Any, n_bars: int, where: str) -> np.ndarray | None:
    """The map's intensities as float64[n_bars], or ``None`` for a document without one."""
    if value is None:
        return None
    intensities = value.get("intensities") if isinstance(value, Mapping) else None
    wrong = DocumentError(
        f"{where}: activation_map.intensities must list {n_bars} finite numbers, one per bar of the window."
    )
    if not isinstance(intensities, list) or len(intensities) != n_bars:
        raise wrong
    try:
        cam = np.asarray(intensities, dtype=np.float64)
    except (TypeError, ValueError):
        raise wrong from None
    if not np.isfinite(cam).all():
        raise wrong
    return cam


def load_document(path: str | os.PathLike[str], output_id: str | None = None) -> CNNDocument:
    """Read a CNNOutput from a JSON file: one object, a JSON array, or JSON Lines (one per line).

    With several documents in the file, ``output_id`` chooses one; with one, it must match if given.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read the document ({exc.strerror or exc}).") from None
    documents = _json_documents(raw, str(path))
    if output_id is not None:
        found = [d for d in documents if isinstance(d, Mapping) and d.get("id") == output_id]
        if not found:
            raise DocumentError(
                f"{path}: no CNNOutput with id {output_id!r} among its {len(documents)} documents."
            )
        return CNNDocument.from_json(found[0], str(path))
    if len(documents) != 1:
        raise DocumentError(f"{path} holds {len(documents)} documents; choose one with --id.")
    return CNNDocument.from_json(documents[0], str(path))


def _json_documents(raw: bytes, source: str) -> list[Any]:
    """The JSON values of a file: a whole-file object or array, else one value per non-empty line."""
    try:
        whole = orjson.loads(raw)
        return whole if isinstance(whole, list) else [whole]
    except orjson.JSONDecodeError:
        pass
    documents = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise DocumentError(f"{source}, line {number}: not JSON ({exc}).") from None
    if not documents:
        raise DocumentError(f"{source}: the file is empty; expected a CNNOutput JSON document.")
    return documents


def window_bars(table: BarTable, document: CNNDocument, source: str) -> np.ndarray:
    """The window's bars float64[n_bars, 5] (OHLCV, oldest first) from ``table``'s rows of its symbol.

    Every bar start ``window_start_ts + k * interval`` must be present exactly once; otherwise
    :class:`CoverageError` names ``source``, the document id and the first missing or doubled bar.
    """
    start, end, step = document.window_start_ts, document.bar_end_ts, document.interval_ms
    rows = np.flatnonzero((table.symbols == document.symbol) & (table.ts_ms >= start) & (table.ts_ms < end))
    ts = table.ts_ms[rows]
    offgrid = ts[(ts - start) % step != 0]
    what = f"{source}: the bars of {document.symbol} for CNNOutput {document.id}"
    window = f"[{utc_text(start)}, {utc_text(end)})"
    if offgrid.size:
        raise CoverageError(
            f"{what}: the bar at {utc_text(int(offgrid[0]))} is not on the {document.interval} grid of "
            f"the window {window}; give bars of the document's interval ({document.interval})."
        )
    slots = (ts - start) // step
    counts = np.bincount(slots, minlength=document.n_bars)
    if (counts > 1).any():
        twice = int(np.argmax(counts > 1))
        raise CoverageError(
            f"{what}: two bars start at {utc_text(start + twice * step)}; keep one per interval."
        )
    if (counts == 0).any():
        missing = np.flatnonzero(counts == 0)
        first = utc_text(start + int(missing[0]) * step)
        raise CoverageError(
            f"{what} cover {document.n_bars - missing.size} of the {document.n_bars} bars of the "
            f"window {window}: {missing.size} missing, the first at {first}. "
            "Give a file or topic holding every bar of the window."
        )
    bars = np.empty((document.n_bars, 5), dtype=np.float64)
    bars[slots] = table.ohlcv[rows]
    return bars


def output_title(document: CNNDocument) -> str:
    """Two title lines: symbol, last bar, score and threshold; then the heads and the map's peak."""
    heads = "  ".join(f"{label} {p:.3f}" for label, p in zip(_HEAD_LABELS, document.probs, strict=True))
    peak = document.cam_peak
    where = "no activation map" if peak is None else f"map peak: bar {peak} of {document.n_bars}"
    verdict = "SIGNAL" if document.signal else "below threshold"
    return (
        f"{document.symbol} {document.interval}, last bar {utc_text(document.last_bar_ts)}: "
        f"sequence score {document.sequence_score:.3f} vs threshold {document.threshold:.3f} ({verdict})\n"
        f"{heads}  |  {where}"
    )


def render_output(document: CNNDocument, bars: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Draw the window ``bars`` [n_bars, 5] of ``document`` to ``path`` (.png or .svg); returns it."""
    try:
        return plot_window(bars, document.cam, output_title(document), path)
    except PlotError as exc:
        raise ExplainError(f"cannot draw CNNOutput {document.id} to {path}: {exc}.") from None


def default_out(document: CNNDocument) -> Path:
    """``<symbol>-<last bar, UTC>.png`` in the current directory."""
    stamp = datetime.fromtimestamp(document.last_bar_ts / 1000.0, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in document.symbol)
    return Path(f"{safe}-{stamp}.png")


async def scan_topic(
    bootstrap: str,
    topic: str,
    visit: Callable[[ConsumerRecord], bool],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> None:
    """Read every partition of ``topic`` from its beginning to its end, calling ``visit`` per record.

    No consumer group is joined and nothing is committed. ``visit`` returning True stops the scan
    early. The end is each partition's high watermark as reported by fetches (``end_offsets`` is
    not trusted: the embedded broker answers it wrongly). Raises :class:`TopicReadError` for a
    missing topic, a broker error, or when the end is not reached within ``timeout_s``.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="bullflag-explain",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    try:
        async with asyncio.timeout(timeout_s):
            await consumer.start()
            if topic not in await consumer.topics():
                raise TopicReadError(f"there is no topic {topic!r} on {bootstrap}.")
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            while True:
                batch = await consumer.getmany(*partitions, timeout_ms=_POLL_MS)
                for records in batch.values():
                    for record in records:
                        if visit(record):
                            return
                if await reached_end(consumer, partitions):
                    return
    except TimeoutError:
        raise TopicReadError(
            f"reading topic {topic!r} on {bootstrap} did not finish within {timeout_s:g} s; check that "
            "the broker is reachable, or raise --timeout for a long topic."
        ) from None
    except KafkaError as exc:
        raise TopicReadError(f"reading topic {topic!r} on {bootstrap} failed: {exc!r}.") from None
    finally:
        await consumer.stop()


async def reached_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    """Whether every partition's position has reached the high watermark its last fetch reported."""
    for tp in partitions:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


async def fetch_document(
    bootstrap: str, topic: str, output_id: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> CNNDocument:
    """The first CNNOutput with id ``output_id`` on ``topic``; :class:`DocumentError` if none."""
    found: list[Any] = []
    needle = output_id.encode()
    read = 0

    def visit(record: ConsumerRecord) -> bool:
        nonlocal read
        read += 1
        if record.value is None or needle not in record.value:
            return False
        try:
            data = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            return False
        if isinstance(data, Mapping) and data.get("id") == output_id:
            found.append(data)
            return True
        return False

    await scan_topic(bootstrap, topic, visit, timeout_s=timeout_s)
    if not found:
        raise DocumentError(f"no CNNOutput with id {output_id!r} on topic {topic!r} ({read} records read).")
    return CNNDocument.from_json(found[0], f"topic {topic!r}")


async def fetch_bars(
    bootstrap: str, topic: str, symbol: str, *, timeout_s: float = DEFAULT_TIMEOUT_S
) -> BarTable:
    """Every valid bar of ``symbol`` on ``topic`` (the worker's ``bars`` input format).

    Records of other symbols and records that do not decode as bars are skipped. A bar start
    seen twice keeps its latest record, as a replay of an at-least-once topic should.
    """
    values: list[bytes | None] = []
    keys: list[bytes | None] = []
    wanted = symbol.encode()

    def visit(record: ConsumerRecord) -> bool:
        if record.key is None or record.key == wanted:
            values.append(record.value)
            keys.append(record.key)
        return False

    await scan_topic(bootstrap, topic, visit, timeout_s=timeout_s)
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


async def _explain(args: argparse.Namespace, bootstrap: str) -> tuple[CNNDocument, Path]:
    """Load the document and its bars as the flags say, then draw the picture."""
    if args.from_topic is not None:
        document = await fetch_document(bootstrap, args.from_topic, args.id, timeout_s=args.timeout)
    else:
        document = await asyncio.to_thread(load_document, args.document, args.id)
    if args.bars_topic is not None:
        table = await fetch_bars(bootstrap, args.bars_topic, document.symbol, timeout_s=args.timeout)
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
    if args.out is not None and args.out.suffix.lower() not in FORMATS:
        raise ExplainError(f"--out {args.out}: use a file name ending in {' or '.join(FORMATS)}.")


def run(args: argparse.Namespace) -> int:
    """Draw the picture; exit 2 on bad input (naming the file or id), 1 when a topic cannot be read."""
    bootstrap = args.bootstrap_servers or os.environ.get(env_name("bootstrap_servers"), "localhost:9092")
    try:
        _check_args(args)
        document, path = asyncio.run(_explain(args, bootstrap))
    except TopicReadError as exc:
        print(f"bullflag explain: {exc}", file=sys.stderr)
        return 1
    except (ExplainError, TableError) as exc:
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
