"""Log set-up: readable text for a terminal, one JSON object per line for log pipelines.

The Kafka client logs every failed attempt (over a thousand ERROR lines in a 20 s broker
outage), so its records pass at most once per problem and interval; the next one that passes
says how many were held back.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", ...extra fields, "exc"}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload |= {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


CLIENT_LOGGERS = ("aiokafka",)
"""Loggers whose records are rate-limited: the Kafka client's."""

CLIENT_LOG_INTERVAL_S = 30.0


class RateLimitFilter(logging.Filter):
    """One record per (logger, level, message template) per ``interval_s`` from ``prefixes``.

    Records of other loggers pass untouched. A held-back record is counted, and the next record
    of its kind that passes ends with how many were held back.
    """

    def __init__(
        self,
        prefixes: tuple[str, ...] = CLIENT_LOGGERS,
        interval_s: float = CLIENT_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.prefixes = prefixes
        self.interval_s = interval_s
        self._clock = clock
        self._kinds: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is written now."""
        if not record.name.startswith(self.prefixes):
            return True
        kind = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.interval_s:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} [{last[1]} more like this in the last {self.interval_s:g} s]"
        self._kinds[kind] = (now, 0)
        return True


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """Send logs to stderr in ``log_format`` (``text`` or ``json``), client logs rate-limited."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RateLimitFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
