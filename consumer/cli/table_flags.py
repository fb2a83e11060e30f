"""The flags that say how to read a CSV/Parquet table, shared by ``bullflag replay`` and ``bullflag scan``."""

from __future__ import annotations

import argparse

from consumer.sources.tables import COLUMN_ALIASES, ColumnNames


def add_column_arguments(parser: argparse.ArgumentParser, symbol_help: str) -> None:
    """Add ``--symbol``, one ``--<role>-column`` per column role, and ``--time-unit``."""
    columns = parser.add_argument_group("columns (found by name unless given)")
    columns.add_argument("--symbol", metavar="SYMBOL", default=None, help=symbol_help)
    for role, aliases in COLUMN_ALIASES.items():
        columns.add_argument(
            f"--{role}-column",
            default=None,
            metavar="NAME",
            help=f"Default: the first of {', '.join(aliases)}.",
        )
    columns.add_argument(
        "--time-unit",
        choices=("auto", "s", "ms", "us", "ns"),
        default="auto",
        help="Unit of epoch-number times (default auto: from their magnitude).",
    )


def column_names(args: argparse.Namespace) -> ColumnNames:
    """The column names given by the flags (``None`` for those to find by name)."""
    return ColumnNames(**{role: getattr(args, f"{role}_column") for role in COLUMN_ALIASES})
