"""Parity of the onnx and torch scoring backends on many windows: decisions, scores, maps, documents.

Run: ``python -m benchmarks.parity_backends`` (``--windows 100000`` by default: synthetic windows
of every generator kind (the training mix); ``--real`` adds every 200-bar window of each real
series the installed ``real`` extra ships (``bullflag_model.realdata``), and ``--bars`` a ``.npy``
of ``[N, 200, 5]`` OHLCV windows). Both backends score the same windows through the
worker's ``Scorer`` (features, chunks of 512, Grad-CAM on the rows at or above the serving
threshold, CNNOutput encoding), so the documents compared are the ones each would publish.

Reported: signal decisions that differ, the largest probability and sequence-score difference,
the largest Grad-CAM difference and maps whose peak bar differs, documents whose id differs, and
documents that differ after the document's rounding, each such value checked to sit on a rounding
boundary (the two raw values round to neighbouring steps and differ by far less than a step).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from benchmarks.report import print_table, write_json
from bullflag_model.features import features_in_chunks
from bullflag_model.infer import PROB_KEYS, BullFlagCNNInfer
from bullflag_model.output import INTENSITY_DECIMALS, PROB_DECIMALS
from bullflag_model.realdata.report import sliding_windows
from bullflag_model.realdata.series import load_all
from bullflag_model.synthetic import DEFAULT_PARAMS, KINDS, generate_windows
from consumer.core.scoring import MAX_CHUNK, Scorer
from consumer.core.windows import Windows

CHUNK = 10_000


def synthetic_bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` windows of the training mix (half bull flags at every stage, the rest every hard
    negative and random walks in equal shares), and each one's kind."""
    batch = generate_windows(n, seed=seed, params=DEFAULT_PARAMS)
    return batch.bars, batch.kind


def real_bars() -> dict[str, np.ndarray]:
    """Every 200-bar window of each real series the installed packages ship, by series name."""
    return {series.name: np.ascontiguousarray(sliding_windows(series.bars)) for series in load_all()}


def score_raw(infer: BullFlagCNNInfer, bars: np.ndarray) -> dict[str, np.ndarray]:
    """Raw float32 scores and maps (every row a map, for the map comparison) in worker chunks."""
    probs, sequence, cams = [], [], []
    for lo in range(0, len(bars), MAX_CHUNK):
        scores = infer.score(features_in_chunks(bars[lo : lo + MAX_CHUNK]))
        probs.append(scores.probs)
        sequence.append(scores.sequence)
        cams.append(scores.cams)
    return {
        "probs": np.concatenate(probs),
        "sequence": np.concatenate(sequence),
        "cams": np.concatenate(cams),
    }


def documents(infer: BullFlagCNNInfer, bars: np.ndarray) -> list[dict[str, Any]]:
    """The documents the worker would publish for ``bars`` (one symbol per window)."""
    ends = 1_732_550_400_000 + np.arange(len(bars), dtype=np.int64) * 60_000
    windows = Windows([f"S{i}" for i in range(len(bars))], bars, ends, ends - 200 * 60_000)
    scorer = Scorer(infer, "1m")
    out: list[dict[str, Any]] = []
    for lo in range(0, len(bars), CHUNK):
        part = Windows(
            windows.symbols[lo : lo + CHUNK],
            windows.bars[lo : lo + CHUNK],
            windows.bar_end_ts[lo : lo + CHUNK],
            windows.window_start_ts[lo : lo + CHUNK],
        )
        out += [orjson.loads(v) for v in scorer.score(part).values]
    return out


def on_boundary(a: float, b: float, decimals: int, raw_a: float, raw_b: float) -> bool:
    """``a`` != ``b`` only because ``raw_a`` and ``raw_b``, less than one step apart, fall either
    side of a rounding boundary (so they round to neighbouring steps)."""
    step = 10.0**-decimals
    return abs(a - b) <= step * 1.0001 and abs(raw_a - raw_b) < step


def compare_documents(
    torch_docs: list[dict[str, Any]], onnx_docs: list[dict[str, Any]], raw_t: dict, raw_o: dict
) -> dict[str, int]:
    """Ids, and every rounded value, of the two backends' documents; differences explained or not."""
    ids = sum(t["id"] != o["id"] for t, o in zip(torch_docs, onnx_docs, strict=True))
    differing_docs = boundary_values = unexplained = 0
    examples: list[str] = []
    for i, (t, o) in enumerate(zip(torch_docs, onnx_docs, strict=True)):
        if t == o:
            continue
        differing_docs += 1
        for k, key in enumerate((*PROB_KEYS, "sequence_score")):
            if t[key] != o[key]:
                raw_a = raw_t["probs"][i, k] if k < 4 else raw_t["sequence"][i]
                raw_b = raw_o["probs"][i, k] if k < 4 else raw_o["sequence"][i]
                explained = on_boundary(t[key], o[key], PROB_DECIMALS, float(raw_a), float(raw_b))
                boundary_values += explained
                unexplained += not explained
                if not explained and len(examples) < 5:
                    examples.append(f"row {i} {key}: {t[key]} vs {o[key]} (raw {raw_a} vs {raw_b})")
        if t["signal"] != o["signal"] or (t["activation_map"] is None) != (o["activation_map"] is None):
            unexplained += 1
            examples.append(f"row {i}: signal or map presence differs")
            continue
        if t["activation_map"] is not None:
            for j, (a, b) in enumerate(
                zip(t["activation_map"]["intensities"], o["activation_map"]["intensities"], strict=True)
            ):
                if a != b:
                    explained = on_boundary(
                        a, b, INTENSITY_DECIMALS, float(raw_t["cams"][i, j]), float(raw_o["cams"][i, j])
                    )
                    boundary_values += explained
                    unexplained += not explained
                    if not explained and len(examples) < 5:
                        examples.append(
                            f"row {i} bar {j}: {a} vs {b} "
                            f"(raw {raw_t['cams'][i, j]} vs {raw_o['cams'][i, j]})"
                        )
        for key in t.keys() - {*PROB_KEYS, "sequence_score", "activation_map"}:
            if t[key] != o[key]:
                unexplained += 1
                examples.append(f"row {i} {key}: {t[key]} vs {o[key]}")
    return {
        "documents": len(torch_docs),
        "ids_differing": ids,
        "documents_differing": differing_docs,
        "values_on_rounding_boundary": boundary_values,
        "values_differing_otherwise": unexplained,
        "examples_differing_otherwise": examples[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=100_000, help="synthetic windows")
    parser.add_argument("--seed", type=int, default=20_260)
    parser.add_argument("--real", action="store_true", help="add every window of the shipped real series")
    parser.add_argument("--bars", type=Path, default=None, help="real windows [N, 200, 5] as .npy")
    args = parser.parse_args()

    bars, kind = synthetic_bars(args.windows, args.seed)
    sources = {"synthetic": len(bars)}
    extra = real_bars() if args.real else {}
    if args.bars is not None:
        extra[str(args.bars)] = np.load(args.bars)
    for name, real in extra.items():
        bars = np.concatenate([bars, real.astype(bars.dtype)])
        kind = np.concatenate([kind, np.full(len(real), -1, dtype=kind.dtype)])
        sources[name] = len(real)
    reference = BullFlagCNNInfer(backend="torch", enable_gradcam=True)
    served = BullFlagCNNInfer(backend="onnx", enable_gradcam=True)
    threshold = reference.resolve_threshold(None)
    served.resolve_threshold(None)

    started = time.perf_counter()
    reference.threshold = served.threshold = 0.0
    raw_t, raw_o = score_raw(reference, bars), score_raw(served, bars)
    reference.threshold = served.threshold = threshold
    docs_t, docs_o = documents(reference, bars), documents(served, bars)

    decisions_t, decisions_o = raw_t["sequence"] >= threshold, raw_o["sequence"] >= threshold
    peaks_differ = raw_t["cams"].argmax(axis=1) != raw_o["cams"].argmax(axis=1)
    result: dict[str, Any] = {
        "windows": len(bars),
        "sources": sources,
        "kinds": {name: int(np.count_nonzero(kind == k)) for k, name in enumerate(KINDS)},
        "threshold": threshold,
        "signals_torch": int(decisions_t.sum()),
        "decisions_differing": int(np.count_nonzero(decisions_t != decisions_o)),
        "max_prob_diff": float(np.abs(raw_t["probs"] - raw_o["probs"]).max()),
        "max_sequence_diff": float(np.abs(raw_t["sequence"] - raw_o["sequence"]).max()),
        "max_cam_diff": float(np.abs(raw_t["cams"] - raw_o["cams"]).max()),
        "maps_with_a_different_peak_bar": int(np.count_nonzero(peaks_differ)),
        "seconds": time.perf_counter() - started,
    } | compare_documents(docs_t, docs_o, raw_t, raw_o)
    rows = [
        [k, f"{v:.3g}" if isinstance(v, float) else v] for k, v in result.items() if not isinstance(v, dict)
    ]
    print_table(["measure", "value"], rows)
    print(f"kinds: {result['kinds']}")
    write_json("parity_backends", result)


if __name__ == "__main__":
    main()
