"""The dashboard's memory: documents deduplicated and bounded, bad records counted, bars by window."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from bullflag_model.output import cnn_output
from consumer.core.state import Checkpoint, bar_records
from consumer.dashboard.store import BarBook, DocumentStore

START = 1_732_550_400_000
STEP = 60_000


def document(symbol: str = "AAA", bar: int = 200, score: float = 0.9, cam: bool = True) -> dict[str, Any]:
    """A valid CNNOutput whose window is the 200 one-minute bars ending before bar ``bar``."""
    result: dict[str, Any] = {
        "flag_prob": 0.9,
        "breakout_prob": 0.8,
        "retest_prob": 0.7,
        "continuation_prob": 0.6,
        "sequence_score": score,
        "activation_map": np.linspace(0, 1, 200) if cam else None,
    }
    return cnn_output(
        result,
        symbol=symbol,
        interval="1m",
        bar_end_ts=START + bar * STEP,
        window_start_ts=START + (bar - 200) * STEP,
        model_version="test+0123456789",
        threshold=0.5,
    )


def test_documents_are_numbered_in_arrival_order_and_read_back_as_rows() -> None:
    store = DocumentStore()
    first = store.add(orjson.dumps(document(bar=200)), "t[0]@0")
    second = store.add(orjson.dumps(document(bar=201, cam=False, score=0.1)), "t[0]@1")
    assert first is not None and second is not None
    assert (first["seq"], second["seq"]) == (1, 2)
    assert first["last_bar_ts"] == START + 199 * STEP
    assert first["flag_prob"] == 0.9 and first["has_map"] and not second["has_map"]
    assert [r["seq"] for r in store.rows()] == [1, 2]
    assert [r["seq"] for r in store.rows(after=1)] == [2]
    stored = store.get(first["id"])
    assert stored is not None and stored.cam is not None and len(stored.cam) == 200
    without_map = store.get(second["id"])
    assert without_map is not None and without_map.cam is None


def test_a_document_seen_again_is_a_duplicate_not_a_new_row() -> None:
    store = DocumentStore()
    raw = orjson.dumps(document())
    assert store.add(raw, "a") is not None
    assert store.add(raw, "b") is None
    assert (len(store), store.duplicates, store.stats()["error_total"]) == (1, 1, 0)


def test_the_store_keeps_the_newest_documents_only() -> None:
    store = DocumentStore(capacity=3)
    for bar in range(200, 206):
        store.add(orjson.dumps(document(bar=bar)), "t")
    assert [r["seq"] for r in store.rows()] == [4, 5, 6]
    assert store.last_seq == 6
    with pytest.raises(ValueError, match="at least one"):
        DocumentStore(capacity=0)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{broken", "invalid_json"),
        (None, "invalid_document"),
        (b"[1, 2]", "invalid_document"),
        (b'{"schema_version": 1, "id": "x"}', "invalid_document"),
        (orjson.dumps(document() | {"schema_version": 2}), "schema_version"),
        (orjson.dumps({"temperature": 21.5}), "schema_version"),
        (orjson.dumps(document() | {"flag_prob": "high"}), "invalid_document"),
        (orjson.dumps(document() | {"window_start_ts": START + 1}), "invalid_document"),
    ],
)
def test_bad_and_foreign_records_are_counted_by_reason_with_a_message(
    value: bytes | None, reason: str
) -> None:
    store = DocumentStore()
    assert store.add(value, "signals[2]@41") is None
    stats = store.stats()
    assert stats["errors"] == {reason: 1}
    assert stats["kept"] == 0 and stats["received"] == 1
    assert "signals[2]@41" in stats["recent_errors"][0]


def bars(symbol: str, first: int, count: int) -> list[tuple[bytes, bytes]]:
    starts = START + np.arange(first, first + count, dtype=np.int64) * STEP
    ohlcv = np.column_stack(
        [starts % 1000, starts % 1000 + 2, starts % 1000 - 1, starts % 1000 + 1, np.ones(count)]
    )
    return bar_records([symbol] * count, starts, ohlcv.astype(np.float64), STEP, 200)


def test_the_bar_book_serves_a_window_and_skips_checkpoints_and_junk() -> None:
    book = BarBook()
    records = [*bars("AAA", 0, 250), *bars("BBB", 0, 10)]
    records.insert(5, (b"checkpoint", Checkpoint(1, 1, None).encode()))
    records.insert(6, (b"b|AAA|001", b"short"))
    book.apply([k for k, _ in records], [v for _, v in records])
    window = book.window("AAA", START + 50 * STEP, START + 250 * STEP)
    assert len(window) == 200
    assert window[0][0] == START + 50 * STEP and window[-1][0] == START + 249 * STEP
    assert window[0][1:] == [float((START + 50 * STEP) % 1000), *window[0][2:]]
    assert (book.symbols, book.bad_records, book.window("ZZZ", 0, 1 << 60)) == (2, 1, [])


def test_the_bar_book_forgets_the_oldest_bars_of_a_symbol_beyond_its_bound() -> None:
    book = BarBook(bars_per_symbol=200)
    records = bars("AAA", 0, 600)
    book.apply([k for k, _ in records], [v for _, v in records])
    kept = book.window("AAA", 0, 1 << 60)
    assert 200 <= len(kept) <= 250
    assert kept[-1][0] == START + 599 * STEP
    with pytest.raises(ValueError, match="at least one window"):
        BarBook(bars_per_symbol=10)
