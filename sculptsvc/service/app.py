"""Wiring: FastStream broker + order processor + worker pool + HTTP probes and metrics.

Nothing connects at import time: ``create_app(settings)`` builds everything, so tests and
``faststream docs gen sculptsvc.service.app:create_app --factory`` can call it freely.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.message import StreamMessage
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sculptsvc.errors import Action, PoolClosed, SculptError, disposition
from sculptsvc.logging import configure_logging, get_logger
from sculptsvc.probes import READY_PING_TIMEOUT_S, health, ready_response
from sculptsvc.service.kafka import TransactionalPublisher, faststream_security
from sculptsvc.service.metrics import Metrics
from sculptsvc.service.processor import InboundRecord, JobRunner, OrderProcessor
from sculptsvc.settings import Settings, get_settings
from sculptsvc.store import ArtifactStore, open_store
from sculptsvc.workers.placement import plan_workers

log = get_logger(__name__)

POLL_INTERVAL_MARGIN_S = 120.0
"""Slack on top of the worst-case order time before Kafka considers the consumer dead."""
MS_PER_S = 1000
STORE_PROBE_TIMEOUT_S = 3.0


def effective_max_poll_interval_ms(settings: Settings) -> int:
    """The handler awaits the whole order before the next poll, so the poll interval must
    outlast the worst case: every attempt timing out plus every backoff, plus a margin."""
    backoff = sum(settings.retry_backoff_s * 2**i for i in range(settings.max_attempts - 1))
    worst_s = settings.job_timeout_s * settings.max_attempts + backoff + POLL_INTERVAL_MARGIN_S
    return max(settings.max_poll_interval_ms, int(worst_s * MS_PER_S))


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    """Keep the payload as bytes: the processor validates it, so bad JSON can be
    dead-lettered byte for byte instead of failing inside FastStream."""
    return message.body


def to_inbound(message: KafkaMessage) -> InboundRecord:
    raw = message.raw_message
    return InboundRecord(
        topic=raw.topic,
        partition=raw.partition,
        offset=raw.offset,
        key=raw.key,
        value=raw.value,
        headers=tuple((k, v or b"") for k, v in (raw.headers or ())),
        timestamp_ms=raw.timestamp,
    )


class _PublisherRebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Tells the publisher which partitions this instance was given (see
    :meth:`TransactionalPublisher.partitions_assigned`)."""

    def __init__(self, publisher: TransactionalPublisher) -> None:
        self.publisher = publisher

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # an order still running on a revoked partition is fenced by the new owner

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.publisher.partitions_assigned(assigned)


def create_app(
    settings: Settings | None = None, *, runner: JobRunner | None = None
) -> AsgiFastStream:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=faststream_security(settings),
        graceful_timeout=settings.graceful_timeout_s,
        middlewares=[KafkaPrometheusMiddleware(registry=metrics.registry)],
        client_id="sculptsvc",
    )
    publisher = TransactionalPublisher(settings)
    store = open_store(settings)  # a malformed SCULPT_STORE_URL fails here, naming it
    state: dict[str, Any] = {"processor": None, "ready": False}

    consumer_options: dict[str, Any] = {
        "group_id": settings.group_id,
        "ack_policy": AckPolicy.MANUAL,  # offsets are committed inside our transactions
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_poll_interval_ms": effective_max_poll_interval_ms(settings),
        "decoder": _raw_body,
        "listener": _PublisherRebalanceListener(publisher),
        "title": settings.topic_orders,
        "description": "OrderPlaced v1 from the e-commerce system (schemas/OrderPlaced.v1.json)",
    }
    # Placement (GPUs via nvidia-smi) is decided once, here: the pool gets the same plan.
    placement = plan_workers(settings)
    if placement.workers > 1:  # one concurrent handler per pool worker (GPU or CPU)
        consumer_options["max_workers"] = placement.workers

    @broker.subscriber(settings.topic_orders, **consumer_options)
    async def on_order(body: bytes, message: KafkaMessage) -> None:
        record = to_inbound(message)
        try:
            await state["processor"].handle(record)
        except SculptError as exc:
            if disposition(exc) is not Action.redeliver:
                raise
            if isinstance(exc, PoolClosed):  # shutting down: the next owner reads it again
                log.warning("order.abandoned_on_shutdown", offset=record.coordinates)
                return
            # Kafka refused the outcome: nothing was committed, so read the message again.
            log.warning("order.publish_failed", offset=record.coordinates, error=str(exc))
            await asyncio.sleep(settings.retry_backoff_s)
            try:
                await message.nack()  # seek back: read it again
            except Exception as seek_error:  # partition revoked meanwhile: its new owner reads it
                log.info("order.not_ours_anymore", offset=record.coordinates, error=str(seek_error))

    _document_outputs(broker, settings)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        # Missing bucket, rejected credentials, unwritable directory: refuse to start, before
        # a single order is consumed (an unreachable store is refused too: nothing works).
        await asyncio.to_thread(store.check)
        log.info("store.ready", store=store.describe())
        pool_cm = None
        job_runner = runner
        if job_runner is None:
            from sculptsvc.ai.backends import check_backends
            from sculptsvc.service.jobs import PoolJobRunner

            check_backends(settings)  # missing/mismatching weights: refuse to start, say why
            pool_cm = PoolJobRunner(settings, placement)
            job_runner = await pool_cm.start()
            state["pool"] = pool_cm.pool
        state["processor"] = OrderProcessor(settings, publisher, job_runner, store, metrics)
        log.info(
            "service.starting",
            topic=settings.topic_orders,
            workers=placement.workers,
            gpus=placement.gpus,
            stage_helpers=pool_cm.stage_helpers if pool_cm is not None else "n/a",
        )
        try:
            yield
        finally:
            state["ready"] = False
            await publisher.close()
            if pool_cm is not None:
                await pool_cm.close()
            log.info("service.stopped")

    async def mark_ready() -> None:
        state["ready"] = True
        log.info("service.ready")

    @get(include_in_schema=False)
    async def ready(scope: Any) -> AsgiResponse:
        reasons = []
        if not state["ready"]:
            reasons.append("starting")
        pool = state.get("pool")
        if pool is not None and not pool.healthy:
            reasons.append("a worker slot is down")
        if not await broker.ping(timeout=READY_PING_TIMEOUT_S):
            reasons.append("Kafka does not answer")
        store_reason = await _store_problem(store, state.get("processor"))
        if store_reason:
            reasons.append(f"artifact store: {store_reason}")
        return ready_response(reasons)

    @get(include_in_schema=False)
    async def prometheus(scope: Any) -> AsgiResponse:
        if state.get("pool") is not None:
            metrics.observe_pool(state["pool"].stats())
        return AsgiResponse(
            generate_latest(metrics.registry),
            HTTPStatus.OK,
            headers={"content-type": CONTENT_TYPE_LATEST},
        )

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", ready), ("/metrics", prometheus)],
        lifespan=lifespan,
        after_startup=[mark_ready],
        asyncapi_path="/docs/asyncapi",
    )
    app.state = state  # type: ignore[attr-defined]  # tests read readiness
    return app


async def _store_problem(store: ArtifactStore, processor: OrderProcessor | None) -> str | None:
    """Why the store is not usable now: the last failure an order met, else a fresh check."""
    if processor is not None and processor.store_outage:
        return processor.store_outage
    try:
        await asyncio.wait_for(asyncio.to_thread(store.check), STORE_PROBE_TIMEOUT_S)
    except TimeoutError:
        return f"{store.describe()} did not answer within {STORE_PROBE_TIMEOUT_S:.0f} s"
    except SculptError as exc:
        return exc.message
    return None


def _document_outputs(broker: KafkaBroker, settings: Settings) -> None:
    """Declare the output topics so the AsyncAPI document lists them with their schemas.
    (The service publishes through its own transactional producers, not these.)"""
    from sculptsvc.events import DeadLetter, ModelReady, MoldReady, OrderStatus

    for topic, model, text in (
        (settings.topic_status, OrderStatus, "Every state of an order; one terminal state."),
        (settings.topic_models, ModelReady, "The sculpture as GLB (claim check)."),
        (settings.topic_molds, MoldReady, "Two STL mold halves + 3MF + report (claim check)."),
        (settings.topic_dlq, DeadLetter, "Inputs that could not be processed, byte for byte."),
    ):
        broker.publisher(topic, title=topic, description=text, schema=model)
