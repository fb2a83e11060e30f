"""Field-level parsing and checks of a chunk of records: JSON, symbol, key, ts, numbers, ids.

Each check turns one field of every record into a numpy column and a uint8 status
(``OK`` / ``MISSING`` / ``BAD``), in a few C-level passes; per-record Python runs only for
the records that need it. Used by :class:`consumer.core.ticks.TickDecoder`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import compress, repeat
from typing import Final, cast

import numpy as np
import orjson

from consumer.core.record_rules import (
    BAD,
    MAX_ID_CHARS,
    MAX_TS_MS,
    MIN_TS_MS,
    MISSING,
    OK,
    SYMBOL_PATTERN,
    RejectReason,
    Verdicts,
    preview,
)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MAX_ISO_CHARS: Final = 64
_NUMBER_TYPES: Final = frozenset({int, float})
_ID_TYPES: Final = frozenset({str, int, type(None)})


def parse_values(
    values: Sequence[bytes | None], max_bytes: int, verdicts: Verdicts
) -> list[dict[str, object]]:
    """Parse every value to a dict (``{}`` stand-ins for rejected ones), recording failures.

    Each value is parsed on its own, with one C-level ``map``: joining values into one JSON
    array is barely faster and lets two malformed neighbours merge into one valid object,
    shifting every later record onto the wrong index. Per-record handling runs only when the
    fast path fails somewhere in the batch.
    """
    objs = parse_fast(values, max_bytes)
    if objs is None:
        objs = [parse_one(i, value, max_bytes, verdicts) for i, value in enumerate(values)]
    elif set(map(type, objs)) <= {dict}:
        return cast("list[dict[str, object]]", objs)
    out: list[dict[str, object]] = []
    for i, obj in enumerate(objs):
        if isinstance(obj, dict):
            out.append(obj)
            continue
        if verdicts.code[i] == OK:
            verdicts.fail(i, RejectReason.NOT_OBJECT, f"expected a JSON object, got {preview(obj)}")
        out.append({})
    return out


def parse_fast(values: Sequence[bytes | None], max_bytes: int) -> list[object] | None:
    """All values parsed in one pass, or ``None`` if any is null, too large or not JSON.

    A null value makes ``len`` raise ``TypeError``, which also selects the per-record path.
    """
    present = cast("Sequence[bytes]", values)
    try:
        if max(map(len, present), default=0) > max_bytes:
            return None
        return list(map(orjson.loads, present))
    except (TypeError, orjson.JSONDecodeError):
        return None


def parse_one(index: int, value: bytes | None, max_bytes: int, verdicts: Verdicts) -> object:
    """Parse one value; returns ``None`` (and records the reason) when it cannot be parsed."""
    if value is None:
        verdicts.fail(index, RejectReason.NULL_VALUE, "record value is null (tombstone)")
        return None
    if len(value) > max_bytes:
        verdicts.fail(index, RejectReason.TOO_LARGE, f"value is {len(value)} bytes, limit is {max_bytes}")
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        verdicts.fail(index, RejectReason.INVALID_JSON, str(exc))
        return None


def field_values(objs: list[dict[str, object]], name: str) -> list[object]:
    """The values of one field across the batch (``None`` where absent), in one C-level pass."""
    return list(map(dict.get, objs, repeat(name)))


def symbol_status(symbols: list[object], known: set[str]) -> np.ndarray:
    """uint8[n] status of each symbol; valid new symbols are added to ``known``."""
    try:
        if known.issuperset(symbols):
            return np.zeros(len(symbols), dtype=np.uint8)
    except TypeError:
        pass
    return np.fromiter((symbol_code(s, known) for s in symbols), np.uint8, len(symbols))


def symbol_code(symbol: object, known: set[str]) -> int:
    """Status of one symbol, remembering valid ones."""
    if symbol is None:
        return MISSING
    if not isinstance(symbol, str) or SYMBOL_PATTERN.fullmatch(symbol) is None:
        return BAD
    known.add(symbol)
    return OK


def key_status(keys: Sequence[bytes | None], symbols: list[object], checkable: np.ndarray) -> np.ndarray:
    """uint8[n] status: ``MISSING`` without a key, ``BAD`` where the key is not the valid symbol.

    The common case (every key present and equal) is one C-level decode and list comparison.
    """
    n = len(symbols)
    if checkable.all():
        present = cast("Sequence[bytes]", keys)  # a null key raises TypeError: slow path
        try:
            if list(map(bytes.decode, present)) == symbols:
                return np.zeros(n, dtype=np.uint8)
        except (TypeError, UnicodeDecodeError):
            pass
    valid = cast("list[str]", symbols)  # only read where ``checkable`` (a valid str symbol)
    return np.fromiter(
        (
            OK if not ok else MISSING if key is None else BAD if key != s.encode() else OK
            for key, s, ok in zip(keys, valid, checkable.tolist(), strict=True)
        ),
        np.uint8,
        n,
    )


def timestamps(raw: list[object]) -> tuple[np.ndarray, np.ndarray]:
    """Event times as (int64[n] epoch ms, uint8[n] status); invalid entries hold 0."""
    n = len(raw)
    if set(map(type, raw)) == {int}:
        try:
            ts = np.array(raw, dtype=np.int64)
        except OverflowError:
            pass
        else:
            in_range = (ts >= MIN_TS_MS) & (ts <= MAX_TS_MS)
            return ts, np.where(in_range, OK, BAD).astype(np.uint8)
    converted = [epoch_ms(value) for value in raw]
    ts = np.fromiter((0 if ms is None else ms for ms in converted), np.int64, n)
    status = np.fromiter(
        (
            MISSING if value is None else BAD if ms is None else OK
            for value, ms in zip(raw, converted, strict=True)
        ),
        np.uint8,
        n,
    )
    return ts, status


def epoch_ms(value: object) -> int | None:
    """Epoch milliseconds of one ``ts`` value, or ``None`` when it is not acceptable."""
    if type(value) is int:
        ms: int | None = value
    elif type(value) is float:
        ms = int(value) if value.is_integer() else None
    elif type(value) is str:
        ms = iso_to_ms(value)
    else:
        ms = None
    return ms if ms is not None and MIN_TS_MS <= ms <= MAX_TS_MS else None


def iso_to_ms(text: str) -> int | None:
    """Epoch ms of an ISO-8601 timestamp carrying a UTC offset (floored), else ``None``."""
    if len(text) > _MAX_ISO_CHARS:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.utcoffset() is None:
        return None
    return (moment - _EPOCH) // _ONE_MS


def numbers(
    raw: list[object], *, positive: bool, default: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A numeric field as (float64[n], uint8[n] status); absent -> ``default`` or missing.

    Valid values are finite and > 0 (``positive``) or >= 0. Invalid entries hold NaN.
    """
    types = set(map(type, raw))
    values = None
    try:
        if types <= _NUMBER_TYPES:
            values = np.array(raw, dtype=np.float64)
        elif default is not None and types <= _NUMBER_TYPES | {type(None)}:
            values = np.array([default if x is None else x for x in raw], dtype=np.float64)
    except OverflowError:
        values = None
    if values is not None:
        return values, range_status(values, positive)
    values = np.fromiter((as_float(x, default) for x in raw), np.float64, len(raw))
    status = range_status(values, positive)
    if default is None:
        status[np.fromiter((x is None for x in raw), bool, len(raw))] = MISSING
    return values, status


def as_float(value: object, default: float | None) -> float:
    """One numeric value as float; NaN for anything that is not a JSON number."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    try:
        return float(value)
    except OverflowError:
        return float("nan")


def range_status(values: np.ndarray, positive: bool) -> np.ndarray:
    """uint8[n] status: ``BAD`` where not finite, or not > 0 / >= 0."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & ((values > 0) if positive else (values >= 0))
    return np.where(ok, OK, BAD).astype(np.uint8)


def trade_ids(raw: list[object]) -> tuple[list[str | int | None] | None, np.ndarray]:
    """Optional trade ids as (list or ``None`` when the batch has none, uint8[n] status)."""
    n = len(raw)
    types = set(map(type, raw))
    if types <= {type(None)}:
        return None, np.zeros(n, dtype=np.uint8)
    if types <= _ID_TYPES:
        strings = raw if types == {str} else [x for x in raw if isinstance(x, str)]
        lengths = list(map(len, cast("list[str]", strings)))
        if not lengths or (min(lengths) >= 1 and max(lengths) <= MAX_ID_CHARS):
            return cast("list[str | int | None]", raw), np.zeros(n, dtype=np.uint8)
    valid = [valid_id(x) for x in raw]
    status = np.where(valid, OK, BAD).astype(np.uint8)
    ids = [x if ok else None for x, ok in zip(raw, valid, strict=True)]
    return cast("list[str | int | None]", ids), status


def valid_id(value: object) -> bool:
    """Whether one ``id`` value is acceptable (absent counts as valid)."""
    if value is None or type(value) is int:
        return True
    return type(value) is str and 1 <= len(value) <= MAX_ID_CHARS


def compress_ids(ids: list[str | int | None] | None, ok: np.ndarray) -> list[str | int | None] | None:
    """Keep the ids of valid rows; ``None`` when none of them carries one."""
    if ids is None:
        return None
    kept = list(compress(ids, ok.tolist()))
    return kept if any(x is not None for x in kept) else None


def ohlc_status(open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """uint8[n] status: ``BAD`` where high/low do not bound open and close (NaN fails)."""
    with np.errstate(invalid="ignore"):
        ok = (high >= np.maximum(open, close)) & (low <= np.minimum(open, close))
    return np.where(ok, OK, BAD).astype(np.uint8)
