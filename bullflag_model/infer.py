"""Inference API: head probabilities, sequence score and (above a threshold) Grad-CAM maps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.gradcam import cam_from_activations
from bullflag_model.model import HEAD_NAMES

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

    ``checkpoint_path=None`` loads the checkpoint shipped in the package. With
    ``enable_gradcam``, windows whose ``sequence_score >= threshold`` get a Grad-CAM map of
    the sequence score, computed for just those rows in one extra batched pass.
    """

    def __init__(
        self,
        checkpoint_path: str | Path | None = None,
        device: str = "cpu",
        enable_gradcam: bool = False,
        threshold: float = 0.5,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        loaded = load_checkpoint(checkpoint_path, device)
        self.model = loaded.model
        self.checkpoint_path = loaded.path
        self.model_version = loaded.model_version
        self.metadata = loaded.metadata
        self.metrics = loaded.metrics
        self.device = torch.device(device)
        self.enable_gradcam = enable_gradcam
        self.threshold = threshold

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
        return self.model.seq_len

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
        x = self._as_input(feature_windows)
        with torch.inference_mode():
            activations = self.model.encode(x)
            logits = self.model.decode(activations)
            probs = torch.sigmoid(logits)
            sequence = F.logsigmoid(logits).mean(dim=1).exp()
        probs_np = probs.cpu().numpy()
        sequence_np = sequence.cpu().numpy()
        cams = np.zeros((x.shape[0], x.shape[-1]), dtype=np.float32)
        has_cam = np.zeros(x.shape[0], dtype=bool)
        if self.enable_gradcam:
            has_cam = sequence_np >= self.threshold
            if has_cam.any():
                rows = torch.from_numpy(np.flatnonzero(has_cam)).to(x.device)
                with torch.inference_mode():
                    cams[has_cam] = self._sequence_cams(activations[rows]).cpu().numpy()
        return BatchScores(probs=probs_np, sequence=sequence_np, cams=cams, has_cam=has_cam)

    def _sequence_cams(self, activations: torch.Tensor) -> torch.Tensor:
        """Grad-CAM maps ``[R, seq_len]`` of the sequence score from saved ``conv4`` output.

        ``conv4`` is the Grad-CAM layer, so its output from the scoring forward is ``A`` itself,
        and the channel weights come in closed form from the heads
        (``BullFlagCNNMultiHead.sequence_channel_weights``): no second forward, no autograd.
        Equal to ``GradCAM1D(model, "conv4").generate_cams(x, "sequence")`` on the same rows.
        """
        weights = self.model.sequence_channel_weights(activations)
        return cam_from_activations(
            activations, weights[:, :, None].expand_as(activations), self.model.seq_len
        )

    def _as_input(self, feature_windows: np.ndarray) -> torch.Tensor:
        """Validate ``[B, F, seq_len]`` and move it to the model's device as float32."""
        windows = np.asarray(feature_windows, dtype=np.float32)
        expected = (self.model.n_features, self.model.seq_len)
        if windows.ndim != 3 or windows.shape[1:] != expected:
            raise ValueError(
                f"feature windows must have shape [B, {expected[0]}, {expected[1]}], got {windows.shape}"
            )
        return torch.from_numpy(np.ascontiguousarray(windows)).to(self.device)
