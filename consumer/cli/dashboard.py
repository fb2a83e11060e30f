"""``bullflag dashboard``: the live signals page of a signals topic, until Ctrl-C or SIGTERM.

Serves :class:`consumer.dashboard.Dashboard` on ``--host``/``--port``: the latest CNNOutput
documents as a live table, each window drawn with its Grad-CAM strip (bars from the worker's
state topic), filters by symbol and score, and, given ``--metrics-url``, the worker's readiness
and key metrics. Connection and security settings come from the ``BULLFLAG_*`` environment
(:func:`consumer.config.connection_settings`), as for the other commands that talk to Kafka.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from typing import Final

from consumer.config import Settings, connection_settings, env_name
from consumer.dashboard import Dashboard
from consumer.dashboard.probe import ProbeUrlError, check_metrics_url
from consumer.ops.logs import configure_logging
from consumer.validators import InvalidValueError, port

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8050
_STOP_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM)


def metrics_url(text: str) -> str:
    """argparse type: the worker's probe server as ``http://HOST:PORT``."""
    try:
        check_metrics_url(text)
    except ProbeUrlError as exc:
        raise InvalidValueError(str(exc)) from None
    return text.rstrip("/")


def dashboard_settings(args: argparse.Namespace) -> Settings:
    """Connection settings from the environment, with the flags' bootstrap servers and topics over them."""
    settings = connection_settings(args.bootstrap_servers)
    topics = {"signals_topic": args.signals_topic, "state_topic": args.state_topic}
    return dataclasses.replace(settings, **{name: value for name, value in topics.items() if value})


async def serve(dashboard: Dashboard) -> None:
    """Run ``dashboard`` until SIGINT or SIGTERM, printing its URL once it listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in _STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        async with dashboard:
            settings = dashboard.settings
            print(
                f"dashboard on {dashboard.url} (signals {settings.signals_topic!r}, state "
                f"{settings.state_topic!r} on {settings.bootstrap_servers}); Ctrl-C to stop",
                flush=True,
            )
            await stop.wait()
    finally:
        for signum in _STOP_SIGNALS:
            loop.remove_signal_handler(signum)


def run(args: argparse.Namespace) -> int:
    """Serve the page; exit 1 when the address cannot be bound."""
    settings = dashboard_settings(args)
    configure_logging(settings.log_format)
    dashboard = Dashboard(settings, args.host, args.port, metrics_url=args.metrics_url)
    try:
        asyncio.run(serve(dashboard))
    except OSError as exc:
        print(
            f"bullflag dashboard: cannot listen on {args.host}:{args.port} ({exc.strerror or exc}); "
            "choose another --port, or 0 for any free one.",
            file=sys.stderr,
        )
        return 1
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag dashboard``."""
    parser = subcommands.add_parser(
        "dashboard",
        help="Serve a live page of the signals topic: table, charts with Grad-CAM, filters.",
        description="Serve a web page of the latest CNNOutput documents on the signals topic, updated "
        "live: click one to see its window as candles and volume with the Grad-CAM strip under "
        "them (bars from the worker's state topic); filter by symbol and score; with --metrics-url, "
        "the worker's readiness and key metrics. Runs until Ctrl-C or SIGTERM.",
    )
    parser.add_argument(
        "--bootstrap-servers",
        metavar="HOST:PORT",
        default=None,
        help=f"Kafka to read from (default ${env_name('bootstrap_servers')} or localhost:9092).",
    )
    parser.add_argument(
        "--signals-topic",
        metavar="TOPIC",
        default=None,
        help=f"Topic of CNNOutput documents (default ${env_name('signals_topic')} or signals).",
    )
    parser.add_argument(
        "--state-topic",
        metavar="TOPIC",
        default=None,
        help=f"The worker's state topic, for the bars of each window (default ${env_name('state_topic')} "
        f"or <${env_name('group_id')}>.state, as the worker names it).",
    )
    parser.add_argument(
        "--host",
        metavar="ADDRESS",
        default=DEFAULT_HOST,
        help=f"Address to listen on (default {DEFAULT_HOST}).",
    )
    parser.add_argument(
        "--port",
        metavar="PORT",
        type=port,
        default=DEFAULT_PORT,
        help=f"Port to listen on (default {DEFAULT_PORT}; 0: any free one).",
    )
    parser.add_argument(
        "--metrics-url",
        metavar="URL",
        type=metrics_url,
        default=None,
        help="The worker's probe server, e.g. http://127.0.0.1:9108, for its readiness and metrics.",
    )
    parser.set_defaults(handler=run)
