"""Wiring of ``sculpt station``: MoldReady in (read_committed, own group), job folder on disk,
StationJob events out together with the input offset in one Kafka transaction.

Delivery, per MoldReady message (the same pattern as the service's ledger, with the job
folder's manifest as the record):
- the group already committed past it (a previous owner finished it): skip;
- its job folder exists and was made from this very message: the station died between the
  rename and the commit, so publish the events in the manifest, make nothing;
- its job folder exists from another message (the same revision again): commit, no events;
- otherwise build the folder (``jobs.build_job``) and then commit with its events. A claim
  check mismatch or a slicing failure is a ``failed`` event, committed too: a poison event
  never stalls the station. An unreachable store waits and retries; nothing is committed.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from faststream import AckPolicy
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.message import StreamMessage
from faststream.specification import AsyncAPI
from pydantic import ValidationError

from sculptsvc.errors import InvalidEvent, ProcessingFailed, PublishFailed
from sculptsvc.events import MoldReady, StationJob, StationJobState
from sculptsvc.logging import bound_order, configure_logging, get_logger
from sculptsvc.probes import READY_PING_TIMEOUT_S, health, ready_response
from sculptsvc.service.app import POLL_INTERVAL_MARGIN_S, to_inbound
from sculptsvc.service.intake import order_id_hint
from sculptsvc.service.kafka import TransactionalPublisher, faststream_security
from sculptsvc.service.processor import InboundRecord, event_message
from sculptsvc.settings import Settings
from sculptsvc.station.jobs import (
    HALVES,
    JOB_ARTIFACTS,
    JobAlreadyThere,
    Manifest,
    StationConfig,
    build_job,
    clear_partials,
    job_folder,
    read_manifest,
    station_event,
)
from sculptsvc.station.slicer import Profile
from sculptsvc.store import ArtifactStore, open_store
from sculptsvc.store.waiting import StoreWaiter

log = get_logger(__name__)


def station_config(settings: Settings) -> StationConfig:
    return StationConfig(
        station_id=settings.station_id or socket.gethostname(),
        jobs_dir=settings.station_jobs_dir.resolve(),
        profile=Profile.resolve(settings.station_profile) if settings.station_slice else None,
        slicer_command=settings.slicer_command,
        slice_timeout_s=settings.slice_timeout_s,
    )


def worst_job_s(settings: Settings) -> float:
    """Longest one job may take: every download with all its attempts, slicing both halves."""
    downloads = len(JOB_ARTIFACTS) * settings.s3_read_timeout_s * settings.s3_max_attempts
    slicing = len(HALVES) * settings.slice_timeout_s if settings.station_slice else 0.0
    return downloads + slicing


def max_poll_interval_ms(settings: Settings) -> int:
    """The handler awaits the whole job before the next poll: the interval must outlast it."""
    worst_ms = (worst_job_s(settings) + POLL_INTERVAL_MARGIN_S) * 1000
    return max(settings.max_poll_interval_ms, int(worst_ms))


def publisher_settings(settings: Settings) -> Settings:
    """The station commits in its own group, with transactional ids of its own (one per
    input partition, shared by every station of the group, so a new owner fences the old)."""
    return settings.model_copy(
        update={
            "group_id": settings.station_group_id,
            "transactional_id_prefix": (
                f"{settings.transactional_id_prefix}.station.{settings.station_group_id}"
            ),
        }
    )


class StationProcessor:
    def __init__(
        self,
        settings: Settings,
        config: StationConfig,
        store: ArtifactStore,
        publisher: TransactionalPublisher,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.publisher = publisher
        self.store_waiter = StoreWaiter.from_settings(settings)
        self.jobs = {"built": 0, "failed": 0, "redelivered": 0, "duplicates": 0}

    async def handle(self, record: InboundRecord) -> None:
        if await self.publisher.already_committed(record):
            log.info("station.already_committed", offset=record.coordinates)
            return
        try:
            mold = MoldReady.model_validate_json(record.value or b"")
        except ValidationError as exc:
            await self._invalid(record, InvalidEvent(f"not a valid MoldReady v1: {exc}"))
            return
        with bound_order(mold.order_id, revision=mold.revision, offset=record.coordinates):
            await self._handle_mold(record, mold)

    async def _handle_mold(self, record: InboundRecord, mold: MoldReady) -> None:
        folder = job_folder(self.config.jobs_dir, mold.order_id, mold.revision)
        manifest = await asyncio.to_thread(read_manifest, folder)
        if manifest is not None:
            await self._already_built(record, manifest)
            return
        try:
            events = await self._build(record, mold)
        except JobAlreadyThere:
            manifest = await asyncio.to_thread(read_manifest, folder)
            assert manifest is not None
            await self._already_built(record, manifest)
            return
        except Exception as exc:  # mismatch, missing artifact, slicing, material; or a bug
            if not isinstance(exc, ProcessingFailed):
                # Never stall the station, never drop the job silently: a failed event says it.
                log.exception("station.job_crashed")
                exc = ProcessingFailed(f"{type(exc).__name__}: {exc}")
            event = station_event(
                self.config,
                mold.order_id,
                mold.revision,
                StationJobState.failed,
                mold=mold,
                error=exc,
            )
            assert event.error is not None
            log.error("station.job_failed", code=event.error.code, reason=exc.message)
            self.jobs["failed"] += 1
            await self._publish(record, [event])
            return
        log.info("station.job_ready", folder=str(folder), states=[e.state.value for e in events])
        self.jobs["built"] += 1
        await self._publish(record, events)

    async def _build(self, record: InboundRecord, mold: MoldReady) -> list[StationJob]:
        """``build_job`` off the event loop; an unreachable store is waited out."""
        return await self.store_waiter.call(
            build_job, mold, self.store, self.config, record.coordinates
        )

    async def _already_built(self, record: InboundRecord, manifest: Manifest) -> None:
        if manifest.source == record.coordinates:
            log.info("station.redelivered", states=[e.state.value for e in manifest.events])
            self.jobs["redelivered"] += 1
            await self._publish(record, manifest.events)
        else:
            log.info("station.duplicate", first_seen=manifest.source)
            self.jobs["duplicates"] += 1
            await self._publish(record, [])

    async def _invalid(self, record: InboundRecord, error: InvalidEvent) -> None:
        order_id = order_id_hint(record.value, record.key)
        log.error("station.invalid_event", offset=record.coordinates, order_id=order_id)
        events = []
        if order_id is not None:
            events.append(
                station_event(self.config, order_id, 1, StationJobState.failed, error=error)
            )
        self.jobs["failed"] += 1
        await self._publish(record, events)

    async def _publish(self, record: InboundRecord, events: list[StationJob]) -> None:
        messages = [event_message(self.settings.topic_station_jobs, e.order_id, e) for e in events]
        await self.publisher.publish(messages, source=record, commit=True)


async def _raw_body(message: StreamMessage[Any]) -> bytes:
    return message.body  # validated by the processor, so a bad event becomes a failed job


def create_station_app(settings: Settings) -> AsgiFastStream:
    configure_logging(settings.log_level, settings.log_format)
    config = station_config(settings)
    store = open_store(settings)
    publisher = TransactionalPublisher(publisher_settings(settings))
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        security=faststream_security(settings),
        graceful_timeout=worst_job_s(settings),  # SIGTERM lets the running job finish
        client_id=f"sculpt-station-{config.station_id}",
    )
    state: dict[str, Any] = {"processor": None, "ready": False}

    @broker.subscriber(
        settings.topic_molds,
        group_id=settings.station_group_id,
        ack_policy=AckPolicy.MANUAL,  # the offset is committed inside our transaction
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
        max_poll_interval_ms=max_poll_interval_ms(settings),
        decoder=_raw_body,
        title=settings.topic_molds,
        description="MoldReady v1 from sculptsvc (schemas/MoldReady.v1.json)",
    )
    async def on_mold(body: bytes, message: KafkaMessage) -> None:
        record = to_inbound(message)
        try:
            await state["processor"].handle(record)
        except PublishFailed as exc:
            log.warning("station.publish_failed", offset=record.coordinates, error=str(exc))
            await asyncio.sleep(settings.retry_backoff_s)
            try:
                await message.nack()  # read it again
            except Exception as seek_error:  # revoked meanwhile: the new owner reads it
                log.info("station.not_ours_anymore", error=str(seek_error))

    broker.publisher(
        settings.topic_station_jobs,
        title=settings.topic_station_jobs,
        description="Every state of a station job (received, sliced, failed), key = order id.",
        schema=StationJob,
    )

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await asyncio.to_thread(store.check)  # wrong bucket/keys: refuse before consuming
        config.jobs_dir.mkdir(parents=True, exist_ok=True)
        cleared = clear_partials(config.jobs_dir)
        state["processor"] = StationProcessor(settings, config, store, publisher)
        log.info(
            "station.starting",
            station_id=config.station_id,
            group=settings.station_group_id,
            jobs_dir=str(config.jobs_dir),
            profile=config.profile.name if config.profile else None,
            partial_folders_cleared=cleared,
            store=store.describe(),
        )
        try:
            yield
        finally:
            state["ready"] = False
            await publisher.close()
            log.info("station.stopped")

    async def mark_ready() -> None:
        state["ready"] = True
        log.info("station.ready")

    @get(include_in_schema=False)
    async def ready(scope: Any) -> AsgiResponse:
        processor = state.get("processor")
        reasons = [] if state["ready"] else ["starting"]
        if processor is not None and processor.store_waiter.outage:
            reasons.append(f"artifact store: {processor.store_waiter.outage}")
        if not await broker.ping(timeout=READY_PING_TIMEOUT_S):
            reasons.append("Kafka does not answer")
        return ready_response(reasons, jobs=processor.jobs if processor else {})

    app = AsgiFastStream(
        broker,
        asgi_routes=[("/health", health), ("/ready", ready)],
        lifespan=lifespan,
        after_startup=[mark_ready],
        asyncapi_path="/docs/asyncapi",
        specification=AsyncAPI(
            broker,
            title="sculpt station",
            description="Factory-station consumer of MoldReady; publishes StationJob.",
        ),
    )
    app.state = state  # type: ignore[attr-defined]
    return app
