"""Worker settings: precedence, validation messages that name the setting, generated docs."""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bullflag_model.intervals import parse_duration_ms
from consumer.cli import main
from consumer.config import (
    Settings,
    SettingsError,
    add_arguments,
    load_settings,
    settings_markdown,
)
from consumer.ops.metrics import WorkerMetrics

OPERATIONS_DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def parse(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return load_settings(parser.parse_args(argv), env or {})


def test_defaults() -> None:
    settings = parse([])
    assert settings == Settings()
    assert settings.bar_interval_ms == 60_000
    assert settings.threshold is None


def test_flag_beats_environment_beats_default() -> None:
    env = {"BULLFLAG_BAR_INTERVAL": "5m", "BULLFLAG_GROUP_ID": "from-env"}
    settings = parse(["--bar-interval", "1h"], env)
    assert settings.bar_interval_ms == 3_600_000
    assert settings.group_id == "from-env"


@pytest.mark.parametrize(
    ("argv", "env", "named"),
    [
        (["--bar-interval", "7x"], {}, "--bar-interval"),
        (["--bar-interval", "0s"], {}, "--bar-interval"),
        ([], {"BULLFLAG_THRESHOLD": "1.5"}, "BULLFLAG_THRESHOLD"),
        ([], {"BULLFLAG_GRADCAM": "maybe"}, "BULLFLAG_GRADCAM"),
        (["--input", "quotes"], {}, "--input"),
        (["--max-symbols", "0"], {}, "--max-symbols"),
        (["--metrics-port", "70000"], {}, "--metrics-port"),
        (["--bootstrap-servers", "127.0.0.1:notaport"], {}, "--bootstrap-servers"),
        ([], {"BULLFLAG_BOOTSTRAP_SERVERS": "kafka:9092,kafka"}, "BULLFLAG_BOOTSTRAP_SERVERS"),
        (["--session-timeout", "0s"], {}, "--session-timeout"),
        (["--heartbeat-interval", "0s"], {}, "--heartbeat-interval"),
    ],
)
def test_bad_values_name_the_setting(argv: list[str], env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=f"setting {named}:"):
        parse(argv, env)


def test_heartbeat_must_be_shorter_than_the_session_timeout() -> None:
    with pytest.raises(
        SettingsError, match="--heartbeat-interval 10s must be shorter than --session-timeout 10s"
    ):
        parse(["--heartbeat-interval", "10s", "--session-timeout", "10s"])
    assert parse(["--bootstrap-servers", " a:9092, b:9093"]).bootstrap_servers == "a:9092,b:9093"


@pytest.fixture
def root_logging() -> Iterator[None]:
    """Put the root logger back as it was: ``bullflag run`` configures logging for the process."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


@pytest.mark.usefixtures("root_logging")
@pytest.mark.parametrize(
    "checkpoint",
    [b"garbage", b"PK\x03\x04 a truncated zip", None],
    ids=["garbage", "truncated", "a folder"],
)
def test_run_stops_on_a_bad_checkpoint_with_one_line(
    checkpoint: bytes | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path
    if checkpoint is not None:
        path = tmp_path / "model.pt"
        path.write_bytes(checkpoint)
    assert main(["run", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bullflag run: checkpoint {path}"), err


def test_durations() -> None:
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("1d") == 86_400_000
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_ms("1.5m")


def test_secrets_are_redacted() -> None:
    settings = parse([], {"BULLFLAG_SASL_PASSWORD": "hunter2"})
    assert settings.sasl_password == "hunter2"
    assert settings.redacted()["sasl_password"] == "***"


def test_cli_stops_on_a_bad_setting_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["settings", "--bar-interval", "soon"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("bullflag: setting --bar-interval: invalid bar interval 'soon'")


def test_operations_doc_settings_table_is_generated_from_the_code() -> None:
    assert settings_markdown() in OPERATIONS_DOC.read_text(), (
        "run `bullflag settings --markdown` into docs/operations.md"
    )


def test_operations_doc_lists_every_metric() -> None:
    body, _ = WorkerMetrics(model_version="m", threshold=0.5).render()
    names = set(re.findall(r"^# HELP (\S+) ", body.decode(), re.MULTILINE))
    operations_doc = OPERATIONS_DOC.read_text()
    assert names, "the registry exposes metrics"
    missing = {name for name in names if f"`{name}`" not in operations_doc}
    assert missing == set(), f"add these metrics to the table in docs/operations.md: {sorted(missing)}"
