"""``bullflag explain``: a CNNOutput file and a CSV of bars become a PNG or SVG; gaps are refused."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import jsonschema
import numpy as np
import orjson
import pytest

from bullflag_model.output import CNNDocument, DocumentError, cnn_output, cnn_output_schema, load_document
from consumer.cli import main
from consumer.cli.pictures import CoverageError, window_bars
from consumer.sources.market import synthetic_market
from consumer.sources.readers import read_table

SYMBOL = "AAPL"
INTERVAL_MS = 60_000


@pytest.fixture(scope="module")
def market_bars() -> tuple[np.ndarray, np.ndarray]:
    """210 one-minute bars of one generated symbol: bar starts int64[210], OHLCV float64[210, 5]."""
    market = synthetic_market(1, 210, seed=3)
    return market.ts_ms, market.bars[0]


def make_document(ts_ms: np.ndarray, *, last: int, with_map: bool = True) -> dict[str, Any]:
    """A CNNOutput for the 200-bar window ending with bar ``last`` (with a ramp as its map)."""
    result: dict[str, Any] = {
        "flag_prob": 0.91,
        "breakout_prob": 0.72,
        "retest_prob": 0.33,
        "continuation_prob": 0.21,
        "sequence_score": 0.46,
        "activation_map": np.linspace(0.0, 1.0, 200).tolist() if with_map else None,
    }
    return cnn_output(
        result,
        symbol=SYMBOL,
        interval="1m",
        bar_end_ts=int(ts_ms[last]) + INTERVAL_MS,
        window_start_ts=int(ts_ms[last - 199]),
        model_version="bullflag-cnn+0123456789",
        threshold=0.4,
    )


def write_json(path: Path, document: dict[str, Any]) -> Path:
    """The document as a JSON file, checked against the shipped schema first."""
    jsonschema.validate(document, cnn_output_schema())
    path.write_bytes(orjson.dumps(document))
    return path


def write_bars(
    path: Path, ts_ms: np.ndarray, bars: np.ndarray, *, skip: frozenset[int] = frozenset()
) -> Path:
    """Bars as a CSV without a symbol column, leaving out the rows in ``skip``."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for i, (ts, row) in enumerate(zip(ts_ms.tolist(), bars.tolist(), strict=True)):
            if i not in skip:
                writer.writerow([ts, *(repr(v) for v in row)])
    return path


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_picture_from_json_and_csv(
    tmp_path: Path,
    market_bars: tuple[np.ndarray, np.ndarray],
    capsys: pytest.CaptureFixture[str],
    suffix: str,
) -> None:
    ts_ms, bars = market_bars
    document = write_json(tmp_path / "output.json", make_document(ts_ms, last=205))
    table = write_bars(tmp_path / "bars.csv", ts_ms, bars)
    out = tmp_path / f"window{suffix}"

    code = main(["explain", str(document), "--bars", str(table), "--out", str(out)])

    assert code == 0
    assert out.stat().st_size > 5_000
    head = out.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "map peak: bar 199 of 200" in printed


def test_window_bars_are_the_window_in_order(
    market_bars: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    ts_ms, bars = market_bars
    document = CNNDocument.from_json(make_document(ts_ms, last=205), "test")
    table = read_table(write_bars(tmp_path / "bars.csv", ts_ms, bars), symbol=SYMBOL)

    window = window_bars(table, document, "bars.csv")

    np.testing.assert_array_equal(window, bars[6:206])
    assert document.n_bars == 200 and document.cam_peak == 199


def test_document_without_a_map_is_drawn_without_the_strip(
    tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    ts_ms, bars = market_bars
    document = write_json(tmp_path / "output.json", make_document(ts_ms, last=199, with_map=False))
    table = write_bars(tmp_path / "bars.csv", ts_ms, bars)
    out = tmp_path / "nomap.png"

    code = main(["explain", str(document), "--bars", str(table), "--out", str(out)])

    assert code == 0 and out.stat().st_size > 5_000
    assert "has no activation map" in capsys.readouterr().out


def test_missing_bars_name_the_file_the_id_and_the_first_gap(
    tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    ts_ms, bars = market_bars
    raw = make_document(ts_ms, last=205)
    document = write_json(tmp_path / "output.json", raw)
    table = write_bars(tmp_path / "gappy.csv", ts_ms, bars, skip=frozenset({50, 51}))
    out = tmp_path / "never.png"

    code = main(["explain", str(document), "--bars", str(table), "--out", str(out)])

    assert code == 2
    error = capsys.readouterr().err
    assert str(table) in error and raw["id"] in error
    assert "198 of the 200 bars" in error and "the first at 2024-11-25 16:50Z" in error
    assert not out.exists()


def test_bars_ending_before_the_window_are_refused(
    tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray]
) -> None:
    ts_ms, bars = market_bars
    document = CNNDocument.from_json(make_document(ts_ms, last=205), "output.json")
    table = read_table(write_bars(tmp_path / "short.csv", ts_ms[:150], bars[:150]), symbol=SYMBOL)

    with pytest.raises(CoverageError, match=rf"short\.csv.*{document.id}.*144 of the 200 bars"):
        window_bars(table, document, "short.csv")


def test_bars_of_another_interval_are_refused(
    tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray]
) -> None:
    ts_ms, bars = market_bars
    document = CNNDocument.from_json(make_document(ts_ms, last=205), "output.json")
    shifted = write_bars(tmp_path / "shifted.csv", ts_ms + 30_000, bars)

    with pytest.raises(CoverageError, match="not on the 1m grid"):
        window_bars(read_table(shifted, symbol=SYMBOL), document, "shifted.csv")


def test_json_lines_need_an_id(tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray]) -> None:
    ts_ms, _ = market_bars
    first, second = make_document(ts_ms, last=204), make_document(ts_ms, last=205)
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(orjson.dumps(first) + b"\n" + orjson.dumps(second) + b"\n")

    with pytest.raises(DocumentError, match="holds 2 documents; choose one with --id"):
        load_document(path)
    assert load_document(path, second["id"]).bar_end_ts == second["bar_end_ts"]
    with pytest.raises(DocumentError, match="no CNNOutput with id 'f00'"):
        load_document(path, "f00")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bar_end_ts": None}, "'bar_end_ts' is missing"),
        ({"flag_prob": "high"}, "'flag_prob' must be a finite number"),
        ({"activation_map": {"intensities": ["x"] * 200}}, "must list 200 finite numbers"),
        ({"interval": "1 minute"}, "invalid bar interval"),
        ({"activation_map": {"intensities": [0.5] * 10}}, "must list 200 finite numbers"),
    ],
)
def test_malformed_documents_are_refused(
    market_bars: tuple[np.ndarray, np.ndarray], change: dict[str, Any], message: str
) -> None:
    document = make_document(market_bars[0], last=205) | change

    with pytest.raises(DocumentError, match=message):
        CNNDocument.from_json(document, "bad.json")


def test_a_file_of_trades_is_refused(
    tmp_path: Path, market_bars: tuple[np.ndarray, np.ndarray], capsys: pytest.CaptureFixture[str]
) -> None:
    ts_ms, _ = market_bars
    document = write_json(tmp_path / "output.json", make_document(ts_ms, last=205))
    trades = tmp_path / "trades.csv"
    trades.write_text("timestamp,price,size\n1732550400000,10.0,5\n")

    code = main(["explain", str(document), "--bars", str(trades), "--out", str(tmp_path / "x.png")])

    assert code == 2
    assert "holds trades, not OHLCV bars" in capsys.readouterr().err


def test_flags_must_name_one_source_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--bars", "b.csv"]) == 2
    assert "either a document file or --from-topic" in capsys.readouterr().err
    assert main(["explain", "--from-topic", "signals", "--bars", "b.csv"]) == 2
    assert "needs --id" in capsys.readouterr().err
    assert main(["explain", str(tmp_path / "d.json"), "--bars", "b.csv", "--out", "x.jpg"]) == 2
    assert ".png or .svg" in capsys.readouterr().err
