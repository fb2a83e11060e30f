"""Evaluation: metric functions against hand-computed cases, Grad-CAM helpers, and a tiny full report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from bullflag_model.checkpoint import save_checkpoint
from bullflag_model.evaluate import (
    SHIFTS,
    EvaluationConfig,
    MetricError,
    average_precision,
    confusion,
    deletion_ratio,
    evaluate_model,
    expected_calibration_error,
    false_alarm_rate,
    neutralise,
    pattern_extent,
    pointing_hits,
    roc_auc,
    roc_curve,
    top_fraction_mask,
    write_outputs,
)
from bullflag_model.model import HEAD_NAMES, BullFlagCNNMultiHead
from consumer.cli import main

SCORES = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
LABELS = np.array([1, 0, 1, 0, 0, 1])


def test_roc_auc_by_hand() -> None:
    # positives 0.9, 0.7, 0.4 beat 3, 2 and 0 of the 3 negatives: 5 of 9 pairs
    assert roc_auc(SCORES, LABELS) == pytest.approx(5 / 9)
    assert roc_auc(np.array([0.5, 0.5, 0.5, 0.5]), np.array([1, 0, 1, 0])) == pytest.approx(0.5)
    assert roc_auc(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 1])) == pytest.approx(1.0)


def test_roc_curve_area_equals_auc() -> None:
    fpr, tpr, thresholds = roc_curve(SCORES, LABELS)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert math.isinf(thresholds[0])
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(SCORES, LABELS))


def test_average_precision_by_hand() -> None:
    # hits at ranks 1, 3, 6: precisions 1, 2/3, 3/6
    assert average_precision(SCORES, LABELS) == pytest.approx((1 + 2 / 3 + 3 / 6) / 3)
    # a tie of everything is one threshold: precision = base rate
    assert average_precision(np.full(4, 0.3), np.array([1, 0, 0, 0])) == pytest.approx(0.25)


def test_expected_calibration_error_by_hand() -> None:
    # bin [0.0667, 0.133): p 0.1, y mean 0.5 -> 0.4; bin [0.867, 0.933): p 0.9, y mean 1 -> 0.1
    probs = np.array([0.1, 0.1, 0.9, 0.9])
    assert expected_calibration_error(probs, np.array([0, 1, 1, 1])) == pytest.approx(0.25)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0, 1])) == pytest.approx(0.0)


def test_confusion_by_hand() -> None:
    table = confusion(SCORES, LABELS, 0.65)
    assert (table["tp"], table["fp"], table["tn"], table["fn"]) == (2, 1, 2, 1)
    assert table["precision"] == pytest.approx(2 / 3)
    assert table["recall"] == pytest.approx(2 / 3)
    assert table["false_positive_rate"] == pytest.approx(1 / 3)


def test_metrics_refuse_undefined_input() -> None:
    with pytest.raises(MetricError, match="positive and one negative"):
        roc_auc(np.array([0.1, 0.2]), np.array([1, 1]))
    with pytest.raises(MetricError, match="equally long"):
        average_precision(np.array([0.1, 0.2]), np.array([1]))
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        expected_calibration_error(np.array([1.5]), np.array([1]))


def test_false_alarm_rate_and_deletion_ratio() -> None:
    scores = np.zeros(2_000)
    scores[:3] = 0.9
    assert false_alarm_rate(scores, 0.5) == pytest.approx(1.5)
    assert deletion_ratio(0.6, 0.2) == pytest.approx(3.0)
    assert deletion_ratio(0.6, 0.0) is None


def test_pattern_extent_and_pointing() -> None:
    spans = np.full((2, 5, 2), -1, dtype=np.int32)
    spans[0, 0], spans[0, 1], spans[0, 4] = (100, 110), (110, 140), (160, 175)
    spans[1, 0], spans[1, 1] = (50, 60), (60, 80)
    extent = pattern_extent(spans)
    np.testing.assert_array_equal(extent, [[100, 175], [50, 80]])
    cams = np.zeros((2, 200))
    cams[0, 174], cams[1, 80] = 1.0, 1.0
    np.testing.assert_array_equal(pointing_hits(cams, extent), [True, False])


def test_neutralise_flattens_at_the_previous_kept_close() -> None:
    bars = np.array(
        [
            [
                [10, 11, 9, 10.5, 100],
                [10.5, 12, 10, 11, 300],
                [11, 13, 10.5, 12, 200],
                [12, 12.5, 11, 11.5, 400],
            ]
        ],
        dtype=np.float64,
    )
    mask = np.array([[True, False, True, True]])
    out = neutralise(bars, mask)
    np.testing.assert_allclose(out[0, 0], [10, 10, 10, 10, 250])  # first bar: its own open
    np.testing.assert_allclose(out[0, 1], bars[0, 1])
    np.testing.assert_allclose(out[0, 2], [11, 11, 11, 11, 250])
    np.testing.assert_allclose(out[0, 3], [11, 11, 11, 11, 250])


def test_top_fraction_mask_counts_and_ties() -> None:
    importance = np.tile(np.linspace(0, 1, 200), (3, 1))
    importance[2] = 0.0
    mask = top_fraction_mask(importance, 0.2)
    assert mask.sum(axis=1).tolist() == [40, 40, 40]
    assert mask[0, 160:].all() and not mask[0, :160].any()
    assert mask[2, :40].all()


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
