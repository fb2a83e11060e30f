"""The ``bullflag`` command: one entry point; each subcommand is defined by the module that runs it.

A command module exposes ``add_parser(subcommands)``, which adds its subparser and sets
``handler`` (``Namespace -> exit code``); modules are imported only to build the parser, so a
command module imports what only its own run needs (matplotlib, the broker wheel) inside it.

May import every other ``consumer`` package and ``bullflag_model``; nothing imports the CLI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from consumer.config import SettingsError

Command = Callable[[argparse.Namespace], int]

COMMAND_MODULES = (
    "consumer.cli.demo",
    "consumer.cli.explain",
    "consumer.cli.dashboard",
    "consumer.cli.run",
    "consumer.cli.settings",
    "consumer.cli.replay",
    "consumer.cli.scan",
    "consumer.cli.broker",
    "consumer.cli.train",
    "consumer.cli.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface."""
    parser = argparse.ArgumentParser(prog="bullflag", description="Real-time bull-flag detection on Kafka.")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; a bad setting exits 2 with one line."""
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        print(f"bullflag: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
