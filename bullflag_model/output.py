"""The CNNOutput document: one inference, serialised to the JSON the signals topic carries.

Rounding policy (a document is about 450 bytes, 2.5 KB with a map): probabilities, ``sequence_score``
and ``threshold`` to 6 decimals; Grad-CAM intensities to 4 decimals. The shipped JSON Schema
(``schemas/cnn_output.schema.json``) is the contract; ``schema_version`` changes with it.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import orjson

from bullflag_model.infer import PROB_KEYS, BatchScores

SCHEMA_VERSION = 1
PROB_DECIMALS = 6
INTENSITY_DECIMALS = 4


def output_id(symbol: str, interval: str, bar_end_ts: int, model_version: str) -> str:
    """Deterministic id (32 hex chars): the same inference always gets the same id."""
    key = f"{symbol}\x1f{interval}\x1f{bar_end_ts}\x1f{model_version}".encode()
    return hashlib.blake2b(key, digest_size=16).hexdigest()


@cache
def cnn_output_schema() -> dict[str, Any]:
    """The JSON Schema of a CNNOutput document, as shipped in the package."""
    text = (resources.files("bullflag_model") / "schemas" / "cnn_output.schema.json").read_text()
    return json.loads(text)


@cache
def _indices(seq_len: int) -> list[int]:
    return list(range(seq_len))


def cnn_output(
    result: dict[str, Any],
    *,
    symbol: str,
    interval: str,
    bar_end_ts: int,
    window_start_ts: int,
    model_version: str,
    threshold: float,
    target_head: str = "sequence",
) -> dict[str, Any]:
    """Build the document from one ``BullFlagCNNInfer`` result dict (rounded, JSON-ready)."""
    cam = result.get("activation_map")
    (document,) = documents(
        probs=np.array([[result[key] for key in PROB_KEYS]], dtype=np.float64),
        sequence=np.array([result["sequence_score"]], dtype=np.float64),
        cams=[None if cam is None else np.asarray(cam, dtype=np.float64)],
        symbols=[symbol],
        interval=interval,
        bar_end_ts=np.array([bar_end_ts]),
        window_start_ts=np.array([window_start_ts]),
        model_version=model_version,
        threshold=threshold,
        target_head=target_head,
    )
    return document


def documents(
    *,
    probs: np.ndarray,
    sequence: np.ndarray,
    cams: list[np.ndarray | None],
    symbols: list[str],
    interval: str,
    bar_end_ts: np.ndarray,
    window_start_ts: np.ndarray,
    model_version: str,
    threshold: float,
    target_head: str = "sequence",
) -> list[dict[str, Any]]:
    """The documents of n rows: ``probs`` [n, 4] (``PROB_KEYS`` order), ``sequence`` [n], a map or None each.

    Rounding is done once per batch with numpy, so one document costs a dict and its JSON.
    """
    rounded_probs = np.round(np.asarray(probs, dtype=np.float64), PROB_DECIMALS).tolist()
    rounded_sequence = np.round(np.asarray(sequence, dtype=np.float64), PROB_DECIMALS).tolist()
    signals = (np.asarray(sequence) >= threshold).tolist()
    rounded_threshold = round(float(threshold), PROB_DECIMALS)
    out = []
    for i, symbol in enumerate(symbols):
        end = int(bar_end_ts[i])
        document: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": output_id(symbol, interval, end, model_version),
            "symbol": symbol,
            "interval": interval,
            "bar_end_ts": end,
            "window_start_ts": int(window_start_ts[i]),
            "model_version": model_version,
        }
        document.update(zip(PROB_KEYS, rounded_probs[i], strict=True))
        document["sequence_score"] = rounded_sequence[i]
        document["threshold"] = rounded_threshold
        document["signal"] = signals[i]
        cam = cams[i]
        document["activation_map"] = (
            None
            if cam is None
            else {
                "target_head": target_head,
                "indices": _indices(len(cam)),
                "intensities": np.round(cam.astype(np.float64), INTENSITY_DECIMALS).tolist(),
            }
        )
        out.append(document)
    return out


def encode_cnn_output(document: dict[str, Any]) -> bytes:
    """Serialise a document to the bytes published on the signals topic."""
    return orjson.dumps(document)


def encode_batch(
    scores: BatchScores,
    *,
    symbols: list[str],
    interval: str,
    bar_end_ts: np.ndarray,
    window_start_ts: np.ndarray,
    model_version: str,
    threshold: float,
) -> list[bytes]:
    """Serialise every row of a scored batch; ``symbols`` and the ts arrays align with its rows."""
    cams = [scores.cams[i] if has else None for i, has in enumerate(scores.has_cam.tolist())]
    batch = documents(
        probs=scores.probs,
        sequence=scores.sequence,
        cams=cams,
        symbols=symbols,
        interval=interval,
        bar_end_ts=bar_end_ts,
        window_start_ts=window_start_ts,
        model_version=model_version,
        threshold=threshold,
    )
    return [orjson.dumps(document) for document in batch]
