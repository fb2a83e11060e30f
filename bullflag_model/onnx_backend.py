"""The ONNX Runtime scoring backend: the exported graph, probabilities and maps in numpy, no torch.

Threads: one intra-op thread with spinning off by default. ONNX Runtime's idle pool threads
spin between calls, and a second pool thread takes the core the worker's event loop needs
(docs/performance.md has the measurements of both ways).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bullflag_model.backends import Forward, ModelInfo
from bullflag_model.cam_maps import maps_from_weights
from bullflag_model.features import FEATURE_SPEC
from bullflag_model.model_files import (
    ONNX_FORMAT,
    ONNX_FORMAT_VERSION,
    CheckpointError,
    export_hint,
    file_sha256,
)

DEFAULT_THREADS = 1


def _session(path: Path, threads: int, spinning: bool = False) -> ort.InferenceSession:
    """A session over ``path`` with ``threads`` intra-op threads that sleep between calls unless
    ``spinning`` (ONNX Runtime's default, kept to measure against)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(path, f"cannot be loaded by ONNX Runtime ({first})") from exc


def read_info(path: Path, session: ort.InferenceSession) -> ModelInfo:
    """Check the export's metadata against this code and its checkpoint; return what it describes."""
    props = session.get_modelmeta().custom_metadata_map
    if props.get("format") != ONNX_FORMAT or props.get("format_version") != str(ONNX_FORMAT_VERSION):
        raise CheckpointError(path, f"not a {ONNX_FORMAT} v{ONNX_FORMAT_VERSION} export")
    spec = json.loads(props["feature_spec"])
    if (spec.get("name"), spec.get("version")) != (FEATURE_SPEC.name, FEATURE_SPEC.version):
        raise CheckpointError(
            path,
            f"exported from a model trained on features {spec.get('name')!r} v{spec.get('version')!r}, "
            f"this code builds {FEATURE_SPEC.name!r} v{FEATURE_SPEC.version}",
        )
    checkpoint = path.with_suffix(".pt")
    if checkpoint.is_file() and file_sha256(checkpoint) != props["checkpoint_sha256"]:
        raise CheckpointError(
            path,
            f"is the export of an older {checkpoint.name}, not of the one beside it; "
            f"regenerate it with {export_hint(checkpoint)}",
        )
    return ModelInfo(
        path=path,
        model_version=props["model_version"],
        n_features=int(props["n_features"]),
        seq_len=int(props["seq_len"]),
        metadata=json.loads(props["metadata"]),
        metrics=json.loads(props["metrics"]),
    )


class OnnxBackend:
    """Scores with ONNX Runtime; the graph also returns ``conv4`` and its Grad-CAM channel weights."""

    name = "onnx"

    def __init__(self, path: Path, threads: int = 0, spinning: bool = False) -> None:
        if not path.is_file():
            checkpoint = path.with_suffix(".pt")
            raise CheckpointError(
                path, f"ONNX export not found; write it from the checkpoint with {export_hint(checkpoint)}"
            )
        self.path = path
        self.spinning = spinning
        self._session = _session(path, threads or DEFAULT_THREADS, spinning)
        self.info = read_info(path, self._session)

    def forward(self, windows: np.ndarray) -> Forward:
        """Logits, ``conv4`` and channel weights from the graph; probabilities and the geometric mean
        (in log space, ``-logaddexp(0, -z)``, so a saturated head stays finite) in float32 numpy."""
        logits, conv4, weights = self._session.run(None, {"windows": windows})
        log_probs = -np.logaddexp(np.float32(0.0), -logits)
        probs = np.exp(log_probs)
        sequence = np.exp(log_probs.mean(axis=1, dtype=np.float32)).astype(np.float32)
        return Forward(probs, sequence, (conv4, weights))

    def sequence_cams(self, forward: Forward, rows: np.ndarray) -> np.ndarray:
        """Maps for ``rows`` from the saved ``conv4`` and weights, in numpy (``cam_maps``)."""
        conv4, weights = forward.saved
        return maps_from_weights(conv4[rows], weights[rows], self.info.seq_len)

    def set_threads(self, threads: int) -> None:
        """Rebuild the session with ``threads`` intra-op threads (0: the default of one)."""
        self._session = _session(self.path, threads or DEFAULT_THREADS, self.spinning)
