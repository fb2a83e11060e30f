"""One streaming demo run: the embedded broker, the topics, the worker, the replay and the watcher.

:func:`run_demo` starts the broker and the topics in this event loop and hands them to a
:class:`_Session`, which runs the real worker, replays the plan's ticks, follows the signals
topic and has each signal's window drawn by the :class:`~consumer.cli.demo.drawing.Painter`'s
processes while the stream runs, then stops everything cleanly.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from bullflag_model.intervals import format_interval
from bullflag_model.model_files import CheckpointError
from bullflag_model.output import CNNDocument, DocumentError
from consumer.cli.demo.drawing import Painter, drawing_processes
from consumer.cli.demo.plan import WARMUP_BARS, DemoError, DemoOptions, DemoPlan, plan_demo
from consumer.cli.demo.report import DemoReport, DemoStats
from consumer.cli.demo.views import Progress, SignalEvent, View
from consumer.cli.pictures import PictureError, default_out, output_title, window_bars
from consumer.config import Settings
from consumer.dashboard import Dashboard
from consumer.kafka.embedded_broker import BrokerError, EmbeddedBroker
from consumer.kafka.topic_reader import TopicReadError, read_partitions
from consumer.kafka.topics import TopicError, TopicSpec, ensure_topics
from consumer.kafka.worker import Worker
from consumer.sources.producer import Record, produce_records, tick_records

__all__ = ["FAST_CONSUMER", "RUN_ERRORS", "bars_closed", "demo_settings", "run_demo", "topic_specs"]

TICKS_PARTITIONS: Final = 4
SIGNALS_PARTITIONS: Final = 4
DLQ_PARTITIONS: Final = 1
FAST_CONSUMER: Final = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500, "fetch_max_wait_ms": 100}
"""A fast group join on the embedded broker; valid on Apache Kafka too."""

_REFRESH_S: Final = 0.25
_DRAIN_TIMEOUT_S: Final = 10.0

RUN_ERRORS: Final = (
    DemoError,
    BrokerError,
    CheckpointError,
    TopicError,
    TopicReadError,
    KafkaError,
    DocumentError,
    PictureError,
)
"""What a run can fail with that the command reports in one line."""


def demo_settings(bootstrap: str, options: DemoOptions, interval_ms: int) -> Settings:
    """Worker settings for the demo: default topic names, loopback metrics on a free port."""
    return Settings(
        bootstrap_servers=bootstrap,
        group_id="bullflag-demo",
        client_id="bullflag-demo",
        bar_interval=format_interval(interval_ms),
        threshold=options.threshold,
        checkpoint=options.checkpoint,
        metrics_host="127.0.0.1",
        metrics_port=0,
    )


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Every topic the worker uses; the state changelog has the ticks topic's partition count."""
    return [
        TopicSpec(settings.ticks_topic, TICKS_PARTITIONS),
        TopicSpec(settings.state_topic, TICKS_PARTITIONS, {"cleanup.policy": "compact"}),
        TopicSpec(settings.signals_topic, SIGNALS_PARTITIONS),
        TopicSpec(settings.dlq_topic, DLQ_PARTITIONS),
    ]


def bars_closed(worker: Worker) -> int:
    """Bars the worker has closed so far (built from trades or filled in), from its metrics."""
    registry = worker.metrics.registry
    values = (registry.get_sample_value("bullflag_bars_closed_total", {"kind": k}) for k in ("trades", "gap"))
    return int(sum(v or 0.0 for v in values))


class _Session:
    """One run against a started broker: the worker, the replay, the signal watcher and the pictures."""

    def __init__(
        self,
        plan: DemoPlan,
        options: DemoOptions,
        settings: Settings,
        worker: Worker,
        view: View,
        painter: Painter,
        dashboard: Dashboard | None,
    ) -> None:
        self.plan = plan
        self.options = options
        self.settings = settings
        self.worker = worker
        self.view = view
        self.painter = painter
        self.dashboard = dashboard
        self.stats = DemoStats()
        self.phase = "starting"
        self.started = time.monotonic()
        self.market_ts: int | None = None
        self.metrics_url = ""
        self._all_seen = asyncio.Event()
        self._draining = asyncio.Event()

    def progress(self) -> Progress:
        """The counters now."""
        return Progress(
            phase=self.phase,
            seconds=time.monotonic() - self.started,
            ticks_sent=self.stats.ticks_sent,
            ticks_total=self.plan.ticks,
            bars_closed=bars_closed(self.worker),
            outputs=self.stats.outputs,
            expected_outputs=self.plan.expected_outputs,
            signals=self.stats.signals,
            pngs_done=self.painter.written,
            pngs=self.painter.queued,
            market_ts=self.market_ts,
        )

    async def run(self, interrupt: asyncio.Event) -> str:
        """Run until every expected output arrived, the time cap, or ``interrupt``; say which."""
        stop = asyncio.Event()
        worker_task = asyncio.create_task(self.worker.run(stop), name="bullflag-demo-worker")
        watch_task = asyncio.create_task(self._watch(), name="bullflag-demo-watch")
        replay_task = asyncio.create_task(self._replay(), name="bullflag-demo-replay")
        refresh_task = asyncio.create_task(self._refresh(), name="bullflag-demo-refresh")
        try:
            return await self._wait(interrupt, worker_task, replay_task, watch_task)
        finally:
            try:
                await self._shut_down(
                    stop, worker_task, replay_task, watch_task, cancel_plots=interrupt.is_set()
                )
            finally:
                refresh_task.cancel()
                await asyncio.gather(refresh_task, return_exceptions=True)
                self.phase = "done"

    async def _shut_down(
        self,
        stop: asyncio.Event,
        worker_task: asyncio.Task[None],
        replay_task: asyncio.Task[None],
        watch_task: asyncio.Task[None],
        *,
        cancel_plots: bool,
    ) -> None:
        """Stop the replay and the worker, read the outputs left on the topic, finish the pictures.

        The worker commits and stops first, so reading the signals topic to its end afterwards
        sees every output it published. The pictures have been drawn meanwhile; the time still
        spent on them from here on is reported. A failure of the worker or of a picture is
        raised last.
        """
        stream_end = time.monotonic()
        self.phase = "stopping"
        stop.set()
        replay_task.cancel()
        await asyncio.gather(replay_task, return_exceptions=True)
        (worker_outcome,) = await asyncio.gather(worker_task, return_exceptions=True)
        self._draining.set()
        await asyncio.wait({watch_task}, timeout=_DRAIN_TIMEOUT_S)
        watch_task.cancel()
        await asyncio.gather(watch_task, return_exceptions=True)
        self.phase = "drawing"
        self.stats.pngs, self.stats.drawing = await self.painter.finish(stream_end, cancel=cancel_plots)
        if isinstance(worker_outcome, Exception):
            raise worker_outcome

    async def _wait(
        self,
        interrupt: asyncio.Event,
        worker_task: asyncio.Task[None],
        replay_task: asyncio.Task[None],
        watch_task: asyncio.Task[None],
    ) -> str:
        """Block until a reason to stop; failures of the replay, worker or watcher are raised.

        The run is complete once the replay has sent everything and every expected output arrived.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.max_seconds
        all_seen = asyncio.create_task(self._all_seen.wait())
        interrupted = asyncio.create_task(interrupt.wait())
        pending: set[asyncio.Task[Any]] = {all_seen, interrupted, worker_task, replay_task, watch_task}
        try:
            while True:
                done, _ = await asyncio.wait(
                    pending, timeout=max(deadline - loop.time(), 0.0), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    return f"stopped at the --max-seconds cap of {self.options.max_seconds:g} s"
                if interrupted in done:
                    return "interrupted"
                for task in done & {worker_task, watch_task}:
                    task.result()
                    raise DemoError(f"{task.get_name()} ended before the run was complete.")
                if replay_task in done:
                    replay_task.result()
                pending -= done
                if not pending & {all_seen, replay_task}:
                    return "complete"
        finally:
            for task in (all_seen, interrupted):
                task.cancel()
            await asyncio.gather(all_seen, interrupted, return_exceptions=True)

    async def _replay(self) -> None:
        """Send the warm-up ticks as fast as possible, then the live ticks at ``--speed``."""
        topic = self.settings.ticks_topic
        self.phase = "warm-up"
        await produce_records(
            self.settings, topic, self._counted(tick_records(self.plan.warmup)), client_id="bullflag-demo"
        )
        self.phase = "live"
        await produce_records(
            self.settings,
            topic,
            self._counted(tick_records(self.plan.live)),
            speed=self.options.speed,
            client_id="bullflag-demo",
        )
        self.phase = "draining"

    def _counted(self, records: Iterator[Record]) -> Iterator[Record]:
        """``records``, counting each one handed to the producer."""
        for record in records:
            self.stats.ticks_sent += 1
            yield record

    async def _refresh(self) -> None:
        """Redraw the view a few times a second; announce the metrics URL once it is serving.

        The dashboard, started before the worker, follows the worker's probe server from then on.
        """
        while True:
            if not self.metrics_url and self.worker.health_server is not None:
                try:
                    probe_url = self.worker.health_server.url
                except RuntimeError:
                    pass
                else:
                    self.metrics_url = f"{probe_url}/metrics"
                    self.view.note(f"metrics  {self.metrics_url}  (/healthz, /readyz alongside)")
                    if self.dashboard is not None:
                        self.dashboard.follow_worker(probe_url)
            self.view.progress(self.progress())
            await asyncio.sleep(_REFRESH_S)

    async def _watch(self) -> None:
        """Follow the signals topic from its start; after the worker stopped, read to its end."""
        topic = self.settings.signals_topic

        def visit(_: TopicPartition, records: list[ConsumerRecord]) -> None:
            for record in records:
                self._on_output(record.value)

        await read_partitions(
            self.settings,
            [TopicPartition(topic, p) for p in range(SIGNALS_PARTITIONS)],
            visit,
            client_id="bullflag-demo-watch",
            follow=lambda: not self._draining.is_set(),
        )

    def _on_output(self, value: bytes | None) -> None:
        """Count one CNNOutput; show a signal and queue its picture."""
        document = CNNDocument.from_bytes(value, f"topic {self.settings.signals_topic!r}")
        if document.id in self.stats.seen_ids:
            return
        stats = self.stats
        stats.seen_ids.add(document.id)
        stats.outputs += 1
        bar = self.plan.bar_index(document.last_bar_ts)
        stats.scores[(document.symbol, bar)] = (document.sequence_score, document.signal)
        self.market_ts = max(self.market_ts or document.last_bar_ts, document.last_bar_ts)
        if stats.outputs >= self.plan.expected_outputs:
            self._all_seen.set()
        if not document.signal:
            return
        stats.signals += 1
        stats.signal_bars.append((document.symbol, bar))
        png = None
        if stats.plots_queued < self.options.max_plots:
            png = self.options.out / default_out(document).name
            bars = window_bars(self.plan.table, document, "the replayed market")
            self.painter.draw(bars, document.cam, output_title(document), png, document.id)
            stats.plots_queued += 1
        self.view.signal(SignalEvent(document, png))


@contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, interrupt: asyncio.Event, view: View) -> Iterator[None]:
    """SIGINT and SIGTERM set ``interrupt`` (a clean stop); a second SIGINT aborts at once.

    Signal handlers can only be installed from the main thread; elsewhere the caller stops the
    run by other means (``--max-seconds``).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int) -> None:
        if interrupt.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        interrupt.set()
        view.note("stopping: worker, replay and broker are shutting down (Ctrl-C again to abort)")

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handle, signum)
    try:
        yield
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def _start_dashboard(settings: Settings, port: int | None, view: View) -> Dashboard | None:
    """The live signals page on loopback ``port`` (``None``: none), serving; its URL is announced."""
    if port is None:
        return None
    dashboard = Dashboard(settings, "127.0.0.1", port)
    try:
        await dashboard.start()
    except OSError as exc:
        await dashboard.stop()
        raise DemoError(
            f"--dashboard-port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); "
            "choose another port, 0 for any free one, or --no-dashboard."
        ) from None
    view.note(f"page     {dashboard.url}  (live signals, charts with Grad-CAM; stops with the demo)")
    return dashboard


async def run_demo(options: DemoOptions, view: View) -> DemoReport:
    """Broker, topics, worker, replay and watcher in this event loop; return what happened."""
    started = time.monotonic()
    plan = plan_demo(options.symbols, options.bars, options.seed)
    interval = format_interval(plan.market.interval_ms)
    live = "as fast as possible" if options.speed == 0 else f"at {options.speed:g}x real time"
    view.note(
        f"bullflag demo: {options.symbols} symbols x {options.bars} bars of {interval} "
        f"(seed {options.seed}), {plan.ticks:,} ticks; {WARMUP_BARS} warm-up bars as fast as possible, "
        f"the rest {live}"
    )
    options.out.mkdir(parents=True, exist_ok=True)
    interrupt = asyncio.Event()
    with _stop_on_signals(asyncio.get_running_loop(), interrupt, view):
        async with EmbeddedBroker() as broker:
            settings = demo_settings(broker.bootstrap, options, plan.market.interval_ms)
            specs = topic_specs(settings)
            await ensure_topics(broker.bootstrap, specs, client_id="bullflag-demo")
            topics = ", ".join(f"{spec.name} ({spec.partitions})" for spec in specs)
            view.note(f"broker   embedded Tansu on {broker.bootstrap} (pid {broker.pid}); topics {topics}")
            worker = Worker(settings, consumer_options=dict(FAST_CONSUMER))
            trained = bool(worker.infer.metadata.get("trained", True))
            view.note(
                f"model    {worker.infer.model_version}, threshold {worker.infer.threshold:g}"
                + ("" if trained else " (UNTRAINED checkpoint: its scores are meaningless)")
            )
            processes = drawing_processes()
            view.note(
                f"pictures {options.out}/ (one PNG per signal, at most {options.max_plots}, "
                f"drawn as the signals arrive by {processes} process{'es' if processes != 1 else ''})"
            )
            with Painter(processes) as painter:
                dashboard = await _start_dashboard(settings, options.dashboard_port, view)
                session = _Session(plan, options, settings, worker, view, painter, dashboard)
                try:
                    stopped_by = await session.run(interrupt)
                finally:
                    view.close(session.progress())
                    if dashboard is not None:
                        await dashboard.stop()
    return DemoReport(
        plan=plan,
        stats=session.stats,
        out=options.out,
        max_plots=options.max_plots,
        stopped_by=stopped_by,
        seconds=time.monotonic() - started,
        ticks_sent=session.stats.ticks_sent,
        bars_closed=bars_closed(worker),
        model_version=worker.infer.model_version,
        threshold=worker.infer.threshold,
        trained=trained,
    )
