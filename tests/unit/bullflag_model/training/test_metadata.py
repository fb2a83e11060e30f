"""Checkpoint metadata: only plain types are stored."""

from __future__ import annotations

import numpy as np
import pytest

from bullflag_model.training.metadata import plain
from bullflag_model.training.options import TrainError


def test_plain_refuses_objects() -> None:
    assert plain({"a": (np.float32(0.5), np.int64(2))}) == {"a": [0.5, 2]}
    with pytest.raises(TrainError, match="plain types"):
        plain({"a": object()})
