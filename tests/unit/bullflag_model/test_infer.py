"""BullFlagCNNInfer: batch equals single-window calls, Grad-CAM only above threshold, checkpoint errors,
on both backends; the ONNX Runtime one agrees with torch and its rows do not depend on the batch."""

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

BACKENDS = ("torch", "onnx")


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    return build_features(random_bars(12, seed=5))


@pytest.mark.parametrize("backend", BACKENDS)
def test_infer_batch_equals_single_calls(windows: np.ndarray, backend: str) -> None:
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0, backend=backend)
    batch = infer.infer_batch(windows)
    assert len(batch) == len(windows)
    for row, window in zip(batch, windows, strict=True):
        single = infer(window)
        for key in (*PROB_KEYS, "sequence_score"):
            assert row[key] == pytest.approx(single[key], abs=1e-6)
        np.testing.assert_allclose(row["activation_map"], single["activation_map"], atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sequence_score_is_geometric_mean(windows: np.ndarray, backend: str) -> None:
    for row in BullFlagCNNInfer(backend=backend).infer_batch(windows):
        product = np.prod([row[key] for key in PROB_KEYS])
        assert row["sequence_score"] == pytest.approx(product**0.25, rel=1e-5)
        assert row["activation_map"] is None


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcam_only_for_rows_at_or_above_threshold(windows: np.ndarray, backend: str) -> None:
    scores = BullFlagCNNInfer(backend=backend).score(windows).sequence
    threshold = float(np.median(scores))
    rows = BullFlagCNNInfer(enable_gradcam=True, threshold=threshold, backend=backend).infer_batch(windows)
    for row in rows:
        has_map = row["activation_map"] is not None
        assert has_map == (row["sequence_score"] >= threshold)
        if has_map:
            cam = np.asarray(row["activation_map"])
            assert cam.shape == (200,)
            assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert 0 < sum(row["activation_map"] is not None for row in rows) < len(rows)


@pytest.mark.parametrize("backend", BACKENDS)
def test_maps_equal_gradcam1d_on_the_same_rows(windows: np.ndarray, backend: str) -> None:
    """Autograd Grad-CAM on the torch model is the oracle for both backends' closed form."""
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0, backend=backend)
    maps = np.stack([row["activation_map"] for row in infer.infer_batch(windows)])
    model = BullFlagCNNInfer(backend="torch").model
    expected = GradCAM1D(model, "conv4").generate_cams(torch.from_numpy(windows), "sequence")
    np.testing.assert_allclose(maps, expected.numpy(), atol=1e-4 if backend == "onnx" else 1e-5)
    assert np.array_equal(maps.argmax(axis=1), expected.numpy().argmax(axis=1))


def test_onnx_rows_are_bitwise_independent_of_the_batch() -> None:
    """A window scores to the same bits alone, in a batch of 7 or in one of 300."""
    windows = build_features(random_bars(300, seed=9))
    infer = BullFlagCNNInfer(enable_gradcam=True, threshold=0.0, backend="onnx")
    whole = infer.score(windows)
    parts = [infer.score(windows[lo : lo + 7]) for lo in range(0, 300, 7)]
    alone = [infer.score(windows[i : i + 1]) for i in range(0, 300, 37)]
    for field in ("probs", "sequence", "cams"):
        assert np.array_equal(np.concatenate([getattr(p, field) for p in parts]), getattr(whole, field))
        assert np.array_equal(np.concatenate([getattr(a, field) for a in alone]), getattr(whole, field)[::37])


def test_onnx_agrees_with_torch_on_extreme_windows() -> None:
    """Saturated heads stay finite and equal: flat, spiky, huge and all-zero windows."""
    bars = random_bars(8, seed=4)
    bars[0, :, :4] = 100.0
    bars[1, ::2, 1] *= 50.0
    bars[2, :, 4] = 0.0
    bars[3] *= 1e9
    bars[4, 100:, :4] *= 40.0
    windows = np.concatenate([build_features(bars), np.full((2, 9, 200), 10.0, np.float32)])
    torch_scores = BullFlagCNNInfer(backend="torch", enable_gradcam=True, threshold=0.0).score(windows)
    onnx_scores = BullFlagCNNInfer(backend="onnx", enable_gradcam=True, threshold=0.0).score(windows)
    np.testing.assert_allclose(onnx_scores.probs, torch_scores.probs, atol=1e-5)
    np.testing.assert_allclose(onnx_scores.sequence, torch_scores.sequence, atol=1e-5)
    np.testing.assert_allclose(onnx_scores.cams, torch_scores.cams, atol=1e-4)


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, onnx, torch"):
        BullFlagCNNInfer(backend="tensorrt")


def test_onnx_runs_on_the_cpu_only() -> None:
    with pytest.raises(ValueError, match="backend onnx runs on the cpu only"):
        BullFlagCNNInfer(backend="onnx", device="cuda")


@pytest.mark.parametrize("backend", BACKENDS)
def test_rejects_wrong_window_shape(backend: str) -> None:
    infer = BullFlagCNNInfer(backend=backend)
    with pytest.raises(ValueError, match=r"\[B, 9, 200\]"):
        infer.infer_batch(np.zeros((2, 9, 100), dtype=np.float32))
    with pytest.raises(ValueError, match="n_features"):
        infer(np.zeros((2, 9, 200), dtype=np.float32))


def test_default_checkpoint_loads_with_version_and_metadata() -> None:
    infer = BullFlagCNNInfer(backend="torch")
    assert infer.model_version.startswith("bullflag-cnn+")
    assert "trained" in infer.metadata
    assert not infer.model.training
    served = BullFlagCNNInfer()
    assert served.backend_name == "onnx"
    assert (served.model_version, served.metadata, served.metrics) == (
        infer.model_version,
        infer.metadata,
        infer.metrics,
    )
    with pytest.raises(AttributeError, match="use backend='torch'"):
        _ = served.model


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
