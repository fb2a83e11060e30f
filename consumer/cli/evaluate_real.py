"""``bullflag evaluate --real``: judge a checkpoint on the real OHLCV shipped in registry packages.

The measurement is ``bullflag_model.realdata``'s; this command loads the checkpoint, the series and
the frozen labels, writes ``real/report.json`` and the galleries under ``--out`` and prints the
target table. ``--generator real-market`` takes the reference windows and the rule labeller's
settings from ``GeneratorParams.real_market()`` instead of the checkpoint's training generator.
``--draw-labels ID ...`` instead draws the named labelled windows to one PNG so
anyone can re-check a label. A missing package or checkpoint exits 2 with one line.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from bullflag_model.checkpoint import CheckpointError, load_checkpoint
from bullflag_model.realdata.labels import load_labels
from bullflag_model.realdata.report import evaluate_real
from bullflag_model.realdata.series import RealDataError, load_all
from bullflag_model.synthetic import GeneratorParams
from bullflag_model.training.metadata import trained_params

FALLBACK_THRESHOLD = 0.5
GENERATORS: dict[str, Callable[[dict[str, Any]], GeneratorParams]] = {
    "trained": trained_params,
    "real-market": lambda _metadata: GeneratorParams.real_market(),
}
"""``--generator``: where the reference windows and the rule labeller's settings come from."""


def _summary(report: dict[str, Any]) -> list[str]:
    """The target table, one line per target."""
    lines = [f"serving threshold {report['serving_threshold']:.4f}"]
    for row in report["targets"]:
        value = "n/a" if row["value"] is None else f"{row['value']:.4g}"
        lines.append(
            f"  {row['name']:<46} {value:>10}  target {row['target']:<10} {'met' if row['met'] else 'MISSED'}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the real-data evaluation (or draw labels); exit 2 with one line when it cannot."""
    try:
        return _run(args)
    except (CheckpointError, RealDataError) as exc:
        print(f"bullflag evaluate --real: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    """Load everything, measure, write the report and galleries (matplotlib is imported only here)."""
    from bullflag_model.realdata.gallery import draw_labels, missed_gallery, top_gallery

    loaded = load_checkpoint(args.checkpoint)
    metadata = loaded.metadata
    threshold = args.threshold
    if threshold is None:
        threshold = float(metadata.get("serving_threshold", FALLBACK_THRESHOLD))
    params = GENERATORS[args.generator](metadata)
    torch.set_num_threads(args.threads)
    series = {s.name: s for s in load_all()}
    labels = load_labels()
    out = Path(args.out) / "real"
    if args.draw_labels:
        by_id = {lab.id: lab for lab in labels}
        unknown = [i for i in args.draw_labels if i not in by_id]
        if unknown:
            raise RealDataError(f"no label with id {', '.join(unknown)} in the label file")
        path = draw_labels(loaded.model, series, [by_id[i] for i in args.draw_labels], out / "labels.png")
        print(f"labels: {path}")
        return 0
    log = (lambda _m: None) if args.json else (lambda m: print(f"evaluate --real: {m}", file=sys.stderr))
    report, scored = evaluate_real(
        loaded.model, threshold, list(series.values()), labels, params, args.synthetic_windows, log=log
    )
    galleries = {
        name: str(top_gallery(loaded.model, s, out / f"top_{name}.png")) for name, s in scored.items()
    }
    missed = missed_gallery(loaded.model, series, report["labels"]["rows"], out / "missed_flags.png")
    report = {
        "checkpoint": str(loaded.path),
        "model_version": loaded.model_version,
        "generator": args.generator,
        **report,
        "galleries": {"top": galleries, "missed_flags": None if missed is None else str(missed)},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print("\n".join(_summary(report)))
        print(f"report: {out / 'report.json'}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags ``bullflag evaluate`` gains for the real-data evaluation."""
    parser.add_argument(
        "--real",
        action="store_true",
        help="Judge the checkpoint on real OHLCV shipped in packages (the 'real' extra); writes OUT/real/.",
    )
    parser.add_argument(
        "--draw-labels",
        nargs="+",
        metavar="ID",
        default=None,
        help="With --real: draw these labelled windows.",
    )
    parser.add_argument(
        "--synthetic-windows", type=int, default=4000, help="With --real: generated reference windows."
    )
    parser.add_argument(
        "--generator",
        choices=tuple(GENERATORS),
        default="trained",
        help="With --real: reference windows and rule labeller from the checkpoint's training "
        "generator (default) or from GeneratorParams.real_market().",
    )
