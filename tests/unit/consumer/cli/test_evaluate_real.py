"""``bullflag evaluate --real``: drawing labelled windows, and the one-line refusals."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from consumer.cli import main

REAL_PACKAGES = all(importlib.util.find_spec(p) is not None for p in ("backtesting", "arch"))


def test_draw_labels_needs_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--draw-labels", "c00", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "bullflag evaluate: --draw-labels needs --real"


def test_generator_needs_real(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--generator", "real-market", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == "bullflag evaluate: --generator needs --real"


@pytest.mark.skipif(not REAL_PACKAGES, reason="needs the 'real' extra")
def test_draw_labels_writes_one_picture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--real", "--draw-labels", "c00", "r01", "--out", str(tmp_path)]) == 0
    picture = tmp_path / "real" / "labels.png"
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.strip() == f"labels: {picture}"


@pytest.mark.skipif(not REAL_PACKAGES, reason="needs the 'real' extra")
def test_unknown_label_id_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", "--real", "--draw-labels", "zz9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bullflag evaluate --real: no label with id zz9 in the label file"]
