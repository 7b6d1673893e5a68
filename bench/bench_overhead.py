"""Service overhead per order: what Kafka, the artifact store and the events add to a job.

One ``sculpt serve`` process (one worker) on the project's test broker runs stand-in jobs
(``tests.service_jobs``) of a known length: four stages of ``stage_s`` each, every stage's end
published as a status event while the job goes on, as the pipeline's are. Each job returns six
artifacts as large as a classic order's (4.8 MB in all), which cross the worker pool's pipe,
go to the store and are named in the transactional ``ModelReady``/``MoldReady``/``completed``
events, with the ledger read and written and the input offset committed in the same
transaction. Everything but the pipeline's own work is real.

Orders go one at a time. A read_committed client, like a shop's, times each order from just
before it sends it to the moment it sees the order's ``completed`` status. The worker's own
time per job (``job_s`` in the service's ``job_done`` log line) splits that latency in two:

- **outside the worker**: latency - job_s: consuming the order, the duplicate checks, the
  ``accepted`` status, handing the job to the worker and its result back, the store
  uploads, the ledger, the final transaction, and the client seeing it;
- **stage statuses**: job_s - the stand-in's sleeps: the four stage-end statuses the job
  waits for, because a stage's status must be published before the next stage starts (#11).

The overhead is their sum. ``produce_retries`` counts the produce requests the service's
Kafka client retried (each after 100 ms): a transaction that sent its offset while its records
were in flight did that to about one order in ten. Run with the local store and with S3
(s3proxy on loopback, started by ``scripts/s3``), and once more with the local store the way
it was before progress statuses left their transactions (``progress_in_transactions``) and
before the outcome's transaction filled during the uploads (``outcome_overlap_s=0``), in the
same run, to compare. Target: < 50 ms per order (median). A
second table sends real pictures through the classic pipeline in the same service: there
the stage statuses are inside the job's time, so only the part outside the worker is shown.

    python -m bench overhead
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.bench_service import inline_order, run_settings, sample_images
from bench.bench_store import ARTIFACT_SIZES, BUCKET, start_s3
from bench.bench_store import SCRIPT as S3_SCRIPT
from bench.common import print_table
from sculptsvc.artifacts import NAMES
from sculptsvc.settings import Settings
from tests.kafka_harness import KafkaHarness
from tests.service_jobs import STAGE_ENDS
from tests.service_support import ServiceProcess, tiny_png


@dataclass(frozen=True)
class BenchParams:
    orders: int = 30
    pipeline_orders: int = 10
    warm_up_orders: int = 3
    stage_s: float = 0.25
    observer_fetch_wait_ms: int = 5
    order_timeout_s: float = 120.0
    target_ms: float = 50.0


def artifact_bytes() -> int:
    """Each stand-in artifact's size: a classic order's total, spread over the six."""
    return sum(ARTIFACT_SIZES.values()) // len(NAMES)


TERMINAL = ("completed", "rejected", "failed")


async def closed_loop(
    bootstrap: str, settings: Settings, params: BenchParams, images: list[bytes]
) -> list[dict[str, Any]]:
    """Per completed order: seconds from send to ``accepted`` and to ``completed``, as seen
    outside (orders go one at a time, each waiting for the last one's terminal status)."""
    seen: dict[tuple[str, str], float] = {}
    arrived = asyncio.Event()
    observer = AIOKafkaConsumer(
        settings.topic_status,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=params.observer_fetch_wait_ms,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await observer.start()
    await producer.start()

    async def watch() -> None:
        while True:
            batch = await observer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for r in records:
                    event = json.loads(r.value)
                    seen.setdefault((event["order_id"], event["state"]), now)
                    arrived.set()

    watcher = asyncio.create_task(watch())
    rows: list[dict[str, Any]] = []
    try:
        for i in range(params.warm_up_orders + params.orders):
            order_id = f"overhead-{i:04d}"
            doc = inline_order(order_id, images[i % len(images)])
            sent = time.perf_counter()
            await producer.send_and_wait(
                settings.topic_orders, json.dumps(doc).encode(), key=order_id.encode()
            )
            deadline = sent + params.order_timeout_s
            while not any((order_id, state) in seen for state in TERMINAL):
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"{order_id} not completed in {params.order_timeout_s} s")
                arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), timeout=1.0)
            if i >= params.warm_up_orders and (order_id, "completed") in seen:
                rows.append(
                    {
                        "order": order_id,
                        "accepted": seen[(order_id, "accepted")] - sent,
                        "completed": seen[(order_id, "completed")] - sent,
                    }
                )
    finally:
        watcher.cancel()
        await producer.stop()
        await observer.stop()
    return rows


@dataclass(frozen=True)
class StoreRun:
    rows: list[dict[str, Any]]
    """Per order: seconds to ``accepted`` and to ``completed``, and the worker's ``job_s``."""
    produce_retries: int
    """Produce requests the service's Kafka client had to retry (each waits 100 ms)."""


def run_store(
    kafka: KafkaHarness,
    work: Path,
    name: str,
    params: BenchParams,
    *,
    pipeline: bool = False,
    **extra_settings: object,
) -> StoreRun:
    """The closed loop on one fresh ``sculpt serve``: stand-in jobs, or with ``pipeline``
    the classic pipeline on real pictures (``bench service``'s). ``extra_settings``: the
    store, or the path before a change (``progress_in_transactions``)."""
    settings = run_settings(
        kafka,
        f"overhead-{name}",
        work / f"artifacts-{name}",
        **({} if pipeline else {"job_module": "tests.service_jobs"}),
        **extra_settings,
    )
    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    service = ServiceProcess(
        settings,
        work / f"serve-{name}.log",
        SCULPT_TEST_STAGE_SECONDS=str(params.stage_s),
        SCULPT_TEST_JOB_ARTIFACT_BYTES=str(artifact_bytes()),
        **aws,
    ).start()
    try:
        service.wait_ready(120)
        images = sample_images() if pipeline else [tiny_png()]
        rows = asyncio.run(closed_loop(kafka.bootstrap, settings, params, images))
    finally:
        service.terminate()
    job_s = worker_seconds(service.log_path)
    return StoreRun(
        [{**row, "job_s": job_s[row["order"]]} for row in rows],
        produce_retries(service.log_path),
    )


def worker_seconds(log_path: Path) -> dict[str, float]:
    """``job_s`` per order from the service's JSON log (its ``job_done`` lines)."""
    seconds: dict[str, float] = {}
    for line in log_path.read_text().splitlines():
        if '"job_done"' in line and line.startswith("{"):
            event = json.loads(line)
            seconds[event["order_id"]] = event["job_s"]
    return seconds


def produce_retries(log_path: Path) -> int:
    """aiokafka's "Got error produce response ..., retrying" lines in the service's log."""
    return sum("Got error produce response" in line for line in log_path.read_text().splitlines())


def summary(name: str, run: StoreRun, params: BenchParams) -> dict[str, object]:
    rows = run.rows
    sleeps_s = len(STAGE_ENDS) * params.stage_s

    def ms(values: list[float]) -> float:
        return round(statistics.median(values) * 1000, 1)

    total = sorted(r["completed"] - sleeps_s for r in rows)
    median_ms = statistics.median(total) * 1000
    return {
        "store": name,
        "orders": len(rows),
        "accepted_ms": ms([r["accepted"] for r in rows]),
        "outside_worker_ms": ms([r["completed"] - r["job_s"] for r in rows]),
        "stage_statuses_ms": ms([r["job_s"] - sleeps_s for r in rows]),
        "overhead_p50_ms": round(median_ms, 1),
        "overhead_p95_ms": round(statistics.quantiles(total, n=20)[18] * 1000, 1),
        "produce_retries": run.produce_retries,
        "target_ms": params.target_ms,
        "met": "yes" if median_ms < params.target_ms else "NO",
    }


def pipeline_summary(run: StoreRun) -> dict[str, object]:
    """The classic pipeline's orders: only the part outside the worker can be told apart
    (its stage statuses are inside ``job_s``, with the stages' own work)."""
    rows = run.rows
    outside = [(r["completed"] - r["job_s"]) * 1000 for r in rows]
    return {
        "orders": len(rows),
        "job_s_p50": round(statistics.median(r["job_s"] for r in rows), 3),
        "latency_s_p50": round(statistics.median(r["completed"] for r in rows), 3),
        "outside_worker_p50_ms": round(statistics.median(outside), 1),
        "outside_worker_max_ms": round(max(outside), 1),
        "produce_retries": run.produce_retries,
    }


def main(params: BenchParams | None = None) -> None:
    params = params or BenchParams()
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        work = Path(tmp)
        kafka = KafkaHarness(work / "kafka")
        kafka.start()
        try:
            results = {
                # before: each progress status in a transaction of its own, and the
                # outcome's transaction only after the uploads and the ledger
                "local, before (txn per status, no overlap)": run_store(
                    kafka,
                    work,
                    "local-before",
                    params,
                    progress_in_transactions=True,
                    outcome_overlap_s=0,
                ),
                "local": run_store(kafka, work, "local", params),
            }
            pipeline = run_store(
                kafka,
                work,
                "pipeline",
                replace(params, orders=params.pipeline_orders),
                pipeline=True,
            )
            env = start_s3(work / "s3")
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            results["s3 (loopback)"] = run_store(
                kafka,
                work,
                "s3",
                params,
                store_url=f"s3://{BUCKET}/overhead",
                s3_endpoint_url=env["SCULPT_S3_ENDPOINT_URL"],
            )
        finally:
            kafka.stop()
            subprocess.run([str(S3_SCRIPT), "stop", str(work / "s3")], check=False, timeout=60)
    megabytes = artifact_bytes() * len(NAMES) / 1e6
    print_table(
        f"Service overhead per order: one `sculpt serve`, stand-in jobs of "
        f"{len(STAGE_ENDS)} x {params.stage_s} s, {len(NAMES)} artifacts ({megabytes:.1f} MB), "
        f"orders one at a time; overhead = send -> `completed` seen (read_committed) - sleeps",
        [summary(name, run, params) for name, run in results.items()],
    )
    print_table(
        "The classic pipeline on real pictures through the same service (local store): "
        "latency - the worker's job_s",
        [pipeline_summary(pipeline)],
    )


if __name__ == "__main__":
    main()
