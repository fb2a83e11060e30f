"""Decode and validate one Kafka batch of tick (or bar) records into numpy columns.

The worker calls a :class:`TickDecoder` once per ``getmany()`` batch and partition. Decoding
never raises on bad data: every input position ends up either in the decoded columns
(``index`` holds its position in the batch) or in ``rejects`` with a stable reason code from
:class:`RejectReason`, which the worker copies into the dead-letter record's headers.

Tick value (JSON object; unknown fields are ignored; ``null`` counts as absent)::

    {"symbol": "AAPL", "ts": 1732550400123, "price": 189.23, "size": 100, "id": "T1"}

- ``symbol``: required string of 1-32 characters from ``[A-Za-z0-9._:/-]``.
- ``ts``: required event time, either epoch milliseconds (an int, or an integral-valued float,
  as some producers send) or an ISO-8601 string with a UTC offset (``...Z`` / ``+00:00``; as
  parsed by ``datetime.fromisoformat``; sub-millisecond digits are floored). Strings without an
  offset are rejected. The result must lie in [1970-01-01, 9999-12-31] UTC.
- ``price``: required finite number > 0.
- ``size``: optional finite number >= 0, default 0.
- ``id``: optional trade id, an int or a string of 1-128 characters (used for duplicate drops).

Bar value (input mode ``bars``): ``symbol`` and ``ts`` (the bar start) as above, ``open``,
``high``, ``low``, ``close`` finite and > 0 with ``high >= max(open, close)`` and
``low <= min(open, close)``, and ``volume`` finite and >= 0 (all required).

When the record key is present it must equal the UTF-8 symbol (``key_mismatch`` otherwise).
A record failing several rules is rejected with the first failing one, in this order: null
value, size, JSON, object, symbol, key, ts, then the remaining fields in the order above.

Speed: the happy path is a handful of C-level passes per field (``map`` over ``orjson.loads``,
list comprehensions, ``set(map(type, ...))`` type checks, ``np.array`` conversions, vectorised
range checks); per-record Python code runs only for the fields of a batch that need it
(ISO timestamps, wrong types, missing keys) and for building the rejects.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain, compress, repeat
from typing import Final, TypeVar, cast

import numpy as np
import orjson

DEFAULT_MAX_BYTES: Final = 64 * 1024
"""Records whose value is larger than this are rejected as ``too_large``."""

SYMBOL_PATTERN: Final = re.compile(r"[A-Za-z0-9._:/-]{1,32}")
"""A valid symbol matches this pattern in full (tickers, ``BRK.B``, ``BTC/USD``, ``XNAS:AAPL``)."""

MIN_TS_MS: Final = 0
"""Earliest accepted event time, 1970-01-01T00:00:00Z in epoch milliseconds."""

MAX_TS_MS: Final = 253_402_300_799_999
"""Latest accepted event time, 9999-12-31T23:59:59.999Z in epoch milliseconds."""

MAX_ID_CHARS: Final = 128
"""Longest accepted string trade id."""

DEFAULT_SYMBOL_CACHE: Final = 1_000_000
"""Validated symbols remembered between batches before the cache is cleared."""

DEFAULT_CHUNK_SIZE: Final = 1024
"""Records decoded per pass, so that a chunk's parsed dicts stay in CPU cache across the
per-field passes (about 20% faster than one pass over a 10,000-record batch)."""


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
    KEY_MISMATCH = "key_mismatch"
    """The record key is present and differs from the symbol."""
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
    FUTURE_TS = "future_ts"
    """The tick's bar had already closed (set by :mod:`consumer.core.bars`)."""
    MAX_SYMBOLS = "max_symbols"
    """A new symbol beyond the configured symbol limit (set by bars / buffers callers)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """One rejected record: its position in the Kafka batch, the reason and a human detail."""

    index: int
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class DecodedTicks:
    """Valid ticks of one batch as columns of length n, in batch order.

    ``ts_ms`` int64[n], ``price`` / ``size`` float64[n], ``index`` int64[n] (position in the
    batch), ``trade_id`` aligned with the rows (``None`` entries for ticks without an id) or
    ``None`` when no tick of the batch had one.
    """

    symbols: list[str]
    ts_ms: np.ndarray
    price: np.ndarray
    size: np.ndarray
    trade_id: list[str | int | None] | None
    index: np.ndarray
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.symbols)


@dataclass(frozen=True, slots=True)
class DecodedBars:
    """Valid input bars of one batch as columns of length n, in batch order.

    ``ts_ms`` int64[n] is the bar start; ``open`` / ``high`` / ``low`` / ``close`` / ``volume``
    float64[n]; ``index`` int64[n] is the position in the batch.
    """

    symbols: list[str]
    ts_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    index: np.ndarray
    rejects: list[Reject]

    def __len__(self) -> int:
        return len(self.symbols)


_Decoded = TypeVar("_Decoded", DecodedTicks, DecodedBars)

_OK: Final = 0
_MISSING: Final = 1
_BAD: Final = 2

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)
_MAX_ISO_CHARS: Final = 64
_PREVIEW_CHARS: Final = 80
_NUMBER_TYPES: Final = frozenset({int, float})
_ID_TYPES: Final = frozenset({str, int, type(None)})

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


class TickDecoder:
    """Decode batches of tick or bar records; keeps a cache of already validated symbols.

    Not thread-safe: use one decoder per thread (one per worker is the intent).
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_BYTES,
        symbol_cache_size: int = DEFAULT_SYMBOL_CACHE,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        for name, value in (
            ("max_bytes", max_bytes),
            ("symbol_cache_size", symbol_cache_size),
            ("chunk_size", chunk_size),
        ):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        self.max_bytes = max_bytes
        self.chunk_size = chunk_size
        self._symbol_cache_size = symbol_cache_size
        self._symbols: set[str] = set()

    def decode_ticks(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None
    ) -> DecodedTicks:
        """Decode a batch of tick values (and their keys, when given) into columns + rejects."""
        parts = [self._ticks(*chunk) for chunk in self._chunks(values, keys)]
        return parts[0] if len(parts) == 1 else _concat(parts)

    def decode_bars(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None = None
    ) -> DecodedBars:
        """Decode a batch of OHLCV bar values (bars input mode) into columns + rejects."""
        parts = [self._bars(*chunk) for chunk in self._chunks(values, keys)]
        return parts[0] if len(parts) == 1 else _concat(parts)

    def _chunks(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None
    ) -> list[tuple[Sequence[bytes | None], Sequence[bytes | None] | None, int]]:
        """The batch as (values, keys, offset) chunks of ``chunk_size`` records, at least one."""
        if keys is not None and len(keys) != len(values):
            raise ValueError(
                f"keys and values must be aligned: got {len(keys)} keys for {len(values)} values"
            )
        if len(self._symbols) > self._symbol_cache_size:
            self._symbols.clear()
        size = self.chunk_size
        return [
            (values[i : i + size], None if keys is None else keys[i : i + size], i)
            for i in range(0, max(len(values), 1), size)
        ]

    def _common(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None, offset: int
    ) -> tuple[_Verdicts, list[dict[str, object]], list[object], np.ndarray]:
        """What ticks and bars share: parse, then check size, JSON, symbol, key and ``ts``."""
        verdicts = _Verdicts(len(values), offset)
        objs = _parse(values, self.max_bytes, verdicts)
        symbols = _field(objs, "symbol")
        self._check_symbols(verdicts, symbols, keys)
        ts, ts_status = _timestamps(_field(objs, "ts"))
        verdicts.apply(ts_status, "ts", RejectReason.BAD_TS)
        return verdicts, objs, symbols, ts

    def _ticks(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None, offset: int
    ) -> DecodedTicks:
        """Decode one chunk of tick values; indices count from ``offset``."""
        verdicts, objs, symbols, ts = self._common(values, keys, offset)
        price, status = _numbers(_field(objs, "price"), positive=True)
        verdicts.apply(status, "price", RejectReason.BAD_PRICE)
        size, status = _numbers(_field(objs, "size"), positive=False, default=0.0)
        verdicts.apply(status, "size", RejectReason.BAD_SIZE)
        trade_id, status = _trade_ids(_field(objs, "id"))
        verdicts.apply(status, "id", RejectReason.BAD_ID)
        ok = verdicts.code == _OK
        rejects = verdicts.rejects(objs, symbols, keys)
        if not rejects:
            index = np.arange(offset, offset + len(objs), dtype=np.int64)
            return DecodedTicks(symbols, ts, price, size, trade_id, index, rejects)
        return DecodedTicks(
            symbols=list(compress(symbols, ok.tolist())),
            ts_ms=ts[ok],
            price=price[ok],
            size=size[ok],
            trade_id=_compress_ids(trade_id, ok),
            index=np.flatnonzero(ok) + offset,
            rejects=rejects,
        )

    def _bars(
        self, values: Sequence[bytes | None], keys: Sequence[bytes | None] | None, offset: int
    ) -> DecodedBars:
        """Decode one chunk of bar values; indices count from ``offset``."""
        verdicts, objs, symbols, ts = self._common(values, keys, offset)
        prices = {}
        for field in ("open", "high", "low", "close"):
            prices[field], status = _numbers(_field(objs, field), positive=True)
            verdicts.apply(status, field, RejectReason.BAD_OHLC)
        volume, status = _numbers(_field(objs, "volume"), positive=False)
        verdicts.apply(status, "volume", RejectReason.BAD_VOLUME)
        verdicts.apply(_ohlc_status(**prices), "ohlc", RejectReason.BAD_OHLC)
        ok = verdicts.code == _OK
        rejects = verdicts.rejects(objs, symbols, keys)
        if rejects:
            symbols = list(compress(symbols, ok.tolist()))
            ts, volume = ts[ok], volume[ok]
            prices = {field: column[ok] for field, column in prices.items()}
        return DecodedBars(
            symbols=symbols,
            ts_ms=ts,
            volume=volume,
            index=np.flatnonzero(ok) + offset,
            rejects=rejects,
            **prices,
        )

    def _check_symbols(
        self,
        verdicts: _Verdicts,
        symbols: list[object],
        keys: Sequence[bytes | None] | None,
    ) -> None:
        """Apply the symbol check, then the key check for records with a valid symbol."""
        status = _symbol_status(symbols, self._symbols)
        verdicts.apply(status, "symbol", RejectReason.BAD_SYMBOL)
        if keys is not None:
            key_status = _key_status(keys, symbols, status == _OK)
            verdicts.apply(key_status, "key", RejectReason.KEY_MISMATCH)


class _Verdicts:
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

    def apply(self, status: np.ndarray, field: str, bad: RejectReason) -> None:
        """Record ``missing_field`` / ``bad`` for still-valid records per a uint8[n] status."""
        for value, reason in ((_MISSING, RejectReason.MISSING_FIELD), (_BAD, bad)):
            hit = (status == value) & (self.code == _OK)
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
            detail = self._notes.get(i) or _detail(reason, field, objs[i], symbols[i], keys, i)
            out.append(Reject(self.offset + i, reason, detail))
        return out

    def _kind(self, reason: RejectReason, field: str) -> int:
        """The code of a (reason, field) kind, allocated on first use."""
        return self._kinds.setdefault((reason, field), len(self._kinds) + 1)


def _detail(
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
    if reason is RejectReason.KEY_MISMATCH and keys is not None:
        return f"key {_preview(keys[index])} does not match symbol {symbol!r}"
    if field == "ohlc":
        ohlc = ", ".join(f"{name}={obj.get(name)!r}" for name in ("open", "high", "low", "close"))
        return f"inconsistent bar ({ohlc}): need high >= max(open, close), low <= min(open, close)"
    return f"{field}={_preview(obj.get(field))}: {_RULES[field]}"


def _preview(value: object) -> str:
    """Short repr of an offending value for reject details."""
    text = repr(value)
    return text if len(text) <= _PREVIEW_CHARS else text[: _PREVIEW_CHARS - 3] + "..."


def _parse(values: Sequence[bytes | None], max_bytes: int, verdicts: _Verdicts) -> list[dict[str, object]]:
    """Parse every value to a dict (``{}`` stand-ins for rejected ones), recording failures.

    Each value is parsed on its own, with one C-level ``map``: joining values into one JSON
    array is barely faster and lets two malformed neighbours merge into one valid object,
    shifting every later record onto the wrong index. Per-record handling runs only when the
    fast path fails somewhere in the batch.
    """
    objs = _parse_fast(values, max_bytes)
    if objs is None:
        objs = [_parse_one(i, value, max_bytes, verdicts) for i, value in enumerate(values)]
    elif set(map(type, objs)) <= {dict}:
        return cast("list[dict[str, object]]", objs)
    out: list[dict[str, object]] = []
    for i, obj in enumerate(objs):
        if isinstance(obj, dict):
            out.append(obj)
            continue
        if verdicts.code[i] == _OK:
            verdicts.fail(i, RejectReason.NOT_OBJECT, f"expected a JSON object, got {_preview(obj)}")
        out.append({})
    return out


def _parse_fast(values: Sequence[bytes | None], max_bytes: int) -> list[object] | None:
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


def _parse_one(index: int, value: bytes | None, max_bytes: int, verdicts: _Verdicts) -> object:
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


def _field(objs: list[dict[str, object]], name: str) -> list[object]:
    """The values of one field across the batch (``None`` where absent), in one C-level pass."""
    return list(map(dict.get, objs, repeat(name)))


def _symbol_status(symbols: list[object], known: set[str]) -> np.ndarray:
    """uint8[n] status of each symbol; valid new symbols are added to ``known``."""
    try:
        if known.issuperset(symbols):
            return np.zeros(len(symbols), dtype=np.uint8)
    except TypeError:
        pass
    return np.fromiter((_symbol_code(s, known) for s in symbols), np.uint8, len(symbols))


def _symbol_code(symbol: object, known: set[str]) -> int:
    """Status of one symbol, remembering valid ones."""
    if symbol is None:
        return _MISSING
    if not isinstance(symbol, str) or SYMBOL_PATTERN.fullmatch(symbol) is None:
        return _BAD
    known.add(symbol)
    return _OK


def _key_status(keys: Sequence[bytes | None], symbols: list[object], checkable: np.ndarray) -> np.ndarray:
    """uint8[n] status: ``_BAD`` where a present key differs from the record's valid symbol.

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
            _BAD if ok and key is not None and key != s.encode() else _OK
            for key, s, ok in zip(keys, valid, checkable.tolist(), strict=True)
        ),
        np.uint8,
        n,
    )


def _timestamps(raw: list[object]) -> tuple[np.ndarray, np.ndarray]:
    """Event times as (int64[n] epoch ms, uint8[n] status); invalid entries hold 0."""
    n = len(raw)
    if set(map(type, raw)) == {int}:
        try:
            ts = np.array(raw, dtype=np.int64)
        except OverflowError:
            pass
        else:
            in_range = (ts >= MIN_TS_MS) & (ts <= MAX_TS_MS)
            return ts, np.where(in_range, _OK, _BAD).astype(np.uint8)
    converted = [_epoch_ms(value) for value in raw]
    ts = np.fromiter((0 if ms is None else ms for ms in converted), np.int64, n)
    status = np.fromiter(
        (
            _MISSING if value is None else _BAD if ms is None else _OK
            for value, ms in zip(raw, converted, strict=True)
        ),
        np.uint8,
        n,
    )
    return ts, status


def _epoch_ms(value: object) -> int | None:
    """Epoch milliseconds of one ``ts`` value, or ``None`` when it is not acceptable."""
    if type(value) is int:
        ms: int | None = value
    elif type(value) is float:
        ms = int(value) if value.is_integer() else None
    elif type(value) is str:
        ms = _iso_to_ms(value)
    else:
        ms = None
    return ms if ms is not None and MIN_TS_MS <= ms <= MAX_TS_MS else None


def _iso_to_ms(text: str) -> int | None:
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


def _numbers(
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
        return values, _range_status(values, positive)
    values = np.fromiter((_as_float(x, default) for x in raw), np.float64, len(raw))
    status = _range_status(values, positive)
    if default is None:
        status[np.fromiter((x is None for x in raw), bool, len(raw))] = _MISSING
    return values, status


def _as_float(value: object, default: float | None) -> float:
    """One numeric value as float; NaN for anything that is not a JSON number."""
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    try:
        return float(value)
    except OverflowError:
        return float("nan")


def _range_status(values: np.ndarray, positive: bool) -> np.ndarray:
    """uint8[n] status: ``_BAD`` where not finite, or not > 0 / >= 0."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & ((values > 0) if positive else (values >= 0))
    return np.where(ok, _OK, _BAD).astype(np.uint8)


def _trade_ids(raw: list[object]) -> tuple[list[str | int | None] | None, np.ndarray]:
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
    valid = [_valid_id(x) for x in raw]
    status = np.where(valid, _OK, _BAD).astype(np.uint8)
    ids = [x if ok else None for x, ok in zip(raw, valid, strict=True)]
    return cast("list[str | int | None]", ids), status


def _valid_id(value: object) -> bool:
    """Whether one ``id`` value is acceptable (absent counts as valid)."""
    if value is None or type(value) is int:
        return True
    return type(value) is str and 1 <= len(value) <= MAX_ID_CHARS


def _compress_ids(ids: list[str | int | None] | None, ok: np.ndarray) -> list[str | int | None] | None:
    """Keep the ids of valid rows; ``None`` when none of them carries one."""
    if ids is None:
        return None
    kept = list(compress(ids, ok.tolist()))
    return kept if any(x is not None for x in kept) else None


def _concat(parts: list[_Decoded]) -> _Decoded:
    """One decoded batch from its chunks (whose indices are already batch positions)."""
    columns: dict[str, object] = {}
    for column in fields(parts[0]):
        values = [getattr(part, column.name) for part in parts]
        if column.name == "trade_id":
            columns["trade_id"] = _concat_ids(values, [len(part) for part in parts])
        elif isinstance(values[0], np.ndarray):
            columns[column.name] = np.concatenate(values)
        else:
            columns[column.name] = list(chain.from_iterable(values))
    return type(parts[0])(**columns)


def _concat_ids(
    ids: list[list[str | int | None] | None], lengths: list[int]
) -> list[str | int | None] | None:
    """Trade-id column of concatenated chunks; ``None`` when no chunk has ids."""
    if all(chunk is None for chunk in ids):
        return None
    return list(
        chain.from_iterable(
            [None] * length if chunk is None else chunk for chunk, length in zip(ids, lengths, strict=True)
        )
    )


def _ohlc_status(open: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """uint8[n] status: ``_BAD`` where high/low do not bound open and close (NaN fails)."""
    with np.errstate(invalid="ignore"):
        ok = (high >= np.maximum(open, close)) & (low <= np.minimum(open, close))
    return np.where(ok, _OK, _BAD).astype(np.uint8)
