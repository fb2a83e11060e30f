"""Prometheus metrics of one worker, in a registry of its own.

Each :class:`WorkerMetrics` owns a private ``CollectorRegistry``, so several workers (or tests)
in one process never share or collide on series. The worker updates it once per ``getmany()``
batch or per model call through the small methods below, never per record; the HTTP server
exposes :meth:`WorkerMetrics.render` on ``/metrics``.

Conventions: base units (seconds, Unix timestamps in seconds), ``_total`` counters, the
``bullflag_`` prefix, and low-cardinality labels only (topic, partition, reason, kind,
operation; never a symbol). Timestamps follow the ``*_timestamp_seconds`` convention, and
``bullflag_up_since_seconds`` is the Unix time the worker started, so uptime is
``time() - bullflag_up_since_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = [
    "BATCH_SIZE_BUCKETS",
    "LATENCY_BUCKETS",
    "WorkerMetrics",
]

LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""Upper bounds (seconds) of the latency histograms: 1 ms .. 10 s, roughly 1-2.5-5 per decade."""

BATCH_SIZE_BUCKETS: tuple[float, ...] = tuple(float(4**i) for i in range(8))
"""Upper bounds of the windows-per-model-call histogram: 1, 4, 16, .., 16384."""


class _BulkHistogram:
    """A label-less histogram that takes a whole numpy array per observation call.

    ``prometheus_client.Histogram.observe`` costs a lock and a Python bucket scan per value;
    a batch can publish thousands of outputs, so bucketing is done with ``searchsorted`` and
    ``bincount`` instead. The exposition is identical to a classic histogram's.
    """

    def __init__(self, name: str, documentation: str, buckets: Sequence[float]) -> None:
        """Create an empty histogram with the given upper bounds (ascending, ``+Inf`` implied)."""
        self._name = name
        self._documentation = documentation
        self._bounds = np.asarray(buckets, dtype=np.float64)
        self._counts = np.zeros(len(buckets) + 1, dtype=np.int64)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: np.ndarray | Sequence[float]) -> None:
        """Add every finite value of ``values``; NaN and infinities are ignored."""
        array = np.asarray(values, dtype=np.float64).ravel()
        array = array[np.isfinite(array)]
        if array.size == 0:
            return
        # side="left": a value equal to a bound belongs to that bound's bucket (le semantics).
        index = np.searchsorted(self._bounds, array, side="left")
        counts = np.bincount(index, minlength=self._counts.size)
        total = float(array.sum())
        with self._lock:
            self._counts += counts
            self._sum += total

    def describe(self) -> list[Metric]:
        """The family without samples, so the registry can check names without collecting."""
        return [HistogramMetricFamily(self._name, self._documentation)]

    def collect(self) -> Iterator[Metric]:
        """Yield the current cumulative buckets, count and sum."""
        with self._lock:
            cumulative = np.cumsum(self._counts)
            total = self._sum
        names = [floatToGoString(bound) for bound in self._bounds] + ["+Inf"]
        family = HistogramMetricFamily(self._name, self._documentation)
        family.add_metric([], list(zip(names, cumulative.tolist(), strict=True)), total)
        yield family


class _WithoutCreated(Collector):
    """A view of a registry without the ``*_created`` series the client adds to counters and histograms.

    In the text format each would be one more gauge series per counter or histogram series,
    doubling their cardinality for a value nobody graphs (``bullflag_up_since_seconds`` covers
    restarts).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        """Wrap ``registry``."""
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        """Yield the registry's families, minus their ``_created`` samples."""
        for metric in self._registry.collect():
            if metric.type in ("counter", "histogram"):
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class WorkerMetrics:
    """Every metric of one worker, with per-batch update methods and text exposition."""

    def __init__(self, *, model_version: str | None = None, threshold: float | None = None) -> None:
        """Create the metrics in a fresh registry; model info is set when both values are given."""
        self._registry = CollectorRegistry()
        reg = self._registry

        self._consumed = Counter(
            "bullflag_records_consumed_total", "Records fetched from Kafka.", ["topic"], registry=reg
        )
        self._dead_lettered = Counter(
            "bullflag_records_dead_lettered_total",
            "Records sent to the dead-letter topic, by reject reason.",
            ["reason"],
            registry=reg,
        )
        self._duplicates = Counter(
            "bullflag_duplicate_trades_total",
            "Trades dropped as duplicates of a seen trade id.",
            registry=reg,
        )
        self._bars_closed = Counter(
            "bullflag_bars_closed_total",
            "Bars closed, by kind: built from trades, or filled in for a gap without trades.",
            ["kind"],
            registry=reg,
        )
        for kind in ("trades", "gap"):
            self._bars_closed.labels(kind)
        self._inferences = Counter("bullflag_inferences_total", "Windows scored by the model.", registry=reg)
        self._signals = Counter(
            "bullflag_signals_total",
            "Scored windows whose sequence_score reached the threshold.",
            registry=reg,
        )
        self._gradcam_maps = Counter(
            "bullflag_gradcam_maps_total", "Grad-CAM activation maps computed.", registry=reg
        )
        self._published = Counter(
            "bullflag_outputs_published_total", "CNNOutput records acknowledged by the broker.", registry=reg
        )
        self._refused = Counter(
            "bullflag_symbols_refused_total",
            "New symbols refused because the worker already tracks its maximum number of symbols.",
            registry=reg,
        )
        self._idle_closes = Counter(
            "bullflag_idle_closes_total",
            "Closes of a quiet partition's bars by the wall clock (--idle-close-after), replays included.",
            registry=reg,
        )
        self._expired = Counter(
            "bullflag_symbols_expired_total",
            "Symbols forgotten after --symbol-ttl of event time without a trade (buffers and state freed).",
            registry=reg,
        )
        self._commits = Counter("bullflag_commits_total", "Successful offset commits.", registry=reg)
        self._commit_failures = Counter(
            "bullflag_commit_failures_total", "Offset commits that failed.", registry=reg
        )
        self._broker_errors = Counter(
            "bullflag_broker_errors_total",
            "Errors returned by the broker, by client operation (fetch, produce, commit, ...).",
            ["operation"],
            registry=reg,
        )
        self._pauses = Counter(
            "bullflag_backpressure_pauses_total",
            "Times the worker waited for its previous batch to be scored and published before fetching more.",
            registry=reg,
        )
        self._restored = Counter(
            "bullflag_state_restored_symbols_total",
            "Symbol buffers restored from saved state on partition assignment.",
            registry=reg,
        )

        self._latency = _BulkHistogram(
            "bullflag_bar_close_to_publish_seconds",
            "Time from the worker closing a bar to the broker acknowledging its output.",
            LATENCY_BUCKETS,
        )
        reg.register(self._latency)
        self._scoring_seconds = Histogram(
            "bullflag_scoring_batch_seconds",
            "Duration of one batched model call.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self._scoring_size = Histogram(
            "bullflag_scoring_batch_size",
            "Windows scored per batched model call.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self._batch_seconds = Histogram(
            "bullflag_batch_processing_seconds",
            "Duration of one fetched batch, end to end.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )

        self._symbols = Gauge("bullflag_symbols", "Symbols with state in this worker.", registry=reg)
        self._warm_symbols = Gauge(
            "bullflag_warm_symbols", "Symbols with a full 200-bar window, ready to score.", registry=reg
        )
        self._lag = Gauge(
            "bullflag_consumer_lag",
            "Records behind the end of the partition (highwater minus position).",
            ["partition"],
            registry=reg,
        )
        self._lag_partitions: set[int] = set()
        self._assigned = Gauge(
            "bullflag_assigned_partitions", "Partitions assigned to this worker.", registry=reg
        )
        self._ready = Gauge("bullflag_ready", "1 when the worker is ready to serve, else 0.", registry=reg)
        self._up_since = Gauge("bullflag_up_since_seconds", "Unix time the worker started.", registry=reg)
        self._up_since.set(time.time())
        self._model_info = Gauge(
            "bullflag_model_info",
            "Always 1; its labels name the model version and signal threshold in use.",
            ["model_version", "threshold"],
            registry=reg,
        )
        self._last_bar_close = Gauge(
            "bullflag_last_bar_close_timestamp_seconds",
            "Event time (bar end, Unix seconds) of the newest bar closed by this worker.",
            registry=reg,
        )
        self._newest_bar_close_s = 0.0
        self._paused = Gauge(
            "bullflag_paused",
            "1 while the worker waits for its previous batch before fetching more (backpressure), else 0.",
            registry=reg,
        )
        self._is_paused = False

        if model_version is not None and threshold is not None:
            self.set_model_info(model_version, threshold)

    @property
    def registry(self) -> CollectorRegistry:
        """The registry holding every metric of this worker."""
        return self._registry

    def render(self) -> tuple[bytes, str]:
        """The text exposition (without ``_created`` series) and its content type."""
        return generate_latest(_WithoutCreated(self._registry)), CONTENT_TYPE_LATEST

    def record_consumed(self, topic: str, n: int) -> None:
        """Count ``n`` records fetched from ``topic``."""
        if n:
            self._consumed.labels(topic).inc(n)

    def record_dead_letters(self, counts: Mapping[str, int]) -> None:
        """Count dead-lettered records per reject reason (a fixed vocabulary, never free text)."""
        for reason, n in counts.items():
            if n:
                self._dead_lettered.labels(reason).inc(n)

    def record_duplicates(self, n: int) -> None:
        """Count ``n`` trades dropped as duplicates."""
        if n:
            self._duplicates.inc(n)

    def record_bars_closed(self, *, trades: int = 0, gap: int = 0, newest_end_ms: int | None = None) -> None:
        """Count closed bars by kind and advance the newest bar-close event time (epoch ms in)."""
        if trades:
            self._bars_closed.labels("trades").inc(trades)
        if gap:
            self._bars_closed.labels("gap").inc(gap)
        if newest_end_ms is not None:
            seconds = newest_end_ms / 1000.0
            if seconds > self._newest_bar_close_s:
                self._newest_bar_close_s = seconds
                self._last_bar_close.set(seconds)

    def record_scoring(
        self,
        windows: int,
        calls: Sequence[tuple[int, float]],
        *,
        signals: int = 0,
        gradcam_maps: int = 0,
    ) -> None:
        """Record a fetched batch's scoring: its windows, signals and Grad-CAM maps, and the size
        and duration of each batched model call it took (``calls``: (windows, seconds) each)."""
        self._inferences.inc(windows)
        for size, seconds in calls:
            self._scoring_size.observe(size)
            self._scoring_seconds.observe(seconds)
        if signals:
            self._signals.inc(signals)
        if gradcam_maps:
            self._gradcam_maps.inc(gradcam_maps)

    def record_published(self, n: int) -> None:
        """Count ``n`` outputs acknowledged by the broker."""
        if n:
            self._published.inc(n)

    def observe_latencies(self, seconds: np.ndarray | Sequence[float]) -> None:
        """Add bar-close-to-acknowledgement latencies of a batch, all in one call."""
        self._latency.observe_many(seconds)

    def observe_batch(self, seconds: float) -> None:
        """Record the end-to-end duration of one fetched batch."""
        self._batch_seconds.observe(seconds)

    def record_refused_symbols(self, n: int) -> None:
        """Count ``n`` new symbols refused past the symbol limit."""
        if n:
            self._refused.inc(n)

    def record_idle_closes(self, n: int) -> None:
        """Count ``n`` partitions whose bars an idle close closed."""
        self._idle_closes.inc(n)

    def record_expired_symbols(self, n: int) -> None:
        """Count ``n`` symbols expired by ``--symbol-ttl``."""
        if n:
            self._expired.inc(n)

    def record_commit(self, success: bool) -> None:
        """Count one offset commit, successful or failed."""
        (self._commits if success else self._commit_failures).inc()

    def record_broker_error(self, operation: str) -> None:
        """Count one broker error of a client operation (a fixed vocabulary, e.g. ``produce``)."""
        self._broker_errors.labels(operation).inc()

    def record_state_restored(self, symbols: int) -> None:
        """Count symbol buffers restored from saved state."""
        if symbols:
            self._restored.inc(symbols)

    def set_paused(self, paused: bool) -> None:
        """Set the backpressure gauge; each transition into the paused state counts one pause."""
        if paused and not self._is_paused:
            self._pauses.inc()
        self._is_paused = paused
        self._paused.set(int(paused))

    def set_symbols(self, total: int, warm: int) -> None:
        """Set the number of symbols with state and of those warm enough to score."""
        self._symbols.set(total)
        self._warm_symbols.set(warm)

    def set_assignment(self, partitions: Iterable[int]) -> None:
        """Set the assigned partitions and drop lag series of partitions no longer assigned."""
        assigned = set(partitions)
        self._assigned.set(len(assigned))
        self._drop_lag(self._lag_partitions - assigned)

    def set_lag(self, lags: Mapping[int, int]) -> None:
        """Replace the lag series with ``lags`` (partition -> highwater minus position, floored at 0)."""
        self._drop_lag(self._lag_partitions - lags.keys())
        for partition, lag in lags.items():
            self._lag.labels(str(partition)).set(max(lag, 0))
            self._lag_partitions.add(partition)

    def set_ready(self, ready: bool) -> None:
        """Set the readiness gauge."""
        self._ready.set(int(ready))

    def set_model_info(self, model_version: str, threshold: float) -> None:
        """Publish the model version and threshold in use, replacing any previous pair."""
        self._model_info.clear()
        self._model_info.labels(model_version, repr(float(threshold))).set(1)

    def _drop_lag(self, partitions: Iterable[int]) -> None:
        """Remove the lag series of ``partitions``."""
        for partition in list(partitions):
            self._lag.remove(str(partition))
            self._lag_partitions.discard(partition)
