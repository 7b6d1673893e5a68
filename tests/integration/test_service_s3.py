"""The service across hosts: `sculpt serve` processes that share nothing but the real Kafka
broker and the real S3 server (s3proxy), under the faults of issue 12. Every check is made
as a read_committed consumer sees the topics."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest

from sculptsvc.events import MoldReady
from sculptsvc.settings import Settings
from sculptsvc.store import open_store
from tests.integration.conftest import S3Store
from tests.integration.test_service_faults import (
    exactly_once,
    fault_settings,
    produce_orders,
    wait_until,
)
from tests.kafka_harness import KafkaHarness
from tests.service_support import ServiceProcess, committed_offset, job_runs, read_topic
from tests.tcp_relay import TcpRelay

pytestmark = pytest.mark.slow


def s3_settings(kafka: KafkaHarness, topics, s3_store: S3Store, **extra) -> Settings:
    """The fault tests' settings, with the S3 store (and a short cap on its retry delay)."""
    return fault_settings(
        kafka, topics, Path("unused"), store_retry_max_backoff_s=1.0, **s3_store.settings(), **extra
    )


def instance(
    settings: Settings, s3_store: S3Store, home: Path, name: str, **env: str
) -> ServiceProcess:
    """One host: its own working directory and local artifact root (which must stay
    unused: only S3 is shared), the S3 credentials in the standard AWS variables."""
    home.mkdir(parents=True, exist_ok=True)
    own = settings.model_copy(update={"artifact_root": home / "artifacts"})
    return ServiceProcess(own, home / f"{name}.log", cwd=home, **{**s3_store.env, **env})


def verified_blobs(s3_store: S3Store) -> dict[str, int]:
    """Every blob in the bucket, checked: its bytes hash to its key (nothing partial)."""
    client = s3_store.harness.client()
    sizes = {}
    for key in s3_store.harness.keys(s3_store.bucket, f"{s3_store.prefix}/blobs/"):
        data = client.get_object(Bucket=s3_store.bucket, Key=key)["Body"].read()
        assert hashlib.sha256(data).hexdigest() == key.rsplit("/", 1)[-1], f"partial: {key}"
        sizes[key] = len(data)
    return sizes


def molds(kafka: KafkaHarness, topics) -> list[MoldReady]:
    raw = asyncio.run(read_topic(kafka.bootstrap, topics.molds, 10_000, timeout=3))
    return [MoldReady.model_validate(m) for m in raw]


def dead_letters(kafka: KafkaHarness, topics) -> list[dict]:
    return asyncio.run(read_topic(kafka.bootstrap, topics.dlq, 10_000, timeout=3))


def test_two_hosts_and_a_station_share_only_kafka_and_s3(
    kafka: KafkaHarness, make_topic, topics, s3_store: S3Store, tmp_path: Path
) -> None:
    orders = make_topic("sculpt.orders", partitions=4)
    station_jobs = make_topic("sculpt.station-jobs")
    settings = s3_settings(kafka, topics, s3_store, topic_orders=orders)
    job_log = tmp_path / "jobs.log"  # test instrumentation only: counts job runs
    env = {"SCULPT_TEST_JOB_SECONDS": "0.2", "SCULPT_TEST_JOB_LOG": str(job_log)}
    ids = [f"nh-{i:02d}" for i in range(12)]
    a = instance(settings, s3_store, tmp_path / "host-a", "a", **env).start()
    b = instance(settings, s3_store, tmp_path / "host-b", "b", **env).start()
    station_settings = settings.model_copy(
        update={
            "topic_station_jobs": station_jobs,
            "station_group_id": f"station-{uuid.uuid4().hex[:8]}",
            "station_id": "hall-1",
            "station_jobs_dir": tmp_path / "host-s" / "jobs",
        }
    )
    station = ServiceProcess(
        station_settings,
        tmp_path / "station.log",
        command=("station",),
        cwd=tmp_path / "host-s",
        **s3_store.env,
    ).start()
    try:
        a.wait_ready()
        b.wait_ready()
        station.wait_ready()
        produce_orders(kafka, orders, ids)
        exactly_once(kafka, topics, ids, timeout=180)
        a.terminate()  # host A goes away: its partitions move to B
        produce_orders(kafka, orders, ids)  # every revision again, now all handled by B
        wait_until(
            lambda: (
                sum(
                    asyncio.run(committed_offset(kafka.bootstrap, settings.group_id, orders, p))
                    for p in range(4)
                )
                == 2 * len(ids)
            ),
            120,
            "B to commit the repeated orders",
        )
        exactly_once(kafka, topics, ids, timeout=10)
        events = asyncio.run(read_topic(kafka.bootstrap, station_jobs, len(ids), timeout=120))
    finally:
        for proc in (a, b, station):
            if proc.proc is not None and proc.proc.poll() is None:
                proc.terminate()
    runs = Counter(job_runs(job_log))
    assert runs == Counter({i: 1 for i in ids}), "a repeated revision must not run again"
    assert sorted(e["order_id"] for e in events if e["state"] == "received") == ids
    folders = sorted(p.parent.name for p in (tmp_path / "host-s" / "jobs").glob("*/r1"))
    assert folders == ids, "exactly one verified job folder per order at the station"
    for home in ("host-a", "host-b"):
        assert not (tmp_path / home / "artifacts").exists(), "nothing may go to a local disk"
    secret = s3_store.env["AWS_SECRET_ACCESS_KEY"]
    for log in (a.log_path, b.log_path, station.log_path):
        assert secret not in log.read_text(), f"a credential reached {log.name}"
    for mold in molds(kafka, topics):
        assert mold.half_a.uri.startswith(f"s3://{s3_store.bucket}/{s3_store.prefix}/blobs/")
    assert len(verified_blobs(s3_store)) == 6 * len(ids)


def test_kill_9_during_upload_leaves_no_partial_object(
    kafka: KafkaHarness, topics, s3_store: S3Store, tmp_path: Path
) -> None:
    endpoint = urlparse(s3_store.env["SCULPT_S3_ENDPOINT_URL"])
    relay = TcpRelay(endpoint.hostname or "127.0.0.1", endpoint.port or 80).start()
    settings = s3_settings(kafka, topics, s3_store)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_ARTIFACT_BYTES": "1500000", "SCULPT_TEST_JOB_LOG": str(job_log)}
    relay.freeze_after("up", 400_000)  # an artifact PUT body is on its way
    first = instance(
        settings.model_copy(update={"s3_endpoint_url": relay.url}),
        s3_store,
        tmp_path / "host-a",
        "a",
        SCULPT_S3_ENDPOINT_URL=relay.url,
        **env,
    ).start()
    try:
        first.wait_ready()
        produce_orders(kafka, topics.orders, ["up-1"])
        assert relay.frozen.wait(90), first.log_tail()
        first.kill()
        relay.cut()  # the connection dies with the host: the server has a partial body
    finally:
        relay.close()
    assert asyncio.run(committed_offset(kafka.bootstrap, settings.group_id, topics.orders)) == 0
    before = verified_blobs(s3_store)  # raises on any partial object under a final key
    assert all(size == 1_500_000 for size in before.values())
    second = instance(settings, s3_store, tmp_path / "host-b", "b", **env).start()
    try:
        second.wait_ready()
        exactly_once(kafka, topics, ["up-1"], timeout=120)
    finally:
        second.terminate()
    (mold,) = molds(kafka, topics)
    store = open_store(settings)
    for ref in (mold.half_a, mold.half_b, mold.three_mf, mold.report):
        assert len(store.get(ref)) == ref.size_bytes  # get() checks the sha256 too
    assert len(verified_blobs(s3_store)) == 6


def test_s3_outage_mid_run_waits_and_completes_everything(
    kafka: KafkaHarness, topics, s3_store: S3Store, tmp_path: Path
) -> None:
    settings = s3_settings(kafka, topics, s3_store)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "1", "SCULPT_TEST_JOB_LOG": str(job_log)}
    ids = [f"out-{i}" for i in range(3)]
    service = instance(settings, s3_store, tmp_path / "host-a", "a", **env).start()
    try:
        service.wait_ready()
        produce_orders(kafka, topics.orders, ids)
        wait_until(lambda: len(job_runs(job_log)) >= 1, 60, "the first job to start")
        s3_store.harness.stop()  # the S3 server goes down mid-run
        wait_until(lambda: service.http_get("/ready")[0] == 503, 60, "/ready to report it")
        _, body = service.http_get("/ready")
        reasons = json.loads(body)["reasons"]
        assert any(r.startswith("artifact store:") for r in reasons), reasons
        wait_until(lambda: '"store.unavailable"' in service.log_path.read_text(), 60, "retries")
        assert dead_letters(kafka, topics) == []
        s3_store.harness.start()  # back, same port and objects
        exactly_once(kafka, topics, ids, timeout=180)
        wait_until(lambda: service.http_get("/ready")[0] == 200, 60, "/ready to recover")
    finally:
        if not s3_store.harness.is_running():
            s3_store.harness.start()
        service.terminate()
    assert dead_letters(kafka, topics) == [], "an outage is never the customer's fault"
    statuses = asyncio.run(read_topic(kafka.bootstrap, topics.status, 10_000, timeout=3))
    assert not [s for s in statuses if s["state"] in ("failed", "rejected")]
    assert Counter(job_runs(job_log)) == Counter({i: 1 for i in ids})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"AWS_SECRET_ACCESS_KEY": "not-the-secret"}, "rejected the AWS credentials"),
        ({"SCULPT_STORE_URL": "s3://no-such-bucket-anywhere/p"}, "does not exist"),
    ],
)
def test_wrong_credentials_or_missing_bucket_stop_start_up_before_consuming(
    kafka: KafkaHarness, topics, s3_store: S3Store, tmp_path: Path, change, expected
) -> None:
    settings = s3_settings(kafka, topics, s3_store)
    produce_orders(kafka, topics.orders, ["cfg-1"])
    service = instance(settings, s3_store, tmp_path / "host", "svc", **change).start()
    assert service.proc is not None
    code = service.proc.wait(60)
    lines = [ln for ln in service.log_path.read_text().splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1, lines
    assert expected in lines[0] and "SCULPT_STORE_URL" in lines[0], lines[0]
    assert (
        "not-the-secret" not in lines[0] and s3_store.env["AWS_SECRET_ACCESS_KEY"] not in lines[0]
    )
    assert asyncio.run(committed_offset(kafka.bootstrap, settings.group_id, topics.orders)) == 0
    assert asyncio.run(read_topic(kafka.bootstrap, topics.status, 1, timeout=2)) == []
