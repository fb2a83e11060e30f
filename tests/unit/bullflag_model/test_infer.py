"""BullFlagCNNInfer: batch equals single-window calls, Grad-CAM only above threshold, checkpoint errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bullflag_model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from bullflag_model.features import FEATURE_SPEC, build_features
from bullflag_model.gradcam import GradCAM1D
from bullflag_model.infer import PROB_KEYS, BullFlagCNNInfer
from bullflag_model.model import BullFlagCNNMultiHead
from tests.strategies import random_bars


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return build_features(random_bars(12, seed=5))


def test_infer_batch_equals_single_calls(windows: np.ndarray) -> None:
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0)
    batch = infer.infer_batch(windows)
    assert len(batch) == len(windows)
    for row, window in zip(batch, windows, strict=True):
        single = infer(window)
        for key in (*PROB_KEYS, "sequence_score"):
            assert row[key] == pytest.approx(single[key], abs=1e-6)
        np.testing.assert_allclose(row["activation_map"], single["activation_map"], atol=1e-5)


def test_sequence_score_is_geometric_mean(windows: np.ndarray) -> None:
    for row in BullFlagCNNInfer().infer_batch(windows):
        product = np.prod([row[key] for key in PROB_KEYS])
        assert row["sequence_score"] == pytest.approx(product**0.25, rel=1e-5)
        assert row["activation_map"] is None


def test_gradcam_only_for_rows_at_or_above_threshold(windows: np.ndarray) -> None:
    scores = BullFlagCNNInfer().score(windows).sequence
    threshold = float(np.median(scores))
    rows = BullFlagCNNInfer(enable_gradcam=True, threshold=threshold).infer_batch(windows)
    for row in rows:
        has_map = row["activation_map"] is not None
        assert has_map == (row["sequence_score"] >= threshold)
        if has_map:
            cam = np.asarray(row["activation_map"])
            assert cam.shape == (200,)
            assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert 0 < sum(row["activation_map"] is not None for row in rows) < len(rows)


def test_maps_equal_gradcam1d_on_the_same_rows(windows: np.ndarray) -> None:
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0)
    maps = np.stack([row["activation_map"] for row in infer.infer_batch(windows)])
    expected = GradCAM1D(infer.model, "conv4").generate_cams(torch.from_numpy(windows), "sequence")
    np.testing.assert_allclose(maps, expected.numpy(), atol=1e-5)


def test_rejects_wrong_window_shape() -> None:
    infer = BullFlagCNNInfer()
    with pytest.raises(ValueError, match=r"\[B, 9, 200\]"):
        infer.infer_batch(np.zeros((2, 9, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="n_features"):
        infer(np.zeros((2, 9, 200), dtype=np.float32))


def test_default_checkpoint_loads_with_version_and_metadata() -> None:
    infer = BullFlagCNNInfer()
    assert infer.model_version.startswith("bullflag-cnn+")
    assert "trained" in infer.metadata
    assert not infer.model.training


def test_round_trip_keeps_version(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = BullFlagCNNMultiHead().eval()
    version = save_checkpoint(tmp_path / "m.pt", model, metadata={"trained": False})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.model_version == version
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[name], tensor)


def test_missing_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError, match=r"nope\.pt: file not found"):
        BullFlagCNNInfer(path)


def test_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"definitely not a checkpoint")
    with pytest.raises(CheckpointError, match=r"corrupt\.pt: cannot be read"):
        BullFlagCNNInfer(path)


def test_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a bullflag-checkpoint file"):
        load_checkpoint(path)


def test_feature_spec_mismatch_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    save_checkpoint(path, BullFlagCNNMultiHead())
    payload = torch.load(path, weights_only=True)
    payload["feature_spec"]["version"] = FEATURE_SPEC.version + 1
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"old\.pt: trained on features"):
        load_checkpoint(path)


def test_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "shape.pt"
    save_checkpoint(path, BullFlagCNNMultiHead())
    payload = torch.load(path, weights_only=True)
    payload["model_config"]["channels"] = [16, 16, 16, 16]
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=r"shape\.pt: weights do not fit"):
        load_checkpoint(path)


def test_threshold_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        BullFlagCNNInfer(threshold=1.5)
