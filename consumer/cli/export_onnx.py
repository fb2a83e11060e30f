"""``bullflag export-onnx``: write a checkpoint's ONNX export beside it, for ONNX Runtime serving.

The export is a pure function of the checkpoint (``bullflag_model.onnx_export``), so running it
again on an unchanged checkpoint rewrites the same bytes. Needs torch and onnx.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bullflag_model.model_files import CheckpointError


def run(args: argparse.Namespace) -> int:
    """Export ``--checkpoint`` (default: the shipped one); exit 2 with one line on a bad checkpoint."""
    from bullflag_model.onnx_export import export_onnx

    checkpoint = Path(args.checkpoint) if args.checkpoint else None
    out = Path(args.out) if args.out else None
    try:
        if args.check:
            return _check(checkpoint, out)
        target = export_onnx(checkpoint, out)
    except CheckpointError as exc:
        print(f"bullflag export-onnx: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {target}")
    return 0


def _check(checkpoint: Path | None, out: Path | None) -> int:
    """Exit 0 when the file on disk is the export of ``checkpoint``, else 1 with one line."""
    from bullflag_model.model_files import default_checkpoint_path, onnx_path_for
    from bullflag_model.onnx_export import export_model

    source = checkpoint if checkpoint is not None else default_checkpoint_path()
    target = out if out is not None else onnx_path_for(source)
    fresh = export_model(source).SerializeToString(deterministic=True)
    if target.is_file() and target.read_bytes() == fresh:
        print(f"{target} is the export of {source}")
        return 0
    print(
        f"bullflag export-onnx: {target} is not the export of {source}; run it without --check",
        file=sys.stderr,
    )
    return 1


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag export-onnx``."""
    parser = subcommands.add_parser(
        "export-onnx", help="Write a checkpoint's ONNX export beside it (what --backend onnx serves)."
    )
    parser.add_argument(
        "--checkpoint", default=None, help="Checkpoint (.pt) to export (default: the shipped one)."
    )
    parser.add_argument(
        "--out", default=None, help="File to write (default: the checkpoint's path with .onnx)."
    )
    parser.add_argument(
        "--check", action="store_true", help="Write nothing; exit 1 unless the file is already the export."
    )
    parser.set_defaults(handler=run)
