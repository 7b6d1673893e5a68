"""The service against the real broker: outcomes, dead letters, commits, restarts, kcat."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from sculptsvc.errors import PublishFailed
from sculptsvc.service.kafka import TransactionalPublisher
from sculptsvc.service.processor import InboundRecord, Outgoing
from sculptsvc.settings import Settings
from tests.kafka_harness import KafkaHarness
from tests.service_support import (
    InstantRunner,
    committed_offset,
    order_json,
    read_topic,
    running_service,
)

SUCCESS_STATES = ["accepted", "stylized", "reconstructed", "validated", "mold_ready", "completed"]


def service_settings(kafka: KafkaHarness, topics, tmp_path: Path, **extra) -> Settings:
    return Settings(
        kafka_bootstrap_servers=kafka.bootstrap,
        group_id=f"sculpt-{uuid.uuid4().hex[:8]}",
        transactional_id_prefix=f"sculpt-{uuid.uuid4().hex[:8]}",
        artifact_root=tmp_path / "artifacts",
        retry_backoff_s=0.1,
        log_format="console",
        **topics.settings(),
        **extra,
    )


async def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.2)


async def test_kcat_order_in_events_out(kafka: KafkaHarness, topics, tmp_path: Path) -> None:
    """An outside producer (kcat) publishes an order; an outside consumer (kcat) sees the
    model, the mold and every status, keyed by order id, only from committed transactions."""
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    async with running_service(settings, runner):
        await asyncio.to_thread(
            kafka.kcat_produce,
            topics.orders,
            "ord-kcat-1",
            order_json("ord-kcat-1"),
            {"source": "shop"},
        )
        statuses = await asyncio.to_thread(kafka.kcat_consume, topics.status, 6, 60)
        models = await asyncio.to_thread(kafka.kcat_consume, topics.models, 1, 30)
        molds = await asyncio.to_thread(kafka.kcat_consume, topics.molds, 1, 30)
        group_offset = await committed_offset(kafka.bootstrap, settings.group_id, topics.orders)
    assert [json.loads(r["payload"])["state"] for r in statuses] == SUCCESS_STATES
    assert {r["key"] for r in statuses + models + molds} == {"ord-kcat-1"}
    model = json.loads(models[0]["payload"])
    mold = json.loads(molds[0]["payload"])
    assert model["correlation_id"] == "corr-ord-kcat-1"
    assert model["glb"]["uri"].startswith("file://") and len(model["glb"]["sha256"]) == 64
    assert mold["cavity_volume_ml"] == 12.5
    assert models[0]["headers"].get("event-type") == "ModelReady"
    assert group_offset == 1
    assert runner.jobs == [("ord-kcat-1", 1)]


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
async def test_a_compressed_order_is_consumed(
    kafka: KafkaHarness, topics, tmp_path: Path, codec: str
) -> None:
    """Producers set ``compression.type`` (Kafka's codecs: gzip, snappy, lz4, zstd); the
    consumer must decode every one of them, or it cannot fetch past such a batch."""
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    order_id = f"ord-{codec}"
    async with running_service(settings, runner):
        await asyncio.to_thread(
            kafka.kcat_produce, topics.orders, order_id, order_json(order_id), compression=codec
        )
        statuses = await asyncio.to_thread(kafka.kcat_consume, topics.status, 6, 60)
        group_offset = await committed_offset(kafka.bootstrap, settings.group_id, topics.orders)
    assert [json.loads(r["payload"])["state"] for r in statuses] == SUCCESS_STATES
    assert {r["key"] for r in statuses} == {order_id}
    assert runner.jobs == [(order_id, 1)] and group_offset == 1


async def test_an_order_framed_by_a_schema_registry_serializer_is_processed(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    """A shop that registered schemas/OrderPlaced.v1.json in a Schema Registry and produces
    with its JSON Schema serializer sends magic byte 0 and a schema id before the JSON."""
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    framed = b"\x00" + (7).to_bytes(4, "big") + order_json("ord-registry").encode()
    async with running_service(settings, runner):
        await asyncio.to_thread(kafka.kcat_produce, topics.orders, "ord-registry", framed)
        statuses = await asyncio.to_thread(kafka.kcat_consume, topics.status, 6, 60)
    assert [json.loads(r["payload"])["state"] for r in statuses] == SUCCESS_STATES
    assert runner.jobs == [("ord-registry", 1)]


BAD_INPUTS = {
    "bad-json": b'{"order_id": "x", ',
    "wrong-schema": json.dumps({"order_id": "ord-bad-2", "image": 42}).encode(),
    "missing-image": json.dumps({"order_id": "ord-bad-3", "mode": "multicolor"}).encode(),
    "not-utf8": b"\xff\xfe\x00garbage",
}


async def test_bad_inputs_dead_letter_and_consumer_keeps_going(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    async with running_service(settings, runner):
        for name, value in BAD_INPUTS.items():
            await asyncio.to_thread(kafka.kcat_produce, topics.orders, name, value)
        await asyncio.to_thread(
            kafka.kcat_produce, topics.orders, "ord-good", order_json("ord-good")
        )
        letters = await read_topic(kafka.bootstrap, topics.dlq, len(BAD_INPUTS), timeout=60)
        statuses = await read_topic(kafka.bootstrap, topics.status, 10, timeout=60)

        async def all_committed() -> bool:
            offset = await committed_offset(kafka.bootstrap, settings.group_id, topics.orders)
            return offset == len(BAD_INPUTS) + 1

        await wait_for(all_committed)
    assert len(letters) == len(BAD_INPUTS)
    for letter, (name, value) in zip(letters, BAD_INPUTS.items(), strict=True):
        assert letter["error_code"] == "invalid_event", name
        assert letter["error_class"] == "InvalidEvent"
        assert base64.b64decode(letter["original_value_base64"]) == value
        assert base64.b64decode(letter["original_key_base64"]) == name.encode()
        assert letter["error_message"]
    assert [o for o, _ in runner.jobs] == ["ord-good"]
    completed = [s for s in statuses if s["state"] == "completed"]
    assert [s["order_id"] for s in completed] == ["ord-good"]


async def test_restart_does_not_reprocess_committed_orders(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = service_settings(kafka, topics, tmp_path)
    first = InstantRunner()
    async with running_service(settings, first):
        for i in range(3):
            await asyncio.to_thread(kafka.kcat_produce, topics.orders, f"o{i}", order_json(f"o{i}"))
        await read_topic(kafka.bootstrap, topics.molds, 3, timeout=60)
    second = InstantRunner()
    async with running_service(settings, second):
        await asyncio.to_thread(kafka.kcat_produce, topics.orders, "o3", order_json("o3"))
        molds = await read_topic(kafka.bootstrap, topics.molds, 4, timeout=60)
    assert len(first.jobs) == 3
    assert second.jobs == [("o3", 1)]
    assert sorted(m["order_id"] for m in molds) == ["o0", "o1", "o2", "o3"]


async def test_duplicate_revision_is_one_job_new_revision_is_another(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    settings = service_settings(kafka, topics, tmp_path)
    runner = InstantRunner()
    async with running_service(settings, runner):
        for revision in (1, 1, 2):
            await asyncio.to_thread(
                kafka.kcat_produce, topics.orders, "dup", order_json("dup", revision)
            )

        async def all_committed() -> bool:
            return await committed_offset(kafka.bootstrap, settings.group_id, topics.orders) == 3

        await wait_for(all_committed)
        molds = await read_topic(kafka.bootstrap, topics.molds, 3, timeout=5)
    assert runner.jobs == [("dup", 1), ("dup", 2)]
    assert sorted(m["revision"] for m in molds) == [1, 2]


@pytest.mark.parametrize("rejected_id", ["nosubject-1"])
async def test_pipeline_rejection_is_a_status_and_a_dead_letter(
    kafka: KafkaHarness, topics, tmp_path: Path, rejected_id: str
) -> None:
    from sculptsvc.errors import NoSubject

    class Rejecting(InstantRunner):
        async def run(self, order, image):
            raise NoSubject("the picture has no subject")

    settings = service_settings(kafka, topics, tmp_path)
    async with running_service(settings, Rejecting()):
        await asyncio.to_thread(
            kafka.kcat_produce, topics.orders, rejected_id, order_json(rejected_id)
        )
        letters = await read_topic(kafka.bootstrap, topics.dlq, 1, timeout=60)
        statuses = await read_topic(kafka.bootstrap, topics.status, 2, timeout=30)
    assert [s["state"] for s in statuses] == ["accepted", "rejected"]
    assert statuses[-1]["error"]["code"] == "no_subject"
    assert letters[0]["error_code"] == "no_subject" and letters[0]["order_id"] == rejected_id


@pytest.mark.slow
@pytest.mark.parametrize("in_transactions", [False, True], ids=["idempotent", "transactions"])
async def test_stage_statuses_are_published_when_each_stage_ends(
    kafka: KafkaHarness,
    topics,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    in_transactions: bool,
) -> None:
    """The real worker pool (stand-in job, which reports its stages like the pipeline):
    each stage's status is on the broker, visible to a read_committed consumer, before the
    worker starts the next stage, and such a consumer sees every status once, in stage
    order, whether progress goes through the idempotent producer or in transactions."""
    seen_log = tmp_path / "seen.log"
    monkeypatch.setenv("SCULPT_TEST_STATUS_CHECK", f"{kafka.bootstrap},{topics.status},{seen_log}")
    settings = service_settings(
        kafka,
        topics,
        tmp_path,
        job_module="tests.service_jobs",
        progress_in_transactions=in_transactions,
    )
    async with running_service(settings, None):
        await asyncio.to_thread(
            kafka.kcat_produce, topics.orders, "ord-stages-1", order_json("ord-stages-1")
        )
        statuses = await read_topic(kafka.bootstrap, topics.status, 6, timeout=90)
    assert [s["state"] for s in statuses] == SUCCESS_STATES
    assert seen_log.read_text().split("\n")[:-1] == [
        f"seen {state}" for state in SUCCESS_STATES[1:-1]
    ]


async def test_an_outcome_with_its_offset_needs_no_produce_retry(
    kafka: KafkaHarness, topics, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A final transaction (records on three topics and the input offset) goes through
    without one produce retry: the broker's transaction check (KIP-890) fails a produce that
    overlaps the AddOffsetsToTxn, as NOT_ENOUGH_REPLICAS, and aiokafka then waits 100 ms.
    With the offset sent while the records were in flight, 1 to 5 of these 40 orders hit it."""
    settings = service_settings(kafka, topics, tmp_path)
    publisher = TransactionalPublisher(settings)
    orders = 40
    caplog.set_level(logging.WARNING, logger="aiokafka")
    try:
        for offset in range(orders):
            source = InboundRecord(topics.orders, 0, offset, b"k", b"{}")
            status = Outgoing(topics.status, b"k", b'{"state": "mold_ready"}')
            await publisher.publish_progress(status, source=source)
            final = [
                Outgoing(topic, b"k", f'{{"n": {offset}}}'.encode())
                for topic in (topics.models, topics.molds, topics.status)
            ]
            await publisher.publish(final, source=source, commit=True)
    finally:
        await publisher.close()
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries == []
    assert await committed_offset(kafka.bootstrap, settings.group_id, topics.orders) == orders
    assert len(await read_topic(kafka.bootstrap, topics.models, orders)) == orders
    assert len(await read_topic(kafka.bootstrap, topics.status, 2 * orders)) == 2 * orders


async def first_check(publisher: TransactionalPublisher, record: InboundRecord) -> bool:
    """``already_committed`` once the group coordinator answers: a fresh broker creates its
    offsets topic on the first lookup, and refuses until then."""
    for _ in range(100):
        try:
            return await publisher.already_committed(record)
        except PublishFailed:
            await asyncio.sleep(0.2)
    pytest.fail("the group coordinator never became available")


async def test_the_committed_offset_check_answers_from_the_group_coordinator(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    """``already_committed``: false before anything is committed (the coordinator answers -1
    for a partition asked by name), true for every offset before the committed one; a
    remembered coordinator that is wrong fails closed (PublishFailed: read the message
    again), and the next check looks the coordinator up again."""
    settings = service_settings(kafka, topics, tmp_path)
    publisher = TransactionalPublisher(settings)
    try:
        first = InboundRecord(topics.orders, 0, 0, b"k", b"{}")
        assert await first_check(publisher, first) is False
        for offset in range(3):
            source = InboundRecord(topics.orders, 0, offset, b"k", b"{}")
            await publisher.publish([], source=source, commit=True)
        # the partition's next owner knows nothing of these commits: the broker answers
        await publisher.close()
        publisher = TransactionalPublisher(settings)
        checks = [
            await publisher.already_committed(InboundRecord(topics.orders, 0, o, b"k", b"{}"))
            for o in range(4)
        ]
        assert checks == [True, True, True, False]
        publisher._coordinator = 4242  # no such broker
        with pytest.raises(PublishFailed):
            await publisher.already_committed(first)
        assert publisher._coordinator is None
        assert await publisher.already_committed(first) is True
    finally:
        await publisher.close()


async def test_a_message_read_again_after_its_own_commit_is_known_committed(
    kafka: KafkaHarness, topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebalance that keeps a partition here rewinds the consumer to the committed
    offset while an order is still running; the order commits, and the consumer hands the
    same message over again a few ms later. The group coordinator may still answer with the
    old offset then (its commit is decided, not yet written to the group): that answer
    (stubbed here, -1) must not make the message run again. After the partition is
    assigned anew, the check fences with a fresh producer and asks the broker."""
    settings = service_settings(kafka, topics, tmp_path)
    publisher = TransactionalPublisher(settings)
    tp = TopicPartition(topics.orders, 0)
    source = InboundRecord(topics.orders, 0, 0, b"k", b"{}")
    try:
        async with publisher.outcome([Outgoing(topics.models, b"k", b"{}")], source=source):
            pass
        real_committed = publisher._committed

        async def stale(_: TopicPartition) -> int:
            return -1

        monkeypatch.setattr(publisher, "_committed", stale)
        assert await publisher.already_committed(source) is True
        assert await publisher.already_committed(InboundRecord(*tp, 1, b"k", b"{}")) is False

        before = publisher._producers[(tp.topic, tp.partition)]
        publisher.partitions_assigned({tp})
        assert await publisher.already_committed(source) is False  # only the broker now
        assert publisher._producers[(tp.topic, tp.partition)] is not before  # fenced again
        monkeypatch.setattr(publisher, "_committed", real_committed)
        assert await publisher.already_committed(source) is True
    finally:
        await publisher.close()


async def test_a_partition_back_from_another_instance_fences_that_instance_first(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    """A owns the partition, B takes it (fencing A's producer), then A gets it back while
    B's outcome for a message is still open. A's check of that message must fence B and
    settle its transaction: B's commit then fails and the message is A's alone. Checked
    with A's cached, already fenced producer, B's commit went through after A's check had
    read "not committed", and both ran the order."""
    settings = service_settings(kafka, topics, tmp_path)
    a, b = TransactionalPublisher(settings), TransactionalPublisher(settings)
    tp = TopicPartition(topics.orders, 0)
    message = InboundRecord(topics.orders, 0, 0, b"k", b"{}")
    try:
        assert await first_check(a, message) is False
        b.partitions_assigned({tp})
        assert await b.already_committed(message) is False  # B's producer fences A's
        with pytest.raises(PublishFailed):
            async with b.outcome([Outgoing(topics.models, b"k", b'{"by": "b"}')], source=message):
                a.partitions_assigned({tp})  # the partition goes back to A meanwhile
                assert await a.already_committed(message) is False
        async with a.outcome([Outgoing(topics.models, b"k", b'{"by": "a"}')], source=message):
            pass
    finally:
        await a.close()
        await b.close()
    assert await committed_offset(kafka.bootstrap, settings.group_id, topics.orders) == 1
    assert [r["by"] for r in await read_topic(kafka.bootstrap, topics.models, 2, timeout=3)] == [
        "a"
    ]


async def test_an_outcome_commits_after_its_block_and_aborts_on_its_error(
    kafka: KafkaHarness, topics, tmp_path: Path
) -> None:
    """``outcome``: the records and the offset go out while the block (uploads, ledger)
    runs; an error in the block aborts them (a read_committed consumer never sees them, the
    offset stays), and the next outcome of the same partition commits normally."""
    settings = service_settings(kafka, topics, tmp_path)
    publisher = TransactionalPublisher(settings)
    source = InboundRecord(topics.orders, 0, 0, b"k", b"{}")
    try:
        # a TimeoutError (an OSError) of the block is the block's, not a failed publish
        with pytest.raises(TimeoutError, match="upload slow"):
            async with publisher.outcome(
                [Outgoing(topics.models, b"k", b'{"n": "aborted"}')], source=source
            ):
                await asyncio.sleep(0.05)  # the records are on the broker by now, uncommitted
                raise TimeoutError("upload slow")
        async with publisher.outcome(
            [Outgoing(topics.models, b"k", b'{"n": "committed"}')], source=source
        ):
            await asyncio.sleep(0.05)
    finally:
        await publisher.close()
    assert await committed_offset(kafka.bootstrap, settings.group_id, topics.orders) == 1
    assert [r["n"] for r in await read_topic(kafka.bootstrap, topics.models, 1)] == ["committed"]
