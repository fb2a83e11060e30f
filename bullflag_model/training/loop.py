"""The training loop: fit the multi-head CNN on generated windows with early stopping.

Four binary cross-entropy losses (one per head) on windows from ``synthetic.generate_windows``;
validation windows and validation random walks come from their own seeds, the held-out
evaluation from ``evaluation.experiments.EVALUATION_SEEDS`` (never used here for fitting or
choosing). Runs are deterministic for a given seed and thread count: seeded generators, a fixed
data order and deterministic torch kernels. Data workers change only the speed: chunks carry their
own seeds, so the windows are the same however many processes generate them. On a CUDA device the
same run asks for deterministic kernels too; its weights match CPU training closely, not bit for
bit. The serving threshold is chosen by ``threshold``'s rule.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from bullflag_model.evaluation.experiments import CONTINUATION
from bullflag_model.evaluation.metrics import average_precision, roc_auc
from bullflag_model.evaluation.scoring import score_features, slide_scores
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, generate_random_walk_series
from bullflag_model.training.data import PendingSplit, Split, data_pool, make_split
from bullflag_model.training.options import TrainConfig, TrainError, check_seeds
from bullflag_model.training.progress import ProgressBar, progress_bar
from bullflag_model.training.threshold import choose_serving_threshold

RUNNING_LOSS_DECAY = 0.98


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


def train_epoch(
    model: BullFlagCNNMultiHead,
    split: Split,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    order: torch.Tensor,
    config: TrainConfig,
    bar: ProgressBar,
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
        with progress_bar(n_steps, f"epoch {epoch}/{config.epochs}", progress) as bar:
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
