"""Delivery under faults, on the real broker with real `sculpt serve` processes and the real
worker pool (stand-in jobs from tests/service_jobs.py). Every test checks the output topics
as a read_committed consumer sees them: one terminal outcome per order, none lost."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest

from sculptsvc.settings import Settings
from tests.kafka_harness import KafkaHarness
from tests.service_support import (
    ServiceProcess,
    committed_offset,
    job_runs,
    order_json,
    read_topic,
)

pytestmark = pytest.mark.slow


def fault_settings(kafka: KafkaHarness, topics, tmp_path: Path, **extra) -> Settings:
    base = {
        "kafka_bootstrap_servers": kafka.bootstrap,
        "group_id": f"sculpt-{uuid.uuid4().hex[:8]}",
        "transactional_id_prefix": f"sculpt-{uuid.uuid4().hex[:8]}",
        "artifact_root": tmp_path / "artifacts",
        "retry_backoff_s": 0.2,
        "workers": 1,
        "log_format": "json",
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 1_000,
        "graceful_timeout_s": 30.0,
        "job_module": "tests.service_jobs",
        **topics.settings(),
    }
    base.update(extra)
    return Settings(**base)


def produce_orders(kafka: KafkaHarness, topic: str, ids: list[str]) -> None:
    for order_id in ids:
        kafka.kcat_produce(topic, order_id, order_json(order_id))


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def terminal_outcomes(kafka: KafkaHarness, topics, expected: int, timeout: float) -> Counter:
    statuses = asyncio.run(read_topic(kafka.bootstrap, topics.status, 10_000, timeout=timeout))
    return Counter(
        s["order_id"] for s in statuses if s["state"] in ("completed", "failed", "rejected")
    )


def exactly_once(kafka: KafkaHarness, topics, ids: list[str], timeout: float = 120) -> None:
    """Wait until every order has a terminal state, then check there is exactly one each,
    and exactly one MoldReady and ModelReady each."""
    deadline = time.monotonic() + timeout
    while True:
        terminal = terminal_outcomes(kafka, topics, len(ids), timeout=3)
        if set(terminal) >= set(ids) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert set(terminal) == set(ids), f"missing: {set(ids) - set(terminal)}"
    assert all(n == 1 for n in terminal.values()), f"duplicates: {terminal}"
    molds = asyncio.run(read_topic(kafka.bootstrap, topics.molds, 10_000, timeout=3))
    models = asyncio.run(read_topic(kafka.bootstrap, topics.models, 10_000, timeout=3))
    assert sorted(m["order_id"] for m in molds) == sorted(ids)
    assert sorted(m["order_id"] for m in models) == sorted(ids)


def test_kill_9_mid_order_loses_nothing_and_duplicates_nothing(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = fault_settings(kafka, topics, tmp_path)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "2", "SCULPT_TEST_JOB_LOG": str(job_log)}
    ids = [f"k9-{i}" for i in range(4)]
    first = ServiceProcess(settings, tmp_path / "svc1.log", **env).start()
    first.wait_ready()
    produce_orders(kafka, topics.orders, ids)
    wait_until(lambda: len(job_runs(job_log)) >= 2, 60, "the second job to start")
    first.kill()  # mid-order: one finished, one running, two waiting
    second = ServiceProcess(settings, tmp_path / "svc2.log", **env).start()
    try:
        second.wait_ready()
        exactly_once(kafka, topics, ids)
    finally:
        second.terminate()
    runs = Counter(job_runs(job_log))
    assert runs["k9-0"] == 1, "a committed order must not run again"
    assert all(runs[i] <= 2 for i in ids)  # only the interrupted one may run twice
    offset = asyncio.run(committed_offset(kafka.bootstrap, settings.group_id, topics.orders))
    assert offset == len(ids)


def test_broker_restart_mid_run(kafka: KafkaHarness, topics, tmp_path: Path, restart_kafka) -> None:
    settings = fault_settings(kafka, topics, tmp_path)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "1", "SCULPT_TEST_JOB_LOG": str(job_log)}
    ids = [f"br-{i}" for i in range(4)]
    service = ServiceProcess(settings, tmp_path / "svc.log", **env).start()
    try:
        service.wait_ready()
        produce_orders(kafka, topics.orders, ids)
        wait_until(lambda: len(job_runs(job_log)) >= 1, 60, "the first job to start")
        restart_kafka(downtime_s=3.0)
        exactly_once(kafka, topics, ids, timeout=180)
        assert service.proc is not None and service.proc.poll() is None, service.log_tail()
    finally:
        service.terminate()


def test_two_instances_share_four_partitions_through_a_rebalance(
    kafka: KafkaHarness, make_topic, topics, tmp_path: Path
) -> None:
    orders = make_topic("sculpt.orders", partitions=4)
    settings = fault_settings(kafka, topics, tmp_path, topic_orders=orders)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "0.3", "SCULPT_TEST_JOB_LOG": str(job_log)}
    ids = [f"so-{i:02d}" for i in range(24)]
    a = ServiceProcess(settings, tmp_path / "a.log", **env).start()
    b = ServiceProcess(settings, tmp_path / "b.log", **env)
    try:
        a.wait_ready()
        produce_orders(kafka, orders, ids)
        wait_until(lambda: len(job_runs(job_log)) >= 4, 60, "work to start")
        b.start()  # joins mid-run: partitions move between instances
        b.wait_ready()
        exactly_once(kafka, topics, ids, timeout=180)
        pids = {line.split()[2] for line in job_log.read_text().splitlines()}
        assert len(pids) >= 2, "both instances' workers should have taken orders"
    finally:
        a.terminate()
        if b.proc is not None:
            b.terminate()


def test_sixty_second_job_keeps_its_group_membership(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = fault_settings(kafka, topics, tmp_path, session_timeout_ms=10_000)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "60", "SCULPT_TEST_JOB_LOG": str(job_log)}
    service = ServiceProcess(settings, tmp_path / "svc.log", **env).start()
    try:
        service.wait_ready()
        produce_orders(kafka, topics.orders, ["slow-1"])
        exactly_once(kafka, topics, ["slow-1"], timeout=150)
        assert job_runs(job_log) == ["slow-1"], "the job must not be redelivered and re-run"
        log = service.log_path.read_text()
        assert "UnknownMemberId" not in log and "rebalance" not in log.lower(), service.log_tail()
    finally:
        service.terminate()


def test_sigterm_drains_the_running_order_then_exits(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = fault_settings(kafka, topics, tmp_path, graceful_timeout_s=30.0)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "4", "SCULPT_TEST_JOB_LOG": str(job_log)}
    service = ServiceProcess(settings, tmp_path / "svc.log", **env).start()
    service.wait_ready()
    produce_orders(kafka, topics.orders, ["drain-1"])
    wait_until(lambda: job_runs(job_log) == ["drain-1"], 60, "the job to start")
    started = time.monotonic()
    code = service.terminate(timeout=60)
    # uvicorn re-raises the signal once shutdown is complete: -SIGTERM is a clean exit here.
    assert code in (0, -signal.SIGTERM), service.log_tail()
    assert '"service.stopped"' in service.log_path.read_text()
    assert time.monotonic() - started >= 2.0, "it must wait for the running order"
    exactly_once(kafka, topics, ["drain-1"], timeout=10)


def test_sigterm_past_the_grace_period_commits_nothing_unpublished(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = fault_settings(kafka, topics, tmp_path, graceful_timeout_s=1.0)
    job_log = tmp_path / "jobs.log"
    env = {"SCULPT_TEST_JOB_SECONDS": "8", "SCULPT_TEST_JOB_LOG": str(job_log)}
    service = ServiceProcess(settings, tmp_path / "svc.log", **env).start()
    service.wait_ready()
    produce_orders(kafka, topics.orders, ["cut-1"])
    wait_until(lambda: job_runs(job_log) == ["cut-1"], 60, "the job to start")
    service.terminate(timeout=60)
    assert asyncio.run(committed_offset(kafka.bootstrap, settings.group_id, topics.orders)) == 0
    assert terminal_outcomes(kafka, topics, 1, timeout=3) == Counter()
    again = ServiceProcess(settings, tmp_path / "svc2.log", SCULPT_TEST_JOB_SECONDS="0").start()
    try:
        again.wait_ready()
        exactly_once(kafka, topics, ["cut-1"], timeout=60)
    finally:
        again.terminate()
