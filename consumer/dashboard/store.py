"""What the dashboard keeps in memory: the latest CNNOutput documents and the bars of their windows.

:class:`DocumentStore` reads signal-topic record values with :meth:`CNNDocument.from_bytes
<bullflag_model.output.CNNDocument.from_bytes>` (the project's one reader), keeps the newest
``capacity`` documents by arrival, deduplicates by ``id`` (delivery is at least once, and a
reader that restarts reads the topic again), and counts every record it cannot use by reason,
keeping the latest messages, so a bad or foreign document shows up on the page as an error and
never reaches the browser as data.

:class:`BarBook` holds closed bars per symbol from the worker's **state topic** rather than the
ticks topic: those bar records are the very bars the worker built and scored (same event-time
aggregation, lateness and gap rules), 49 bytes each and one per closed bar, whereas rebuilding
bars from ticks would repeat the worker's aggregation here and read every trade. The worker
writes a batch's state right after its documents are acknowledged, so a window's bars follow
its document within moments. Nothing here does I/O.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import orjson

from bullflag_model.features import SEQ_LEN
from bullflag_model.infer import PROB_KEYS
from bullflag_model.output import SCHEMA_VERSION, CNNDocument, DocumentError
from consumer.core.state import BAR_DTYPE, BAR_KEY_PREFIX, BAR_VERSION

DEFAULT_CAPACITY: Final = 500
DEFAULT_BARS_PER_SYMBOL: Final = 3 * SEQ_LEN
RECENT_ERRORS: Final = 20


@dataclass(frozen=True)
class StoredDocument:
    """One document as the page shows it: ``row`` (JSON-ready table row) and its activation map."""

    row: dict[str, Any]
    cam: list[float] | None
    document: CNNDocument


class DocumentStore:
    """The newest ``capacity`` valid CNNOutput documents, numbered in arrival order from 1."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"the dashboard must keep at least one document, not {capacity}")
        self.capacity = capacity
        self._documents: OrderedDict[str, StoredDocument] = OrderedDict()
        self._seq = 0
        self.received = 0
        self.duplicates = 0
        self.errors: Counter[str] = Counter()
        self.recent_errors: deque[str] = deque(maxlen=RECENT_ERRORS)

    def add(self, value: bytes | None, source: str) -> dict[str, Any] | None:
        """Read one record value; its table row if it is a new valid document, else None (counted)."""
        self.received += 1
        try:
            data = orjson.loads(value if value is not None else b"null")
        except orjson.JSONDecodeError as exc:
            return self._reject("invalid_json", f"{source}: not JSON ({exc}).")
        if isinstance(data, dict) and data.get("schema_version") != SCHEMA_VERSION:
            return self._reject(
                "schema_version",
                f"{source}: schema_version {data.get('schema_version')!r}; this dashboard reads "
                f"{SCHEMA_VERSION}. Is the topic shared with another producer?",
            )
        try:
            document = CNNDocument.from_json(data, source)
        except DocumentError as exc:
            return self._reject("invalid_document", str(exc))
        if document.id in self._documents:
            self.duplicates += 1
            return None
        self._seq += 1
        row = _row(self._seq, document)
        cam = None if document.cam is None else [round(float(x), 4) for x in document.cam]
        self._documents[document.id] = StoredDocument(row, cam, document)
        while len(self._documents) > self.capacity:
            self._documents.popitem(last=False)
        return row

    def rows(self, after: int = 0) -> list[dict[str, Any]]:
        """Table rows of the stored documents numbered above ``after``, in arrival order."""
        return [d.row for d in self._documents.values() if d.row["seq"] > after]

    def get(self, document_id: str) -> StoredDocument | None:
        """The stored document with this id, None if never seen or already evicted."""
        return self._documents.get(document_id)

    @property
    def last_seq(self) -> int:
        """Number of the newest document (0 before the first)."""
        return self._seq

    def __len__(self) -> int:
        """Documents held."""
        return len(self._documents)

    def stats(self) -> dict[str, Any]:
        """Counts for the page: kept, received, duplicates, errors by reason and the latest messages."""
        return {
            "kept": len(self._documents),
            "received": self.received,
            "duplicates": self.duplicates,
            "errors": dict(self.errors),
            "error_total": sum(self.errors.values()),
            "recent_errors": list(self.recent_errors),
        }

    def _reject(self, reason: str, message: str) -> dict[str, Any] | None:
        """Count a record that is not a usable document; None, as :meth:`add` answers for it."""
        self.errors[reason] += 1
        self.recent_errors.append(message)
        return None


def _row(seq: int, document: CNNDocument) -> dict[str, Any]:
    """The table row of a document (everything but its map)."""
    row: dict[str, Any] = {
        "seq": seq,
        "id": document.id,
        "symbol": document.symbol,
        "interval": document.interval,
        "interval_ms": document.interval_ms,
        "window_start_ts": document.window_start_ts,
        "bar_end_ts": document.bar_end_ts,
        "last_bar_ts": document.last_bar_ts,
        "model_version": document.model_version,
        "sequence_score": document.sequence_score,
        "threshold": document.threshold,
        "signal": document.signal,
        "has_map": document.cam is not None,
    }
    row |= dict(zip(PROB_KEYS, document.probs, strict=True))
    return row


class BarBook:
    """Closed bars per symbol from state-topic bar records; the newest ``bars_per_symbol`` of each."""

    def __init__(self, bars_per_symbol: int = DEFAULT_BARS_PER_SYMBOL) -> None:
        if bars_per_symbol < SEQ_LEN:
            raise ValueError(f"keep at least one window ({SEQ_LEN} bars) per symbol, not {bars_per_symbol}")
        self.bars_per_symbol = bars_per_symbol
        self._bars: dict[str, dict[int, tuple[float, ...]]] = {}
        self.records = 0
        self.bad_records = 0

    def apply(self, keys: Sequence[bytes | None], values: Sequence[bytes | None]) -> None:
        """Fold state records in offset order; checkpoints are skipped, unreadable bars counted."""
        for key, value in zip(keys, values, strict=True):
            self.records += 1
            if key is None or value is None or not key.startswith(BAR_KEY_PREFIX):
                continue
            if len(value) != BAR_DTYPE.itemsize or key.count(b"|") < 2:
                self.bad_records += 1
                continue
            bar = np.frombuffer(value, dtype=BAR_DTYPE)[0]
            if int(bar["version"]) != BAR_VERSION:
                self.bad_records += 1
                continue
            symbol = key[len(BAR_KEY_PREFIX) : key.rindex(b"|")].decode(errors="replace")
            bars = self._bars.setdefault(symbol, {})
            bars[int(bar["start"])] = tuple(float(x) for x in bar["ohlcv"])
            if len(bars) > self.bars_per_symbol + self.bars_per_symbol // 4:
                for start in sorted(bars)[: len(bars) - self.bars_per_symbol]:
                    del bars[start]

    def window(self, symbol: str, start_ts: int, end_ts: int) -> list[list[float]]:
        """``[bar start, open, high, low, close, volume]`` of ``symbol``'s bars in ``[start_ts, end_ts)``."""
        bars = self._bars.get(symbol, {})
        return [[ts, *bars[ts]] for ts in sorted(bars) if start_ts <= ts < end_ts]

    @property
    def symbols(self) -> int:
        """Symbols with bars."""
        return len(self._bars)
