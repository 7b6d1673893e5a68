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

from sculptsvc.events import OrderPlaced
from sculptsvc.service.app import create_app
from sculptsvc.service.processor import JobRunner
from sculptsvc.settings import Settings
from tests.service_jobs import fake_output

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

    async def run(self, order: OrderPlaced, image: bytes):
        self.jobs.append((order.order_id, order.revision))
        await asyncio.sleep(self.delay_s)
        return fake_output(order)


@asynccontextmanager
async def running_service(settings: Settings, runner: JobRunner) -> AsyncIterator[object]:
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


def serve_process(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """`sculpt serve` as its own process (for kill -9, scale-out and SIGTERM tests)."""
    full_env = dict(os.environ, **env)
    full_env.setdefault("SCULPT_JOB_MODULE", "tests.service_jobs")
    full_env.setdefault("PYTHONPATH", str(REPO_ROOT))
    fh = open(log_path, "ab")  # noqa: SIM115 - owned by the process
    return subprocess.Popen(
        [sys.executable, "-m", "sculptsvc.cli", "serve"],
        cwd=REPO_ROOT,
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
