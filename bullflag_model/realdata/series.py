"""The real OHLCV series this project can read from installed packages, as ``[T, 5]`` arrays.

Each series names the package and file it comes from; a missing package raises
``RealDataError`` naming the extra to install. Files are parsed with the standard ``csv`` module,
so loading needs numpy only.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import numpy as np

INSTALL_HINT = "pip install 'bullflag-stream[real]'"


class RealDataError(RuntimeError):
    """A real series cannot be read: its package is not installed, or its file is not as expected."""


@dataclass(frozen=True)
class SeriesSource:
    """Where a series lives: package, resource path inside it, and its kind (``daily`` or ``intraday``)."""

    name: str
    package: str
    resource: str
    kind: str
    description: str


@dataclass(frozen=True)
class RealSeries:
    """One loaded series: bars ``[T, 5]`` (open, high, low, close, volume) and ISO times ``[T]``."""

    source: SeriesSource
    bars: np.ndarray
    times: np.ndarray

    @property
    def name(self) -> str:
        """The series' short name, as used in labels and reports."""
        return self.source.name


SOURCES: dict[str, SeriesSource] = {
    s.name: s
    for s in (
        SeriesSource("GOOG", "backtesting", "test/GOOG.csv", "daily", "Alphabet (GOOG) daily, 2004-2013"),
        SeriesSource("EURUSD", "backtesting", "test/EURUSD.csv", "intraday", "EUR/USD hourly, 2017-2018"),
        SeriesSource("SP500", "arch", "data/sp500/sp500.csv.gz", "daily", "S&P 500 index daily, 1999-2018"),
        SeriesSource(
            "NASDAQ", "arch", "data/nasdaq/nasdaq.csv.gz", "daily", "NASDAQ Composite daily, 1999-2018"
        ),
    )
}
"""Every series the real-data evaluation reads, by name."""

HELD_OUT_SERIES = "GOOG"
"""The series no training, calibration or threshold choice may look at; reported on its own."""


def _iso_time(text: str) -> str:
    """A date or date-time in the files' formats (ISO or US ``m/d/Y``) as ISO 8601."""
    text = text.strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d", "%m/%d/%Y"):
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return parsed.isoformat(sep=" ") if " " in text else parsed.date().isoformat()
    raise RealDataError(f"unreadable time {text!r}")


def parse_ohlcv_csv(text: str, origin: str) -> tuple[np.ndarray, np.ndarray]:
    """Bars ``[T, 5]`` and ISO times from CSV text whose header names Open/High/Low/Close/Volume.

    The first column is the time. Rows with a missing or non-positive price are refused with the
    row number, since a real series with holes would be silently distorted by the features.
    """
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RealDataError(f"{origin}: empty file")
    header = [h.strip().lower() for h in rows[0]]
    try:
        cols = [header.index(name) for name in ("open", "high", "low", "close", "volume")]
    except ValueError as exc:
        raise RealDataError(f"{origin}: header {rows[0]} lacks an OHLCV column") from exc
    bars = np.empty((len(rows) - 1, 5))
    times = []
    for i, row in enumerate(rows[1:]):
        try:
            bars[i] = [float(row[c]) for c in cols]
        except (ValueError, IndexError) as exc:
            raise RealDataError(f"{origin}: row {i + 2} is not numeric OHLCV: {row}") from exc
        if not np.all(bars[i, :4] > 0):
            raise RealDataError(f"{origin}: row {i + 2} has a non-positive price: {row}")
        times.append(_iso_time(row[0]))
    return bars, np.array(times)


def load_series(name: str) -> RealSeries:
    """Load one series from its installed package; ``RealDataError`` if it is unknown or absent."""
    if name not in SOURCES:
        raise RealDataError(f"unknown real series {name!r}; known: {', '.join(SOURCES)}")
    source = SOURCES[name]
    if importlib.util.find_spec(source.package) is None:
        raise RealDataError(f"series {name} ships with the {source.package!r} package; {INSTALL_HINT}")
    data = resources.files(source.package).joinpath(source.resource).read_bytes()
    if source.resource.endswith(".gz"):
        data = gzip.decompress(data)
    bars, times = parse_ohlcv_csv(data.decode("utf-8"), f"{source.package}/{source.resource}")
    return RealSeries(source=source, bars=bars, times=times)


def load_all() -> list[RealSeries]:
    """Every series in ``SOURCES``, in order."""
    return [load_series(name) for name in SOURCES]
