"""``bullflag evaluate``: the JSON report on stdout, and one line on stderr for a missing checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bullflag_model.checkpoint import save_checkpoint
from bullflag_model.model import BullFlagCNNMultiHead
from consumer.cli import main


def test_cli_json_prints_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(4)
    checkpoint = tmp_path / "m.pt"
    save_checkpoint(
        checkpoint, BullFlagCNNMultiHead().eval(), metadata={"trained": False, "serving_threshold": 0.4}
    )
    argv = ["evaluate", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out"), "--json"]
    argv += ["--windows", "300", "--shift-windows", "300", "--walk-series", "1", "--walk-bars", "230"]
    argv += ["--scale-windows", "16", "--deletion-windows", "8"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["serving_threshold"] == pytest.approx(0.4)
    assert report["trained"] is False
    assert (tmp_path / "out" / "report.json").is_file()


def test_cli_refuses_a_missing_checkpoint_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evaluate", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"bullflag evaluate: checkpoint {tmp_path / 'nope.pt'}: file not found"
    )
