"""Load run of the whole service on a real broker: N orders across 2 `sculpt serve`
processes, one killed (-9) and restarted mid-run. Prints wall time, throughput, p50/p95
order latency, and the delivery check (completed, duplicates, lost).

    python -m bench service                        # 200 orders, real CPU pipeline
    SCULPT_BENCH_ORDERS=40 SCULPT_BENCH_STANDIN=1 python -m bench service   # quick
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import REPO_ROOT, corpus_dir, print_table
from sculptsvc.settings import Settings
from tests.kafka_harness import KafkaHarness
from tests.service_support import ServiceProcess

PARTITIONS = 4


def sample_images() -> list[bytes]:
    images = sorted((corpus_dir() / "images").glob("*.png"))
    small = [p.read_bytes() for p in images if p.stat().st_size < 600_000]
    if not small:
        small = [(REPO_ROOT / "samples" / "sample.png").read_bytes()]
    return small


def inline_order(order_id: str, png: bytes, **options: object) -> dict[str, object]:
    """An OrderPlaced document carrying ``png`` inline."""
    return {
        "order_id": order_id,
        "image": {
            "kind": "inline",
            "media_type": "image/png",
            "data_base64": base64.b64encode(png).decode(),
        },
        **options,
    }


async def produce(bootstrap: str, topic: str, count: int) -> dict[str, int]:
    images = sample_images()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=1_048_576)
    await producer.start()
    sent: dict[str, int] = {}
    try:
        for i in range(count):
            order_id = f"load-{i:04d}"
            doc = inline_order(
                order_id,
                images[i % len(images)],
                mode="solid" if i % 3 == 0 else "multicolor",
                **({"color": "#E4572E"} if i % 3 == 0 else {}),
            )
            meta = await producer.send_and_wait(
                topic, json.dumps(doc).encode(), key=order_id.encode()
            )
            sent[order_id] = meta.timestamp
    finally:
        await producer.stop()
    return sent


async def terminal_statuses(
    bootstrap: str, topic: str, timeout: float
) -> list[tuple[str, str, int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                break
            for records in batch.values():
                for r in records:
                    event = json.loads(r.value)
                    if event["state"] in ("completed", "failed", "rejected"):
                        state = event["state"]
                        if event.get("error"):
                            state = f"{state}:{event['error']['code']}"
                        out.append((event["order_id"], state, r.timestamp))
    finally:
        await consumer.stop()
    return out


def run_settings(
    kafka: KafkaHarness, name: str, artifact_root: Path, *, partitions: int = 1, **extra: object
) -> Settings:
    """One service deployment of its own on the test broker (group, transactional ids and
    topics named ``name`` plus a run id, topics created), one worker per instance."""
    run = f"{name}-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_bootstrap_servers=kafka.bootstrap,
        group_id=run,
        transactional_id_prefix=run,
        artifact_root=artifact_root,
        workers=1,
        topic_orders=f"{run}.orders",
        topic_status=f"{run}.status",
        topic_models=f"{run}.models",
        topic_molds=f"{run}.molds",
        topic_dlq=f"{run}.dlq",
        **extra,  # type: ignore[arg-type]
    )
    kafka.create_topics([settings.topic_orders], partitions=partitions)
    kafka.create_topics(
        [settings.topic_status, settings.topic_models, settings.topic_molds, settings.topic_dlq]
    )
    return settings


def main() -> None:
    count = int(os.environ.get("SCULPT_BENCH_ORDERS", "200"))
    standin = os.environ.get("SCULPT_BENCH_STANDIN") == "1"
    with tempfile.TemporaryDirectory(prefix="sculpt-load-") as tmp:
        work = Path(tmp)
        kafka = KafkaHarness(work / "kafka")
        kafka.start()
        try:
            settings = run_settings(
                kafka,
                "load",
                work / "artifacts",
                partitions=PARTITIONS,
                graceful_timeout_s=60,
                **({"job_module": "tests.service_jobs"} if standin else {}),
            )
            env = {"SCULPT_TEST_JOB_SECONDS": "0.5"} if standin else {}
            a = ServiceProcess(settings, work / "a.log", **env).start()
            b = ServiceProcess(settings, work / "b.log", **env).start()
            a.wait_ready(120)
            b.wait_ready(120)
            started = time.monotonic()
            sent = asyncio.run(produce(kafka.bootstrap, settings.topic_orders, count))
            # kill one instance once about a quarter of the orders are done, then restart it
            while (
                len(asyncio.run(terminal_statuses(kafka.bootstrap, settings.topic_status, 5)))
                < count // 4
            ):
                time.sleep(2)
            a.kill()
            a = ServiceProcess(settings, work / "a2.log", **env).start()
            a.wait_ready(120)
            while True:
                done = asyncio.run(terminal_statuses(kafka.bootstrap, settings.topic_status, 5))
                if len({o for o, _, _ in done}) >= count or time.monotonic() - started > 3600:
                    break
                time.sleep(3)
            wall = time.monotonic() - started
            a.terminate()
            b.terminate()
        finally:
            kafka.stop()
    per_order = Counter(o for o, _, _ in done)
    latencies = sorted((ts - sent[o]) / 1000 for o, _, ts in done if o in sent)
    states = Counter(s.split(":")[0] for _, s, _ in done)
    failures = Counter(s.split(":", 1)[1] for _, s, _ in done if ":" in s)
    q = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else [0.0] * 19
    print_table(
        f"service load run: {count} orders, 2 instances x 1 worker, {PARTITIONS} partitions, "
        f"one instance kill -9 + restart ({'stand-in 0.5 s jobs' if standin else 'CPU pipeline'})",
        [
            {
                "orders": count,
                "completed": states["completed"],
                "failed/rejected": states["failed"] + states["rejected"],
                "duplicates": sum(n - 1 for n in per_order.values() if n > 1),
                "lost": count - len(per_order),
                "wall_s": round(wall, 1),
                "orders_per_min": round(count / wall * 60, 1),
                "p50_latency_s": round(statistics.median(latencies), 2) if latencies else 0.0,
                "p95_latency_s": round(q[18], 2),
                "failure_codes": dict(failures) or "-",
            }
        ],
    )


if __name__ == "__main__":
    main()
