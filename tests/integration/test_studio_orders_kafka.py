"""The Studio's order feed on the real broker: it reads only committed records, files them
under their order, sees QA copies with their origin, and finds topics created after it starts."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaProducer

from sculptsvc.events import ErrorInfo, OrderState, OrderStatus
from sculptsvc.service.replay import REPLAYED_FROM_HEADER
from sculptsvc.settings import Settings
from sculptsvc.studio.orders import OrderIndex, follow
from tests.integration.conftest import create_service_topics
from tests.kafka_harness import KafkaHarness

TIMEOUT_S = 60.0


async def wait_until(predicate, timeout: float = TIMEOUT_S) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.2)


async def test_feed_files_committed_statuses_and_qa_copies(kafka: KafkaHarness) -> None:
    index = OrderIndex(max_orders=100)
    follower = None
    try:
        # the Studio starts before the topics exist, and says so
        topics = None
        settings = Settings(kafka_bootstrap_servers=kafka.bootstrap, topic_status="late.status")
        follower = asyncio.create_task(follow(settings, index))
        await wait_until(lambda: (index.problem or "").startswith("topics not found"))
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)

        topics = create_service_topics(kafka)
        settings = Settings(kafka_bootstrap_servers=kafka.bootstrap, **topics.settings())
        follower = asyncio.create_task(follow(settings, index))
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap, transactional_id="studio-feed-test"
        )
        await producer.start()
        try:
            rejected = OrderStatus(
                order_id="o-bad",
                state=OrderState.rejected,
                error=ErrorInfo(code="invalid_image", message="corrupt"),
            )
            async with producer.transaction():
                await producer.send(
                    topics.status, rejected.model_dump_json().encode(), key=b"o-bad"
                )
            # an aborted transaction never shows
            await producer.begin_transaction()
            ghost = OrderStatus(order_id="o-ghost", state=OrderState.accepted)
            await producer.send(topics.status, ghost.model_dump_json().encode(), key=b"o-ghost")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(
                    topics.qa,
                    json.dumps({"order_id": "o-bad"}).encode(),
                    key=b"o-bad",
                    headers=[(REPLAYED_FROM_HEADER, f"{topics.orders}/0/7".encode())],
                )
        finally:
            await producer.stop()
        await wait_until(lambda: index.get("o-bad") is not None and index.get("o-bad").qa_copies)
        await asyncio.sleep(1.0)  # anything aborted would have arrived by now
    finally:
        if follower is not None:
            follower.cancel()
            await asyncio.gather(follower, return_exceptions=True)
    order = index.get("o-bad")
    assert order.state == "rejected" and order.error_code == "invalid_image"
    assert [c.replayed_from for c in order.qa_copies] == [f"{topics.orders}/0/7"]
    assert index.get("o-ghost") is None
    assert index.problem is None and index.connected
    assert [o.order_id for o in index.listing(error_code="invalid_image")] == ["o-bad"]
