"""What determines a training run: ``TrainConfig``, and the checks that refuse what it cannot honour.

Sizes, rates, the device and the seeds are checked before any data is generated: a run must never
draw training data from the held-out evaluation seeds, and must not start on a device this machine
does not have.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from bullflag_model.evaluation.experiments import held_out_seeds


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
