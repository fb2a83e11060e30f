"""Training options: devices other than the CPU and a present CUDA device are refused."""

from __future__ import annotations

import pytest
import torch

from bullflag_model.training.options import TrainConfig, TrainError


def test_devices_other_than_cpu_and_present_cuda_are_refused() -> None:
    with pytest.raises(TrainError, match="not a torch device name"):
        TrainConfig(device="gpu0")
    with pytest.raises(TrainError, match="runs on cpu or cuda"):
        TrainConfig(device="meta")
    with pytest.raises(TrainError, match="data_workers"):
        TrainConfig(data_workers=-1)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="no CUDA device"):
            TrainConfig(device="cuda")
