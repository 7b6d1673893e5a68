"""Running the service against the test broker, in-process or as a `sculpt serve` process."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from PIL import Image

from sculptsvc.jobs import JobOutput, OrderJob
from sculptsvc.service.app import create_app
from sculptsvc.service.processor import JobRunner, StageEnded
from sculptsvc.settings import Settings
from tests.service_jobs import STAGE_ENDS, fake_output

REPO_ROOT = Path(__file__).resolve().parents[1]


def tiny_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buf, format="PNG")
    return buf.getvalue()


def order_json(order_id: str, revision: int = 1, **extra: object) -> str:
    doc = {
        "order_id": order_id,
        "revision": revision,
        "correlation_id": f"corr-{order_id}",
        "image": {
            "kind": "inline",
            "media_type": "image/png",
            "data_base64": base64.b64encode(tiny_png()).decode(),
        },
    }
    doc.update(extra)
    return json.dumps(doc)


class InstantRunner:
    """In-process stand-in for the worker pool: counts the jobs it runs."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.jobs: list[tuple[str, int]] = []
        self.delay_s = delay_s

    async def run(self, job: OrderJob, on_stage: StageEnded) -> JobOutput:
        self.jobs.append((job.order_id, job.revision))
        await asyncio.sleep(self.delay_s)
        for state in STAGE_ENDS:
            await on_stage(state)
        return fake_output(job)


@asynccontextmanager
async def running_service(settings: Settings, runner: JobRunner | None) -> AsyncIterator[object]:
    app = create_app(settings, runner=runner)
    async with app.start_lifespan_context():
        yield app


async def read_topic(bootstrap: str, topic: str, count: int, timeout: float = 30.0) -> list[dict]:
    """Up to ``count`` events from the start of ``topic`` as a read_committed consumer sees
    them; returns early once ``count`` arrived, else what came within ``timeout``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[dict] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out += [json.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return out


async def committed_offset(bootstrap: str, group: str, topic: str, partition: int = 0) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, partition)) or 0
    finally:
        await consumer.stop()


def serve_process(
    env: dict[str, str],
    log_path: Path,
    command: tuple[str, ...] = ("serve",),
    cwd: Path = REPO_ROOT,
) -> subprocess.Popen:
    """`sculpt serve` (or another ``command``) as its own process (for kill -9, scale-out
    and SIGTERM tests); ``cwd`` gives each instance a working directory of its own."""
    full_env = dict(os.environ, **env)
    full_env.setdefault("SCULPT_JOB_MODULE", "tests.service_jobs")
    full_env.setdefault("PYTHONPATH", str(REPO_ROOT))
    fh = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [sys.executable, "-m", "sculptsvc.cli", *command],
        cwd=cwd,
        env=full_env,
        stdout=fh,
        stderr=subprocess.STDOUT,
    )


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(10)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """One `sculpt serve` instance with its own HTTP port; stdout+stderr in ``log_path``."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *,
        command: tuple[str, ...] = ("serve",),
        cwd: Path = REPO_ROOT,
        **env: str,
    ) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.command = command
        self.cwd = cwd
        self.env = {**settings_env(settings), "SCULPT_HTTP_PORT": str(self.port), **env}
        self.proc: subprocess.Popen | None = None

    def start(self) -> ServiceProcess:
        self.cwd.mkdir(parents=True, exist_ok=True)
        self.proc = serve_process(self.env, self.log_path, self.command, self.cwd)
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        import urllib.error
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ready", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.3)
        raise TimeoutError(f"service not ready in {timeout}s: {self.log_tail()}")

    def http_get(self, path: str) -> tuple[int, bytes]:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def kill(self) -> None:
        """kill -9 of the service process (its workers notice and exit on their own)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 90.0) -> int:
        assert self.proc is not None
        return stop_process(self.proc, signal.SIGTERM, timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def settings_env(settings: Settings) -> dict[str, str]:
    """``SCULPT_*`` variables that reproduce ``settings`` in a child process."""
    env = {}
    for name, value in settings.model_dump(mode="json").items():
        if value is None:
            continue
        env[f"SCULPT_{name.upper()}"] = json.dumps(value) if isinstance(value, list) else str(value)
    return env


def job_runs(log: Path) -> list[str]:
    """Order ids in the order the stand-in job started them (``SCULPT_TEST_JOB_LOG``)."""
    if not log.exists():
        return []
    return [line.split()[0] for line in log.read_text().splitlines() if line.strip()]
