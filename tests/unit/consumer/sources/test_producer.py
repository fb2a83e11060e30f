"""Records as the worker reads them, and the producer: through the client factory, tqdm optional."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import numpy as np
import orjson
import pytest

from consumer.config import Settings
from consumer.core.ticks import TickDecoder
from consumer.sources import producer as producer_module
from consumer.sources.market import synthetic_market
from consumer.sources.producer import Record, bar_records, produce_records, tick_records
from consumer.sources.trades import bars_to_trades

T0 = 1_732_550_400_000
MINUTE = 60_000
RECORDS: list[Record] = [(b"A", b'{"n": 1}', T0), (b"B", b'{"n": 2}', T0 + 1)]


class FakeProducer:
    """Records what would be sent; every delivery succeeds at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes, int]] = []
        self.started = self.stopped = False

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, topic: str, *, value: bytes, key: bytes, timestamp_ms: int) -> asyncio.Future[None]:
        self.sent.append((topic, key, value, timestamp_ms))
        delivery: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        delivery.set_result(None)
        return delivery


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the client factory's producer with a :class:`FakeProducer`; what it was asked for."""
    calls: dict[str, Any] = {"producer": FakeProducer()}

    def new_producer(connection: object, *, client_id: str | None = None, **options: Any) -> FakeProducer:
        calls.update(connection=connection, client_id=client_id, options=options)
        fake: FakeProducer = calls["producer"]
        return fake

    monkeypatch.setattr(producer_module, "new_producer", new_producer)
    return calls


def test_records_decode_without_rejects() -> None:
    market = synthetic_market(2, 30, seed=1)
    trades = bars_to_trades(market.table(), 0, interval_ms=MINUTE)
    keys, values, stamps = zip(*tick_records(trades), strict=True)
    decoded = TickDecoder().decode_ticks(values, keys)
    assert decoded.rejects == [] and len(decoded) == len(trades)
    assert list(stamps) == trades.ts_ms.tolist() and decoded.symbols == trades.symbols.tolist()
    assert np.array_equal(decoded.size, trades.size)
    assert all(isinstance(orjson.loads(value)["size"], int) for value in values)

    keys, values, _ = zip(*bar_records(market.table()), strict=True)
    bars = TickDecoder().decode_bars(values, keys)
    assert bars.rejects == [] and len(bars) == 60
    assert np.array_equal(bars.ts_ms, market.table().ts_ms)


async def test_produce_records_refuses_a_negative_speed() -> None:
    with pytest.raises(ValueError, match="speed must be a finite number >= 0"):
        await produce_records("127.0.0.1:1", "ticks", [], speed=-1.0)


async def test_produce_records_builds_its_producer_with_the_factory(built: dict[str, Any]) -> None:
    settings = Settings(bootstrap_servers="kafka:9093", security_protocol="SASL_SSL", sasl_username="u")

    stats = await produce_records(settings, "ticks", RECORDS, linger_ms=5, client_id="bullflag-replay")

    assert built["connection"] is settings and built["client_id"] == "bullflag-replay"
    assert built["options"] == {
        "acks": "all",
        "enable_idempotence": False,
        "max_batch_size": 256 * 1024,
        "linger_ms": 5,
    }
    fake = built["producer"]
    assert fake.started and fake.stopped
    assert fake.sent == [("ticks", key, value, ts) for key, value, ts in RECORDS]
    assert (stats.records, stats.first_ts_ms, stats.last_ts_ms) == (2, T0, T0 + 1)


async def test_progress_bar_shows_with_tqdm(
    built: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tqdm")
    await produce_records("127.0.0.1:1", "ticks", RECORDS, total=2, progress=True)
    assert "replay -> ticks" in capsys.readouterr().err


async def test_produce_records_runs_without_tqdm(
    built: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)

    stats = await produce_records("127.0.0.1:1", "ticks", RECORDS, total=2, progress=True)

    assert stats.records == 2 and len(built["producer"].sent) == 2
    assert capsys.readouterr().err == ""
