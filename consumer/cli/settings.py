"""``bullflag settings``: show the resolved worker settings, or the settings table for the docs."""

from __future__ import annotations

import argparse
import os

from consumer.config import add_arguments, load_settings, settings_markdown


def run(args: argparse.Namespace) -> int:
    """Print the settings (secrets masked) or, with ``--markdown``, the table for docs/operations.md."""
    if args.markdown:
        print(settings_markdown())
        return 0
    for name, value in load_settings(args, os.environ).redacted().items():
        print(f"{name} = {value}")
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag settings``."""
    parser = subcommands.add_parser("settings", help="Show the worker settings resolved from flags and env.")
    parser.add_argument("--markdown", action="store_true", help="Print the settings table for the docs.")
    add_arguments(parser)
    parser.set_defaults(handler=run)
