"""``bullflag scan``: the worker's documents from files, bad rows reported, outputs and usage errors."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consumer.cli import main, scanning
from consumer.cli.scanning import ScanJob, chunks, judge_rows, load_model, scan_chunk, start_worker
from consumer.config import Settings
from consumer.core.pipeline import BarPipeline
from consumer.core.scoring import Scorer
from consumer.sessions import gap_rule
from consumer.sources.market import synthetic_market
from consumer.sources.producer import bar_records
from consumer.sources.readers import read_table
from consumer.sources.tables import BarTable
from consumer.validators import InvalidValueError, event_time_ms

T0 = 1_732_550_400_000
MINUTE = 60_000
HEADER = ["symbol", "ts", "open", "high", "low", "close", "volume"]


def market_rows() -> list[list[Any]]:
    """Bars of four symbols: two full, one with gaps, one that stops early (closed by the watermark)."""
    table = synthetic_market(4, 260, seed=5).table()
    rows = []
    for symbol, ts, bar in zip(
        table.symbols.tolist(), table.ts_ms.tolist(), table.ohlcv.tolist(), strict=True
    ):
        k = (ts - T0) // MINUTE
        if symbol == table.symbols[0] and k % 17 in (3, 4, 5):
            continue
        if symbol == table.symbols[1] and k > 230:
            continue
        rows.append([symbol, ts, *bar])
    return rows


def write_csv(path: Path, rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows([repr(v) if isinstance(v, float) else v for v in row] for row in rows)
    return path


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("scan") / "market.csv", market_rows())


def reference(path: Path, settings: Settings) -> list[dict[str, Any]]:
    """One pipeline over every record of the file in one batch, as a one-partition worker sees it."""
    table = read_table(path)
    assert isinstance(table, BarTable)
    keys, values, _ = zip(*bar_records(table), strict=True)
    pipeline = BarPipeline(
        settings.bar_interval_ms,
        settings.allowed_lateness_ms,
        input_kind="bars",
        gap_rule=gap_rule(settings, "bars"),
    )
    windows = pipeline.process(0, values, keys).windows
    scored = Scorer(load_model(settings), settings.bar_interval).score(windows)
    return sorted((orjson.loads(v) for v in scored.values), key=lambda d: (d["symbol"], d["bar_end_ts"]))


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_scan_writes_what_one_worker_partition_publishes(market: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    assert main(["scan", str(market), "--out", str(out), "--threshold", "0", "--no-progress"]) == 0

    documents = lines(out)
    expected = reference(market, Settings(bar_interval="1m", threshold=0.0))
    assert documents == expected
    early = {d["symbol"]: d["bar_end_ts"] for d in documents}
    assert min(early.values()) < max(early.values()), "the symbol that stopped early was closed at the end"
    assert any(d["activation_map"] is not None for d in documents)


def test_chunks_of_a_few_symbols_give_the_same_documents(market: Path) -> None:
    table = read_table(market)
    settings = Settings(bar_interval="1m", threshold=0.2)
    verdicts = judge_rows(table.ts_ms, settings, now_ms=int(table.ts_ms.max()))
    job = ScanJob(settings, "bars", verdicts.end, gaps=gap_rule(settings, "bars"))
    start_worker(job, load_model(settings))
    parts = list(chunks(table, np.arange(len(table)), verdicts.after, target_rows=300))

    values = [v for part in parts for v in scan_chunk(part).values]

    assert len(parts) == 4
    assert [orjson.loads(v) for v in values] == reference(market, settings)


def test_two_processes_write_the_same_bytes_as_one(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scanning, "CHUNK_ROWS", 300)
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    assert main(["scan", str(market), "--out", str(one), "--no-progress"]) == 0
    assert main(["scan", str(market), "--out", str(two), "--workers", "2", "--no-progress"]) == 0
    assert one.read_bytes() == two.read_bytes()


def test_bad_rows_are_reported_by_file_and_line_and_counted(
    market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = market_rows()
    bad = [["A", T0, -1.0, 2.0, 0.5, 1.0, 1], ["A", "soon", 1.0, 2.0, 0.5, 1.0, 1], ["A", T0]]
    path = write_csv(tmp_path / "dirty.csv", [*rows[:10], *bad, *rows[10:]])
    out = tmp_path / "out.jsonl"

    assert main(["scan", str(path), "--out", str(out), "--no-progress"]) == 0

    err = capsys.readouterr().err
    assert f"skipped {path}, line 12: bad_ohlc" in err
    assert f"skipped {path}, line 13: bad_ts" in err
    assert f"skipped {path}, line 14: bad_fields" in err
    assert "skipped 3 bad rows: bad_fields 1, bad_ohlc 1, bad_ts 1" in err
    clean = tmp_path / "clean.jsonl"
    assert main(["scan", str(market), "--out", str(clean), "--no-progress"]) == 0
    assert out.read_bytes() == clean.read_bytes()


def test_signals_only_time_bounds_and_parquet(market: Path, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    everything, signals = tmp_path / "all.jsonl", tmp_path / "signals.jsonl"
    assert main(["scan", str(market), "--out", str(everything), "--no-progress"]) == 0
    threshold = str(np.median([d["sequence_score"] for d in lines(everything)]))
    assert main(["scan", str(market), "--out", str(everything), "--threshold", threshold]) == 0
    first, last = T0 + 220 * MINUTE, T0 + 240 * MINUTE
    args = ["--threshold", threshold, "--signals-only", "--from", str(first), "--to", "2024-11-25T20:00:00"]
    parquet = tmp_path / "signals.parquet"
    assert main(["scan", str(market), "--out", str(signals), "--parquet", str(parquet), *args]) == 0

    wanted = [d for d in lines(everything) if d["signal"] and first <= d["bar_end_ts"] <= last]
    assert wanted, "some signals inside the bounds"
    assert lines(signals) == wanted
    table = pq.read_table(parquet).to_pylist()
    assert [row["id"] for row in table] == [d["id"] for d in wanted]
    for row, document in zip(table, wanted, strict=True):
        assert row["sequence_score"] == document["sequence_score"]
        assert row["activation_map_intensities"] == document["activation_map"]["intensities"]


def test_png_draws_each_signal(market: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    out, pictures = tmp_path / "out.jsonl", tmp_path / "png"
    last = T0 + 202 * MINUTE
    args = ["--threshold", "0", "--signals-only", "--to", str(last), "--png", str(pictures), "--no-progress"]
    assert main(["scan", str(market), "--out", str(out), *args]) == 0
    assert len(list(pictures.glob("*.png"))) == len(lines(out)) > 0


def test_a_folder_is_scanned_and_ticks_can_be_drawn_from_bars(market: Path, tmp_path: Path) -> None:
    folder = tmp_path / "history"
    folder.mkdir()
    write_csv(folder / "part.csv", market_rows()[:400])
    out = tmp_path / "out.jsonl"
    assert main(["scan", str(folder), "--input", "ticks", "--bar-interval", "1m", "--out", str(out)]) == 0
    assert out.read_bytes() == b"", "400 bars of four symbols never fill a window"


def test_usage_errors_exit_2(market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trades = tmp_path / "t.csv"
    trades.write_text(f"symbol,ts,price\nA,{T0},1.0\n")
    assert main(["scan", str(trades), "--input", "bars"]) == 2
    assert "hold trades, but --input bars" in capsys.readouterr().err
    assert main(["scan", str(trades), str(market)]) == 2
    assert "mix trades and OHLCV bars" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["scan", str(tmp_path / "empty")]) == 2
    assert "no CSV or Parquet files" in capsys.readouterr().err
    assert main(["scan", str(market), "--from", "2024-11-26", "--to", "2024-11-25"]) == 2
    assert "--from is after --to" in capsys.readouterr().err
    assert main(["scan", str(market), "--threshold", "2"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_help_reads_like_the_other_commands(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["scan", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for part in ("PATH", "--signals-only", "--png DIR", "--from TIME", "--workers N", "worker settings"):
        assert part in text


@given(st.integers(0, 253_402_300_799_999))
def test_event_times_parse_as_epoch_ms_or_iso(ms: int) -> None:
    assert event_time_ms(str(ms)) == ms
    iso = np.datetime64(ms, "ms").astype(str)
    assert event_time_ms(iso) == ms
    assert event_time_ms(iso + "+00:00") == ms


@given(st.text(min_size=1).filter(lambda t: not t.strip().isdigit()))
def test_other_text_is_refused_or_parsed_as_a_time(text: str) -> None:
    try:
        value = event_time_ms(text)
    except InvalidValueError as exc:
        assert "neither epoch milliseconds nor an ISO-8601 time" in str(exc)
    else:
        assert isinstance(value, int)


def test_without_tqdm_there_is_no_bar_and_no_error(
    market: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "tqdm", None)
    out = tmp_path / "out.jsonl"
    assert main(["scan", str(market), "--out", str(out), "--progress"]) == 0
    assert out.stat().st_size > 0


def test_an_output_that_cannot_be_written_exits_1(
    market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", str(market), "--out", str(tmp_path / "missing" / "out.jsonl")]) == 1
    assert "writing the results failed" in capsys.readouterr().err


def test_rows_far_from_the_whole_inputs_clock_are_judged_as_in_one_partition(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BULLFLAG_MAX_TIME_JUMP", "1h")
    path = tmp_path / "t.csv"
    late = T0 + 3 * 3_600_000
    steady = "".join(f"A,{T0 + i * MINUTE},1.0\n" for i in range(9))
    path.write_text(f"symbol,ts,price\n{steady}B,{late},2.0\nB,{late + 1},2.1\n")

    assert main(["scan", str(path), "--out", str(tmp_path / "out.jsonl"), "--no-progress"]) == 0

    err = capsys.readouterr().err
    assert f"skipped {path}, line 11: future_ts: ts {late} is too far ahead" in err
    assert f"skipped {path}, line 12: future_ts" in err
    assert "skipped 2 bad rows: future_ts 2" in err
