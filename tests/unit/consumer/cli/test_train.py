"""``bullflag train``: a tiny run writes a complete checkpoint; refused settings are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bullflag_model.checkpoint import load_checkpoint
from bullflag_model.evaluation.experiments import EVALUATION_SEEDS
from bullflag_model.features import FEATURE_SPEC
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams
from consumer.cli import main


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "tiny.pt"
    argv = ["train", "--out", str(path), "--seed", "5", "--train-windows", "384", "--val-windows", "256"]
    argv += ["--val-walk-series", "2", "--val-walk-bars", "300", "--epochs", "2", "--batch-size", "64"]
    argv += ["--no-fresh-data", "--data-workers", "0"]
    assert main([*argv, "--no-evaluate", "--no-progress"]) == 0
    return path


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


def test_cli_refuses_a_held_out_seed_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--seed", str(EVALUATION_SEEDS["windows"]), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("bullflag train: seed 20241 makes training data from held-out seeds")
    assert "\n" not in err


def test_cli_refuses_a_missing_device_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    assert main(["train", "--device", "cuda", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "bullflag train: device 'cuda': torch sees no CUDA device on this machine"
