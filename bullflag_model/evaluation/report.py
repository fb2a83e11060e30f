"""The evaluation report: every experiment on its held-out data, checked against the targets.

``evaluate_model`` runs the experiments and returns the report as plain JSON types together with
the arrays its figures are drawn from; ``write_outputs`` writes ``report.json`` and the PNG figures
(matplotlib is imported only then, through ``bullflag_model.figures``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bullflag_model.evaluation.experiments import (
    CONTINUATION,
    SHIFTS,
    EvaluationConfig,
    false_alarms,
    scale_invariance,
    window_metrics,
)
from bullflag_model.model import BullFlagCNNMultiHead
from bullflag_model.synthetic import DEFAULT_PARAMS, GeneratorParams, generate_windows

TARGETS = {
    "min_head_roc_auc": 0.97,
    "sequence_average_precision": 0.95,
    "pointing_game": 0.90,
    "deletion_ratio": 3.0,
    "false_alarms_per_1000_bars": 1.0,
    "scale_invariance_max_abs_diff": 1e-4,
}


def _target_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    main = report["held_out"]
    aucs = [h["roc_auc"] for h in main["heads"].values()]
    deletion = main["gradcam"]["deletion"] or {}
    rows = [
        ("min_head_roc_auc", min(aucs) if None not in aucs else None, ">="),
        ("sequence_average_precision", main["sequence"]["average_precision"], ">="),
        ("pointing_game", main["gradcam"]["pointing_game"], ">="),
        ("deletion_ratio", deletion.get("ratio"), ">="),
        ("false_alarms_per_1000_bars", report["false_alarms"]["per_1000_bars"], "<="),
        ("scale_invariance_max_abs_diff", report["scale_invariance"]["worst"], "<="),
    ]
    out = []
    for name, value, sense in rows:
        target = TARGETS[name]
        met = value is not None and (value >= target if sense == ">=" else value <= target)
        if name == "deletion_ratio" and value is None and deletion:
            met = deletion["cam_drop"] > 0 >= deletion["random_drop"]
        out.append({"name": name, "target": f"{sense} {target:g}", "value": value, "met": bool(met)})
    return out


def evaluate_model(
    model: BullFlagCNNMultiHead,
    threshold: float,
    params: GeneratorParams = DEFAULT_PARAMS,
    config: EvaluationConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The full report (plain JSON types) and the arrays/batches the figures need.

    ``params`` is the training distribution (held-out windows use it with an unseen seed);
    robustness sets apply ``SHIFTS`` on top of it.
    """
    config = config or EvaluationConfig()
    say = progress or (lambda _message: None)
    model.eval()
    seeds = config.seeds
    say(f"held-out windows: {config.windows}")
    batch = generate_windows(config.windows, seeds["windows"], params)
    held_out, arrays = window_metrics(model, batch, threshold, config.deletion_windows, seeds["deletion"])
    say(f"false alarms: {config.walk_series} random walks x {config.walk_bars} bars")
    alarms = false_alarms(
        model, threshold, config.walk_series, config.walk_bars, seeds["random_walks"], params
    )
    say("scale invariance")
    scale = scale_invariance(model, batch.bars[: config.scale_windows])
    robustness: dict[str, Any] = {}
    shift_sequences: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for offset, (name, overrides) in enumerate(SHIFTS.items()):
        say(f"robustness: {name}")
        shifted = dataclasses.replace(params, **overrides)
        shift_batch = generate_windows(config.shift_windows, seeds["shifts"] + offset, shifted)
        metrics, shift_arrays = window_metrics(
            model, shift_batch, threshold, config.deletion_windows, seeds["deletion"]
        )
        robustness[name] = {"overrides": overrides, **metrics}
        shift_sequences[name] = (shift_arrays["sequence"], shift_batch.labels[:, CONTINUATION])
    report: dict[str, Any] = {
        "serving_threshold": float(threshold),
        "seeds": dict(seeds),
        "held_out": held_out,
        "false_alarms": alarms,
        "scale_invariance": scale,
        "robustness": robustness,
    }
    report["targets"] = _target_rows(report)
    return report, {"batch": batch, **arrays, "shift_sequences": shift_sequences}


def write_outputs(
    model: BullFlagCNNMultiHead, report: dict[str, Any], arrays: dict[str, Any], out_dir: Path
) -> dict[str, Any]:
    """Write figures and ``report.json`` into ``out_dir``; returns the report with figure paths.

    Needs matplotlib, imported here so that measuring a model does not.
    """
    from bullflag_model.figures import plot_calibration, plot_examples, plot_roc

    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "roc": str(plot_roc(arrays, out_dir / "roc.png")),
        "calibration": str(plot_calibration(arrays, out_dir / "calibration.png")),
        "examples": str(plot_examples(model, arrays, out_dir / "examples.png")),
    }
    report = {**report, "figures": figures}
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
