"""Training: a tiny run learns and writes a complete checkpoint; threshold choice; the shipped model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.evaluate import EVALUATION_SEEDS, roc_auc, score_features
from bullflag_model.features import FEATURE_SPEC, build_features
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, generate_windows
from bullflag_model.train import (
    TrainConfig,
    TrainError,
    best_f1_threshold,
    choose_serving_threshold,
    command_line,
    lowest_allowed_threshold,
    plain,
    train,
)
from consumer.cli import main

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


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "tiny.pt"
    argv = ["train", "--out", str(path), "--seed", "5", "--train-windows", "384", "--val-windows", "256"]
    argv += ["--val-walk-series", "2", "--val-walk-bars", "300", "--epochs", "2", "--batch-size", "64"]
    argv += ["--no-fresh-data", "--data-workers", "0"]
    assert main([*argv, "--no-evaluate", "--no-progress"]) == 0
    return path


def test_tiny_run_lowers_the_loss_and_is_deterministic() -> None:
    first = train(TINY, progress=False)
    second = train(TINY, progress=False)
    assert first.validation["val_loss"] < first.initial_val_loss
    assert first.history[-1]["train_loss"] < first.history[0]["train_loss"]
    for name, tensor in first.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert first.serving_threshold == second.serving_threshold


def test_checkpoint_loads_with_weights_only_and_has_the_metadata(tiny_checkpoint: Path) -> None:
    payload = torch.load(tiny_checkpoint, weights_only=True)
    metadata = payload["metadata"]
    assert metadata["trained"] is True
    assert 0.0 <= metadata["serving_threshold"] <= 1.0
    assert metadata["feature_spec"] == {"name": FEATURE_SPEC.name, "version": FEATURE_SPEC.version}
    assert GeneratorParams.from_dict(metadata["generator_params"]) == DEFAULT_PARAMS
    seeds = {"train": 5, "validation": 6, "validation_walks": 7, "train_per_epoch": [5, 5]}
    assert metadata["seeds"] == seeds
    assert metadata["train_config"]["train_windows"] == 384
    assert metadata["command"].startswith("bullflag train --seed 5 --train-windows 384")
    assert len(metadata["history"]) == 2
    assert set(payload["metrics"]["validation"]["roc_auc"]) == {"flag", "breakout", "retest", "continuation"}
    loaded = load_checkpoint(tiny_checkpoint)
    assert loaded.metadata["serving_threshold"] == metadata["serving_threshold"]


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


def test_lowest_allowed_threshold() -> None:
    scores = np.r_[np.linspace(0.0, 0.5, 1_996), 0.6, 0.7, 0.8, 0.9]
    # 0.5 per 1,000 of 2,000 scores: one score may reach the threshold, so it must exceed 0.8
    threshold = lowest_allowed_threshold(scores, 0.5)
    assert 0.8 < threshold <= 0.8 + 1e-12
    assert lowest_allowed_threshold(scores, 1_000.0) == 0.0


def test_best_f1_threshold_respects_the_floor() -> None:
    scores = np.array([0.95, 0.9, 0.6, 0.55, 0.3, 0.2])
    labels = np.array([1, 1, 1, 0, 0, 0])
    assert best_f1_threshold(scores, labels, 0.0) == (pytest.approx(0.6), pytest.approx(1.0))
    threshold, f1 = best_f1_threshold(scores, labels, 0.7)
    assert threshold == pytest.approx(0.9) and f1 == pytest.approx(0.8)


def test_choose_serving_threshold_rounds_up() -> None:
    choice = choose_serving_threshold(
        np.array([0.95, 0.912345, 0.2]), np.array([1, 1, 0]), np.linspace(0, 0.5, 3_000), 0.5
    )
    # best F1 at 0.912345, rounded up to 0.9124: that positive now falls below the threshold
    assert choice["serving_threshold"] == pytest.approx(0.9124)
    assert choice["validation_recall"] == pytest.approx(0.5)
    assert choice["validation_false_alarms_per_1000_bars"] == 0.0


def test_plain_refuses_objects() -> None:
    assert plain({"a": (np.float32(0.5), np.int64(2))}) == {"a": [0.5, 2]}
    with pytest.raises(TrainError, match="plain types"):
        plain({"a": object()})


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


def test_cli_refuses_a_held_out_seed_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--seed", str(EVALUATION_SEEDS["windows"]), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bullflag train: seed 20241 makes training data from held-out seeds")
    assert "\n" not in err


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


def test_cli_refuses_a_missing_device_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["train", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bullflag train: device 'cuda': torch sees no CUDA device on this machine"
