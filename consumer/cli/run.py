"""``bullflag run``: the streaming worker, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from bullflag_model.backends import BackendError
from bullflag_model.model_files import CheckpointError
from consumer.config import add_arguments, load_settings
from consumer.kafka.topics import TopicError
from consumer.kafka.worker import Worker
from consumer.ops.logs import configure_logging

log = logging.getLogger("bullflag")


async def serve(worker: Worker) -> None:
    """Run ``worker``; SIGTERM and SIGINT ask it to finish its batch, commit and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await worker.run(stop)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Load settings (flags > env > defaults), then serve until signalled."""
    settings = load_settings(args, os.environ)
    configure_logging(settings.log_format)
    try:
        worker = Worker(settings)
    except CheckpointError as exc:
        print(f"bullflag run: {exc}", file=sys.stderr)
        return 2
    except BackendError as exc:
        print(f"bullflag run: setting --backend {settings.backend}: {exc}", file=sys.stderr)
        return 2
    log.info("starting with %s", worker.settings.redacted())
    log.info(
        "model %s, threshold %s, backend %s",
        worker.infer.model_version,
        worker.infer.threshold,
        worker.infer.backend_name,
    )
    try:
        asyncio.run(serve(worker))
    except TopicError as exc:
        print(f"bullflag run: {exc}", file=sys.stderr)
        return 2
    return 1 if worker.failed else 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag run``."""
    parser = subcommands.add_parser("run", help="Run the streaming worker (ticks topic -> signals topic).")
    add_arguments(parser)
    parser.set_defaults(handler=run)
