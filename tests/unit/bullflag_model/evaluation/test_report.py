"""The evaluation report: a tiny full run has every section, writes its JSON and figures."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from bullflag_model.evaluation.experiments import SHIFTS, EvaluationConfig
from bullflag_model.evaluation.report import evaluate_model, write_outputs
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead


def _finite_numbers(node: Any, path: str = "") -> list[str]:
    """Paths of leaves that are not finite numbers, booleans, strings or None."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _finite_numbers(v, f"{path}.{k}")]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _finite_numbers(v, f"{path}[{i}]")]
    if isinstance(node, bool | str) or node is None:
        return []
    if isinstance(node, int | float) and math.isfinite(node):
        return []
    return [path]


TINY = EvaluationConfig(
    windows=400, shift_windows=400, walk_series=2, walk_bars=260, scale_windows=32, deletion_windows=24
)


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    torch.manual_seed(3)
    model = BullFlagCNNMultiHead().eval()
    out = tmp_path_factory.mktemp("evaluation")
    report, arrays = evaluate_model(model, 0.5, config=TINY)
    return write_outputs(model, report, arrays, out), out


def test_tiny_report_has_every_section(tiny_report: tuple[dict[str, Any], Path]) -> None:
    report, _ = tiny_report
    held_out = report["held_out"]
    assert set(held_out["heads"]) == set(HEAD_NAMES)
    for head in held_out["heads"].values():
        assert head["roc_auc"] is not None and head["average_precision"] is not None
        assert 0.0 <= head["ece"] <= 1.0
    assert held_out["sequence"]["average_precision"] is not None
    assert {"tp", "fp", "tn", "fn"} <= set(held_out["sequence"]["confusion"])
    assert "random_walk" in held_out["false_positive_rate_by_kind"]
    assert held_out["gradcam"]["pointing_game"] is not None
    assert {"cam_drop", "random_drop", "ratio"} <= set(held_out["gradcam"]["deletion"])
    assert report["false_alarms"]["scored_bars"] == 2 * 61
    assert set(report["scale_invariance"]["max_abs_diff"]) == {"x1000", "x0.001"}
    assert set(report["robustness"]) == set(SHIFTS)
    assert [row["name"] for row in report["targets"]] == [
        "min_head_roc_auc",
        "sequence_average_precision",
        "pointing_game",
        "deletion_ratio",
        "false_alarms_per_1000_bars",
        "scale_invariance_max_abs_diff",
    ]
    assert _finite_numbers(report) == []


def test_tiny_report_writes_json_and_figures(tiny_report: tuple[dict[str, Any], Path]) -> None:
    report, out = tiny_report
    assert json.loads((out / "report.json").read_text())["held_out"] == report["held_out"]
    for name in ("roc", "calibration", "examples"):
        path = Path(report["figures"][name])
        assert path.parent == out and path.stat().st_size > 5_000


def test_measuring_needs_no_matplotlib() -> None:
    code = "import sys; sys.modules['matplotlib'] = None; import bullflag_model.evaluation.report"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
