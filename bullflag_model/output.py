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
    sequence = round(float(result["sequence_score"]), PROB_DECIMALS)
    cam = result.get("activation_map")
    activation_map = None
    if cam is not None:
        intensities = np.round(np.asarray(cam, dtype=np.float64), INTENSITY_DECIMALS)
        activation_map = {
            "target_head": target_head,
            "indices": _indices(len(intensities)),
            "intensities": intensities.tolist(),
        }
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "id": output_id(symbol, interval, bar_end_ts, model_version),
        "symbol": symbol,
        "interval": interval,
        "bar_end_ts": int(bar_end_ts),
        "window_start_ts": int(window_start_ts),
        "model_version": model_version,
    }
    for key in PROB_KEYS:
        document[key] = round(float(result[key]), PROB_DECIMALS)
    document["sequence_score"] = sequence
    document["threshold"] = round(float(threshold), PROB_DECIMALS)
    document["signal"] = bool(result["sequence_score"] >= threshold)
    document["activation_map"] = activation_map
    return document


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
    return [
        encode_cnn_output(
            cnn_output(
                scores.row(i),
                symbol=symbol,
                interval=interval,
                bar_end_ts=int(bar_end_ts[i]),
                window_start_ts=int(window_start_ts[i]),
                model_version=model_version,
                threshold=threshold,
            )
        )
        for i, symbol in enumerate(symbols)
    ]
