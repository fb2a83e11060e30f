"""Inference API: head probabilities, sequence score and (above a threshold) Grad-CAM maps.

Scoring runs on a backend (``backends.py``): ONNX Runtime when installed, torch otherwise or on
request. This module imports no torch, so a serving install without it can score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bullflag_model.backends import ScoringBackend, load_backend
from bullflag_model.heads import HEAD_NAMES

PROB_KEYS = tuple(f"{name}_prob" for name in HEAD_NAMES)


@dataclass(frozen=True)
class BatchScores:
    """Scores of ``B`` windows as arrays, the form the worker serialises from.

    ``probs`` ``[B, 4]`` (heads in ``HEAD_NAMES`` order), ``sequence`` ``[B]`` (their geometric
    mean), ``cams`` ``[B, seq_len]`` with rows filled only where ``has_cam`` ``[B]`` is true.
    """

    probs: np.ndarray
    sequence: np.ndarray
    cams: np.ndarray
    has_cam: np.ndarray

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as the spec's result dict (``activation_map`` a list of floats or None)."""
        result: dict[str, Any] = {key: float(self.probs[i, k]) for k, key in enumerate(PROB_KEYS)}
        result["sequence_score"] = float(self.sequence[i])
        result["activation_map"] = self.cams[i].tolist() if self.has_cam[i] else None
        return result


class BullFlagCNNInfer:
    """Loads a checkpoint and scores feature windows ``[F, seq_len]`` (from ``build_features``).

    ``checkpoint_path=None`` loads the model shipped in the package; a ``.pt`` checkpoint is
    served by ONNX Runtime from the ``.onnx`` export beside it. ``backend`` is ``"auto"`` (ONNX
    Runtime when installed and the export exists, else torch), ``"onnx"`` or ``"torch"``;
    ``threads`` 0 keeps the backend's default. With ``enable_gradcam``, windows whose
    ``sequence_score >= threshold`` get a Grad-CAM map of the sequence score, computed for just
    those rows from the scoring pass's ``conv4`` output.
    """

    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        device: str = "cpu",
        enable_gradcam: bool = False,
        threshold: float = 0.5,
        backend: str = "auto",
        threads: int = 0,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        path = Path(checkpoint_path) if checkpoint_path is not None else None
        self.backend: ScoringBackend = load_backend(backend, path, device, threads)
        info = self.backend.info
        self.checkpoint_path = info.path
        self.model_version = info.model_version
        self.metadata = info.metadata
        self.metrics = info.metrics
        self.n_features = info.n_features
        self.device = device
        self.enable_gradcam = enable_gradcam
        self.threshold = threshold

    @property
    def backend_name(self) -> str:
        """``"onnx"`` or ``"torch"``: the backend actually scoring."""
        return self.backend.name

    @property
    def model(self) -> Any:
        """The torch ``BullFlagCNNMultiHead`` (torch backend only: training, Grad-CAM by autograd)."""
        model = getattr(self.backend, "model", None)
        if model is None:
            raise AttributeError(f"backend {self.backend.name} has no torch model; use backend='torch'")
        return model

    def resolve_threshold(self, requested: float | None) -> float:
        """Set and return the signal threshold: ``requested`` if given, else the checkpoint's
        serving threshold if it has one, else the threshold this object was built with."""
        if requested is not None:
            if not 0.0 <= requested <= 1.0:
                raise ValueError(f"threshold must be in [0, 1], got {requested}")
            self.threshold = float(requested)
        elif "serving_threshold" in self.metadata:
            self.threshold = float(self.metadata["serving_threshold"])
        return self.threshold

    @property
    def seq_len(self) -> int:
        """Bars per window the model expects."""
        return self.backend.info.seq_len

    def set_threads(self, threads: int) -> None:
        """Score with ``threads`` threads from now on; call it from the thread that scores."""
        self.backend.set_threads(threads)

    def __call__(self, feature_window: np.ndarray) -> dict[str, Any]:
        """Score one window ``[F, seq_len]``; returns the spec's result dict."""
        window = np.asarray(feature_window)
        if window.ndim != 2:
            raise ValueError(f"feature_window must be [n_features, seq_len], got shape {window.shape}")
        return self.score(window[None]).row(0)

    def infer_batch(self, feature_windows: np.ndarray) -> list[dict[str, Any]]:
        """Score ``[B, F, seq_len]`` windows with one batched forward; one result dict per row."""
        scores = self.score(feature_windows)
        return [scores.row(i) for i in range(len(scores.sequence))]

    def score(self, feature_windows: np.ndarray) -> BatchScores:
        """Array form of ``infer_batch``: the worker's hot path, no per-row Python objects."""
        windows = self._as_input(feature_windows)
        forward = self.backend.forward(windows)
        cams = np.zeros((windows.shape[0], windows.shape[-1]), dtype=np.float32)
        has_cam = np.zeros(windows.shape[0], dtype=bool)
        if self.enable_gradcam:
            has_cam = forward.sequence >= self.threshold
            if has_cam.any():
                cams[has_cam] = self.backend.sequence_cams(forward, np.flatnonzero(has_cam))
        return BatchScores(probs=forward.probs, sequence=forward.sequence, cams=cams, has_cam=has_cam)

    def _as_input(self, feature_windows: np.ndarray) -> np.ndarray:
        """Validate ``[B, F, seq_len]`` and return it as contiguous float32."""
        windows = np.asarray(feature_windows, dtype=np.float32)
        expected = (self.n_features, self.seq_len)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(
                f"feature windows must have shape [B, {expected[0]}, {expected[1]}], got {windows.shape}"
            )
        return np.ascontiguousarray(windows)
