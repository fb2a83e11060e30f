"""What a checkpoint records about its training run: plain-typed metadata and the command line.

Checkpoints load with ``torch.load(weights_only=True)``, so everything stored is converted to plain
types (``plain``), and ``command_line`` spells out every setting that shaped the weights.
"""

from __future__ import annotations

import shlex
from typing import Any

import numpy as np
import torch

from bullflag_model.features import FEATURE_SPEC
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams
from bullflag_model.training.loop import TrainResult
from bullflag_model.training.options import TrainConfig, TrainError
from bullflag_model.training.threshold import THRESHOLD_DECIMALS


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


def trained_params(metadata: dict[str, Any]) -> GeneratorParams:
    """The generator parameters a checkpoint was trained on (the defaults for one that does not say)."""
    if "generator_params" in metadata:
        return GeneratorParams.from_dict(metadata["generator_params"])
    return DEFAULT_PARAMS


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
