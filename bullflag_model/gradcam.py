"""Batched Grad-CAM for the 1D bull-flag CNN: one importance value in [0, 1] per input bar.

Mathematics (per window, ``A`` the ``[C, L_conv]`` output of the target conv block after its
activation, ``y`` the explained score):

    w_c = mean_t dy/dA[c, t]
    cam = ReLU(sum_c w_c * A[c])          # [L_conv]
    cam = cam / max(cam)                  # skipped when max(cam) == 0: an all-zero map stays zero
    cam = interpolate(cam, seq_len, linear, align_corners=False)

``y`` is a head's logit (a positive rescaling of its probability's gradient, so the normalised
map is the same, but it does not vanish when the sigmoid saturates) or, for ``"sequence"``,
the mean of the four heads' log-sigmoids: the log of their geometric mean, whose gradient is
the geometric mean's divided by a positive number and stays finite when a head saturates.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead

TARGET_HEADS = (*HEAD_NAMES, "sequence")


def cam_from_activations(activations: torch.Tensor, gradients: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Grad-CAM maps ``[B, seq_len]`` in [0, 1] from ``A`` and ``dy/dA``, both ``[B, C, L_conv]``."""
    weights = gradients.mean(dim=-1, keepdim=True)
    cam = F.relu((weights * activations).sum(dim=1))
    peak = cam.amax(dim=-1, keepdim=True)
    cam = torch.where(peak > 0, cam / torch.where(peak > 0, peak, 1.0), cam)
    upsampled = F.interpolate(cam.unsqueeze(1), size=seq_len, mode="linear", align_corners=False)
    return upsampled.squeeze(1).clamp_(0.0, 1.0)


def target_scores(logits: torch.Tensor, target_head: str) -> torch.Tensor:
    """The score ``[B]`` whose gradient Grad-CAM uses, from head logits ``[B, 4]`` (module doc)."""
    if target_head == "sequence":
        return F.logsigmoid(logits).mean(dim=1)
    return logits[:, HEAD_NAMES.index(target_head)]


class GradCAM1D:
    """Grad-CAM over a named conv layer of a ``BullFlagCNNMultiHead``, for one window or a batch.

    The model must expose ``logits(x) -> [B, 4]`` (heads in ``HEAD_NAMES`` order). A forward
    hook is registered for the duration of each call and removed in ``finally``; nothing (hooks,
    activations, autograd graph, parameter ``.grad``) outlives a call. Maps are computed in eval
    mode, so BatchNorm never mixes windows of a batch; the caller's mode is restored afterwards.
    """

    def __init__(
        self, model: BullFlagCNNMultiHead, target_layer_name: str = "conv4", device: str = "cpu"
    ) -> None:
        modules = dict(model.named_modules())
        if target_layer_name not in modules:
            names = ", ".join(n for n in modules if n)
            raise ValueError(f"model has no layer {target_layer_name!r}; layers: {names}")
        self.model = model
        self.device = torch.device(device)
        self.target_layer_name = target_layer_name
        self.target_layer = modules[target_layer_name]
        self._closed = False

    def generate_cam(self, x: torch.Tensor, target_head: str = "sequence") -> torch.Tensor:
        """Map ``[seq_len]`` in [0, 1] for one window ``x`` of shape ``[1, n_features, seq_len]``."""
        if x.dim() != 3 or x.shape[0] != 1:
            raise ValueError(
                f"generate_cam expects x of shape [1, n_features, seq_len], got {tuple(x.shape)}"
            )
        return self.generate_cams(x, target_head)[0]

    def generate_cams(self, x: torch.Tensor, target_head: str = "sequence") -> torch.Tensor:
        """Maps ``[B, seq_len]`` in [0, 1] for windows ``x`` ``[B, n_features, seq_len]``.

        One forward and one backward for the whole batch; row ``b`` equals
        ``generate_cam(x[b:b+1])`` because windows do not interact in eval mode.
        """
        if self._closed:
            raise RuntimeError("GradCAM1D is closed")
        if target_head not in TARGET_HEADS:
            raise ValueError(f"target_head must be one of {TARGET_HEADS}, got {target_head!r}")
        if x.dim() != 3:
            raise ValueError(f"expected x of shape [B, n_features, seq_len], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            return torch.zeros((0, x.shape[-1]))

        captured: list[torch.Tensor] = []

        def keep_activation(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            captured.append(output)
            return output.clone()

        was_training = self.model.training
        handle = self.target_layer.register_forward_hook(keep_activation)
        try:
            self.model.eval()
            with torch.inference_mode(False), torch.enable_grad():
                dtype = next(self.model.parameters()).dtype
                inputs = x.detach().to(self.device, dtype=dtype).clone().requires_grad_(True)
                scores = target_scores(self.model.logits(inputs), target_head)
                (gradients,) = torch.autograd.grad(scores.sum(), captured[0])
                cams = cam_from_activations(captured[0].detach(), gradients, inputs.shape[-1])
        finally:
            handle.remove()
            self.model.train(was_training)
        return cams.detach().cpu()

    def close(self) -> None:
        """Refuse further calls; per-call hooks are already gone, so nothing else is held."""
        self._closed = True

    def __enter__(self) -> GradCAM1D:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
