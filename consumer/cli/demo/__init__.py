"""``bullflag demo``: the whole streaming pipeline on one machine, with only Python installed.

One process, one event loop: the embedded Kafka-protocol broker on a free loopback port, the
topics created explicitly, a generated market (:func:`consumer.sources.market.synthetic_market`, some
symbols carrying bull flags at different phases) replayed as ticks, the real
:class:`consumer.kafka.worker.Worker` scoring every bar close, and a watcher on the signals topic that
shows each signal; beside it, two drawing processes draw each signal's window (candles, volume,
Grad-CAM strip) to a PNG while the stream runs. The run ends by itself once every expected
output has arrived (or at ``--max-seconds``, or on Ctrl-C) and prints a summary that compares
the signals with the patterns planted in the market and says how long the pictures took.

The first 200 bars of every symbol (the warm-up before the worker can score anything) are sent
as fast as possible, the rest at ``--speed`` times real time, so the scoring is visible.

The market is generated with one extra 200-bar window at its end and replayed up to and including
bar ``--bars``: that bar's ticks close bar ``--bars - 1`` (a bar closes when a later trade
arrives) and it stays open, like the current bar of a live feed. The planted windows of the
generator therefore end on scored bars (``199``, ..., ``--bars - 1``).

``--offline`` (or ``--windows N``) keeps the quick mode without Kafka: score N generated windows
in one batch and print them.

The package: :mod:`~consumer.cli.demo.plan` (the options and the generated market),
:mod:`~consumer.cli.demo.session` (broker, topics, worker, replay and watcher),
:mod:`~consumer.cli.demo.drawing` (the processes that draw the pictures),
:mod:`~consumer.cli.demo.views` (what the terminal shows), :mod:`~consumer.cli.demo.report` (the
closing summary) and :mod:`~consumer.cli.demo.offline` (``--offline``). This module is the
command. At import time it imports only the standard library, ``plan`` and
``consumer.validators``, because ``bullflag --help`` imports it and the base install has neither
matplotlib nor the broker wheel; the run path is imported inside :func:`run`. The package may
import ``consumer.sources``, ``consumer.kafka``, ``consumer.config``, ``consumer.cli.pictures``
and ``bullflag_model``; only ``consumer.cli`` imports it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from pathlib import Path
from typing import Any

from consumer.cli.demo.plan import (
    DEFAULT_BARS,
    DEFAULT_MAX_PLOTS,
    DEFAULT_MAX_SECONDS,
    DEFAULT_SEED,
    DEFAULT_SPEED,
    DEFAULT_SYMBOLS,
    WARMUP_BARS,
    DemoError,
    DemoOptions,
)
from consumer.validators import finite_number, integer_at_least, port, probability

__all__ = ["add_parser", "run"]


def _options(args: argparse.Namespace) -> DemoOptions:
    """The parsed flags as :class:`DemoOptions`."""
    values: dict[str, Any] = {
        "symbols": args.symbols,
        "bars": args.bars,
        "seed": args.seed,
        "speed": args.speed,
        "max_seconds": args.max_seconds,
        "threshold": args.threshold,
        "max_plots": args.max_plots,
        "checkpoint": args.checkpoint,
        "dashboard_port": None if args.no_dashboard else args.dashboard_port,
    }
    if args.out is not None:
        values["out"] = args.out
    return DemoOptions(**values)


def run(args: argparse.Namespace) -> int:
    """Run the streaming demo (or the offline scoring); exit 0 after a complete or requested stop."""
    if args.offline or args.windows is not None:
        from consumer.cli.demo.offline import run_offline

        return run_offline(args.windows or 40, args.seed, args.threshold, args.checkpoint)
    try:
        options = _options(args)
    except DemoError as exc:
        print(f"bullflag demo: {exc}", file=sys.stderr)
        return 2
    from consumer.cli.demo.report import summary_lines
    from consumer.cli.demo.session import RUN_ERRORS, run_demo
    from consumer.cli.demo.views import LineView, LiveView, View
    from consumer.kafka.embedded_broker import BrokerUnavailableError

    view: View = LiveView(sys.stdout) if sys.stdout.isatty() else LineView(sys.stdout)
    try:
        report = asyncio.run(run_demo(options, view))
    except BrokerUnavailableError as exc:
        print(
            f"bullflag demo: no embedded Kafka broker on this platform ({exc}); "
            "`bullflag demo --offline` scores a generated market without Kafka.",
            file=sys.stderr,
        )
        return 1
    except RUN_ERRORS as exc:
        print(f"bullflag demo: {exc}", file=sys.stderr)
        return 1
    for line in summary_lines(report):
        print(line)
    _spare_the_exit()
    return 0


def _spare_the_exit() -> None:
    """Move every object alive now out of the cyclic collector's reach, as the command ends.

    The interpreter's shutdown otherwise walks the whole heap (torch, the model, the market)
    collecting garbage that is about to be discarded anyway: about 0.7 s of the demo's wall time
    here. Reference counting still frees what is no longer used; only reference cycles made
    before this point stay uncollected, which a caller that goes on (a test calling ``main``)
    can afford: they are the demo's, freed with the process.
    """
    gc.freeze()


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag demo``."""
    parser = subcommands.add_parser(
        "demo",
        help="Run broker, replay and worker locally and watch bull-flag signals arrive.",
        description="Start the embedded Kafka-protocol broker, replay a generated market as ticks, run "
        "the worker against it and show the signals as they arrive, drawing each one's window to a "
        "PNG. Stops by itself; Ctrl-C stops it early and cleanly.",
    )
    parser.add_argument(
        "--symbols",
        metavar="N",
        type=integer_at_least(1),
        default=DEFAULT_SYMBOLS,
        help=f"Symbols (default {DEFAULT_SYMBOLS}).",
    )
    parser.add_argument(
        "--bars",
        metavar="B",
        type=integer_at_least(WARMUP_BARS),
        default=DEFAULT_BARS,
        help=f"Bars closed per symbol, the first {WARMUP_BARS} a warm-up (default {DEFAULT_BARS}).",
    )
    parser.add_argument(
        "--speed",
        metavar="X",
        type=finite_number,
        default=DEFAULT_SPEED,
        help=f"Replay speed after the warm-up, times real time; 0: as fast as possible "
        f"(default {DEFAULT_SPEED:g}: {DEFAULT_SPEED / 60:g} one-minute bars a second).",
    )
    parser.add_argument(
        "--max-seconds",
        metavar="SECONDS",
        type=finite_number,
        default=DEFAULT_MAX_SECONDS,
        help=f"Stop after this many seconds even if outputs are still due (default {DEFAULT_MAX_SECONDS:g}).",
    )
    parser.add_argument(
        "--threshold",
        metavar="P",
        type=probability,
        default=None,
        help="Signal threshold on sequence_score (default: the checkpoint's serving threshold).",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=None,
        help="Folder for the PNGs (default ./bullflag-demo-<time>/).",
    )
    parser.add_argument(
        "--max-plots",
        metavar="N",
        type=integer_at_least(0),
        default=DEFAULT_MAX_PLOTS,
        help=f"Most signals drawn to PNG (default {DEFAULT_MAX_PLOTS}).",
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=integer_at_least(0),
        default=DEFAULT_SEED,
        help="Seed of the generated market.",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="FILE",
        type=Path,
        default=None,
        help="Checkpoint file (default: the shipped one).",
    )
    parser.add_argument(
        "--dashboard-port",
        metavar="PORT",
        type=port,
        default=0,
        help="Port of the live signals page on 127.0.0.1, whose URL the demo prints "
        "(default 0: any free one). The page stops with the demo.",
    )
    parser.add_argument("--no-dashboard", action="store_true", help="Run without the live signals page.")
    parser.add_argument(
        "--offline", action="store_true", help="Score generated windows in one batch, without Kafka."
    )
    parser.add_argument(
        "--windows",
        metavar="N",
        type=integer_at_least(1),
        default=None,
        help="Windows to score offline (implies --offline; default 40).",
    )
    parser.set_defaults(handler=run)
