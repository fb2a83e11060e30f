"""``bullflag demo``: score a generated market with the shipped model and explain the signals."""

from __future__ import annotations

import argparse

import numpy as np

from bullflag_model.features import build_features
from bullflag_model.infer import PROB_KEYS, BullFlagCNNInfer
from bullflag_model.synthetic import KINDS, generate_windows


def run(args: argparse.Namespace) -> int:
    """Generate windows, score them in one batch, print one line per window and a summary."""
    batch = generate_windows(args.windows, seed=args.seed)
    infer = BullFlagCNNInfer(args.checkpoint, enable_gradcam=True, threshold=args.threshold)
    scores = infer.score(build_features(batch.bars))
    trained = infer.metadata.get("trained", True)
    print(f"model {infer.model_version}{'' if trained else ' (UNTRAINED: scores are meaningless)'}")
    print(
        f"{'#':>3} {'kind':<18} {'labels':<8} "
        + " ".join(f"{k[:5]:>6}" for k in PROB_KEYS)
        + "  score  cam peak"
    )
    for i in range(len(scores.sequence)):
        labels = "".join(str(int(v)) for v in batch.labels[i])
        probs = " ".join(f"{p:6.3f}" for p in scores.probs[i])
        peak = f"bar {int(np.argmax(scores.cams[i])):>3}" if scores.has_cam[i] else ""
        mark = "*" if scores.has_cam[i] else " "
        print(f"{i:>3} {KINDS[batch.kind[i]]:<18} {labels:<8} {probs} {scores.sequence[i]:6.3f}{mark} {peak}")
    signals = int(scores.has_cam.sum())
    print(f"{signals} of {len(scores.sequence)} windows at or above threshold {infer.threshold}")
    return 0


def add_parser(subcommands: argparse._SubParsersAction) -> None:
    """Register ``bullflag demo``."""
    parser = subcommands.add_parser("demo", help="Score a generated market and explain the signals.")
    parser.add_argument("--windows", type=int, default=40, help="How many generated windows to score.")
    parser.add_argument("--seed", type=int, default=7, help="Seed of the generated market.")
    parser.add_argument("--threshold", type=float, default=0.5, help="Signal threshold on sequence_score.")
    parser.add_argument("--checkpoint", default=None, help="Checkpoint file (default: the shipped one).")
    parser.set_defaults(handler=run)
