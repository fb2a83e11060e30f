"""Where ``bullflag scan`` writes: JSON Lines, an optional Parquet file, and the summary on stderr.

JSON Lines carry the documents exactly as the worker publishes them, one per line. The Parquet
file holds the same documents as columns (the activation map as ``activation_map_target_head``
and ``activation_map_intensities``, null without a map); pyarrow is loaded only when one is asked
for. The summary counts skipped rows by reason, so no bad row goes unnoticed.
"""

from __future__ import annotations

import importlib
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import IO, Any, Final

import orjson

from bullflag_model.infer import PROB_KEYS
from consumer.sources.tables import ParquetUnavailableError

__all__ = ["ParquetSink", "ScanCounts", "check_parquet", "summary_lines", "write_lines"]

_COLUMNS: Final = (
    "schema_version",
    "id",
    "symbol",
    "interval",
    "bar_end_ts",
    "window_start_ts",
    "model_version",
    *PROB_KEYS,
    "sequence_score",
    "threshold",
    "signal",
)


def _pyarrow(path: Path) -> tuple[ModuleType, ModuleType]:
    """pyarrow and pyarrow.parquet, or a :class:`ParquetUnavailableError` saying how to get them."""
    try:
        return importlib.import_module("pyarrow"), importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ParquetUnavailableError(
            f"--parquet {path}: writing Parquet needs pyarrow, which is not installed; run "
            "`pip install 'bullflag-stream[parquet]'` or drop --parquet."
        ) from None


def check_parquet(path: Path) -> None:
    """Refuse, before any work, a Parquet output that cannot be written (no pyarrow)."""
    _pyarrow(path)


class ParquetSink:
    """Appends documents to one Parquet file, a row group per call; :meth:`close` finishes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pa, self._pq = _pyarrow(path)
        pa = self._pa
        fields = [
            pa.field("schema_version", pa.int32()),
            *(pa.field(name, pa.string()) for name in ("id", "symbol", "interval")),
            pa.field("bar_end_ts", pa.int64()),
            pa.field("window_start_ts", pa.int64()),
            pa.field("model_version", pa.string()),
            *(pa.field(name, pa.float64()) for name in (*PROB_KEYS, "sequence_score", "threshold")),
            pa.field("signal", pa.bool_()),
            pa.field("activation_map_target_head", pa.string()),
            pa.field("activation_map_intensities", pa.list_(pa.float64())),
        ]
        self._schema = pa.schema(fields)
        self._writer: Any = self._pq.ParquetWriter(path, self._schema)

    def write(self, values: list[bytes]) -> None:
        """Append these documents (JSON bytes as published)."""
        if not values:
            return
        documents = [orjson.loads(value) for value in values]
        columns: dict[str, list[Any]] = {name: [d[name] for d in documents] for name in _COLUMNS}
        maps = [d["activation_map"] for d in documents]
        columns["activation_map_target_head"] = [None if m is None else m["target_head"] for m in maps]
        columns["activation_map_intensities"] = [None if m is None else m["intensities"] for m in maps]
        self._writer.write_table(self._pa.Table.from_pydict(columns, schema=self._schema))

    def close(self) -> None:
        """Finish the file (a file with no documents still gets the schema)."""
        self._writer.close()


class ScanCounts:
    """Totals of one scan, for the summary: rows, skipped rows by reason, windows, documents."""

    def __init__(self) -> None:
        self.rows = 0
        self.skipped: Counter[str] = Counter()
        self.windows = 0
        self.documents = 0
        self.signals = 0
        self.pictures = 0


def summary_lines(counts: ScanCounts, files: int, seconds: float, workers: int) -> list[str]:
    """The summary printed on stderr at the end of a scan."""
    rate = counts.windows / seconds if seconds > 0 else 0.0
    lines = [
        f"scanned {counts.rows:,} rows of {files} file(s) in {seconds:.1f} s with {workers} process(es): "
        f"{counts.windows:,} windows scored ({rate:,.0f} windows/s), {counts.documents:,} documents "
        f"written, {counts.signals:,} signals, {counts.pictures:,} pictures",
    ]
    skipped = sum(counts.skipped.values())
    if skipped:
        reasons = ", ".join(f"{reason} {n:,}" for reason, n in sorted(counts.skipped.items()))
        lines.append(f"skipped {skipped:,} bad rows: {reasons}")
    else:
        lines.append("skipped 0 bad rows")
    return lines


def write_lines(out: IO[bytes], values: list[bytes]) -> None:
    """Write documents as JSON Lines."""
    if values:
        out.write(b"\n".join(values) + b"\n")
