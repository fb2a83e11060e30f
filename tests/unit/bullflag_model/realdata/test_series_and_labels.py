"""Real series parsing and the frozen labels: bad files are refused, every label names a window."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from bullflag_model.features import SEQ_LEN
from bullflag_model.realdata.labels import KINDS, label_window, load_labels, parse_labels
from bullflag_model.realdata.series import (
    HELD_OUT_SERIES,
    SOURCES,
    RealDataError,
    load_series,
    parse_ohlcv_csv,
)

HEADER = "id,series,end,label,kind,note\n"
REAL_PACKAGES = all(importlib.util.find_spec(p) is not None for p in ("backtesting", "arch"))


def test_parse_reads_iso_and_us_dates_and_orders_columns_by_header() -> None:
    text = "Date,Volume,Close,Low,High,Open\n1/4/1999,10,2,1,3,1.5\n1/5/1999,0,2.5,2,3,2\n"
    bars, times = parse_ohlcv_csv(text, "t")
    assert times.tolist() == ["1999-01-04", "1999-01-05"]
    assert bars.tolist() == [[1.5, 3, 1, 2, 10], [2, 3, 2, 2.5, 0]]
    _, hourly = parse_ohlcv_csv(",Open,High,Low,Close,Volume\n2017-04-19 09:00:00,1,1,1,1,1\n", "t")
    assert hourly.tolist() == ["2017-04-19 09:00:00"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Date,Open,High,Low,Close\n", "lacks an OHLCV column"),
        ("Date,Open,High,Low,Close,Volume\n2020-01-01,1,x,1,1,1\n", "row 2 is not numeric"),
        ("Date,Open,High,Low,Close,Volume\n2020-01-01,1,1,0,1,1\n", "row 2 has a non-positive price"),
        ("Date,Open,High,Low,Close,Volume\nyesterday,1,1,1,1,1\n", "unreadable time"),
    ],
)
def test_parse_refuses_bad_files(text: str, message: str) -> None:
    with pytest.raises(RealDataError, match=message):
        parse_ohlcv_csv(text, "t")


def test_unknown_series_is_refused_by_name() -> None:
    with pytest.raises(RealDataError, match="unknown real series 'XYZ'"):
        load_series("XYZ")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,GOOG,2010-01-04,2,bull_flag,x\n", "label must be 0/1"),
        ("a,GOOG,2010-01-04,1,range,x\n", "label 1 goes with kind bull_flag"),
        ("a,GOOG,2010-01-04,0,bull_flag,x\n", "label 1 goes with kind bull_flag"),
        ("a,GOOG,2010-01-04,0,range,x\na,GOOG,2010-01-05,0,range,x\n", "duplicate id 'a'"),
    ],
)
def test_parse_labels_refuses_bad_rows(row: str, message: str) -> None:
    with pytest.raises(RealDataError, match=message):
        parse_labels(HEADER + row)


def test_shipped_labels_are_enough_and_cover_every_series_and_kind() -> None:
    labels = load_labels()
    assert len(labels) >= 80
    assert {lab.series for lab in labels} == set(SOURCES)
    assert {lab.kind for lab in labels} >= set(KINDS) - {"other_negative"}
    assert sum(lab.label for lab in labels if lab.series == HELD_OUT_SERIES) >= 5


@pytest.mark.skipif(not REAL_PACKAGES, reason="needs the 'real' extra")
def test_every_label_names_a_full_window_of_its_series() -> None:
    series = {name: load_series(name) for name in SOURCES}
    for lab in load_labels():
        window = label_window(series[lab.series], lab)
        assert window.shape == (SEQ_LEN, 5)
        assert series[lab.series].times.tolist().index(lab.end) >= SEQ_LEN - 1


@pytest.mark.skipif(not REAL_PACKAGES, reason="needs the 'real' extra")
def test_shipped_series_load_with_valid_bars() -> None:
    for name in SOURCES:
        s = load_series(name)
        assert s.bars.shape[0] > 2000 and s.times.shape == (s.bars.shape[0],)
        assert np.all(s.bars[:, 1] >= np.maximum(s.bars[:, 0], s.bars[:, 3]))
        assert np.all(s.bars[:, 2] <= np.minimum(s.bars[:, 0], s.bars[:, 3]))
        assert np.all(s.times[1:] > s.times[:-1])
