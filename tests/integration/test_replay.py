"""``bullflag replay`` and ``bullflag broker`` against a real broker."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import signal
import socket
import sys
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from consumer.cli import main
from consumer.core.ticks import TickDecoder
from consumer.kafka.embedded_broker import LOOPBACK_HOST, pick_free_port
from consumer.sources.market import synthetic_market
from consumer.sources.producer import produce_records
from consumer.sources.readers import read_table
from consumer.sources.trades import bars_to_trades
from tests.integration.conftest import TopicFactory

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = 1_732_550_400_000
MINUTE = 60_000
READY_TIMEOUT_S = 20.0


async def read_topic(bootstrap: str, topic: str, partitions: int, expected: int) -> list[Any]:
    """Every record of ``topic`` (``expected`` of them), read without a consumer group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        async with asyncio.timeout(20):
            while len(records) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                records += [r for rs in batch.values() for r in rs]
        extra = await consumer.getmany(timeout_ms=200)
        records += [r for rs in extra.values() for r in rs]
    finally:
        await consumer.stop()
    return records


def assert_keyed_ticks(records: list[Any], symbols: set[str]) -> None:
    """Keys are the symbols, one partition per key, each decodes as a tick with no rejects."""
    assert {r.key.decode() for r in records} == symbols
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for record in records:
        partitions[record.key].add(record.partition)
    assert all(len(owners) == 1 for owners in partitions.values())
    decoded = TickDecoder().decode_ticks([r.value for r in records], [r.key for r in records])
    assert decoded.rejects == []
    assert decoded.ts_ms.tolist() == [r.timestamp for r in records]


def write_bars_csv(path: Path) -> Path:
    """Two symbols' 1-minute bars, rows grouped by symbol, times as ISO-8601."""
    market = synthetic_market(2, 30, seed=21)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["Ticker", "Datetime", "Open", "High", "Low", "Close", "Volume"])
        for symbol, bars in zip(("AAA", "BBB.X"), market.bars, strict=True):
            for ts, (o, h, lo, c, v) in zip(market.ts_ms.tolist(), bars.tolist(), strict=True):
                stamp = np.datetime64(ts, "ms").item().isoformat() + "Z"
                writer.writerow([symbol, stamp, repr(o), repr(h), repr(lo), repr(c), int(v)])
    return path


async def test_replay_csv_bars_as_ticks(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_bars_csv(tmp_path / "bars.csv")
    topic = await topic_factory(3)
    table = read_table(path)
    expected = bars_to_trades(table, 7, interval_ms=MINUTE)

    code = await asyncio.to_thread(
        main, ["replay", str(path), "--bootstrap-servers", kafka_bootstrap, "--topic", topic, "--progress"]
    )

    assert code == 0
    out = capsys.readouterr().out
    assert f"ticks drawn from 60 bars of 1m of 2 symbols from {path}" in out
    assert f"produced {len(expected)} records" in out
    records = await read_topic(kafka_bootstrap, topic, 3, len(expected))
    assert len(records) == len(expected)
    assert_keyed_ticks(records, {"AAA", "BBB.X"})
    for symbol in ("AAA", "BBB.X"):
        mine = [r for r in records if r.key == symbol.encode()]
        assert [r.timestamp for r in mine] == expected.ts_ms[expected.symbols == symbol].tolist()


async def test_replay_csv_bars_as_bars(
    kafka_bootstrap: str, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    path = write_bars_csv(tmp_path / "bars.csv")
    topic = await topic_factory(2)

    code = await asyncio.to_thread(
        main,
        ["replay", str(path), "--input", "bars", "--bootstrap-servers", kafka_bootstrap, "--topic", topic],
    )

    assert code == 0
    records = await read_topic(kafka_bootstrap, topic, 2, 60)
    assert len(records) == 60 and {r.key for r in records} == {b"AAA", b"BBB.X"}
    decoded = TickDecoder().decode_bars([r.value for r in records], [r.key for r in records])
    assert decoded.rejects == [] and len(decoded) == 60


async def test_replay_generated_market_creates_the_topic(
    kafka_bootstrap: str, kafka_admin: AIOKafkaAdminClient, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"bullflag-test-{uuid.uuid4().hex}"
    market = synthetic_market(4, 50, seed=3)
    expected = bars_to_trades(market.table(), 3, interval_ms=MINUTE)
    args = ["replay", "--generate", "--symbols", "4", "--bars", "50", "--seed", "3", "--limit", "500"]
    try:
        code = await asyncio.to_thread(
            main,
            [
                *args,
                "--bootstrap-servers",
                kafka_bootstrap,
                "--topic",
                topic,
                "--create-topic",
                "--partitions",
                "2",
            ],
        )
        assert code == 0
        assert "produced 500 records" in capsys.readouterr().out
        (description,) = await kafka_admin.describe_topics([topic])
        assert len(description["partitions"]) == 2
        records = await read_topic(kafka_bootstrap, topic, 2, 500)
    finally:
        await kafka_admin.delete_topics([topic])
    assert len(records) == 500
    assert sorted(r.timestamp for r in records) == expected.ts_ms[:500].tolist()
    assert_keyed_ticks(records, set(expected.symbols[:500].tolist()))


async def test_produce_records_paces_by_event_time(kafka_bootstrap: str, topic_factory: TopicFactory) -> None:
    topic = await topic_factory(1)
    records = [
        (b"AAA", b'{"symbol":"AAA","ts":%d,"price":1.0}' % (T0 + i * 1_000), T0 + i * 1_000) for i in range(4)
    ]

    stats = await produce_records(kafka_bootstrap, topic, records, speed=10.0, total=4, linger_ms=0)

    assert stats.records == 4 and (stats.first_ts_ms, stats.last_ts_ms) == (T0, T0 + 3_000)
    assert 0.3 <= stats.seconds < 3.0
    assert len(await read_topic(kafka_bootstrap, topic, 1, 4)) == 4


def alive(pid: int) -> bool:
    """Whether a process with this id exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def start_broker_command(*args: str) -> asyncio.subprocess.Process:
    """``bullflag broker`` in a subprocess, stdout and stderr together on one pipe."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "consumer.cli",
        "broker",
        *args,
        cwd=REPO_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finish(process: asyncio.subprocess.Process) -> tuple[int, str]:
    """Wait for the process (killing it after 15 s) and return its exit code and remaining output."""
    assert process.stdout is not None
    try:
        async with asyncio.timeout(15):
            output = await process.stdout.read()
            code = await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return code, output.decode()


async def read_announcement(process: asyncio.subprocess.Process) -> str:
    """The lines ``bullflag broker`` prints once it is ready, up to its stop hint."""
    assert process.stdout is not None
    seen = ""
    async with asyncio.timeout(READY_TIMEOUT_S):
        while "Ctrl-C or SIGTERM stops it" not in seen:
            line = (await process.stdout.readline()).decode()
            assert line, f"bullflag broker exited before it was ready:\n{seen}"
            seen += line
    return seen


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
async def test_broker_command_serves_until_signalled(
    broker_binary: Path, tmp_path: Path, signum: int
) -> None:
    port = pick_free_port()
    process = await start_broker_command(
        "--port", str(port), "--create-topics", "ticks:2,signals:1", "--log-dir", str(tmp_path)
    )
    broker_pid: int | None = None
    left_behind = False
    try:
        announced = await read_announcement(process)
        match = re.search(r"bootstrap (\S+) .*pid (\d+)", announced)
        assert match is not None, announced
        broker_pid = int(match.group(2))
        assert match.group(1) == f"{LOOPBACK_HOST}:{port}"
        assert f"bullflag run --bootstrap-servers {LOOPBACK_HOST}:{port}" in announced
        admin = AIOKafkaAdminClient(bootstrap_servers=match.group(1))
        await admin.start()
        try:
            described = await admin.describe_topics(["ticks", "signals"])
        finally:
            await admin.close()
        assert {t["topic"]: len(t["partitions"]) for t in described} == {"ticks": 2, "signals": 1}
    finally:
        try:
            if process.returncode is None:
                process.send_signal(signum)
            code, rest = await finish(process)
        finally:
            left_behind = broker_pid is not None and alive(broker_pid)
            if left_behind and broker_pid is not None:
                os.kill(broker_pid, signal.SIGKILL)
    assert code == 0, rest
    assert "broker stopped" in rest
    assert not left_behind, f"the broker process {broker_pid} outlived bullflag broker"


async def test_broker_command_reports_a_taken_port(broker_binary: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK_HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await start_broker_command("--port", str(port), "--log-dir", str(tmp_path))
        code, output = await finish(process)
    assert code == 1
    assert f"Port {port} on {LOOPBACK_HOST} is already in use" in output
