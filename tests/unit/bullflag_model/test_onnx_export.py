"""The ONNX export: the shipped file is the export of the shipped checkpoint, any checkpoint
exports and scores like torch, and a stale or foreign export is refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bullflag_model.checkpoint import load_checkpoint, save_checkpoint
from bullflag_model.features import build_features
from bullflag_model.infer import BullFlagCNNInfer
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.model_files import CheckpointError, default_checkpoint_path, onnx_path_for
from bullflag_model.onnx_export import export_model, export_onnx
from consumer.cli import main
from tests.strategies import random_bars


def test_the_shipped_onnx_file_is_the_export_of_the_shipped_checkpoint() -> None:
    """Fails whenever the checkpoint changes without its export: the message names the command."""
    shipped = onnx_path_for(default_checkpoint_path())
    fresh = export_model().SerializeToString(deterministic=True)
    assert shipped.is_file(), f"{shipped} is missing: run `bullflag export-onnx`"
    assert shipped.read_bytes() == fresh, (
        f"{shipped} is not the export of {default_checkpoint_path()}: "
        "run `python -m consumer.cli export-onnx` and commit the file"
    )
    assert BullFlagCNNInfer(backend="onnx").model_version == load_checkpoint().model_version


def test_export_is_deterministic_and_check_mode_agrees(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    checkpoint = tmp_path / "m.pt"
    torch.manual_seed(3)
    save_checkpoint(checkpoint, BullFlagCNNMultiHead().eval())
    assert main(["export-onnx", "--checkpoint", str(checkpoint)]) == 0
    first = onnx_path_for(checkpoint).read_bytes()
    assert export_model(checkpoint).SerializeToString(deterministic=True) == first
    assert main(["export-onnx", "--checkpoint", str(checkpoint), "--check"]) == 0
    torch.manual_seed(4)
    save_checkpoint(checkpoint, BullFlagCNNMultiHead().eval())
    assert main(["export-onnx", "--checkpoint", str(checkpoint), "--check"]) == 1
    assert "is not the export of" in capsys.readouterr().err


def _trained_looking(model: BullFlagCNNMultiHead) -> BullFlagCNNMultiHead:
    """Give batch norm non-trivial statistics, so folding it is actually exercised."""
    generator = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.2)
    return model.eval()


@pytest.mark.parametrize(
    "config",
    [{}, {"channels": (8, 16, 24, 12), "kernel_sizes": (3, 5, 3, 7), "head_hidden": 5}],
    ids=["default-shape", "other-shape"],
)
def test_any_checkpoint_exports_and_scores_like_torch(tmp_path: Path, config: dict) -> None:
    checkpoint = tmp_path / "any.pt"
    torch.manual_seed(11)
    save_checkpoint(checkpoint, _trained_looking(BullFlagCNNMultiHead(**config)))
    export_onnx(checkpoint)
    windows = build_features(random_bars(48, seed=2))
    reference = BullFlagCNNInfer(checkpoint, backend="torch", enable_gradcam=True, threshold=0.0)
    served = BullFlagCNNInfer(checkpoint, backend="onnx", enable_gradcam=True, threshold=0.0)
    assert served.backend_name == "onnx" and served.model_version == reference.model_version
    expected, got = reference.score(windows), served.score(windows)
    np.testing.assert_allclose(got.probs, expected.probs, atol=1e-5)
    np.testing.assert_allclose(got.sequence, expected.sequence, atol=1e-5)
    np.testing.assert_allclose(got.cams, expected.cams, atol=1e-4)


def test_a_stale_export_is_refused_with_the_command_that_rewrites_it(tmp_path: Path) -> None:
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(checkpoint, BullFlagCNNMultiHead().eval())
    export_onnx(checkpoint)
    save_checkpoint(checkpoint, BullFlagCNNMultiHead().eval(), metadata={"retrained": True})
    with pytest.raises(
        CheckpointError, match=r"m\.onnx: is the export of an older m\.pt.*bullflag export-onnx"
    ):
        BullFlagCNNInfer(checkpoint, backend="onnx")


def test_a_missing_export_names_the_command(tmp_path: Path) -> None:
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(checkpoint, BullFlagCNNMultiHead().eval())
    with pytest.raises(
        CheckpointError, match=r"m\.onnx: ONNX export not found.*bullflag export-onnx --checkpoint"
    ):
        BullFlagCNNInfer(checkpoint, backend="onnx")
    assert BullFlagCNNInfer(checkpoint).backend_name == "torch"


def test_a_file_that_is_not_an_export_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match=r"junk\.onnx: cannot be loaded by ONNX Runtime"):
        BullFlagCNNInfer(path, backend="onnx")
