"""The rules a record must meet and the reasons it is refused: limits, reject reasons, verdicts.

A :class:`Reject` carries a stable :class:`RejectReason` code (dashboards and the dead-letter
headers key on it) and a readable detail. :class:`Verdicts` keeps the first failing check per
record of a chunk. Pure Python and numpy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np

SYMBOL_PATTERN: Final = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
"""A valid symbol matches this pattern in full (tickers, ``BRK.B``, ``BTC/USD``, ``XNAS:AAPL``)."""

MIN_TS_MS: Final = 0
"""Earliest accepted event time, 1970-01-01T00:00:00Z in epoch milliseconds."""

MAX_TS_MS: Final = 253_402_300_799_999
"""Latest accepted event time, 9999-12-31T23:59:59.999Z in epoch milliseconds."""

MAX_ID_CHARS: Final = 128
"""Longest accepted string trade id."""

OK: Final = 0
MISSING: Final = 1
BAD: Final = 2

_PREVIEW_CHARS: Final = 80

_RULES: Final = {
    "symbol": "expected a string of 1-32 characters from [A-Za-z0-9._:/-]",
    "ts": "expected epoch milliseconds or an ISO-8601 string with a UTC offset, between 1970 and 9999",
    "price": "expected a finite number > 0",
    "size": "expected a finite number >= 0",
    "id": f"expected an int or a string of 1-{MAX_ID_CHARS} characters",
    "open": "expected a finite number > 0",
    "high": "expected a finite number > 0",
    "low": "expected a finite number > 0",
    "close": "expected a finite number > 0",
    "volume": "expected a finite number >= 0",
}


class RejectReason(StrEnum):
    """Machine-readable reasons a record is dead-lettered (stable: dashboards key on them)."""

    TOO_LARGE = "too_large"
    """The value is larger than ``max_bytes``."""
    NULL_VALUE = "null_value"
    """The value is null (a tombstone)."""
    INVALID_JSON = "invalid_json"
    """The value is not JSON (or not UTF-8)."""
    NOT_OBJECT = "not_object"
    """The value is JSON but not an object."""
    MISSING_FIELD = "missing_field"
    """A required field is absent or null; the detail names it."""
    BAD_SYMBOL = "bad_symbol"
    """``symbol`` is not a string matching :data:`SYMBOL_PATTERN`."""
    MISSING_KEY = "missing_key"
    """The record has no key: without the symbol as key its ticks could land on any partition."""
    KEY_MISMATCH = "key_mismatch"
    """The record key differs from the symbol."""
    BAD_TS = "bad_ts"
    """``ts`` is neither epoch ms nor ISO-8601 with an offset, or out of range."""
    BAD_PRICE = "bad_price"
    """``price`` is not a finite number > 0."""
    BAD_SIZE = "bad_size"
    """``size`` is not a finite number >= 0."""
    BAD_ID = "bad_id"
    """``id`` is not an int or a 1-128 character string."""
    BAD_OHLC = "bad_ohlc"
    """Bar input: an OHLC price is not finite and > 0, or high/low do not bound open/close."""
    BAD_VOLUME = "bad_volume"
    """Bar input: ``volume`` is not a finite number >= 0."""
    LATE = "late"
    """The tick's bar had already closed (set by :mod:`consumer.core.bars`)."""
    FUTURE_TS = "future_ts"
    """Too far ahead of the partition's event-time clock or of the wall clock (:mod:`consumer.core.clock`)."""
    MAX_SYMBOLS = "max_symbols"
    """A new symbol beyond the configured symbol limit (set by bars / buffers callers)."""
    PAST_TS = "past_ts"
    """Too far behind the partition's event-time clock (:mod:`consumer.core.clock`)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """One rejected record: its position in the Kafka batch, the reason and a human detail."""

    index: int
    reason: RejectReason
    detail: str


class Verdicts:
    """First failing check per record; checks must be applied in priority order.

    ``code`` uint8[n] is 0 for records still valid, else 1 + the index of a (reason, field) kind.
    Rejects report ``offset`` + the position in the chunk.
    """

    def __init__(self, n: int, offset: int) -> None:
        self.offset = offset
        self.code = np.zeros(n, dtype=np.uint8)
        self._kinds: dict[tuple[RejectReason, str], int] = {}
        self._notes: dict[int, str] = {}

    def fail(self, index: int, reason: RejectReason, detail: str) -> None:
        """Reject one record before field checks (size, JSON or object shape)."""
        self.code[index] = self._kind(reason, "")
        self._notes[index] = detail

    def apply(
        self,
        status: np.ndarray,
        field: str,
        bad: RejectReason,
        missing: RejectReason = RejectReason.MISSING_FIELD,
    ) -> None:
        """Record ``missing`` / ``bad`` for still-valid records per a uint8[n] status."""
        for value, reason in ((MISSING, missing), (BAD, bad)):
            hit = (status == value) & (self.code == OK)
            if hit.any():
                self.code[hit] = self._kind(reason, field)

    def rejects(
        self,
        objs: list[dict[str, object]],
        symbols: list[object],
        keys: Sequence[bytes | None] | None,
    ) -> list[Reject]:
        """One :class:`Reject` per failed record, in batch order, with a readable detail."""
        if not self._kinds:
            return []
        kinds = {code: kind for kind, code in self._kinds.items()}
        out = []
        for i in np.flatnonzero(self.code).tolist():
            reason, field = kinds[int(self.code[i])]
            detail = self._notes.get(i) or describe(reason, field, objs[i], symbols[i], keys, i)
            out.append(Reject(self.offset + i, reason, detail))
        return out

    def _kind(self, reason: RejectReason, field: str) -> int:
        """The code of a (reason, field) kind, allocated on first use."""
        return self._kinds.setdefault((reason, field), len(self._kinds) + 1)


def describe(
    reason: RejectReason,
    field: str,
    obj: dict[str, object],
    symbol: object,
    keys: Sequence[bytes | None] | None,
    index: int,
) -> str:
    """Readable explanation of a field-level reject."""
    if reason is RejectReason.MISSING_FIELD:
        return f"missing required field {field!r}"
    if reason is RejectReason.MISSING_KEY:
        return f"record has no key; key it by its symbol {symbol!r} so a symbol stays in one partition"
    if reason is RejectReason.KEY_MISMATCH and keys is not None:
        return f"key {preview(keys[index])} does not match symbol {symbol!r}"
    if field == "ohlc":
        ohlc = ", ".join(f"{name}={obj.get(name)!r}" for name in ("open", "high", "low", "close"))
        return f"inconsistent bar ({ohlc}): need high >= max(open, close), low <= min(open, close)"
    return f"{field}={preview(obj.get(field))}: {_RULES[field]}"


def preview(value: object) -> str:
    """Short repr of an offending value for reject details."""
    text = repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."
