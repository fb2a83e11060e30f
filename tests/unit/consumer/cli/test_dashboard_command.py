"""``bullflag dashboard``'s flags: topics over the environment, the port and the metrics URL checked."""

from __future__ import annotations

import pytest

from consumer.cli import build_parser
from consumer.cli.dashboard import DEFAULT_PORT, dashboard_settings


def test_flags_override_the_environment_and_the_state_topic_follows_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BULLFLAG_GROUP_ID", "prod")
    monkeypatch.setenv("BULLFLAG_SIGNALS_TOPIC", "env-signals")
    args = build_parser().parse_args(["dashboard", "--bootstrap-servers", "k:9093"])
    settings = dashboard_settings(args)
    assert (settings.bootstrap_servers, settings.signals_topic, settings.state_topic) == (
        "k:9093",
        "env-signals",
        "prod.state",
    )
    assert (args.host, args.port, args.metrics_url) == ("127.0.0.1", DEFAULT_PORT, None)
    args = build_parser().parse_args(
        [
            "dashboard",
            "--signals-topic",
            "s",
            "--state-topic",
            "st",
            "--port",
            "0",
            "--metrics-url",
            "http://w:9108/",
        ]
    )
    settings = dashboard_settings(args)
    assert (settings.signals_topic, settings.state_topic, args.port, args.metrics_url) == (
        "s",
        "st",
        0,
        "http://w:9108",
    )


@pytest.mark.parametrize(
    ("flag", "value"), [("--port", "70000"), ("--port", "x"), ("--metrics-url", "w:9108")]
)
def test_bad_flags_exit_2_naming_the_flag(flag: str, value: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["dashboard", flag, value])
    assert exit_info.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
