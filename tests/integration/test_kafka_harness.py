"""The real broker works as the service needs it: kcat and aiokafka agree on keys, values and
headers; transactions (including consumer offsets sent to them) commit and abort as a
``read_committed`` consumer sees them, against the Kafka 4 broker; a restart keeps data."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord

from tests.integration.conftest import Topics
from tests.kafka_harness import SCRIPT, KafkaHarness, KafkaHarnessError

pytestmark = pytest.mark.timeout(120)


async def consume(
    bootstrap: str,
    topic: str,
    *,
    partitions: int = 1,
    read_committed: bool = True,
    timeout_s: float = 20.0,
) -> list[ConsumerRecord]:
    """Every record now in ``topic``, up to its end as this isolation level sees it: the last
    stable offset under ``read_committed``, the high watermark otherwise."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            positions = [await consumer.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            if loop.time() > deadline:
                raise TimeoutError(f"{topic}: not at {ends} after {timeout_s}s")
            batch = await consumer.getmany(timeout_ms=200)
            records += [r for part in batch.values() for r in part]
    finally:
        await consumer.stop()
    return sorted(records, key=lambda r: (r.partition, r.offset))


async def test_aiokafka_produce_kcat_consume(kafka: KafkaHarness, topics: Topics) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    await producer.start()
    try:
        for i in range(3):
            await producer.send_and_wait(
                topics.status,
                key=f"order-{i}".encode(),
                value=json.dumps({"order_id": f"order-{i}", "state": "accepted"}).encode(),
                headers=[("content-type", b"application/json"), ("attempt", str(i).encode())],
            )
    finally:
        await producer.stop()

    records = await asyncio.to_thread(kafka.kcat_consume, topics.status, 3, 20.0)

    assert [r["key"] for r in records] == ["order-0", "order-1", "order-2"]
    assert [r["offset"] for r in records] == [0, 1, 2]
    assert [json.loads(r["payload"] or "")["order_id"] for r in records] == [
        "order-0",
        "order-1",
        "order-2",
    ]
    assert records[2]["headers"] == {"content-type": "application/json", "attempt": "2"}
    # Nothing beyond what was produced.
    rest = await asyncio.to_thread(
        kafka.kcat_consume, topics.status, 10, 10.0, offset=3, stop_at_end=True
    )
    assert rest == []


async def test_kcat_produce_aiokafka_consume(kafka: KafkaHarness, topics: Topics) -> None:
    event = {"order_id": "o-42", "note": "line one\nline two | with delimiters"}
    await asyncio.to_thread(
        kafka.kcat_produce,
        topics.orders,
        "o-42",
        json.dumps(event),
        {"source": "shop", "trace-id": "abc123"},
    )
    await asyncio.to_thread(kafka.kcat_produce, topics.orders, "o-42", None)  # tombstone

    records = await consume(kafka.bootstrap, topics.orders)

    assert len(records) == 2
    first, tombstone = records
    assert first.key == b"o-42"
    assert json.loads(first.value) == event
    assert dict(first.headers) == {"source": b"shop", "trace-id": b"abc123"}
    assert tombstone.key == b"o-42"
    assert tombstone.value is None


async def test_binary_keys_and_values_survive_both_directions(
    kafka: KafkaHarness, topics: Topics
) -> None:
    """Every byte value (NUL, newlines, invalid UTF-8) goes through kcat intact either way."""
    payload = bytes(range(256)) * 4
    key = b"\xff\xfebin"
    await asyncio.to_thread(kafka.kcat_produce, topics.models, key, payload)
    [record] = await consume(kafka.bootstrap, topics.models)
    assert (record.key, record.value) == (key, payload)

    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topics.molds, key=key, value=payload[::-1])
    finally:
        await producer.stop()
    [seen] = await asyncio.to_thread(kafka.kcat_consume, topics.molds, 1, 10.0)
    assert (seen["key_bytes"], seen["payload_bytes"]) == (key, payload[::-1])


def test_topics_are_created_unique_and_not_auto_created(
    kafka: KafkaHarness,
    topics: Topics,
    make_topic: Callable[..., str],
    request: pytest.FixtureRequest,
) -> None:
    assert request.node.get_closest_marker("kafka") is not None  # applied by the conftest
    names = topics.names()
    assert len(set(names)) == 6
    assert set(names) <= kafka.list_topics()
    assert topics.settings()["topic_orders"] == topics.orders
    extra = make_topic("wide", partitions=3)
    kafka.kcat_produce(extra, "k", "v", partition=2)
    [record] = kafka.kcat_consume(extra, 1, 10.0, partition=2)
    assert record["partition"] == 2
    # auto.create.topics.enable=false: producing to a missing topic must fail, not create it.
    with pytest.raises(KafkaHarnessError, match="kcat failed"):
        kafka.kcat_produce("sculpt.missing.topic", "k", "v", timeout=2.0)
    assert "sculpt.missing.topic" not in kafka.list_topics()


# --- transactions -----------------------------------------------------------------------


def txn_producer(bootstrap: str, transactional_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=transactional_id,
        enable_idempotence=True,
        acks="all",
    )


async def committed_offsets(bootstrap: str, group_id: str) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def test_transactions_commit_and_abort_as_read_committed_sees_them(
    kafka: KafkaHarness, topics: Topics
) -> None:
    producer = txn_producer(kafka.bootstrap, f"txn-{uuid.uuid4().hex}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topics.models, key=b"a", value=b"committed-1")
            await producer.send(topics.models, key=b"a", value=b"committed-2")
        await producer.begin_transaction()
        await producer.send(topics.models, key=b"b", value=b"aborted-1")
        await producer.send(topics.models, key=b"b", value=b"aborted-2")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topics.models, key=b"c", value=b"committed-3")
    finally:
        await producer.stop()

    committed = await consume(kafka.bootstrap, topics.models)
    everything = await consume(kafka.bootstrap, topics.models, read_committed=False)
    by_kcat = await asyncio.to_thread(kafka.kcat_consume, topics.models, 5, 10.0, stop_at_end=True)

    assert [r.value for r in committed] == [b"committed-1", b"committed-2", b"committed-3"]
    assert [r["payload"] for r in by_kcat] == ["committed-1", "committed-2", "committed-3"]
    assert [r.value for r in everything] == [
        b"committed-1",
        b"committed-2",
        b"aborted-1",
        b"aborted-2",
        b"committed-3",
    ]
    # Commit/abort markers take offsets: 0, 1, [marker 2], 3, 4, [marker 5], 6, [marker 7].
    assert [r.offset for r in committed] == [0, 1, 6]


async def test_send_offsets_to_transaction_commits_input_offsets_atomically(
    kafka: KafkaHarness, topics: Topics
) -> None:
    """Consume-transform-produce, as the service does it: the output record and the input
    offset commit together or not at all (aiokafka's TxnOffsetCommit against Kafka 4)."""
    group = f"group-{uuid.uuid4().hex[:8]}"
    for i in range(3):
        await asyncio.to_thread(kafka.kcat_produce, topics.orders, f"o{i}", f"order-{i}")
    consumer = AIOKafkaConsumer(
        topics.orders,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    producer = txn_producer(kafka.bootstrap, f"{group}-{topics.orders}-0")
    await consumer.start()
    await producer.start()
    try:
        records: list[ConsumerRecord] = []
        while len(records) < 3:
            batch = await consumer.getmany(timeout_ms=1000)
            records += [r for part in batch.values() for r in part]
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            await producer.begin_transaction()
            await producer.send(topics.status, key=record.key, value=b"done:" + record.value)
            await producer.send_offsets_to_transaction({tp: record.offset + 1}, group)
            if record.offset == 2:
                await producer.abort_transaction()  # the last one fails mid-way
            else:
                await producer.commit_transaction()
    finally:
        await producer.stop()
        await consumer.stop()

    outputs = await consume(kafka.bootstrap, topics.status)
    assert [r.value for r in outputs] == [b"done:order-0", b"done:order-1"]
    offsets = await committed_offsets(kafka.bootstrap, group)
    assert offsets == {TopicPartition(topics.orders, 0): 2}


async def test_new_producer_with_same_transactional_id_fences_the_old_one(
    kafka: KafkaHarness, topics: Topics
) -> None:
    """A zombie worker (same transactional id, older epoch) can no longer commit."""
    transactional_id = f"fence-{uuid.uuid4().hex}"
    zombie = txn_producer(kafka.bootstrap, transactional_id)
    await zombie.start()
    successor = txn_producer(kafka.bootstrap, transactional_id)
    try:
        await zombie.begin_transaction()
        await zombie.send_and_wait(topics.molds, key=b"k", value=b"from-zombie")
        await successor.start()  # InitProducerId bumps the epoch and aborts the zombie's txn
        async with successor.transaction():
            await successor.send(topics.molds, key=b"k", value=b"from-successor")
        with pytest.raises(ProducerFenced):
            await zombie.commit_transaction()
    finally:
        await successor.stop()
        await zombie.stop()

    values = [r.value for r in await consume(kafka.bootstrap, topics.molds)]
    assert values == [b"from-successor"]


# --- restarts ---------------------------------------------------------------------------


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "sigkill"])
async def test_restart_keeps_committed_data_and_group_offsets(
    kafka: KafkaHarness,
    topics: Topics,
    restart_kafka: Callable[..., str],
    hard: bool,
) -> None:
    group = f"group-{uuid.uuid4().hex[:8]}"
    bootstrap = kafka.bootstrap
    producer = txn_producer(bootstrap, f"restart-{uuid.uuid4().hex}")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topics.orders, key=b"before", value=b"v1")
            await producer.send_offsets_to_transaction({TopicPartition(topics.molds, 0): 7}, group)
        await producer.begin_transaction()
        await producer.send_and_wait(topics.orders, key=b"aborted", value=b"never")
        await producer.abort_transaction()

        assert await asyncio.to_thread(restart_kafka, hard=hard) == bootstrap

        # The same client object carries on once the broker is back on the same port.
        async with producer.transaction():
            await producer.send(topics.orders, key=b"after", value=b"v2")
    finally:
        await producer.stop()

    records = await consume(bootstrap, topics.orders)
    assert [(r.key, r.value) for r in records] == [(b"before", b"v1"), (b"after", b"v2")]
    assert await committed_offsets(bootstrap, group) == {TopicPartition(topics.molds, 0): 7}
    assert kafka.is_running()


# --- scripts/kafka on a broker of its own -------------------------------------------------

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="Java (>= 17) not found")


def script_status(workdir: Path) -> tuple[int, str]:
    done = subprocess.run(
        [str(SCRIPT), "status", str(workdir)], capture_output=True, text=True, check=False
    )
    return done.returncode, done.stdout.strip()


def wait_stopped(workdir: Path, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if script_status(workdir)[0] == 3:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.kafka
@needs_java
def test_script_lifecycle_keeps_ports_config_and_data(tmp_path: Path) -> None:
    workdir = tmp_path / "broker"
    broker = KafkaHarness(workdir, extra_config={"message.max.bytes": "2097152"})
    try:
        bootstrap = broker.start()
        code, status = script_status(workdir)
        pid = status.split()[1]
        assert (code, status) == (0, f"running {pid} {bootstrap}")
        config = (workdir / "server.properties").read_text()
        assert "auto.create.topics.enable=false" in config
        assert "message.max.bytes=2097152" in config

        assert broker.start() == bootstrap  # already running: a no-op
        assert script_status(workdir)[1] == f"running {pid} {bootstrap}"

        broker.create_topics(["keep"])
        broker.kcat_produce("keep", "k", "survives")
        broker.stop()
        assert script_status(workdir) == (3, "stopped")
        broker.stop()  # stopping a stopped broker is fine

        assert broker.start() == bootstrap  # same DIR: same ports and data
        records = broker.kcat_consume("keep", 2, 10.0, stop_at_end=True)
        assert [r["payload"] for r in records] == ["survives"]
    finally:
        broker.stop()

    # A broker whose owner process exits stops by itself (no JVM outlives a killed test run).
    owner = subprocess.Popen(["sleep", "1"])
    KafkaHarness(workdir, owner_pid=owner.pid).start()
    owner.wait()
    assert wait_stopped(workdir, timeout_s=30), "broker outlived its owner"


@pytest.mark.kafka
@needs_java
def test_start_refuses_a_port_taken_by_another_process(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(SCRIPT), "start", str(tmp_path / "b"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode != 0
    assert f"port {port}" in done.stderr and "taken" in done.stderr
    assert script_status(tmp_path / "b") == (3, "stopped")
