"""The ``bullflag`` command: one entry point, one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from consumer.config import SettingsError, add_arguments, load_settings, settings_markdown

Command = Callable[[argparse.Namespace], int]


def _demo(args: argparse.Namespace) -> int:
    from consumer.demo import run_scoring_demo

    return run_scoring_demo(windows=args.windows, seed=args.seed, checkpoint=args.checkpoint)


def _settings(args: argparse.Namespace) -> int:
    if args.markdown:
        print(settings_markdown())
        return 0
    settings = load_settings(args, os.environ)
    for name, value in settings.redacted().items():
        print(f"{name} = {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface."""
    parser = argparse.ArgumentParser(prog="bullflag", description="Real-time bull-flag detection on Kafka.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser("demo", help="Score generated market windows and explain the signals.")
    demo.add_argument("--windows", type=int, default=64, help="How many generated windows to score.")
    demo.add_argument("--seed", type=int, default=7, help="Seed of the generated market.")
    demo.add_argument("--checkpoint", default=None, help="Checkpoint file (default: the shipped one).")
    demo.set_defaults(handler=_demo)

    settings = commands.add_parser("settings", help="Show the worker settings resolved from flags and env.")
    settings.add_argument("--markdown", action="store_true", help="Print the settings table for the docs.")
    add_arguments(settings)
    settings.set_defaults(handler=_settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen subcommand; bad settings exit 2 with one line."""
    args = build_parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return handler(args)
    except SettingsError as exc:
        print(f"bullflag: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
