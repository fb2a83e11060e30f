"""The torch scoring backend: the reference the ONNX Runtime one is held to; also CUDA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from bullflag_model.backends import Forward, ModelInfo
from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.gradcam import cam_from_activations
from bullflag_model.model import BullFlagCNNMultiHead


class TorchBackend:
    """Scores with the checkpoint's ``BullFlagCNNMultiHead`` in eval mode under ``inference_mode``."""

    name = "torch"

    def __init__(self, checkpoint: Path | None, device: str = "cpu") -> None:
        loaded = load_checkpoint(checkpoint, device)
        self.model: BullFlagCNNMultiHead = loaded.model
        self.device = torch.device(device)
        self.info = ModelInfo(
            path=loaded.path,
            model_version=loaded.model_version,
            n_features=loaded.model.n_features,
            seq_len=loaded.model.seq_len,
            metadata=loaded.metadata,
            metrics=loaded.metrics,
        )

    def forward(self, windows: np.ndarray) -> Forward:
        """Probabilities and the log-space geometric mean from one forward; ``conv4`` kept as a tensor."""
        x = torch.from_numpy(windows).to(self.device)
        with torch.inference_mode():
            activations = self.model.encode(x)
            logits = self.model.decode(activations)
            probs = torch.sigmoid(logits)
            sequence = F.logsigmoid(logits).mean(dim=1).exp()
        return Forward(probs.cpu().numpy(), sequence.cpu().numpy(), activations)

    def sequence_cams(self, forward: Forward, rows: np.ndarray) -> np.ndarray:
        """Maps from the saved ``conv4`` and the closed-form weights: no second forward, no autograd.

        Equal to ``GradCAM1D(model, "conv4").generate_cams(x, "sequence")`` on the same rows.
        """
        index = torch.from_numpy(rows).to(self.device)
        with torch.inference_mode():
            activations = forward.saved[index]
            weights = self.model.sequence_channel_weights(activations)
            cams = cam_from_activations(
                activations, weights[:, :, None].expand_as(activations), self.model.seq_len
            )
        return cams.cpu().numpy()

    def set_threads(self, threads: int) -> None:
        """torch's intra-op threads (``torch.set_num_threads`` applies to the calling thread's pool)."""
        torch.set_num_threads(threads)
