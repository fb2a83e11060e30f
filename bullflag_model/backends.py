"""Scoring backends: the interface ``BullFlagCNNInfer`` scores through, and choosing one.

A backend turns windows ``[B, F, L]`` into head probabilities, the sequence score and the
``conv4`` output Grad-CAM needs, and turns that output into maps for chosen rows. Two exist:
``torch`` (the reference; training, evaluation, CUDA) and ``onnx`` (ONNX Runtime on the exported
graph; the default when installed, and the only one that serves without torch). This module
imports neither: each implementation is imported when it is chosen.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from bullflag_model.model_files import CheckpointError, default_checkpoint_path, onnx_path_for

BackendName = Literal["auto", "onnx", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")


class BackendError(ValueError):
    """The requested backend cannot run here (not installed, or not for this device)."""


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model says about itself: version, shape and the checkpoint's extras."""

    path: Path
    model_version: str
    n_features: int
    seq_len: int
    metadata: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Forward:
    """One batched forward: ``probs`` ``[B, 4]``, ``sequence`` ``[B]`` and the backend's saved
    ``conv4`` output (kept in the backend's own form until maps are asked for)."""

    probs: np.ndarray
    sequence: np.ndarray
    saved: Any


class ScoringBackend(Protocol):
    """The scoring half of ``BullFlagCNNInfer``; see the module docstring."""

    name: str
    info: ModelInfo

    def forward(self, windows: np.ndarray) -> Forward:
        """Score float32 windows ``[B, F, L]`` (already validated) in one batched call."""

    def sequence_cams(self, forward: Forward, rows: np.ndarray) -> np.ndarray:
        """Grad-CAM maps ``[R, L]`` of the sequence score for the row indices ``rows`` of ``forward``."""

    def set_threads(self, threads: int) -> None:
        """Use ``threads`` threads per call from now on (call it from the thread that scores)."""


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a finder that refuses it: no)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _onnx_file(checkpoint: Path | None) -> Path:
    """The ONNX file that serves ``checkpoint`` (the file itself when it is one)."""
    path = checkpoint if checkpoint is not None else default_checkpoint_path()
    return path if path.suffix == ".onnx" else onnx_path_for(path)


def resolve_backend(name: str, checkpoint: Path | None, device: str) -> str:
    """``onnx`` or ``torch`` for a requested backend name; ``auto`` prefers ONNX Runtime on the CPU
    when it is installed and the checkpoint has an export beside it, torch otherwise."""
    if name not in BACKENDS:
        raise BackendError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "onnx":
        if device != "cpu":
            raise BackendError(f"backend onnx runs on the cpu only, got device {device!r}; use backend torch")
        if not installed("onnxruntime"):
            raise BackendError("backend onnx needs onnxruntime: pip install 'bullflag-stream[serve]'")
        return "onnx"
    if name == "torch":
        if not installed("torch"):
            raise BackendError("backend torch needs torch: pip install 'bullflag-stream[torch]'")
        return "torch"
    if device == "cpu" and installed("onnxruntime") and _onnx_file(checkpoint).is_file():
        return "onnx"
    if installed("torch"):
        return "torch"
    if installed("onnxruntime"):
        return "onnx"
    raise BackendError("no scoring backend is installed: pip install 'bullflag-stream[serve]'")


def load_backend(name: str, checkpoint: Path | None, device: str, threads: int) -> ScoringBackend:
    """Load the model for backend ``name`` (``auto`` resolved first); ``threads`` 0: its default."""
    chosen = resolve_backend(name, checkpoint, device)
    if chosen == "onnx":
        from bullflag_model.onnx_backend import OnnxBackend

        return OnnxBackend(_onnx_file(checkpoint), threads)
    if checkpoint is not None and checkpoint.suffix == ".onnx":
        raise CheckpointError(checkpoint, "is an ONNX export; backend torch needs the checkpoint (.pt)")
    from bullflag_model.torch_backend import TorchBackend

    backend = TorchBackend(checkpoint, device)
    if threads > 0:
        backend.set_threads(threads)
    return backend
