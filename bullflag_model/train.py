"""``bullflag train``: fit the multi-head CNN on generated windows and write a checkpoint.

Four binary cross-entropy losses (one per head) on windows from ``synthetic.generate_windows``;
validation windows and validation random walks come from their own seeds, the held-out
evaluation from ``evaluate.EVALUATION_SEEDS`` (never used here for fitting or choosing). Runs are
deterministic for a given seed and thread count: seeded generators, a fixed data order and
deterministic torch kernels. Data workers change only the speed: chunks carry their own seeds, so
the windows are the same however many processes generate them. On a CUDA device the same run asks
for deterministic kernels too; its weights match CPU training closely, not bit for bit.

Serving threshold: the threshold on ``sequence_score`` with the best F1 for full-sequence
positives (continuation = 1) on the validation windows, among the thresholds that raise at most
``false_alarm_budget`` signals per 1,000 bars on validation random walks (stride 1), rounded up
to 4 decimals.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from tqdm import tqdm

from bullflag_model.checkpoint import default_checkpoint_path, save_checkpoint
from bullflag_model.evaluate import (
    CONTINUATION,
    EvaluationConfig,
    average_precision,
    evaluate_model,
    held_out_seeds,
    roc_auc,
    score_features,
    slide_scores,
)
from bullflag_model.features import FEATURE_SPEC
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, generate_random_walk_series
from bullflag_model.training_data import PendingSplit, Split, data_pool, make_split

RUNNING_LOSS_DECAY = 0.98
THRESHOLD_DECIMALS = 4


class TrainError(ValueError):
    """A training setting cannot be honoured (bad sizes, seeds that overlap the held-out data)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run besides the generator parameters."""

    seed: int = 0
    train_windows: int = 800_000
    val_windows: int = 20_000
    val_walk_series: int = 30
    val_walk_bars: int = 2_000
    epochs: int = 14
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    patience: int = 3
    false_alarm_budget: float = 0.5
    threads: int = 1
    max_steps_per_epoch: int | None = None
    fresh_data: bool = True
    device: str = "cpu"
    data_workers: int = 1

    def __post_init__(self) -> None:
        """Reject sizes, rates and devices the loop cannot use."""
        if min(self.train_windows, self.val_windows, self.batch_size, self.epochs) < 1:
            raise TrainError("train_windows, val_windows, batch_size and epochs must be >= 1")
        if self.val_walk_series < 1 or self.val_walk_bars < 200:
            raise TrainError("val_walk_series must be >= 1 and val_walk_bars >= 200 (one window)")
        if self.learning_rate <= 0 or self.weight_decay < 0 or self.patience < 1 or self.threads < 1:
            raise TrainError("learning_rate must be > 0, weight_decay >= 0, patience and threads >= 1")
        if self.false_alarm_budget <= 0:
            raise TrainError("false_alarm_budget (signals per 1,000 bars) must be > 0")
        if self.data_workers < 0:
            raise TrainError("data_workers must be >= 0 (0 generates data in the training process)")
        check_device(self.device)

    def seeds(self) -> dict[str, int]:
        """Seeds of the training windows, validation windows and validation random walks."""
        return {"train": self.seed, "validation": self.seed + 1, "validation_walks": self.seed + 2}

    def epoch_seeds(self) -> list[int]:
        """Seed of each epoch's training windows: the training seed every epoch, or with
        ``fresh_data`` a new set of windows each epoch (seeds far from the validation ones)."""
        if not self.fresh_data:
            return [self.seed] * self.epochs
        return [self.seed] + [1000 * self.seed + 100 + epoch for epoch in range(2, self.epochs + 1)]

    def as_dict(self) -> dict[str, Any]:
        """Plain form stored in the checkpoint metadata."""
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """The fitted model (eval mode), its serving threshold and what the run measured."""

    model: BullFlagCNNMultiHead
    serving_threshold: float
    history: list[dict[str, Any]]
    initial_val_loss: float
    best_epoch: int
    validation: dict[str, Any]
    seconds: float


def check_seeds(config: TrainConfig) -> None:
    """Refuse training seeds that coincide with the held-out evaluation seeds."""
    clash = (set(config.seeds().values()) | set(config.epoch_seeds())) & held_out_seeds()
    if clash:
        raise TrainError(
            f"seed {config.seed} makes training data from held-out seeds {sorted(clash)}; pick another --seed"
        )


def check_device(device: str) -> None:
    """Refuse a device torch cannot name or this machine does not have."""
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise TrainError(f"device {device!r} is not a torch device name (try cpu or cuda)") from exc
    if kind not in ("cpu", "cuda"):
        raise TrainError(f"device {device!r}: training runs on cpu or cuda")
    if kind == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"device {device!r}: torch sees no CUDA device on this machine")


@contextmanager
def deterministic_torch(seed: int, threads: int, device: str = "cpu") -> Iterator[None]:
    """Seed torch, fix the thread count and require deterministic kernels; restore all on exit.

    The global random state is forked, so a run neither depends on nor disturbs the caller's.
    On CUDA, cuBLAS needs a fixed workspace to be deterministic (set unless the caller chose one),
    and an op without a deterministic CUDA kernel warns instead of ending a long run.
    """
    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    cuda = torch.device(device).type == "cuda"
    if cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    with torch.random.fork_rng(devices=[torch.device(device)] if cuda else []):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(True, warn_only=cuda)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic_before)
            torch.set_num_threads(threads_before)


def bce_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean of the four heads' binary cross-entropies; logits and labels ``[B, 4]``."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def validation_loss(model: BullFlagCNNMultiHead, split: Split, batch: int = 2048) -> float:
    """``bce_loss`` over a whole split, in eval mode, on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    total = 0.0
    with torch.inference_mode():
        for lo in range(0, split.features.shape[0], batch):
            logits = model.logits(torch.from_numpy(split.features[lo : lo + batch]).to(device))
            labels = torch.from_numpy(split.labels[lo : lo + batch]).to(device)
            total += float(bce_loss(logits, labels)) * labels.shape[0]
    return total / split.features.shape[0]


def ranking_summary(probs: np.ndarray, sequence: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Per-head ROC-AUC and the sequence score's average precision for continuation (None if undefined)."""
    aucs: dict[str, float | None] = {}
    for k, name in enumerate(HEAD_NAMES):
        y = labels[:, k]
        aucs[name] = roc_auc(probs[:, k], y) if 0 < y.sum() < y.size else None
    full = labels[:, CONTINUATION]
    return {
        "roc_auc": aucs,
        "sequence_average_precision": average_precision(sequence, full) if full.any() else None,
    }


def lowest_allowed_threshold(walk_scores: np.ndarray, budget_per_1000: float) -> float:
    """Smallest threshold with at most ``budget_per_1000`` signals per 1,000 scores ``[N]``.

    ``k = floor(budget * N / 1000)`` scores may reach the threshold, so it must exceed the
    ``(k + 1)``-th largest score.
    """
    ranked = np.sort(np.asarray(walk_scores, dtype=np.float64).ravel())[::-1]
    allowed = math.floor(budget_per_1000 * ranked.size / 1000.0)
    if allowed >= ranked.size:
        return 0.0
    return float(np.nextafter(ranked[allowed], np.inf))


def best_f1_threshold(scores: np.ndarray, labels: np.ndarray, lowest: float) -> tuple[float, float]:
    """Threshold ``>= lowest`` maximising F1 of ``scores >= t`` for ``labels`` [N]; returns (t, F1).

    Candidates are ``lowest`` and every score above it; ties keep the higher threshold.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = labels.astype(bool)
    candidates = np.unique(np.r_[lowest, scores[scores >= lowest]])
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_pos = scores[order], positives[order]
    predicted = np.searchsorted(-sorted_scores, -candidates, side="right")
    tp = np.r_[0, np.cumsum(sorted_pos)][predicted]
    f1 = 2.0 * tp / np.maximum(predicted + positives.sum(), 1)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    return float(candidates[best]), float(f1[best])


def choose_serving_threshold(
    val_sequence: np.ndarray, val_full: np.ndarray, walk_scores: np.ndarray, budget_per_1000: float
) -> dict[str, Any]:
    """The serving threshold and how it was chosen (see the module doc), as plain values."""
    lowest = lowest_allowed_threshold(walk_scores, budget_per_1000)
    threshold, _ = best_f1_threshold(val_sequence, val_full, lowest)
    scale = 10**THRESHOLD_DECIMALS
    threshold = min(math.ceil(threshold * scale) / scale, 1.0)
    predicted = val_sequence >= threshold
    positives = val_full.astype(bool)
    hits = int(np.sum(predicted & positives))
    return {
        "serving_threshold": threshold,
        "lowest_allowed": lowest,
        "false_alarm_budget_per_1000_bars": budget_per_1000,
        "validation_walk_bars": int(walk_scores.size),
        "validation_false_alarms_per_1000_bars": float(1000.0 * np.mean(walk_scores >= threshold)),
        "validation_f1": 2.0 * hits / max(int(predicted.sum() + positives.sum()), 1),
        "validation_precision": hits / max(int(predicted.sum()), 1),
        "validation_recall": hits / max(int(positives.sum()), 1),
    }


def train_epoch(
    model: BullFlagCNNMultiHead,
    split: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Tensor,
    config: TrainConfig,
    bar: tqdm,
) -> float:
    """One pass over ``split`` in ``order``; returns the running (exponentially averaged) loss.

    The split is copied to the model's device once, so each step only gathers its rows there.
    """
    model.train()
    device = next(model.parameters()).device
    features = torch.from_numpy(split.features).to(device)
    labels = torch.from_numpy(split.labels).to(device)
    order = order.to(device)
    running = math.nan
    for step, lo in enumerate(range(0, order.numel() - config.batch_size + 1, config.batch_size)):
        if config.max_steps_per_epoch is not None and step >= config.max_steps_per_epoch:
            break
        rows = order[lo : lo + config.batch_size]
        loss = bce_loss(model.logits(features[rows]), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = float(loss.detach())
        running = (
            value if math.isnan(running) else RUNNING_LOSS_DECAY * running + (1 - RUNNING_LOSS_DECAY) * value
        )
        bar.update(1)
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
    return running


def steps_per_epoch(config: TrainConfig) -> int:
    """Optimiser steps in one epoch (full batches only, capped by ``max_steps_per_epoch``)."""
    steps = config.train_windows // config.batch_size
    if config.max_steps_per_epoch is not None:
        steps = min(steps, config.max_steps_per_epoch)
    if steps < 1:
        raise TrainError(
            f"train_windows ({config.train_windows}) must be at least batch_size ({config.batch_size})"
        )
    return steps


def train(
    config: TrainConfig,
    params: GeneratorParams = DEFAULT_PARAMS,
    model_config: dict[str, Any] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit a model with early stopping on validation loss and choose its serving threshold.

    Deterministic for a given config (see ``deterministic_torch``); ``model_config`` overrides
    ``ModelConfig`` fields; ``log`` receives one line per stage and epoch.
    """
    check_seeds(config)
    with ExitStack() as stack:
        stack.enter_context(deterministic_torch(config.seed, config.threads, config.device))
        pool = data_pool(config.data_workers)
        if pool is not None:
            stack.callback(pool.shutdown, cancel_futures=True)
        return _fit(config, params, model_config or {}, pool, progress, log or (lambda _message: None))


def _fit(
    config: TrainConfig,
    params: GeneratorParams,
    model_config: dict[str, Any],
    pool: Executor | None,
    progress: bool,
    say: Callable[[str], None],
) -> TrainResult:
    """The body of ``train``, run inside its deterministic context.

    The next epoch's fresh windows are asked for as an epoch starts: data workers generate them
    while it trains; without workers they are generated when that epoch begins.
    """
    started = time.perf_counter()
    seeds = config.seeds()
    n_steps = steps_per_epoch(config)
    epoch_seeds = config.epoch_seeds()
    say(f"generating {config.train_windows} training and {config.val_windows} validation windows")
    val_pending = PendingSplit(config.val_windows, seeds["validation"], params, pool)
    train_split = make_split(config.train_windows, seeds["train"], params, pool)
    val_split = val_pending.result()

    model = BullFlagCNNMultiHead(**model_config).to(config.device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=config.epochs * n_steps, pct_start=0.15
    )
    order_rng = torch.Generator().manual_seed(seeds["train"])
    initial_val_loss = validation_loss(model, val_split)
    history: list[dict[str, Any]] = []
    best_loss, best_epoch, best_state, stale = math.inf, 0, copy.deepcopy(model.state_dict()), 0
    upcoming: PendingSplit | None = None
    for epoch, data_seed in enumerate(epoch_seeds, start=1):
        if upcoming is not None:
            say(f"epoch {epoch}: generating {config.train_windows} fresh training windows (seed {data_seed})")
            del train_split
            train_split, upcoming = upcoming.result(), None
        if config.fresh_data and epoch < config.epochs:
            upcoming = PendingSplit(config.train_windows, epoch_seeds[epoch], params, pool)
        order = torch.randperm(config.train_windows, generator=order_rng)
        with tqdm(
            total=n_steps, desc=f"epoch {epoch}/{config.epochs}", disable=not progress, leave=False
        ) as bar:
            running = train_epoch(model, train_split, optimizer, scheduler, order, config, bar)
        val_loss = validation_loss(model, val_split)
        probs, sequence = score_features(model, val_split.features)
        summary = ranking_summary(probs, sequence, val_split.labels)
        history.append({"epoch": epoch, "train_loss": running, "val_loss": val_loss, **summary})
        aucs = " ".join(f"{k} {v:.4f}" for k, v in summary["roc_auc"].items() if v is not None)
        say(
            f"epoch {epoch}: train {running:.4f} val {val_loss:.4f} | AUC {aucs} | "
            f"seq AP {summary['sequence_average_precision'] or float('nan'):.4f}"
        )
        if val_loss < best_loss:
            best_loss, best_epoch, best_state, stale = val_loss, epoch, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= config.patience:
                say(f"early stop: no validation improvement for {stale} epochs (best epoch {best_epoch})")
                break
    model.load_state_dict(best_state)
    model.cpu().eval()

    say(f"choosing the serving threshold on {config.val_walk_series} validation random walks")
    walks = generate_random_walk_series(
        config.val_walk_series, config.val_walk_bars, seeds["validation_walks"], params
    )
    walk_scores = slide_scores(model, walks)
    probs, sequence = score_features(model, val_split.features)
    choice = choose_serving_threshold(
        sequence, val_split.labels[:, CONTINUATION], walk_scores, config.false_alarm_budget
    )
    validation = {
        "val_loss": best_loss,
        **ranking_summary(probs, sequence, val_split.labels),
        "threshold_choice": choice,
    }
    return TrainResult(
        model=model,
        serving_threshold=choice["serving_threshold"],
        history=history,
        initial_val_loss=initial_val_loss,
        best_epoch=best_epoch,
        validation=validation,
        seconds=time.perf_counter() - started,
    )


def plain(value: Any) -> Any:
    """Copy of ``value`` made of dict/list/str/int/float/bool/None only (numpy scalars converted).

    Checkpoints must load with ``torch.load(weights_only=True)``, which refuses other types.
    """
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TrainError(
        f"cannot store a {type(value).__name__} in checkpoint metadata; convert it to plain types"
    )


def checkpoint_metadata(
    result: TrainResult, config: TrainConfig, params: GeneratorParams, command: str
) -> dict[str, Any]:
    """Metadata stored with the weights: plain types only, so ``weights_only=True`` loads it."""
    return {
        "trained": True,
        "serving_threshold": result.serving_threshold,
        "threshold_rule": (
            "best validation F1 of sequence_score >= t for continuation = 1, among thresholds with at most "
            f"{config.false_alarm_budget} signals per 1,000 bars on validation random walks (stride 1), "
            f"rounded up to {THRESHOLD_DECIMALS} decimals"
        ),
        "feature_spec": {"name": FEATURE_SPEC.name, "version": FEATURE_SPEC.version},
        "generator_params": params.as_dict(),
        "seeds": config.seeds() | {"train_per_epoch": config.epoch_seeds()},
        "train_config": config.as_dict(),
        "initial_val_loss": result.initial_val_loss,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "train_seconds": round(result.seconds, 1),
        "command": command,
        "torch_version": str(torch.__version__),
    }


def command_line(config: TrainConfig, evaluated: bool) -> str:
    """The ``bullflag train`` command with every setting that shapes the checkpoint spelled out.

    ``--out`` (where it is written) and ``--no-progress`` change nothing in it and are left out.
    """
    parts = ["bullflag", "train"]
    for name, value in config.as_dict().items():
        flag = name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(f"--{flag}" if value else f"--no-{flag}")
        elif value is not None:
            parts += [f"--{flag}", str(value)]
    if not evaluated:
        parts.append("--no-evaluate")
    return shlex.join(parts)


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
        tqdm.write(f"train: {message}", file=sys.stderr)

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
