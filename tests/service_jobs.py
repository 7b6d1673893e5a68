"""Stand-in order jobs for service tests (``SCULPT_JOB_MODULE=tests.service_jobs``).

They run in the real worker pool and return real-looking artifacts without the pipeline, so
Kafka behaviour (delivery, commits, rebalances) is tested in seconds. Like the pipeline,
they report each stage's end (``sculptsvc.workers.progress``). Behaviour per order is
driven by environment variables so a ``sculpt serve`` subprocess can be steered:
``SCULPT_TEST_JOB_SECONDS`` (sleep per job), ``SCULPT_TEST_JOB_LOG`` (append "order_id revision
pid" per run, to count jobs across processes), ``SCULPT_TEST_JOB_ARTIFACT_BYTES`` (size of
each artifact; default 2 kB), ``SCULPT_TEST_STAGE_SECONDS`` (each stage's length, its
artifacts made within it, so stage events go out while the job still runs, as the
pipeline's do).
"""

from __future__ import annotations

import hashlib
import os
import time

from sculptsvc.artifacts import NAMES
from sculptsvc.errors import NoSubject
from sculptsvc.events import OrderState
from sculptsvc.jobs import JobOutput, OrderJob
from sculptsvc.workers import progress

STAGE_ENDS = (
    OrderState.stylized,
    OrderState.reconstructed,
    OrderState.validated,
    OrderState.mold_ready,
)
"""The states ``run_pipeline`` reports, in its order."""


def fake_output(job: OrderJob) -> JobOutput:
    seed = f"{job.order_id}/{job.revision}".encode()
    size = int(os.environ.get("SCULPT_TEST_JOB_ARTIFACT_BYTES", "2048"))
    return JobOutput(
        artifacts={name: _bytes(seed + name.encode(), size) for name in NAMES},
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
    log = os.environ.get("SCULPT_TEST_JOB_LOG")
    if log:
        with open(log, "a") as fh:
            fh.write(f"{job.order_id} {job.revision} {os.getpid()}\n")
    time.sleep(float(os.environ.get("SCULPT_TEST_JOB_SECONDS", "0")))
    if job.order_id.startswith("nosubject"):
        raise NoSubject("the picture has no subject")
    stage_seconds = float(os.environ.get("SCULPT_TEST_STAGE_SECONDS", "0"))
    output = None
    for state_ended in STAGE_ENDS:
        stage_started = time.monotonic()
        if state_ended is STAGE_ENDS[-1]:
            # made within the last stage's time, as the pipeline makes its files during its
            # stages: making 4.8 MB takes a few ms that `bench overhead` must not count as
            # the service's
            output = fake_output(job)
        time.sleep(max(0.0, stage_started + stage_seconds - time.monotonic()))
        progress.report(state_ended)
        _record_status_visible(job, state_ended)
    assert output is not None
    return output


def _record_status_visible(job: OrderJob, state: OrderState) -> None:
    """With ``SCULPT_TEST_STATUS_CHECK=bootstrap,topic,logfile``: right after ``report``
    returned (before the next stage starts), read the status topic as a read_committed
    consumer up to its end *now* (kcat ``-e``: the last stable offset, no waiting for later
    records) and log "seen STATE" or "missing STATE" for this order."""
    check = os.environ.get("SCULPT_TEST_STATUS_CHECK")
    if not check:
        return
    import json
    import shutil
    import subprocess

    bootstrap, topic, logfile = check.split(",")
    kcat = shutil.which("kcat") or "kcat"
    args = ["-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q"]
    out = subprocess.run(
        [kcat, *args, "-X", "isolation.level=read_committed"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    seen = any(e["order_id"] == job.order_id and e["state"] == state.value for e in events)
    with open(logfile, "a") as fh:
        fh.write(f"{'seen' if seen else 'missing'} {state.value}\n")
