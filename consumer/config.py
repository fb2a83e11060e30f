"""Worker settings: one frozen object, defined once here, read from flags and environment.

Each field's metadata carries its help text and parser; the command-line flags, the
``BULLFLAG_*`` environment variables and the settings table in docs/operations.md are all
generated from this definition. Precedence: flag > environment > default. A bad value stops startup with one
line naming the setting.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from bullflag_model.intervals import parse_duration_ms
from consumer import validators as v
from consumer.core.expiry import SymbolTtlError, check_ttl

ENV_PREFIX = "BULLFLAG_"


class SettingsError(ValueError):
    """A setting has a value the worker cannot use; the message names the setting."""


def setting(default: Any, help: str, parse: Callable[[str], Any] = str, secret: bool = False) -> Any:
    """Declare a settings field: its default, help text and parser from text."""
    return field(default=default, metadata={"help": help, "parse": parse, "secret": secret})


@dataclass(frozen=True)
class Settings:
    """Everything the worker can be told; see the settings table in docs/operations.md."""

    bootstrap_servers: str = setting(
        "localhost:9092", "Kafka bootstrap servers, comma-separated host:port.", v.bootstrap_servers
    )
    ticks_topic: str = setting("ticks", "Input topic (trades or bars, keyed by symbol).")
    signals_topic: str = setting("signals", "Output topic for CNNOutput documents (keyed by symbol).")
    dlq_topic: str = setting("ticks.dlq", "Dead-letter topic for records that cannot be used.")
    state_topic: str = setting(
        "", "State changelog topic (as many partitions as the input); empty: '<group_id>.state'."
    )
    group_id: str = setting("bullflag", "Consumer group id; workers with the same id share the partitions.")
    client_id: str = setting("bullflag-worker", "Kafka client id (shows up in broker logs and quotas).")
    input: str = setting(
        "ticks",
        "Input record kind: 'ticks' (trades) or 'bars' (closed OHLCV bars).",
        v.choice("ticks", "bars"),
    )
    bar_interval: str = setting("1m", "Bar length: e.g. 1s, 1m, 5m, 1h, 1d.", v.bar_interval)
    allowed_lateness: str = setting(
        "5s", "How late (event time) a tick may arrive and still count.", v.duration
    )
    idle_close_after: str = setting(
        "0s",
        "Close and score a partition's open bars once it has had no records this long (wall "
        "clock): its watermark moves to the wall clock minus --allowed-lateness. 0s: off.",
        v.duration,
    )
    gaps: str = setting(
        "auto",
        "Intervals without trades: 'flat' (a flat zero-volume bar at the previous close), 'skip' "
        "(none: a window is the last bars that traded), 'session' (flat bars only inside the "
        "sessions of --calendar); 'auto': flat for ticks, skip for bars.",
        v.choice("auto", "flat", "skip", "session"),
    )
    calendar: str = setting(
        "",
        "Exchange calendar of --gaps session, by its exchange_calendars name (e.g. XNYS, XLON); "
        "needs the 'calendars' extra.",
    )
    max_time_jump: str = setting(
        "7d",
        "Records this far ahead of (future_ts) or behind (past_ts) their partition's event-time "
        "clock are dead-lettered.",
        v.duration,
    )
    clock_window: int = setting(
        9,
        "Records the partition's event-time clock follows: the lower median of the last this many "
        "accepted event times, so fewer than half of them cannot move it.",
        v.positive_int,
    )
    max_clock_skew: str = setting(
        "1h", "Records this far ahead of the wall clock are dead-lettered (future_ts).", v.duration
    )
    threshold: float | None = setting(
        None,
        "Signal threshold on sequence_score; empty: the checkpoint's serving threshold.",
        v.probability,
    )
    publish: str = setting(
        "all",
        "'all': one CNNOutput per inference; 'signals-only': only those >= threshold.",
        v.choice("all", "signals-only"),
    )
    gradcam: bool = setting(True, "Attach Grad-CAM maps to outputs at or above the threshold.", v.boolean)
    checkpoint: Path | None = setting(
        None, "Model checkpoint file; empty: the one shipped in the package.", v.optional_path
    )
    max_symbols: int = setting(
        100_000,
        "Most symbols one worker keeps buffers for; ticks of further symbols are dead-lettered.",
        v.positive_int,
    )
    symbol_ttl: str = setting(
        "0s",
        "Event time without a trade after which a symbol is forgotten: its buffers freed and its bars "
        "deleted from the state topic (tombstones), so it no longer counts against --max-symbols; "
        "at least --bar-interval plus --allowed-lateness; 0s: never.",
        v.duration,
    )
    max_record_bytes: int = setting(
        65_536, "Input records larger than this are dead-lettered.", v.positive_int
    )
    max_poll_records: int = setting(20_000, "Most records taken from Kafka per batch.", v.positive_int)
    session_timeout: str = setting(
        "10s",
        "Consumer group session timeout: a worker silent this long loses its partitions.",
        v.positive_duration,
    )
    heartbeat_interval: str = setting(
        "3s", "Consumer group heartbeat interval (shorter than the session timeout).", v.positive_duration
    )
    fetch_max_wait: str = setting("500ms", "Longest a fetch waits for data before returning.", v.duration)
    backend: str = setting(
        "auto",
        "Scoring backend: 'onnx' (ONNX Runtime, no torch), 'torch', or 'auto' (onnx when installed and "
        "the checkpoint's .onnx export exists, else torch).",
        v.choice("auto", "onnx", "torch"),
    )
    device: str = setting(
        "cpu", "Where the torch backend scores: 'cpu', or 'cuda' / 'cuda:N' on a GPU.", v.device
    )
    torch_threads: int = setting(
        0, "Threads per scoring call with the torch backend; 0: torch's default.", v.non_negative_int
    )
    onnx_threads: int = setting(
        1,
        "Threads per scoring call with the onnx backend (they sleep between calls, never spin); "
        "more than the cores left beside the event loop slows the worker.",
        v.positive_int,
    )
    gc_threshold: int = setting(
        50_000,
        "Allocations between the youngest garbage collections while serving (Python's default "
        "is 700, which costs half the CPU at full load); 0: leave the interpreter's setting.",
        v.non_negative_int,
    )
    metrics_host: str = setting("0.0.0.0", "Address of the /metrics, /healthz and /readyz server.")
    metrics_port: int = setting(
        9108, "Port of the /metrics, /healthz and /readyz server (0: any free one).", v.port
    )
    security_protocol: str = setting(
        "PLAINTEXT",
        "PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.",
        v.choice("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
    )
    sasl_mechanism: str = setting(
        "PLAIN",
        "SASL mechanism when security_protocol is SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.",
        v.choice("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"),
    )
    sasl_username: str = setting("", "SASL user name.")
    sasl_password: str = setting(
        "", "SASL password (prefer the environment variable to a flag).", secret=True
    )
    ssl_cafile: str = setting("", "CA bundle to verify the brokers (SSL and SASL_SSL).")
    ssl_certfile: str = setting("", "Client certificate for mutual TLS.")
    ssl_keyfile: str = setting("", "Private key of the client certificate.")
    log_format: str = setting(
        "text", "Log lines as 'text' or 'json' (one object per line).", v.choice("text", "json")
    )
    enable_idempotence: bool = setting(
        False, "Idempotent producer (Apache Kafka; the embedded broker lacks it).", v.boolean
    )

    def __post_init__(self) -> None:
        """Name the state topic after the group, so two applications never share state; refuse a
        heartbeat that is not shorter than the session timeout (the group would never be stable) and
        a session gap policy without a calendar."""
        if not self.state_topic:
            object.__setattr__(self, "state_topic", f"{self.group_id}.state")
        if self.gaps == "session" and not self.calendar:
            raise SettingsError("setting --calendar: --gaps session needs a calendar, e.g. --calendar XNYS")
        try:
            check_ttl(self.symbol_ttl_ms, self.bar_interval_ms, self.allowed_lateness_ms)
        except SymbolTtlError as exc:
            raise SettingsError(f"setting --symbol-ttl {self.symbol_ttl}: {exc}") from None
        if parse_duration_ms(self.heartbeat_interval) >= parse_duration_ms(self.session_timeout):
            raise SettingsError(
                f"setting --heartbeat-interval {self.heartbeat_interval} must be shorter than "
                f"--session-timeout {self.session_timeout}"
            )

    @property
    def bar_interval_ms(self) -> int:
        """Bar length in milliseconds."""
        return parse_duration_ms(self.bar_interval)

    @property
    def allowed_lateness_ms(self) -> int:
        """Allowed lateness in milliseconds."""
        return parse_duration_ms(self.allowed_lateness)

    @property
    def idle_close_after_ms(self) -> int:
        """Quiet time before an idle partition's bars close, in milliseconds (0: never)."""
        return parse_duration_ms(self.idle_close_after)

    @property
    def consumer_timing(self) -> dict[str, int]:
        """Group and fetch timing options for the aiokafka consumer, in milliseconds."""
        return {
            "session_timeout_ms": parse_duration_ms(self.session_timeout),
            "heartbeat_interval_ms": parse_duration_ms(self.heartbeat_interval),
            "fetch_max_wait_ms": parse_duration_ms(self.fetch_max_wait),
        }

    @property
    def scoring_options(self) -> dict[str, Any]:
        """Keyword arguments of ``BullFlagCNNInfer`` (besides the checkpoint) these settings choose."""
        return {
            "device": self.device,
            "enable_gradcam": self.gradcam,
            "backend": self.backend,
            "threads": self.onnx_threads,
        }

    @property
    def symbol_ttl_ms(self) -> int:
        """``symbol_ttl`` in milliseconds (0: symbols never expire)."""
        return parse_duration_ms(self.symbol_ttl)

    @property
    def max_time_jump_ms(self) -> int:
        """``max_time_jump`` in milliseconds."""
        return parse_duration_ms(self.max_time_jump)

    @property
    def max_clock_skew_ms(self) -> int:
        """``max_clock_skew`` in milliseconds."""
        return parse_duration_ms(self.max_clock_skew)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secrets masked, for the startup log."""
        return {
            f.name: ("***" if f.metadata["secret"] and getattr(self, f.name) else getattr(self, f.name))
            for f in fields(self)
        }


def env_name(name: str) -> str:
    """Environment variable of a setting: ``bar_interval`` -> ``BULLFLAG_BAR_INTERVAL``."""
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    """Command-line flag of a setting: ``bar_interval`` -> ``--bar-interval``."""
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; unset flags stay None so the environment can fill them."""
    for f in fields(Settings):
        parser.add_argument(
            flag_name(f.name), dest=f.name, default=None, metavar="VALUE", help=f.metadata["help"]
        )


def load_settings(args: argparse.Namespace | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Build ``Settings`` from parsed flags and the environment; raise ``SettingsError`` naming a bad one."""
    env = env if env is not None else {}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name, None) if args is not None else None
        source = flag_name(f.name)
        if raw is None and env_name(f.name) in env:
            raw, source = env[env_name(f.name)], env_name(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = None if raw == "" and f.default is None else f.metadata["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"setting {source}: {exc}") from None
    return Settings(**values)


def connection_settings(
    bootstrap_servers: str | None = None, env: Mapping[str, str] | None = None
) -> Settings:
    """Settings for a command that only talks to Kafka: ``BULLFLAG_*`` from ``env`` (default the
    process environment), then a ``--bootstrap-servers`` flag over them."""
    settings = load_settings(None, os.environ if env is None else env)
    if bootstrap_servers:
        settings = dataclasses.replace(settings, bootstrap_servers=bootstrap_servers)
    return settings


def settings_markdown() -> str:
    """The settings table of docs/operations.md, generated from the field definitions."""
    lines = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for f in fields(Settings):
        default = "" if f.default is MISSING or f.default is None else f.default
        lines.append(f"| `{flag_name(f.name)}` | `{env_name(f.name)}` | `{default}` | {f.metadata['help']} |")
    return "\n".join(lines)
