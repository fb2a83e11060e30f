"""Checkpoint files: weights plus everything needed to rebuild and trust them.

A checkpoint is a plain dict (tensors, strings, numbers, lists) so it loads with
``torch.load(weights_only=True)``: no pickled code runs when a user opens one.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bullflag_model.features import FEATURE_SPEC
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.model_files import CheckpointError, default_checkpoint_path

FORMAT = "bullflag-checkpoint"
FORMAT_VERSION = 1
MODEL_NAME = "bullflag-cnn"


@dataclass
class LoadedCheckpoint:
    """A model in eval mode together with the metadata its checkpoint carried."""

    model: BullFlagCNNMultiHead
    path: Path
    model_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """Short, stable hash of the weights: the second half of ``model_version``."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:10]


def save_checkpoint(
    path: Path | str,
    model: BullFlagCNNMultiHead,
    metadata: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Write ``model`` with its config and feature spec; returns the model version string."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    version = f"{MODEL_NAME}+{weights_hash(state)}"
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_name": MODEL_NAME,
        "model_version": version,
        "model_config": model.config.as_dict(),
        "feature_spec": FEATURE_SPEC.as_dict(),
        "state_dict": state,
        "metadata": metadata or {},
        "metrics": metrics or {},
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return version


def load_checkpoint(path: Path | str | None = None, device: str = "cpu") -> LoadedCheckpoint:
    """Load and verify a checkpoint (the shipped one when ``path`` is None); model in eval mode."""
    path = Path(path) if path is not None else default_checkpoint_path()
    if path.is_dir():
        raise CheckpointError(path, "is a folder; give the checkpoint file (.pt) inside it")
    if not path.is_file():
        raise CheckpointError(path, "file not found")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:
        sentence = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(
            path,
            f"cannot be read as a checkpoint written by bullflag train ({type(exc).__name__}: {sentence})",
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, f"not a {FORMAT} file")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            path, f"format version {payload.get('format_version')!r}, this code reads {FORMAT_VERSION}"
        )
    spec = payload.get("feature_spec", {})
    if (spec.get("name"), spec.get("version")) != (FEATURE_SPEC.name, FEATURE_SPEC.version):
        raise CheckpointError(
            path,
            f"trained on features {spec.get('name')!r} v{spec.get('version')!r}, "
            f"this code builds {FEATURE_SPEC.name!r} v{FEATURE_SPEC.version}; "
            "retrain it or use the release that matches it",
        )
    try:
        model = BullFlagCNNMultiHead(**payload["model_config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(path, f"weights do not fit the model ({exc})") from exc
    model.to(device).eval()
    version = f"{MODEL_NAME}+{weights_hash(payload['state_dict'])}"
    return LoadedCheckpoint(
        model=model,
        path=path,
        model_version=version,
        metadata=dict(payload.get("metadata", {})),
        metrics=dict(payload.get("metrics", {})),
    )
