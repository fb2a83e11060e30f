"""The frozen chart-read labels of real windows: reading the CSV and finding each window's bars.

A row names a series, the time of the window's last bar, a label (1: a bull flag whose flag runs
through the last bar; 0: a clear negative), the negative's kind and a note. The rubric is in
``docs/real-labels.md``; ``bullflag evaluate --real --draw-labels`` draws any row to re-check it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources

import numpy as np

from bullflag_model.features import SEQ_LEN
from bullflag_model.realdata.series import RealDataError, RealSeries

LABEL_FILE = "real_labels.csv"
KINDS = ("bull_flag", "downtrend", "range", "mid_rise", "bear_flag", "other_negative")
COLUMNS = ("id", "series", "end", "label", "kind", "note")


@dataclass(frozen=True)
class Label:
    """One labelled window: ``end`` is the ISO time of its last bar."""

    id: str
    series: str
    end: str
    label: int
    kind: str
    note: str


def parse_labels(text: str) -> list[Label]:
    """Labels from CSV text with the ``COLUMNS`` header; a bad row raises ``RealDataError``."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise RealDataError(f"label file header must be {','.join(COLUMNS)}, got {reader.fieldnames}")
    out, seen = [], set()
    for line, row in enumerate(reader, start=2):
        if row["label"] not in ("0", "1") or row["kind"] not in KINDS:
            raise RealDataError(f"label row {line}: label must be 0/1 and kind one of {KINDS}, got {row}")
        if (row["label"] == "1") != (row["kind"] == "bull_flag"):
            raise RealDataError(f"label row {line}: label 1 goes with kind bull_flag and only with it")
        if row["id"] in seen:
            raise RealDataError(f"label row {line}: duplicate id {row['id']!r}")
        seen.add(row["id"])
        out.append(Label(row["id"], row["series"], row["end"], int(row["label"]), row["kind"], row["note"]))
    return out


def load_labels() -> list[Label]:
    """The labels shipped in the package (``bullflag_model/realdata/real_labels.csv``)."""
    text = resources.files("bullflag_model.realdata").joinpath(LABEL_FILE).read_text("utf-8")
    return parse_labels(text)


def window_end_index(series: RealSeries, end: str, seq_len: int = SEQ_LEN) -> int:
    """Index of the bar at time ``end`` in ``series``; it must have ``seq_len - 1`` bars before it."""
    hits = np.flatnonzero(series.times == end)
    if hits.size != 1:
        raise RealDataError(f"series {series.name} has no single bar at {end!r}")
    index = int(hits[0])
    if index < seq_len - 1:
        raise RealDataError(f"series {series.name}: a {seq_len}-bar window cannot end at {end!r}")
    return index


def label_window(series: RealSeries, label: Label, seq_len: int = SEQ_LEN) -> np.ndarray:
    """Bars ``[seq_len, 5]`` of the window a label names."""
    end = window_end_index(series, label.end, seq_len)
    return series.bars[end - seq_len + 1 : end + 1]
