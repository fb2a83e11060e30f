"""Evaluation metric maths against hand-computed cases, and the Grad-CAM quality helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bullflag_model.evaluation.metrics import (
    MetricError,
    average_precision,
    confusion,
    deletion_ratio,
    expected_calibration_error,
    false_alarm_rate,
    neutralise,
    pattern_extent,
    pointing_hits,
    roc_auc,
    roc_curve,
    top_fraction_mask,
)

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
