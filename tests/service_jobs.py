"""Stand-in order jobs for service tests (``SCULPT_JOB_MODULE=tests.service_jobs``).

They run in the real worker pool and return real-looking artifacts without the pipeline, so
Kafka behaviour (delivery, commits, rebalances) is tested in seconds. Behaviour per order is
driven by environment variables so a ``sculpt serve`` subprocess can be steered:
``SCULPT_TEST_JOB_SECONDS`` (sleep per job), ``SCULPT_TEST_JOB_LOG`` (append "order_id revision
pid" per run, to count jobs across processes), ``SCULPT_TEST_JOB_ARTIFACT_BYTES`` (size of
each artifact; default 2 kB).
"""

from __future__ import annotations

import hashlib
import os
import time

from sculptsvc.errors import NoSubject
from sculptsvc.events import OrderPlaced
from sculptsvc.service.jobs import OrderJob
from sculptsvc.service.processor import JobOutput

ARTIFACT_NAMES = ("model.glb", "preview.png", "mold_a.stl", "mold_b.stl", "mold.3mf", "report.json")


def fake_output(order: OrderPlaced) -> JobOutput:
    seed = f"{order.order_id}/{order.revision}".encode()
    size = int(os.environ.get("SCULPT_TEST_JOB_ARTIFACT_BYTES", "2048"))
    return JobOutput(
        artifacts={name: _bytes(seed + name.encode(), size) for name in ARTIFACT_NAMES},
        triangles=20000,
        watertight=True,
        cavity_volume_ml=12.5,
        stage_seconds={"stylize": 0.01, "mesh": 0.02},
    )


def _bytes(seed: bytes, size: int) -> bytes:
    """``size`` deterministic bytes that differ per seed (sha256 blocks, repeated)."""
    block = hashlib.sha256(seed).digest()
    return (block * (size // len(block) + 1))[:size]


def init_worker(settings_json: str) -> dict:
    return {"pid": os.getpid()}


def run_order_job(state: dict, job: OrderJob) -> JobOutput:
    order = OrderPlaced.model_validate_json(job.order_json)
    log = os.environ.get("SCULPT_TEST_JOB_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{order.order_id} {order.revision} {os.getpid()}\n")
    time.sleep(float(os.environ.get("SCULPT_TEST_JOB_SECONDS", "0")))
    if order.order_id.startswith("nosubject"):
        raise NoSubject("the picture has no subject")
    return fake_output(order)
