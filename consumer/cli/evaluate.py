"""``bullflag evaluate``: measure a checkpoint on held-out generated data, write the report and figures.

The measurement is ``bullflag_model.evaluation``'s; this command reads the checkpoint and the
flags, prints the target table (or the JSON report with ``--json``) and writes ``report.json`` with
its PNG figures, which need matplotlib. An unusable checkpoint or setting exits 2 with one line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch

from bullflag_model.checkpoint import CheckpointError, load_checkpoint
from bullflag_model.evaluation.experiments import EvaluationConfig, EvaluationError
from bullflag_model.evaluation.report import evaluate_model, write_outputs
from bullflag_model.training.metadata import trained_params
from consumer.cli import evaluate_real

FALLBACK_THRESHOLD = 0.5


def _summary_lines(report: dict[str, Any]) -> list[str]:
    """A short human-readable summary of the report: the target table."""
    lines = [f"serving threshold {report['serving_threshold']:.4f}"]
    for row in report["targets"]:
        value = "n/a" if row["value"] is None else f"{row['value']:.4g}"
        lines.append(
            f"  {row['name']:<32} {value:>10}  target {row['target']:<8} {'met' if row['met'] else 'MISSED'}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """``bullflag evaluate``: exit code 2 with one line on stderr for an unusable checkpoint or setting."""
    if args.draw_labels and not args.real:
        print("bullflag evaluate: --draw-labels needs --real", file=sys.stderr)
        return 2
    if args.generator != "trained" and not args.real:
        print("bullflag evaluate: --generator needs --real", file=sys.stderr)
        return 2
    if importlib.util.find_spec("matplotlib") is None:
        print(
            "bullflag evaluate: the report's figures need matplotlib; "
            "install it with: pip install 'bullflag-stream[demo]'",
            file=sys.stderr,
        )
        return 2
    if args.real:
        return evaluate_real.run(args)
    try:
        return _run(args)
    except (CheckpointError, EvaluationError) as exc:
        print(f"bullflag evaluate: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Evaluate a checkpoint; print the target table (or the JSON report with ``--json``)."""
    loaded = load_checkpoint(args.checkpoint)
    metadata = loaded.metadata
    threshold = args.threshold
    if threshold is None:
        threshold = float(metadata.get("serving_threshold", FALLBACK_THRESHOLD))
    if not 0.0 <= threshold <= 1.0:
        raise EvaluationError(f"threshold must be in [0, 1], got {threshold}")
    params = trained_params(metadata)
    config = EvaluationConfig(
        windows=args.windows,
        shift_windows=args.shift_windows,
        walk_series=args.walk_series,
        walk_bars=args.walk_bars,
        scale_windows=min(args.scale_windows, args.windows),
        deletion_windows=args.deletion_windows,
    )
    log = (lambda _m: None) if args.json else (lambda m: print(f"evaluate: {m}", file=sys.stderr))
    torch.set_num_threads(args.threads)
    report, arrays = evaluate_model(loaded.model, threshold, params, config, log)
    report = {
        "checkpoint": str(loaded.path),
        "model_version": loaded.model_version,
        "trained": bool(metadata.get("trained", False)),
        **report,
    }
    report = write_outputs(loaded.model, report, arrays, Path(args.out))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_summary_lines(report)))
        print(f"report: {Path(args.out) / 'report.json'}")
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag evaluate``."""
    defaults = EvaluationConfig()
    parser = subcommands.add_parser(
        "evaluate", help="Measure a checkpoint on held-out generated data (JSON report + PNG figures)."
    )
    parser.add_argument("--checkpoint", default=None, help="Checkpoint file (default: the shipped one).")
    parser.add_argument(
        "--threshold", type=float, default=None, help="Signal threshold (default: the checkpoint's)."
    )
    parser.add_argument("--windows", type=int, default=defaults.windows, help="Held-out windows.")
    parser.add_argument(
        "--shift-windows", type=int, default=defaults.shift_windows, help="Windows per shift."
    )
    parser.add_argument("--walk-series", type=int, default=defaults.walk_series, help="Random-walk series.")
    parser.add_argument(
        "--walk-bars", type=int, default=defaults.walk_bars, help="Bars per random-walk series."
    )
    parser.add_argument("--scale-windows", type=int, default=defaults.scale_windows, help="Windows rescaled.")
    parser.add_argument(
        "--deletion-windows", type=int, default=defaults.deletion_windows, help="Positives explained per set."
    )
    parser.add_argument("--out", default="runs/evaluation", help="Folder for report.json and figures.")
    parser.add_argument("--threads", type=int, default=1, help="Torch CPU threads.")
    parser.add_argument("--json", action="store_true", help="Print the JSON report to stdout.")
    evaluate_real.add_arguments(parser)
    parser.set_defaults(handler=run)
