"""The bull-flag network: four 1D conv blocks and four sigmoid heads, one per pattern phase."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch import nn

from bullflag_model.features import N_FEATURES, SEQ_LEN
from bullflag_model.heads import HEAD_NAMES


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a ``BullFlagCNNMultiHead``; stored in checkpoints to rebuild the network."""

    n_features: int = N_FEATURES
    seq_len: int = SEQ_LEN
    channels: tuple[int, int, int, int] = (32, 64, 96, 128)
    kernel_sizes: tuple[int, int, int, int] = (7, 5, 5, 3)
    head_hidden: int = 32
    dropout: float = 0.1

    def as_dict(self) -> dict[str, object]:
        """Plain form (lists, ints, floats) that ``torch.load(weights_only=True)`` accepts."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, raw: dict[str, object]) -> ModelConfig:
        """Inverse of ``as_dict``; unknown keys raise ``TypeError``."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**fields)  # type: ignore[arg-type]


def _conv_block(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU, length-preserving."""
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm1d(c_out),
        nn.ReLU(inplace=True),
    )


class MultiHeadMLP(nn.Module):
    """Four independent two-layer MLP heads evaluated as one batched computation.

    Head ``k`` (``HEAD_NAMES[k]``) maps ``[B, d_in]`` to a logit through its own
    ``w1[k]``, ``b1[k]``, ReLU, ``w2[k]``, ``b2[k]``; batching the heads keeps the op count
    (and Python overhead at small batches) to a handful of kernels.
    """

    def __init__(self, d_in: int, hidden: int, n_heads: int = len(HEAD_NAMES)) -> None:
        super().__init__()
        bound1, bound2 = d_in**-0.5, hidden**-0.5
        self.w1 = nn.Parameter(torch.empty(n_heads, d_in, hidden).uniform_(-bound1, bound1))
        self.b1 = nn.Parameter(torch.empty(n_heads, hidden).uniform_(-bound1, bound1))
        self.w2 = nn.Parameter(torch.empty(n_heads, hidden).uniform_(-bound2, bound2))
        self.b2 = nn.Parameter(torch.empty(n_heads).uniform_(-bound2, bound2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``[B, n_heads]`` from features ``[B, d_in]``."""
        hidden = torch.relu(torch.einsum("bi,kih->bkh", x, self.w1) + self.b1)
        return (hidden * self.w2).sum(dim=-1) + self.b2

    def logits_and_input_gradient(
        self, x: torch.Tensor, upstream: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, n_heads]`` and ``d y / d x`` ``[B, d_in]`` in closed form, no autograd.

        ``upstream(logits)`` gives ``d y / d logits`` ``[B, n_heads]`` for the score ``y``
        being explained; the heads are ``w2 . relu(x w1 + b1) + b2``, so the rest is exact.
        """
        pre = torch.einsum("bi,kih->bkh", x, self.w1) + self.b1
        logits = (torch.relu(pre) * self.w2).sum(dim=-1) + self.b2
        back = upstream(logits)[:, :, None] * (pre > 0) * self.w2
        return logits, torch.einsum("bkh,kih->bi", back, self.w1)


class BullFlagCNNMultiHead(nn.Module):
    """1D CNN over ``[B, n_features, seq_len]`` windows with heads flag/breakout/retest/continuation.

    ``conv1`` .. ``conv4`` are conv blocks with max-pooling (stride 2) between them, so
    ``conv4`` outputs ``[B, C4, seq_len // 8]``: the layer Grad-CAM explains. Each head sees
    the time-average, the time-maximum and the last step of ``conv4`` (the last step tells
    the heads what happened most recently); ``forward`` returns each head's sigmoid
    probability ``[B, 1]`` by name, ``logits`` the four logits ``[B, 4]``.
    """

    def __init__(self, n_features: int = N_FEATURES, seq_len: int = SEQ_LEN, **kwargs: object) -> None:
        super().__init__()
        self.config = ModelConfig.from_dict({"n_features": n_features, "seq_len": seq_len, **kwargs})
        self.n_features = n_features
        self.seq_len = seq_len
        c1, c2, c3, c4 = self.config.channels
        k1, k2, k3, k4 = self.config.kernel_sizes
        self.conv1 = _conv_block(n_features, c1, k1)
        self.pool1 = nn.MaxPool1d(2)
        self.conv2 = _conv_block(c1, c2, k2)
        self.pool2 = nn.MaxPool1d(2)
        self.conv3 = _conv_block(c2, c3, k3)
        self.pool3 = nn.MaxPool1d(2)
        self.conv4 = _conv_block(c3, c4, k4)
        self.dropout = nn.Dropout(self.config.dropout)
        self.heads = MultiHeadMLP(3 * c4, self.config.head_hidden)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The conv stack: ``[B, n_features, seq_len]`` -> ``conv4`` output ``[B, C4, seq_len // 8]``."""
        return self.conv4(self.pool3(self.conv3(self.pool2(self.conv2(self.pool1(self.conv1(x)))))))

    def decode(self, a: torch.Tensor) -> torch.Tensor:
        """Head logits ``[B, 4]`` (``HEAD_NAMES`` order) from ``conv4`` output ``a``.

        Everything after the Grad-CAM layer, so Grad-CAM can rerun just this part.
        """
        pooled = torch.cat([a.mean(dim=-1), a.amax(dim=-1), a[..., -1]], dim=1)
        return self.heads(self.dropout(pooled))

    def sequence_channel_weights(self, a: torch.Tensor) -> torch.Tensor:
        """Grad-CAM channel weights ``w_c = mean_t dy/dA[c, t]`` ``[B, C4]`` of the sequence score.

        ``y`` is the mean of the heads' log-sigmoids. The heads see ``A`` only through its time
        mean, time maximum and last step, whose gradients each sum to the gradient of their
        pooled value over time (split evenly among tied maxima), so
        ``w_c = (g_mean + g_max + g_last)[c] / L_conv`` exactly, in eval mode.
        """
        pooled = torch.cat([a.mean(dim=-1), a.amax(dim=-1), a[..., -1]], dim=1)
        _, grad = self.heads.logits_and_input_gradient(pooled, lambda z: torch.sigmoid(-z) / z.shape[1])
        channels = a.shape[1]
        return (grad[:, :channels] + grad[:, channels : 2 * channels] + grad[:, 2 * channels :]) / a.shape[-1]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head logits ``[B, 4]`` in ``HEAD_NAMES`` order."""
        return self.decode(self.encode(x))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Head probabilities ``{name: [B, 1]}`` in (0, 1)."""
        probs = torch.sigmoid(self.logits(x))
        return {name: probs[:, k : k + 1] for k, name in enumerate(HEAD_NAMES)}
