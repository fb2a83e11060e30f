"""Training progress: tqdm is optional, and the training code imports without it or matplotlib."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bullflag_model.training.progress import progress_bar, write_line


def test_without_tqdm_there_is_no_bar_and_lines_are_plain(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with progress_bar(3, "epoch 1/1", enabled=True) as bar:
        bar.update(1)
        bar.set_postfix(loss="0.5000", refresh=False)
    write_line("train: done")
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "train: done\n")


def test_a_disabled_bar_shows_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    with progress_bar(3, "epoch 1/1", enabled=False) as bar:
        bar.update(3)
    assert capsys.readouterr().err == ""


def test_training_code_imports_without_tqdm_or_matplotlib() -> None:
    code = (
        "import sys; sys.modules.update(tqdm=None, matplotlib=None); "
        "import bullflag_model.training.loop, bullflag_model.training.metadata"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
