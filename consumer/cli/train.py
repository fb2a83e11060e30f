"""``bullflag train``: fit the CNN on generated windows and write a checkpoint.

The flags are the fields of ``TrainConfig`` (``bullflag_model.training``). After training, the model
is measured on the held-out seeds unless ``--no-evaluate``; the checkpoint stores the weights,
the serving threshold, the metadata and those metrics, and its ONNX export is written beside it.
A refused setting exits 2 with one line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

from bullflag_model.checkpoint import default_checkpoint_path, save_checkpoint
from bullflag_model.evaluation.experiments import EvaluationConfig
from bullflag_model.evaluation.report import evaluate_model
from bullflag_model.onnx_export import export_onnx
from bullflag_model.synthetic import DEFAULT_PARAMS
from bullflag_model.training.loop import train
from bullflag_model.training.metadata import checkpoint_metadata, command_line, plain
from bullflag_model.training.options import TrainConfig, TrainError
from bullflag_model.training.progress import write_line


def run(args: argparse.Namespace) -> int:
    """``bullflag train``: exit code 2 with one line on stderr when a setting is refused."""
    try:
        return _run(args)
    except TrainError as exc:
        print(f"bullflag train: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Train, optionally evaluate on the held-out seeds, and write the checkpoint."""
    config = TrainConfig(
        seed=args.seed,
        train_windows=args.train_windows,
        val_windows=args.val_windows,
        val_walk_series=args.val_walk_series,
        val_walk_bars=args.val_walk_bars,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        weight_decay=args.weight_decay,
        patience=args.patience,
        false_alarm_budget=args.false_alarm_budget,
        threads=args.threads,
        max_steps_per_epoch=args.max_steps_per_epoch,
        fresh_data=args.fresh_data,
        device=args.device,
        data_workers=args.data_workers,
    )
    out = Path(args.out) if args.out else default_checkpoint_path()

    def say(message: str) -> None:
        write_line(f"train: {message}")

    torch.set_num_threads(config.threads)
    result = train(config, DEFAULT_PARAMS, progress=not args.no_progress, log=say)
    say(f"trained in {result.seconds:.0f} s (best epoch {result.best_epoch})")
    say(f"serving threshold {result.serving_threshold}")
    metrics: dict[str, Any] = {"validation": result.validation}
    if not args.no_evaluate:
        say("evaluating on the held-out seeds")
        report, _ = evaluate_model(
            result.model, result.serving_threshold, DEFAULT_PARAMS, EvaluationConfig(), say
        )
        metrics["held_out"] = report
    metadata = checkpoint_metadata(result, config, DEFAULT_PARAMS, command_line(config, not args.no_evaluate))
    version = save_checkpoint(out, result.model, metadata=plain(metadata), metrics=plain(metrics))
    say(f"wrote {out} ({version})")
    say(f"wrote {export_onnx(out)} (its ONNX export, what --backend onnx serves)")
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag train``."""
    defaults = TrainConfig()
    parser = subcommands.add_parser("train", help="Train the CNN on generated data and write a checkpoint.")
    parser.add_argument("--out", default=None, help="Checkpoint to write (default: the shipped one).")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="Seed of data, order and weights.")
    parser.add_argument("--train-windows", type=int, default=defaults.train_windows, help="Training windows.")
    parser.add_argument("--val-windows", type=int, default=defaults.val_windows, help="Validation windows.")
    parser.add_argument(
        "--val-walk-series", type=int, default=defaults.val_walk_series, help="Validation random walks."
    )
    parser.add_argument(
        "--val-walk-bars", type=int, default=defaults.val_walk_bars, help="Bars per random walk."
    )
    parser.add_argument(
        "--epochs", type=int, default=defaults.epochs, help="Most epochs (early stopping may end sooner)."
    )
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="Windows per step.")
    parser.add_argument(
        "--learning-rate", type=float, default=defaults.learning_rate, help="Peak learning rate."
    )
    parser.add_argument(
        "--weight-decay", type=float, default=defaults.weight_decay, help="AdamW weight decay."
    )
    parser.add_argument("--patience", type=int, default=defaults.patience, help="Epochs without improvement.")
    parser.add_argument(
        "--false-alarm-budget",
        type=float,
        default=defaults.false_alarm_budget,
        help="Most signals per 1,000 bars on validation random walks when choosing the threshold.",
    )
    parser.add_argument("--threads", type=int, default=defaults.threads, help="Torch CPU threads.")
    parser.add_argument(
        "--max-steps-per-epoch", type=int, default=None, help="Cap on steps per epoch (smoke runs)."
    )
    parser.add_argument(
        "--fresh-data",
        action=argparse.BooleanOptionalAction,
        default=defaults.fresh_data,
        help="Draw new training windows every epoch (more distinct data in the same memory).",
    )
    parser.add_argument(
        "--device", default=defaults.device, help="Where the model trains: cpu or cuda (cuda:N for one GPU)."
    )
    parser.add_argument(
        "--data-workers",
        type=int,
        default=defaults.data_workers,
        help=(
            "Processes generating the next epoch's windows during training, which holds two epochs' "
            "windows in memory (0: generate between epochs, one epoch in memory)."
        ),
    )
    parser.add_argument("--no-evaluate", action="store_true", help="Skip the held-out evaluation.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bar.")
    parser.set_defaults(handler=run)
