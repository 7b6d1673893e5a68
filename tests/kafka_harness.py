"""Drive the real Apache Kafka broker of ``scripts/kafka`` from tests, and talk to it with kcat.

The broker is a separate JVM that ``scripts/kafka`` starts, stops and restarts; this module only
calls that script, so a test run and a developer at a shell use the same code path
(``scripts/kafka start var/kafka`` then ``SCULPT_TEST_KAFKA_BOOTSTRAP=127.0.0.1:PORT pytest``
reuses a running broker instead of starting one per session).

kcat (librdkafka) is the outside client: data produced by aiokafka and read by kcat, or the
other way round, proves the bytes on the wire rather than one library agreeing with itself.

    harness = KafkaHarness(tmp_path / "kafka")
    harness.start()
    harness.create_topics(["orders"], partitions=3)
    harness.kcat_produce("orders", key="o-1", value='{"a": 1}', headers={"source": "shop"})
    records = harness.kcat_consume("orders", count=1)   # -> [KcatRecord(...)]
    harness.restart()                                   # same ports, same data
    harness.stop()
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "kafka"
EXTERNAL_BOOTSTRAP_ENV = "SCULPT_TEST_KAFKA_BOOTSTRAP"
_TOMBSTONE_DELIM = "<<kcat-key-end>>"

T = TypeVar("T")


class KafkaHarnessError(RuntimeError):
    """The broker or kcat did not do what a test needs; the message says what and where."""


@dataclass(frozen=True)
class HarnessParams:
    """Timeouts of the harness (seconds); the broker's own knobs live in ``scripts/kafka``."""

    start_timeout_s: float = 90.0
    stop_grace_s: float = 30.0
    admin_timeout_s: float = 30.0
    topic_ready_timeout_s: float = 30.0
    kcat_metadata_timeout_s: int = 5


class KcatRecord(TypedDict):
    """One record as kcat's ``-J`` envelope reports it (``payload`` already decoded once).

    ``key``/``payload`` are text; bytes that are not UTF-8 appear as surrogate escapes, and
    ``key_bytes``/``payload_bytes`` give the exact bytes on the wire.
    """

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: str | None
    payload: str | None
    key_bytes: bytes | None
    payload_bytes: bytes | None
    headers: dict[str, str]


@dataclass
class KafkaHarness:
    """One single-node broker kept in ``workdir``; ``restart()`` reuses its ports and data.

    With ``external_bootstrap`` set, the harness uses a broker someone else runs: it never
    starts or stops it, and ``restart()``/``kill()`` raise.
    """

    workdir: Path
    params: HarnessParams = field(default_factory=HarnessParams)
    external_bootstrap: str | None = None
    extra_config: Mapping[str, str] = field(default_factory=dict)
    #: The broker stops when this process exits, even if it is killed before ``stop()``.
    owner_pid: int | None = field(default_factory=os.getpid)
    _bootstrap: str | None = field(default=None, init=False, repr=False)

    # --- lifecycle ------------------------------------------------------------------------
    @classmethod
    def from_env(cls, workdir: Path, **kwargs: object) -> KafkaHarness:
        """A harness on ``$SCULPT_TEST_KAFKA_BOOTSTRAP`` when set, else a broker of its own."""
        external = os.environ.get(EXTERNAL_BOOTSTRAP_ENV) or None
        return cls(workdir, external_bootstrap=external, **kwargs)  # type: ignore[arg-type]

    @property
    def managed(self) -> bool:
        """True when this harness owns the broker process (it can stop and restart it)."""
        return self.external_bootstrap is None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for clients; valid across restarts."""
        if self.external_bootstrap:
            return self.external_bootstrap
        if self._bootstrap is None:
            raise KafkaHarnessError("broker not started: call start() first")
        return self._bootstrap

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def start(self) -> str:
        """Start (or restart) the broker and return its bootstrap address once it is ready."""
        if not self.managed:
            return self.bootstrap
        args = ["start", str(self.workdir)]
        for key, value in self.extra_config.items():
            args += ["--set", f"{key}={value}"]
        if self.owner_pid is not None:
            args += ["--owner-pid", str(self.owner_pid)]
        out = self._script(*args, timeout=self.params.start_timeout_s + 30)
        self._bootstrap = out.strip().splitlines()[-1]
        return self._bootstrap

    def stop(self) -> None:
        """Clean shutdown (SIGTERM, then SIGKILL after ``stop_grace_s``); no-op when stopped."""
        if self.managed and self.workdir.exists():
            self._script(
                "stop",
                str(self.workdir),
                str(int(self.params.stop_grace_s)),
                timeout=self.params.stop_grace_s + 30,
            )

    def kill(self) -> None:
        """SIGKILL the broker: a crash, for tests of what survives one."""
        self._require_managed("kill")
        self._script("kill", str(self.workdir), timeout=30)

    def restart(self, *, hard: bool = False, downtime_s: float = 0.0) -> str:
        """Stop (SIGKILL when ``hard``), stay down ``downtime_s``, start again on the same ports."""
        self._require_managed("restart")
        if hard:
            self.kill()
        else:
            self.stop()
        if downtime_s > 0:
            time.sleep(downtime_s)
        return self.start()

    def is_running(self) -> bool:
        if not self.managed:
            return self._kcat_metadata_ok()
        result = subprocess.run(
            [str(SCRIPT), "status", str(self.workdir)],
            capture_output=True,
            text=True,
            check=False,
        )
        return result.returncode == 0

    # --- topics ---------------------------------------------------------------------------
    def create_topics(
        self,
        names: Sequence[str],
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Create topics (existing ones are left alone) and wait until each has a leader."""
        _run_sync(lambda: self.acreate_topics(names, partitions, config))

    async def acreate_topics(
        self,
        names: Sequence[str],
        partitions: int = 1,
        config: Mapping[str, str] | None = None,
    ) -> None:
        """Async twin of :meth:`create_topics`, for use inside a running event loop."""
        new = [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=dict(config or {}),
            )
            for name in names
        ]
        timeout_ms = int(self.params.admin_timeout_s * 1000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=timeout_ms)
        await admin.start()
        try:
            response = await admin.create_topics(new, timeout_ms=timeout_ms)
            for topic_error in response.topic_errors:
                name, code = topic_error[0], topic_error[1]
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise KafkaHarnessError(f"creating topic {name!r} failed: error code {code}")
            await self._await_leaders(admin, list(names), partitions)
        finally:
            await admin.close()

    async def _await_leaders(
        self, admin: AIOKafkaAdminClient, names: list[str], partitions: int
    ) -> None:
        """Creation returns before the broker serves the topic; wait until every partition does."""
        deadline = time.monotonic() + self.params.topic_ready_timeout_s
        while True:
            described = await admin.describe_topics(names)
            ready = {
                t["topic"]
                for t in described
                if t["error_code"] == 0
                and len(t["partitions"]) >= partitions
                and all(p["leader"] >= 0 for p in t["partitions"])
            }
            if ready >= set(names):
                await self._await_partition_leaders(names, partitions, deadline)
                return
            if time.monotonic() > deadline:
                missing = sorted(set(names) - ready)
                raise KafkaHarnessError(f"topics without a leader after creation: {missing}")
            await asyncio.sleep(0.1)

    async def _await_partition_leaders(
        self, names: list[str], partitions: int, deadline: float
    ) -> None:
        """The metadata names a leader before that broker serves the partition: a first
        produce can still get NOT_LEADER_OR_FOLLOWER (and a 100 ms client retry). Ask the
        leader itself for each partition's end offset until it answers."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            wanted = [TopicPartition(n, p) for n in names for p in range(partitions)]
            await asyncio.wait_for(
                consumer.end_offsets(wanted), timeout=max(0.1, deadline - time.monotonic())
            )
        except TimeoutError as exc:
            raise KafkaHarnessError(f"partitions of {names} not served in time") from exc
        finally:
            await consumer.stop()

    def list_topics(self) -> set[str]:
        """Topic names the broker reports (kcat metadata), internal ones included."""
        meta = json.loads(self._kcat("-L", "-J", timeout=30))
        return {t["topic"] for t in meta.get("topics", [])}

    # --- kcat -----------------------------------------------------------------------------
    def kcat_produce(
        self,
        topic: str,
        key: str | bytes | None,
        value: str | bytes | None,
        headers: Mapping[str, str] | None = None,
        *,
        partition: int | None = None,
        transactional_id: str | None = None,
        compression: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        """Produce one record with kcat; the value may hold any bytes, newlines included.

        ``value=None`` sends a tombstone (null value). With ``transactional_id`` kcat wraps the
        record in a transaction it commits, as a transactional upstream producer would.
        ``compression``: the record batch's codec (gzip, snappy, lz4, zstd), as producers
        configured with ``compression.type`` send them.
        Raises :class:`KafkaHarnessError` when the broker has not acknowledged the record
        within ``timeout`` (e.g. the topic does not exist).
        """
        if value is None and key is None:
            raise ValueError("a tombstone (value=None) needs a key")
        if key is not None and "\0" in (key if isinstance(key, str) else key.decode("latin-1")):
            raise ValueError("kcat takes the key as an argument: it cannot contain NUL bytes")
        args: list[str | bytes] = [
            "-P",
            "-t",
            topic,
            "-X",
            f"message.timeout.ms={int(timeout * 1000)}",
        ]
        if key is not None and value is not None:
            args += ["-k", key]  # argv may carry any bytes but NUL
        for name, header_value in (headers or {}).items():
            args += ["-H", f"{name}={header_value}"]
        if partition is not None:
            args += ["-p", str(partition)]
        if transactional_id is not None:
            args += ["-X", f"transactional.id={transactional_id}"]
        if compression is not None:
            args += ["-z", compression]
        if value is None:
            # -Z sends an empty value as NULL; kcat skips a blank line, so the line carries the
            # key in front of a delimiter no key contains.
            key_bytes = key.encode() if isinstance(key, str) else key
            assert key_bytes is not None
            line = key_bytes + _TOMBSTONE_DELIM.encode() + b"\n"
            self._kcat(*args, "-K", _TOMBSTONE_DELIM, "-Z", input_bytes=line, timeout=timeout + 15)
            return
        data = value.encode() if isinstance(value, str) else value
        # A file argument is sent whole as one message, so delimiters in the value are harmless.
        with tempfile.NamedTemporaryFile(prefix="kcat-", suffix=".msg") as fh:
            fh.write(data)
            fh.flush()
            self._kcat(*args, fh.name, timeout=timeout + 15)

    def kcat_consume(
        self,
        topic: str,
        count: int,
        timeout: float = 30.0,
        *,
        offset: Literal["beginning", "end", "stored"] | int = "beginning",
        partition: int | None = None,
        read_committed: bool = True,
        stop_at_end: bool = False,
    ) -> list[KcatRecord]:
        """Read up to ``count`` records with kcat; returns what arrived within ``timeout``.

        ``read_committed`` (the default) hides aborted and still-open transactions, as the
        factory's consumers see the topics. ``stop_at_end`` returns at the current end of the
        topic instead of waiting for more, which is how a test asserts "nothing else there".
        """
        args = ["-C", "-t", topic, "-o", str(offset), "-c", str(count), "-J", "-u"]
        if partition is not None:
            args += ["-p", str(partition)]
        if read_committed:
            args += ["-X", "isolation.level=read_committed"]
        if stop_at_end:
            args.append("-e")
        lines = self._kcat_stream(args, count, timeout)
        return [_parse_kcat_json(line) for line in lines]

    # --- internals ------------------------------------------------------------------------
    def _require_managed(self, what: str) -> None:
        if not self.managed:
            raise KafkaHarnessError(
                f"cannot {what} an external broker ({EXTERNAL_BOOTSTRAP_ENV}={self.bootstrap})"
            )

    def _script(self, *args: str, timeout: float) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, KAFKA_START_TIMEOUT=str(int(self.params.start_timeout_s)))
        try:
            result = subprocess.run(
                [str(SCRIPT), *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaHarnessError(
                f"scripts/kafka {' '.join(args)} hung for {timeout:.0f}s; log: {self.log_path}"
            ) from exc
        if result.returncode != 0:
            raise KafkaHarnessError(
                f"scripts/kafka {' '.join(args)} failed (exit {result.returncode}):\n"
                f"{result.stderr.strip()}\nlog: {self.log_path}"
            )
        return result.stdout

    def _kcat_base(self) -> list[str]:
        exe = shutil.which("kcat")
        if exe is None:
            raise KafkaHarnessError("kcat not found (Debian package kcat; scripts/bootstrap)")
        return [exe, "-b", self.bootstrap, "-m", str(self.params.kcat_metadata_timeout_s), "-q"]

    def _kcat(self, *args: str | bytes, input_bytes: bytes | None = None, timeout: float) -> str:
        cmd: list[str | bytes] = [*self._kcat_base(), *args]
        try:
            result = subprocess.run(
                cmd, input=input_bytes, capture_output=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise KafkaHarnessError(f"kcat timed out after {timeout:.0f}s: {cmd}") from exc
        if result.returncode != 0:
            raise KafkaHarnessError(
                f"kcat failed (exit {result.returncode}): {cmd}\n{result.stderr.decode().strip()}"
            )
        return result.stdout.decode()

    def _kcat_stream(self, args: list[str], count: int, timeout: float) -> list[str]:
        """Run a kcat consumer, collecting JSON lines until ``count``, EOF or the deadline."""
        cmd = [*self._kcat_base(), *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdout is not None
        lines: list[str] = []
        buffer = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            try:
                while len(lines) < count:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        break
                    chunk = os.read(proc.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    buffer += chunk
                    *complete, buffer = buffer.split(b"\n")
                    # kcat writes non-UTF-8 bytes raw inside JSON strings: keep them recoverable.
                    lines += [c.decode("utf-8", "surrogateescape") for c in complete if c.strip()]
            finally:
                if proc.poll() is None:
                    proc.terminate()
                try:
                    _, stderr = proc.communicate(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, stderr = proc.communicate()
        if buffer.strip():
            lines.append(buffer.decode("utf-8", "surrogateescape"))
        if proc.returncode not in (0, -15) and not lines:
            raise KafkaHarnessError(
                f"kcat failed (exit {proc.returncode}): {cmd}\n{stderr.decode().strip()}"
            )
        return lines[:count]

    def _kcat_metadata_ok(self) -> bool:
        try:
            meta = json.loads(self._kcat("-L", "-J", timeout=15))
        except (KafkaHarnessError, ValueError):
            return False
        return bool(meta.get("brokers"))


def _parse_kcat_json(line: str) -> KcatRecord:
    """kcat ``-J``: headers come as a flat [k, v, k, v] list, ``ts`` is epoch milliseconds."""
    raw = json.loads(line)
    flat = raw.get("headers") or []
    headers = dict(zip(flat[0::2], flat[1::2], strict=True))
    key, payload = raw.get("key"), raw.get("payload")
    return KcatRecord(
        topic=raw["topic"],
        partition=raw["partition"],
        offset=raw["offset"],
        timestamp_ms=raw.get("ts", -1),
        key=key,
        payload=payload,
        key_bytes=None if key is None else key.encode("utf-8", "surrogateescape"),
        payload_bytes=None if payload is None else payload.encode("utf-8", "surrogateescape"),
        headers=headers,
    )


def _run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine from sync code, even when the caller is already inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(make))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _await(make)).result()


async def _await(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
