"""Where the model files live and the error that names a bad one; torch-free for serving.

The shipped checkpoint ``weights/bullflag_cnn.pt`` has its ONNX export beside it,
``weights/bullflag_cnn.onnx``; any checkpoint's export is the same path with ``.onnx``.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

DEFAULT_CHECKPOINT_NAME = "bullflag_cnn.pt"
EXPORT_COMMAND = "bullflag export-onnx"
ONNX_FORMAT = "bullflag-onnx"
ONNX_FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file is missing, unreadable or does not match this code."""

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"checkpoint {path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def default_checkpoint_path() -> Path:
    """The checkpoint shipped inside the package."""
    return Path(str(resources.files("bullflag_model") / "weights" / DEFAULT_CHECKPOINT_NAME))


def onnx_path_for(checkpoint: Path) -> Path:
    """The ONNX export that belongs beside ``checkpoint``."""
    return checkpoint.with_suffix(".onnx")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes: ties an ONNX export to the exact checkpoint it came from."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_hint(checkpoint: Path) -> str:
    """The command that (re)writes ``checkpoint``'s ONNX export."""
    if checkpoint == default_checkpoint_path():
        return f"`{EXPORT_COMMAND}`"
    return f"`{EXPORT_COMMAND} --checkpoint {checkpoint}`"
