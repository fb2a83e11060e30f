"""Worker metrics: names, labels and values in the exposition, lag cleanup, isolated registries."""

from __future__ import annotations

import time

import numpy as np
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from consumer.ops.metrics import BATCH_SIZE_BUCKETS, LATENCY_BUCKETS, WorkerMetrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

COUNTERS = {
    "bullflag_records_consumed_total": ("topic",),
    "bullflag_records_dead_lettered_total": ("reason",),
    "bullflag_duplicate_trades_total": (),
    "bullflag_bars_closed_total": ("kind",),
    "bullflag_inferences_total": (),
    "bullflag_signals_total": (),
    "bullflag_gradcam_maps_total": (),
    "bullflag_outputs_published_total": (),
    "bullflag_symbols_refused_total": (),
    "bullflag_idle_closes_total": (),
    "bullflag_symbols_expired_total": (),
    "bullflag_commits_total": (),
    "bullflag_commit_failures_total": (),
    "bullflag_broker_errors_total": ("operation",),
    "bullflag_backpressure_pauses_total": (),
    "bullflag_state_restored_symbols_total": (),
}
HISTOGRAMS = (
    "bullflag_bar_close_to_publish_seconds",
    "bullflag_scoring_batch_seconds",
    "bullflag_scoring_batch_size",
    "bullflag_batch_processing_seconds",
)
GAUGES = {
    "bullflag_symbols": (),
    "bullflag_warm_symbols": (),
    "bullflag_consumer_lag": ("partition",),
    "bullflag_assigned_partitions": (),
    "bullflag_ready": (),
    "bullflag_up_since_seconds": (),
    "bullflag_model_info": ("model_version", "threshold"),
    "bullflag_last_bar_close_timestamp_seconds": (),
    "bullflag_paused": (),
}


def samples(metrics: WorkerMetrics) -> Samples:
    """Every sample of the exposition, keyed by sample name and label set."""
    body, content_type = metrics.render()
    assert content_type == CONTENT_TYPE_LATEST
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(metrics: WorkerMetrics, name: str, **labels: str) -> float:
    """One sample's value; KeyError when the series is absent."""
    return samples(metrics)[(name, frozenset(labels.items()))]


def exercised() -> WorkerMetrics:
    """A metrics object after one call of every update method."""
    m = WorkerMetrics(model_version="v1.2.0", threshold=0.65)
    m.record_consumed("ticks", 500)
    m.record_dead_letters({"bad_json": 2, "bad_price": 1, "bad_ts": 0})
    m.record_duplicates(3)
    m.record_bars_closed(trades=40, gap=2, newest_end_ms=1_732_550_460_000)
    m.record_scoring(42, [(40, 0.012), (2, 0.001)], signals=5, gradcam_maps=5)
    m.record_published(42)
    m.observe_latencies(np.full(42, 0.02))
    m.observe_batch(0.3)
    m.record_idle_closes(2)
    m.record_refused_symbols(4)
    m.record_expired_symbols(2)
    m.record_commit(True)
    m.record_commit(False)
    m.record_broker_error("produce")
    m.record_state_restored(7)
    m.set_paused(True)
    m.set_symbols(300, 120)
    m.set_assignment([0, 1])
    m.set_lag({0: 10, 1: 0})
    m.set_ready(True)
    return m


def test_every_metric_is_exposed_with_its_type_and_labels() -> None:
    body, _ = exercised().render()
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name, labels in COUNTERS.items():
        family = families[name.removesuffix("_total")]
        assert family.type == "counter"
        totals = [s for s in family.samples if s.name == name]
        assert totals
        assert all(set(s.labels) == set(labels) for s in totals)
        assert family.documentation
    for name in HISTOGRAMS:
        assert families[name].type == "histogram"
        assert all(set(s.labels) <= {"le"} for s in families[name].samples)
    for name, labels in GAUGES.items():
        assert families[name].type == "gauge"
        assert all(set(s.labels) == set(labels) for s in families[name].samples)
    assert all(name.startswith("bullflag_") for name in families)
    assert not [name for name in families if name.endswith("_created")]
    assert len(families) == len(COUNTERS) + len(HISTOGRAMS) + len(GAUGES)


def test_values_follow_the_update_calls() -> None:
    m = exercised()
    got = samples(m)

    def v(name: str, **labels: str) -> float:
        return got[(name, frozenset(labels.items()))]

    assert v("bullflag_records_consumed_total", topic="ticks") == 500
    assert v("bullflag_records_dead_lettered_total", reason="bad_json") == 2
    assert ("bullflag_records_dead_lettered_total", frozenset({("reason", "bad_ts")})) not in got
    assert v("bullflag_bars_closed_total", kind="trades") == 40
    assert v("bullflag_bars_closed_total", kind="gap") == 2
    assert v("bullflag_inferences_total") == 42
    assert v("bullflag_signals_total") == 5
    assert v("bullflag_gradcam_maps_total") == 5
    assert v("bullflag_idle_closes_total") == 2
    assert v("bullflag_commits_total") == 1
    assert v("bullflag_commit_failures_total") == 1
    assert v("bullflag_broker_errors_total", operation="produce") == 1
    assert v("bullflag_state_restored_symbols_total") == 7
    assert v("bullflag_symbols") == 300
    assert v("bullflag_warm_symbols") == 120
    assert v("bullflag_assigned_partitions") == 2
    assert v("bullflag_consumer_lag", partition="0") == 10
    assert v("bullflag_ready") == 1
    assert v("bullflag_paused") == 1
    assert v("bullflag_model_info", model_version="v1.2.0", threshold="0.65") == 1
    assert v("bullflag_last_bar_close_timestamp_seconds") == 1_732_550_460.0
    assert time.time() - 60 < v("bullflag_up_since_seconds") <= time.time()
    assert v("bullflag_scoring_batch_size_bucket", le="1.0") == 0
    assert v("bullflag_scoring_batch_size_bucket", le="16.0") == 1
    assert v("bullflag_scoring_batch_size_bucket", le="64.0") == 2
    assert v("bullflag_scoring_batch_seconds_count") == 2
    assert v("bullflag_scoring_batch_seconds_sum") == pytest.approx(0.013)
    assert v("bullflag_batch_processing_seconds_count") == 1


def test_gap_and_trade_bar_series_exist_before_any_bar() -> None:
    m = WorkerMetrics()
    assert value(m, "bullflag_bars_closed_total", kind="trades") == 0
    assert value(m, "bullflag_bars_closed_total", kind="gap") == 0


def test_latencies_are_bucketed_in_one_call_with_le_semantics() -> None:
    m = WorkerMetrics()
    m.observe_latencies(np.array([0.0005, 0.001, 0.003, 2.0, 60.0, np.nan, np.inf]))
    m.observe_latencies([0.001])
    m.observe_latencies(np.array([]))
    got = samples(m)
    name = "bullflag_bar_close_to_publish_seconds"

    def bucket(le: str) -> float:
        return got[(f"{name}_bucket", frozenset({("le", le)}))]

    assert bucket("0.001") == 3
    assert bucket("0.0025") == 3
    assert bucket("0.005") == 4
    assert bucket("2.5") == 5
    assert bucket("10.0") == 5
    assert bucket("+Inf") == 6
    assert got[(f"{name}_count", frozenset())] == 6
    assert got[(f"{name}_sum", frozenset())] == pytest.approx(62.0055)
    buckets = [le for (s, labels) in got if s == f"{name}_bucket" for _, le in labels]
    assert len(buckets) == len(LATENCY_BUCKETS) + 1


def test_batch_size_buckets_are_powers_of_four() -> None:
    assert BATCH_SIZE_BUCKETS == (1, 4, 16, 64, 256, 1024, 4096, 16384)
    assert LATENCY_BUCKETS[0] == 0.001
    assert LATENCY_BUCKETS[-1] == 10


def test_lag_series_of_revoked_partitions_are_removed() -> None:
    m = WorkerMetrics()
    m.set_assignment([0, 1, 2])
    m.set_lag({0: 5, 1: 6, 2: -3})
    assert value(m, "bullflag_consumer_lag", partition="2") == 0
    m.set_lag({0: 1, 2: 2})
    assert ("bullflag_consumer_lag", frozenset({("partition", "1")})) not in samples(m)
    m.set_assignment([2])
    got = samples(m)
    lag_series = {labels for name, labels in got if name == "bullflag_consumer_lag"}
    assert lag_series == {frozenset({("partition", "2")})}
    assert got[("bullflag_assigned_partitions", frozenset())] == 1
    m.set_lag({})
    assert not [name for name, _ in samples(m) if name == "bullflag_consumer_lag"]


def test_pause_counter_counts_transitions_only() -> None:
    m = WorkerMetrics()
    for paused in (True, True, False, False, True):
        m.set_paused(paused)
    assert value(m, "bullflag_backpressure_pauses_total") == 2
    assert value(m, "bullflag_paused") == 1


def test_newest_bar_close_never_moves_backwards() -> None:
    m = WorkerMetrics()
    m.record_bars_closed(trades=1, newest_end_ms=2_000)
    m.record_bars_closed(gap=1, newest_end_ms=1_000)
    m.record_bars_closed()
    assert value(m, "bullflag_last_bar_close_timestamp_seconds") == 2.0


def test_model_info_keeps_one_series() -> None:
    m = WorkerMetrics(model_version="a", threshold=0.5)
    m.set_model_info("b", 0.7)
    series = {labels for name, labels in samples(m) if name == "bullflag_model_info"}
    assert series == {frozenset({("model_version", "b"), ("threshold", "0.7")})}


def test_two_workers_do_not_share_series() -> None:
    first, second = WorkerMetrics(), WorkerMetrics()
    first.record_consumed("ticks", 3)
    first.set_lag({4: 9})
    first.observe_latencies([0.1, 0.2])
    assert value(first, "bullflag_records_consumed_total", topic="ticks") == 3
    got = samples(second)
    assert not [
        name for name, _ in got if name in {"bullflag_records_consumed_total", "bullflag_consumer_lag"}
    ]
    assert got[("bullflag_bar_close_to_publish_seconds_count", frozenset())] == 0
    assert first.registry is not second.registry
