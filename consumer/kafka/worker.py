"""The streaming worker: the asyncio shell around ``BarPipeline`` and ``Scorer``.

Every batch goes through two stages, and batches go through each stage in fetch order:

1. ``_ingest``: decode, aggregate and buffer each partition's records (``BarPipeline``) and
   gather the windows of the bars that closed;
2. ``_finish``: score those windows in the scoring thread (``Scorer``); then, once the batch
   before has finished, send the dead letters and CNNOutput documents and wait until the
   broker has acknowledged all of them (``acks=all``), write the state, and only then commit
   the batch's offsets: at-least-once delivery, and the output ``id`` lets downstream
   deduplicate.

Batch N+1 is fetched and ingested while batch N is finished, so decoding on the event loop
overlaps with scoring and with waiting for acknowledgements. Rebalances wait for every batch
in flight (``_batch_lock`` and ``_finishing``), so a revoked partition's state is saved and its
offsets committed before its state is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import operator
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from bullflag_model.infer import BullFlagCNNInfer
from consumer.config import Settings
from consumer.core.pipeline import BarPipeline, PartitionOutcome
from consumer.core.scoring import Scorer
from consumer.core.state import CheckpointBook
from consumer.core.windows import Windows
from consumer.kafka.batch import Ingested, state_records
from consumer.kafka.clients import new_consumer, new_producer
from consumer.kafka.dead_letters import dead_letters
from consumer.kafka.fencing import Fence
from consumer.kafka.idle_close import IdleClose, IdleCloser, idle_batch
from consumer.kafka.publisher import Outgoing, Publisher
from consumer.kafka.rebalance import PartitionListener
from consumer.kafka.restore import read_state, report_reset
from consumer.kafka.startup import start_with_retries
from consumer.kafka.topics import TopicMissingError, TopicSpec, ensure_topics, existing_topics
from consumer.ops.gc_tuning import batch_friendly_gc
from consumer.ops.http_server import HealthServer
from consumer.ops.metrics import WorkerMetrics
from consumer.sessions import gap_rule

log = logging.getLogger("bullflag.worker")

BROKER_CHECK_INTERVAL_S = 2.0
LAG_UPDATE_INTERVAL_S = 1.0
MAX_BATCH_BYTES = 512 * 1024
POLL_TIMEOUT_MS = 500


_value = operator.attrgetter("value")
_key = operator.attrgetter("key")
_offset = operator.attrgetter("offset")


class Worker:
    """Consumes the input topic, publishes CNNOutput documents and dead letters, commits."""

    def __init__(
        self,
        settings: Settings,
        *,
        infer: BullFlagCNNInfer | None = None,
        consumer_options: dict[str, Any] | None = None,
        producer_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.infer = infer or BullFlagCNNInfer(settings.checkpoint, **settings.scoring_options)
        self.infer.resolve_threshold(settings.threshold)
        self.pipeline = BarPipeline(
            settings.bar_interval_ms,
            settings.allowed_lateness_ms,
            input_kind="bars" if settings.input == "bars" else "ticks",
            seq_len=self.infer.seq_len,
            max_symbols=settings.max_symbols,
            max_record_bytes=settings.max_record_bytes,
            max_time_jump_ms=settings.max_time_jump_ms,
            max_clock_skew_ms=settings.max_clock_skew_ms,
            clock_window=settings.clock_window,
            gap_rule=gap_rule(settings, "bars" if settings.input == "bars" else "ticks"),
            symbol_ttl_ms=settings.symbol_ttl_ms,
        )
        self.scorer = Scorer(
            self.infer, settings.bar_interval, "signals-only" if settings.publish == "signals-only" else "all"
        )
        self.metrics = WorkerMetrics(model_version=self.infer.model_version, threshold=self.infer.threshold)
        self._consumer_options = consumer_options or {}
        self._producer_options = producer_options or {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bullflag-scoring")
        self._batch_lock = asyncio.Lock()
        self._finishing: asyncio.Task[None] | None = None
        self._checkpoints = CheckpointBook()
        self._expected: dict[TopicPartition, int | None] = {}
        self._publisher: Publisher | None = None
        self._stop = asyncio.Event()
        self._assigned_once = False
        self._broker_ok = True
        self._failed = False
        self._lag_updated = 0.0
        self.health_server: HealthServer | None = None
        timing = settings.consumer_timing | self._consumer_options
        self._fence = Fence(timing["session_timeout_ms"] / 1000)
        self._idle = IdleCloser(
            self.pipeline, settings.idle_close_after_ms, settings.state_topic, self._fence
        )

    @property
    def ready(self) -> bool:
        """Serving: joined the group at least once and the broker answers."""
        return self._assigned_once and self._broker_ok and not self._failed and not self._fence.blocked

    @property
    def failed(self) -> bool:
        """The worker stopped because of an error it could not recover from."""
        return self._failed

    @property
    def finishing(self) -> bool:
        """A batch is being scored, published or committed."""
        return self._finishing is not None and not self._finishing.done()

    def not_ready_reason(self) -> str:
        """Why ``/readyz`` says 503."""
        if self._failed:
            return "worker failed"
        if not self._assigned_once:
            return "waiting for partition assignment"
        if self._fence.blocked:
            return "missed the group session; rejoining before writing again"
        return "broker unreachable" if not self._broker_ok else "ready"

    async def run(self, stop: asyncio.Event) -> None:
        """Start everything, process batches until ``stop`` is set, then shut down cleanly."""
        settings = self.settings
        if settings.torch_threads > 0 and self.infer.backend_name == "torch":
            self._scoring.submit(self.infer.set_threads, settings.torch_threads).result()
        self.health_server = HealthServer(
            settings.metrics_host,
            settings.metrics_port,
            self.metrics,
            health=lambda: not self._failed,
            ready=lambda: self.ready,
            not_ready_reason=self.not_ready_reason,
        )
        await self.health_server.start()
        log.info("metrics and probes on %s", self.health_server.url)
        try:
            with batch_friendly_gc(settings.gc_threshold):
                await self._run_clients(stop)
        except BaseException:
            self._failed = True
            raise
        finally:
            await self.health_server.stop()
            self._scoring.shutdown(wait=True)

    async def _run_clients(self, stop: asyncio.Event) -> None:
        self._producer = new_producer(
            self.settings,
            acks="all",
            linger_ms=5,
            max_batch_size=MAX_BATCH_BYTES,
            enable_idempotence=self.settings.enable_idempotence,
            **self._producer_options,
        )
        try:
            if not await start_with_retries(self._producer.start, "producer", stop):
                return
            self._publisher = Publisher(self._producer, self.metrics.record_broker_error)
            self._stop = stop
            await self._ensure_state_topic()
            self._consumer = new_consumer(
                self.settings,
                group_id=self.settings.group_id,
                **(self.settings.consumer_timing | self._consumer_options),
            )
            try:
                self._consumer.subscribe([self.settings.ticks_topic], listener=PartitionListener(self))
                if not await start_with_retries(self._consumer.start, "consumer", stop):
                    return
                self._fence.attach(self._consumer)
                watch = asyncio.gather(self._watch_broker(stop), self._fence.keep_ticking(stop))
                try:
                    await self._consume(stop)
                finally:
                    watch.cancel()
                    await asyncio.gather(watch, return_exceptions=True)
            finally:
                await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def _ensure_state_topic(self) -> None:
        """Refuse a ticks topic that does not exist; create the state topic (compacted, as many
        partitions as the input) or verify it. No client names a topic before this, so none is
        auto-created by a metadata request."""
        partitions = (await existing_topics(self.settings)).get(self.settings.ticks_topic)
        if partitions is None:
            raise TopicMissingError(
                self.settings.ticks_topic, self.settings.bootstrap_servers, "--ticks-topic"
            )
        spec = TopicSpec(self.settings.state_topic, partitions, {"cleanup.policy": "compact"})
        await ensure_topics(self.settings, [spec])

    async def _consume(self, stop: asyncio.Event) -> None:
        """Fetch and ingest batch N+1 while batch N is scored, published and committed.

        At most one batch is being finished and one more is ingested ahead of it: the loop
        waits for the older one before fetching again, which is the worker's backpressure.
        """
        assert self._consumer is not None
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                fetch = asyncio.create_task(
                    self._consumer.getmany(
                        timeout_ms=self._idle.poll_timeout_ms(POLL_TIMEOUT_MS),
                        max_records=self.settings.max_poll_records,
                    )
                )
                await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not fetch.done():
                    fetch.cancel()
                    await asyncio.gather(fetch, return_exceptions=True)
                    break
                batch = fetch.result()
                if batch:
                    async with self._batch_lock:
                        ingested = self._ingest(batch)
                    await self._submit(ingested)
                elif self._finishing is not None:
                    await self._wait_for(self._finishing)
                async with self._batch_lock:
                    closes = self._idle.due(
                        self._expected, self._consumer.highwater, self._checkpoints.last_commit
                    )
                if closes:
                    await self._submit(self._idle_batch(closes))
                await self._update_gauges()
        finally:
            stopping.cancel()
            await asyncio.gather(stopping, return_exceptions=True)
            if self._finishing is not None:
                await self._finishing

    async def _submit(self, ingested: Ingested) -> None:
        """Start finishing ``ingested`` after the batch before it; wait for that one (backpressure)."""
        previous = self._finishing
        self._finishing = asyncio.create_task(self._finish(ingested, previous))
        if previous is not None:
            await self._wait_for(previous)

    async def _wait_for(self, finishing: asyncio.Task[None]) -> None:
        """Wait for a batch being finished; ``bullflag_paused`` is 1 while the loop waits."""
        if finishing.done():
            finishing.result()
            return
        self.metrics.set_paused(True)
        try:
            await finishing
        finally:
            self.metrics.set_paused(False)

    def _ingest(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> Ingested:
        """Decode, aggregate and buffer each partition's records; gather the windows to score.

        Records of a partition whose state is not restored yet (aiokafka may fetch before the
        assignment callback has run), that do not continue where its state left off, or that
        come after an idle close still to be replayed, are put back by seeking.
        """
        assert self._consumer is not None
        started = time.perf_counter()
        outcomes: dict[TopicPartition, PartitionOutcome] = {}
        ends: dict[TopicPartition, int] = {}
        dead_letters_out: list[Outgoing] = []
        windows: list[Windows] = []
        for tp, records in batch.items():
            if tp not in self._expected:
                self._consumer.seek(tp, records[0].offset)
                continue
            expected = self._expected[tp]
            if expected is not None and records[0].offset != expected:
                self._consumer.seek(tp, expected)
                continue
            kept = self._idle.before_replay(tp, records)
            if len(kept) < len(records):
                self._consumer.seek(tp, records[len(kept)].offset)
                if not kept:
                    continue
                records = kept
            self._expected[tp] = records[-1].offset + 1
            outcome = self.pipeline.process(
                tp.partition,
                list(map(_value, records)),
                list(map(_key, records)),
                np.fromiter(map(_offset, records), np.int64, len(records)),
            )
            outcomes[tp] = outcome
            ends[tp] = records[-1].offset + 1
            self.metrics.record_consumed(tp.topic, len(records))
            letters, counts = dead_letters(self.settings.dlq_topic, tp.topic, records, outcome.rejects)
            dead_letters_out += letters
            if counts:
                self.metrics.record_dead_letters(counts)
            self.metrics.record_duplicates(outcome.duplicates)
            self.metrics.record_bars_closed(
                trades=outcome.trade_bars, gap=outcome.gap_bars, newest_end_ms=outcome.newest_bar_end_ms
            )
            self.metrics.record_refused_symbols(len(outcome.refused_symbols))
            self.metrics.record_expired_symbols(len(outcome.expired.symbols))
            windows.append(outcome.windows)
        to_score = Windows.concat(windows, self.pipeline.seq_len)
        return Ingested(started, time.perf_counter(), outcomes, ends, dead_letters_out, to_score)

    def _idle_batch(self, closes: list[IdleClose]) -> Ingested:
        """The idle closes of one poll as a batch, counted in the metrics."""
        for outcome in (close.outcome for close in closes):
            self.metrics.record_bars_closed(
                trades=outcome.trade_bars, gap=outcome.gap_bars, newest_end_ms=outcome.newest_bar_end_ms
            )
        self.metrics.record_idle_closes(len(closes))
        return idle_batch(closes, self.pipeline.seq_len)

    async def _finish(self, ingested: Ingested, previous: asyncio.Task[None] | None) -> None:
        """Score the batch's windows, then (after the batch before it) publish outputs and dead
        letters, wait for their acknowledgements, publish the state and commit."""
        outgoing = list(ingested.dead_letters)
        to_score = ingested.windows
        if len(to_score):
            loop = asyncio.get_running_loop()
            scored = await loop.run_in_executor(self._scoring, self.scorer.score, to_score)
            self.metrics.record_scoring(
                scored.windows, scored.calls, signals=scored.signals, gradcam_maps=scored.maps
            )
            outgoing += [
                Outgoing(self.settings.signals_topic, symbol.encode(), value, self.scorer.headers)
                for symbol, value in zip(scored.symbols, scored.values, strict=True)
            ]
        if previous is not None:
            await previous
        if self._fence.refuses("outputs and dead letters"):
            return
        await self._publish(ingested.decisions)
        await self._publish(outgoing)
        outputs = len(outgoing) - len(ingested.dead_letters)
        if outputs:
            self.metrics.record_published(outputs)
            self.metrics.observe_latencies(np.full(outputs, time.perf_counter() - ingested.closed_at))
        if self._fence.refuses("state records"):
            return
        await self._publish(
            state_records(ingested, self.pipeline, self._checkpoints, self._fence, self.settings.state_topic)
        )
        if self._fence.refuses("the commit"):
            return
        await self._commit(ingested.outcomes)
        self.metrics.observe_batch(time.perf_counter() - ingested.started)

    async def _publish(self, records: list[Outgoing]) -> None:
        """Send and wait for every acknowledgement (retrying failures); nothing is committed before."""
        assert self._publisher is not None
        if records:
            await self._publisher.publish(records, stopping=self._stop.is_set)

    async def _commit(self, outcomes: dict[TopicPartition, PartitionOutcome]) -> None:
        """Commit each partition's commit point; a rebalance or broker error is logged, not fatal.

        The commit point is the first tick of the oldest bar still open, so a restart reads the
        ticks of open bars again; the state topic holds everything closed before.
        """
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        offsets = {tp: outcome.commit for tp, outcome in outcomes.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            self.metrics.record_commit(False)
            log.warning("commit failed; the records will be read again after a restart: %s", exc)
            return
        self.metrics.record_commit(True)
        for tp in offsets:
            self._checkpoints.committed(tp.partition, outcomes[tp].commit, outcomes[tp].mark)

    async def _update_gauges(self) -> None:
        """Export lag (``highwater - position`` per partition) and symbol counts, once a second."""
        now = time.monotonic()
        if self._consumer is None or now - self._lag_updated < LAG_UPDATE_INTERVAL_S:
            return
        self._lag_updated = now
        self.metrics.set_assignment(self._fence.claimed())
        buffers = self.pipeline.buffers
        warm = sum(int(buffers.warm(a.symbols).sum()) for a in self.pipeline.aggregators.values())
        self.metrics.set_symbols(len(buffers), warm)
        lags = {}
        for tp in self._consumer.assignment():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                lags[tp.partition] = highwater - await self._consumer.position(tp)
        self.metrics.set_lag(lags)

    async def _watch_broker(self, stop: asyncio.Event) -> None:
        """Keep ``ready`` in step with whether the broker answers a metadata request."""
        assert self._producer is not None
        while not stop.is_set():
            try:
                ok = await asyncio.wait_for(
                    self._producer.client.force_metadata_update(), BROKER_CHECK_INTERVAL_S * 2
                )
            except (TimeoutError, KafkaError):
                ok = False
            if ok != self._broker_ok:
                log.warning("broker %s", "reachable again" if ok else "unreachable")
            self._broker_ok = bool(ok)
            if not ok:
                self.metrics.record_broker_error("metadata")
            self.metrics.set_ready(self.ready)
            await asyncio.sleep(BROKER_CHECK_INTERVAL_S)

    async def partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Wait for the batches in flight (their state saved and offsets committed), then drop state."""
        async with self._batch_lock:
            if self._finishing is not None:
                await asyncio.gather(self._finishing, return_exceptions=True)
            for tp in revoked:
                self._expected.pop(tp, None)
                self.pipeline.drop_partition(tp.partition)
                self._checkpoints.forget(tp.partition)
                self._fence.forget(tp.partition)
                self._idle.forget(tp)
        log.info("revoked %s", sorted(tp.partition for tp in revoked))

    async def partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Restore the partitions' bars from the state topic before any of their records is used.

        A failed restore stops the worker (aiokafka would only log an exception raised here).
        """
        try:
            await self._restore(list(assigned))
        except Exception:
            log.exception("restoring state failed; stopping")
            self._failed = True
            self._stop.set()

    async def _restore(self, assigned: list[TopicPartition]) -> None:
        assert self._consumer is not None
        started = time.perf_counter()
        restored = await read_state(
            self.settings,
            self.settings.state_topic,
            [tp.partition for tp in assigned],
            self.pipeline.interval_ms,
            self.pipeline.seq_len,
            by_sequence=self.pipeline.by_sequence,
        )
        symbols = 0
        async with self._batch_lock:
            for tp in assigned:
                committed = await self._consumer.committed(tp)
                report_reset(tp, committed, restored[tp.partition].checkpoint)
                symbols += self.pipeline.restore_partition(tp.partition, restored[tp.partition], committed)
                self._fence.restored(tp.partition, restored[tp.partition].generation)
                self._idle.restored(tp, restored[tp.partition].idle, committed)
                self._expected[tp] = committed
        self.metrics.record_state_restored(symbols)
        partitions = sorted(tp.partition for tp in assigned)
        self._assigned_once = True
        self.metrics.set_assignment(partitions)
        self.metrics.set_ready(self.ready)
        log.info(
            "assigned %s; restored %d symbols (%d bars) in %.2fs",
            partitions,
            symbols,
            sum(r.bars for r in restored.values()),
            time.perf_counter() - started,
        )
