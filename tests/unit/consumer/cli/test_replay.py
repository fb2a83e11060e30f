"""``bullflag replay``: usage errors exit 2, and the connection and topic come from the settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from consumer.cli import main
from consumer.cli import replay as replay_command
from consumer.config import Settings
from consumer.sources.producer import ProduceStats

T0 = 1_732_550_400_000
GENERATE = ["replay", "--generate", "--symbols", "2", "--bars", "3", "--input", "bars", "--no-progress"]


def test_cli_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "--no-progress"]) == 2
    assert "either a file to replay or --generate" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv: no such file" in capsys.readouterr().err
    path = tmp_path / "t.csv"
    path.write_text(f"ts,symbol,price\n{T0},A,1.0\n")
    assert main(["replay", str(path), "--input", "bars"]) == 2
    assert "holds trades, but --input bars" in capsys.readouterr().err
    bars = tmp_path / "b.csv"
    bars.write_text(f"ts,symbol,o,h,l,c\n{T0},A,1.0,1.0,1.0,1.0\n")
    assert main(["replay", str(bars)]) == 2
    assert "cannot infer the bar length" in capsys.readouterr().err


@pytest.fixture
def produced(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Stand in for the producer; what ``bullflag replay`` asked it to send, and where."""
    calls: dict[str, Any] = {}

    async def produce_records(connection: Settings, topic: str, records: Any, **options: Any) -> ProduceStats:
        sent = list(records)
        calls.update(connection=connection, topic=topic, records=sent, options=options)
        return ProduceStats(len(sent), 0.5, sent[0][2], sent[-1][2])

    monkeypatch.setattr(replay_command, "produce_records", produce_records)
    return calls


def test_connection_and_topic_come_from_the_settings(
    produced: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BULLFLAG_BOOTSTRAP_SERVERS", "kafka-1:9093")
    monkeypatch.setenv("BULLFLAG_TICKS_TOPIC", "market.ticks")
    monkeypatch.setenv("BULLFLAG_SECURITY_PROTOCOL", "SASL_SSL")

    assert main(GENERATE) == 0

    settings = produced["connection"]
    assert isinstance(settings, Settings)
    assert (settings.bootstrap_servers, settings.security_protocol) == ("kafka-1:9093", "SASL_SSL")
    assert produced["topic"] == "market.ticks" and len(produced["records"]) == 6
    assert produced["options"]["client_id"] == "bullflag-replay"
    assert "to topic 'market.ticks' on kafka-1:9093" in capsys.readouterr().out


def test_flags_override_the_environment(
    produced: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BULLFLAG_BOOTSTRAP_SERVERS", "kafka-1:9093")
    monkeypatch.setenv("BULLFLAG_TICKS_TOPIC", "market.ticks")

    assert main([*GENERATE, "--bootstrap-servers", "127.0.0.1:9092", "--topic", "other"]) == 0

    assert produced["connection"].bootstrap_servers == "127.0.0.1:9092" and produced["topic"] == "other"
    assert "to topic 'other' on 127.0.0.1:9092" in capsys.readouterr().out


def test_defaults_without_environment(produced: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BULLFLAG_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("BULLFLAG_TICKS_TOPIC", raising=False)

    assert main(GENERATE) == 0

    assert produced["connection"].bootstrap_servers == "localhost:9092" and produced["topic"] == "ticks"
