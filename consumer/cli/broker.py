"""``bullflag broker``: the embedded Kafka-protocol broker as a standalone local service.

It runs until Ctrl-C, SIGTERM or SIGHUP and then stops its broker child process: atexit and
finalizers do not run when Python dies of a signal, so the signals are handled here. Everything
lives in memory and is lost on stop; it listens on loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from consumer.kafka.embedded_broker import BrokerError, EmbeddedBroker
from consumer.kafka.topics import TopicError, TopicSpec, ensure_topics

__all__ = ["DEFAULT_PORT", "parse_topic_specs", "run", "serve"]

DEFAULT_PORT = 9092
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_LIVENESS_POLL_S = 0.2


def parse_topic_specs(text: str) -> list[TopicSpec]:
    """``"ticks:4,signals:4,ticks.dlq:1"`` -> topic specs; a name without ``:N`` gets 1 partition."""
    specs = []
    for item in text.split(","):
        name, _, count = item.strip().partition(":")
        if not count:
            count = "1"
        if not count.isdigit():
            raise ValueError(f"{item.strip()!r}: the partition count must be a whole number, as in ticks:4.")
        specs.append(TopicSpec(name.strip(), int(count)))
    return specs


def _topic_specs(text: str) -> list[TopicSpec]:
    """argparse type around :func:`parse_topic_specs`."""
    try:
        return parse_topic_specs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> int:
    """argparse type: a TCP port, or 0 for any free one."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0-65535; 0: any free one)")
    return value


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into ``stop.set()``; restore the old handlers afterwards."""

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {signum: signal.signal(signum, handle) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(broker: EmbeddedBroker, topics: list[TopicSpec], stop: threading.Event) -> int:
    """Start ``broker``, create ``topics``, announce it, and keep it up until ``stop`` is set.

    Returns 0 after a requested stop, 1 if the broker fails to start, refuses a topic or dies.
    The broker is stopped on every path out.
    """
    try:
        broker.start()
    except BrokerError as exc:
        print(f"bullflag broker: {exc}", file=sys.stderr)
        return 1
    try:
        if topics:
            try:
                asyncio.run(ensure_topics(broker.bootstrap, topics))
            except (TopicError, ValueError) as exc:
                print(f"bullflag broker: {exc}", file=sys.stderr)
                return 1
            listing = ", ".join(f"{spec.name} ({spec.partitions})" for spec in topics)
            print(f"topics (partitions): {listing}")
        print(
            f"Kafka broker ready: bootstrap {broker.bootstrap} "
            f"(embedded Tansu, in memory, pid {broker.pid}, log {broker.log_path})"
        )
        print(f"run the worker against it: bullflag run --bootstrap-servers {broker.bootstrap}")
        print("Ctrl-C or SIGTERM stops it; its topics and records are lost then.", flush=True)
        while not stop.wait(_LIVENESS_POLL_S):
            if not broker.is_running:
                print(
                    f"bullflag broker: the broker process exited unexpectedly; log {broker.log_path}:\n"
                    f"{broker.log_tail()}",
                    file=sys.stderr,
                )
                return 1
    finally:
        broker.stop()
    print("broker stopped", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the broker on ``--port`` until a stop signal; exit 0 on a clean stop, 1 on failure."""
    stop = threading.Event()
    broker = EmbeddedBroker(port=args.port or None, log_dir=args.log_dir)
    with _stop_on_signals(stop):
        return serve(broker, args.create_topics, stop)


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag broker``."""
    parser = subcommands.add_parser(
        "broker",
        help="Run the embedded Kafka-protocol broker locally until Ctrl-C or SIGTERM.",
        description="Run the embedded Kafka-protocol broker (Tansu, in memory, loopback only) "
        "until Ctrl-C, SIGTERM or SIGHUP, for local runs of the worker and of bullflag replay.",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        help=f"Loopback port (default {DEFAULT_PORT}; 0: any free one).",
    )
    parser.add_argument(
        "--create-topics",
        type=_topic_specs,
        default=[],
        metavar="NAME:N,...",
        help="Topics to create at start with their partition counts, "
        "e.g. ticks:4,signals:4,ticks.dlq:1,bullflag.state:4.",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=None,
        help="Folder for the broker's log file (default: the system temp folder).",
    )
    parser.set_defaults(handler=run)
