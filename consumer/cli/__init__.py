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
    "consumer.cli.export_onnx",
    "consumer.cli.evaluate",
)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface; in a serving install without torch, the commands that need
    it (train, evaluate, export-onnx) are listed and answer with the install line."""
    parser = argparse.ArgumentParser(prog="bullflag", description="Real-time bull-flag detection on Kafka.")
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or exc.name.split(".")[0] not in ("torch", "onnx"):
                raise
            _add_unavailable(subcommands, name.rsplit(".", 1)[-1].replace("_", "-"), exc.name.split(".")[0])
            continue
        module.add_parser(subcommands)
    return parser


def _add_unavailable(subcommands: argparse._SubParsersAction, command: str, missing: str) -> None:
    """Register ``command`` as one that says which extra installs what it needs, and exits 2."""
    line = f"bullflag {command} needs {missing}: pip install 'bullflag-stream[torch]'"

    def refuse(_args: argparse.Namespace) -> int:
        print(line, file=sys.stderr)
        return 2

    # No option prefix: every argument, flags included, is taken as one of the ignored words.
    parser = subcommands.add_parser(
        command, help=f"(not installed: {line})", add_help=False, prefix_chars="\0"
    )
    parser.add_argument("ignored", nargs="*", help=argparse.SUPPRESS)
    parser.set_defaults(handler=refuse)


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
