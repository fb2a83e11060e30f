"""The training loop: a tiny run learns, is deterministic, refuses held-out seeds; the shipped model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.evaluation.experiments import EVALUATION_SEEDS
from bullflag_model.evaluation.metrics import roc_auc
from bullflag_model.evaluation.scoring import score_features
from bullflag_model.features import build_features
from bullflag_model.synthetic import generate_windows
from bullflag_model.training.loop import train
from bullflag_model.training.metadata import command_line
from bullflag_model.training.options import TrainConfig, TrainError

TINY = TrainConfig(
    seed=5,
    train_windows=384,
    val_windows=256,
    val_walk_series=2,
    val_walk_bars=300,
    epochs=2,
    batch_size=64,
    fresh_data=False,
    data_workers=0,
)


def test_tiny_run_lowers_the_loss_and_is_deterministic() -> None:
    first = train(TINY, progress=False)
    second = train(TINY, progress=False)
    assert first.validation["val_loss"] < first.initial_val_loss
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    for name, tensor in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert first.serving_threshold == second.serving_threshold


def test_fresh_data_draws_new_windows_each_epoch_deterministically() -> None:
    fresh = dataclasses.replace(TINY, fresh_data=True)
    assert fresh.epoch_seeds() == [5, 5102]
    assert not set(fresh.epoch_seeds()[1:]) & set(fresh.seeds().values())
    first = train(fresh, progress=False)
    again = train(fresh, progress=False)
    same_data = train(TINY, progress=False)
    for name, tensor in first.model.state_dict().items():
        torch.testing.assert_close(again.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert first.history[0] == same_data.history[0], "the first epoch sees the same windows"
    pooled = train(dataclasses.replace(fresh, data_workers=1), progress=False)
    for name, tensor in first.model.state_dict().items():
        torch.testing.assert_close(pooled.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert first.history[1]["train_loss"] != same_data.history[1]["train_loss"]
    assert "--fresh-data" in command_line(fresh, evaluated=False).split()
    assert "--no-fresh-data" in command_line(TINY, evaluated=False).split()


def test_fresh_data_seeds_of_the_held_out_data_are_refused() -> None:
    fresh = TrainConfig(seed=20, epochs=142)  # fresh data by default: epoch 141 would use seed 20241
    with pytest.raises(TrainError, match="held-out seeds"):
        train(fresh, progress=False)


def test_seeds_of_the_held_out_data_are_refused() -> None:
    with pytest.raises(TrainError, match="held-out seeds"):
        train(TrainConfig(seed=EVALUATION_SEEDS["windows"] - 1), progress=False)


def test_shipped_checkpoint_is_trained_and_ranks_positives_first() -> None:
    loaded = load_checkpoint()
    assert loaded.metadata["trained"] is True
    assert 0.0 < loaded.metadata["serving_threshold"] < 1.0
    assert loaded.metrics["held_out"]["targets"]
    batch = generate_windows(600, seed=424_242)
    _, sequence = score_features(loaded.model, build_features(batch.bars))
    full = batch.labels[:, 3]
    assert full.sum() >= 20
    assert roc_auc(sequence, full) > 0.95
    assert np.median(sequence[full == 1]) > np.quantile(sequence[full == 0], 0.95)
