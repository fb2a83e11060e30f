"""The CNNOutput document: written from a scored batch, read back and validated, and its schema.

This is the one module that knows the document: the worker's scorer writes through
:func:`encode_batch`, and ``explain``, ``demo`` and any reader go through :class:`CNNDocument`.

Rounding policy (a document is about 450 bytes, 2.5 KB with a map): probabilities, ``sequence_score``
and ``threshold`` to 6 decimals; Grad-CAM intensities to 4 decimals. The shipped JSON Schema
(``schemas/cnn_output.schema.json``) is the contract; ``schema_version`` changes with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import orjson

from bullflag_model.infer import PROB_KEYS, BatchScores
from bullflag_model.intervals import IntervalError, parse_interval

SCHEMA_VERSION = 1
PROB_DECIMALS = 6
INTENSITY_DECIMALS = 4


class DocumentError(ValueError):
    """A CNNOutput document is missing, ambiguous or malformed; the message names its source."""


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


@dataclass(frozen=True, slots=True)
class CNNDocument:
    """The fields of a CNNOutput document that a picture needs, validated.

    ``probs`` are the four head probabilities in :data:`bullflag_model.infer.PROB_KEYS` order;
    ``cam`` float64[n_bars] is the activation map's intensities, ``None`` when the document has none.
    """

    id: str
    symbol: str
    interval: str
    interval_ms: int
    window_start_ts: int
    bar_end_ts: int
    model_version: str
    probs: tuple[float, ...]
    sequence_score: float
    threshold: float
    signal: bool
    cam: np.ndarray | None

    @property
    def n_bars(self) -> int:
        """Bars in the window."""
        return (self.bar_end_ts - self.window_start_ts) // self.interval_ms

    @property
    def last_bar_ts(self) -> int:
        """Start (epoch ms) of the window's last bar, the bar whose close was scored."""
        return self.bar_end_ts - self.interval_ms

    @property
    def cam_peak(self) -> int | None:
        """Index of the bar (0 the oldest) where the activation map peaks; ``None`` without a map."""
        return None if self.cam is None else int(np.argmax(self.cam))

    @classmethod
    def from_bytes(cls, value: bytes | None, source: str) -> CNNDocument:
        """Decode and validate one record value; :class:`DocumentError` naming ``source`` if it is not one."""
        try:
            data = orjson.loads(value if value is not None else b"null")
        except orjson.JSONDecodeError as exc:
            raise DocumentError(f"{source}: not JSON ({exc}).") from None
        return cls.from_json(data, source)

    @classmethod
    def from_json(cls, data: Any, source: str) -> CNNDocument:
        """Validate a decoded CNNOutput object; raise :class:`DocumentError` naming ``source``."""
        if not isinstance(data, Mapping):
            raise DocumentError(f"{source}: a CNNOutput is a JSON object, not {type(data).__name__}.")
        where = f"{source} (id {data.get('id')!r})" if "id" in data else source
        fields = {
            "id": str,
            "symbol": str,
            "interval": str,
            "window_start_ts": int,
            "bar_end_ts": int,
            "model_version": str,
            "sequence_score": float,
            "threshold": float,
            "signal": bool,
        }
        fields |= dict.fromkeys(PROB_KEYS, float)
        values = {name: _field(data, name, kind, where) for name, kind in fields.items()}
        try:
            interval_ms = parse_interval(values["interval"])
        except IntervalError as exc:
            raise DocumentError(f"{where}: {exc}.") from None
        span = values["bar_end_ts"] - values["window_start_ts"]
        if span <= 0 or span % interval_ms:
            raise DocumentError(
                f"{where}: the window [{values['window_start_ts']}, {values['bar_end_ts']}) is not a "
                f"positive whole number of {values['interval']} bars."
            )
        return cls(
            id=values["id"],
            symbol=values["symbol"],
            interval=values["interval"],
            interval_ms=interval_ms,
            window_start_ts=values["window_start_ts"],
            bar_end_ts=values["bar_end_ts"],
            model_version=values["model_version"],
            probs=tuple(values[key] for key in PROB_KEYS),
            sequence_score=values["sequence_score"],
            threshold=values["threshold"],
            signal=values["signal"],
            cam=_activation_map(data.get("activation_map"), span // interval_ms, where),
        )


_KIND_NAMES: Final = {str: "a string", int: "an integer", float: "a finite number", bool: "true or false"}


def _field(data: Mapping[str, Any], name: str, kind: type, where: str) -> Any:
    """``data[name]`` checked against ``kind``: JSON integers count as floats, booleans as neither."""
    if name not in data or data[name] is None:
        raise DocumentError(f"{where}: the field {name!r} is missing; is this a CNNOutput document?")
    value = data[name]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind is float and number and (isinstance(value, int) or math.isfinite(value)):
        return float(value)
    if kind is int and number and isinstance(value, int):
        return value
    if kind in (str, bool) and isinstance(value, kind):
        return value
    raise DocumentError(f"{where}: the field {name!r} must be {_KIND_NAMES[kind]}, not {value!r}.")


def _activation_map(value: Any, n_bars: int, where: str) -> np.ndarray | None:
    """The map's intensities as float64[n_bars], or ``None`` for a document without one."""
    if value is None:
        return None
    intensities = value.get("intensities") if isinstance(value, Mapping) else None
    wrong = DocumentError(
        f"{where}: activation_map.intensities must list {n_bars} finite numbers, one per bar of the window."
    )
    if not isinstance(intensities, list) or len(intensities) != n_bars:
        raise wrong
    try:
        cam = np.asarray(intensities, dtype=np.float64)
    except (TypeError, ValueError):
        raise wrong from None
    if not np.isfinite(cam).all():
        raise wrong
    return cam


def load_document(path: str | os.PathLike[str], document_id: str | None = None) -> CNNDocument:
    """Read a CNNOutput from a JSON file: one object, a JSON array, or JSON Lines (one per line).

    With several documents in the file, ``document_id`` chooses one; with one, it must match if given.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read the document ({exc.strerror or exc}).") from None
    documents = _json_documents(raw, str(path))
    if document_id is not None:
        found = [d for d in documents if isinstance(d, Mapping) and d.get("id") == document_id]
        if not found:
            raise DocumentError(
                f"{path}: no CNNOutput with id {document_id!r} among its {len(documents)} documents."
            )
        return CNNDocument.from_json(found[0], str(path))
    if len(documents) != 1:
        raise DocumentError(f"{path} holds {len(documents)} documents; choose one with --id.")
    return CNNDocument.from_json(documents[0], str(path))


def _json_documents(raw: bytes, source: str) -> list[Any]:
    """The JSON values of a file: a whole-file object or array, else one value per non-empty line."""
    try:
        whole = orjson.loads(raw)
        return whole if isinstance(whole, list) else [whole]
    except orjson.JSONDecodeError:
        pass
    documents = []
    for number, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            documents.append(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            raise DocumentError(f"{source}, line {number}: not JSON ({exc}).") from None
    if not documents:
        raise DocumentError(f"{source}: the file is empty; expected a CNNOutput JSON document.")
    return documents
