"""One order message in, its events out: the service's logic, free of Kafka and processes.

Delivery contract (see docs/contracts/README.md):
- progress statuses are published as they happen, at least once (``publish_progress``):
  ``accepted`` before the job, and ``stylized``, ``reconstructed``, ``validated``,
  ``mold_ready`` when the worker reports that stage's end (the worker waits until the
  broker has the status);
- the terminal outcome (ModelReady + MoldReady + ``completed``, or
  ``rejected``/``failed`` + a DeadLetter) is published in ONE Kafka transaction together
  with the input offset, so a ``read_committed`` consumer sees it exactly once; a
  completed order's transaction is filled while its artifacts upload (the events name
  them by sha256) and commits after the uploads and the ledger write;
- before that transaction commits, the outcome is written to the ledger (``sculptsvc/ledger.py``,
  records in the artifact store every instance shares): a redelivery of the same message
  re-publishes the stored outcome without re-running the job, and the same order revision
  arriving again as a new message publishes nothing;
- the store being unreachable is nobody's fault: store calls wait and retry with backoff
  (``store_outage`` says why, for /ready) and never dead-letter the order.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sculptsvc import artifacts
from sculptsvc.errors import (
    Action,
    InvalidEvent,
    SculptError,
    as_sculpt_error,
    disposition,
)
from sculptsvc.events import (
    ArtifactRef,
    DeadLetter,
    DeadLetterHeader,
    ErrorInfo,
    Event,
    ModelReady,
    MoldReady,
    OrderPlaced,
    OrderState,
    OrderStatus,
    b64,
    deterministic_event_id,
)
from sculptsvc.jobs import JobOutput, OrderJob
from sculptsvc.ledger import Ledger, LedgerEntry
from sculptsvc.logging import bound_order, get_logger
from sculptsvc.options import options_from_order
from sculptsvc.service.intake import order_id_hint, parse_order, resolve_image
from sculptsvc.service.metrics import Metrics
from sculptsvc.settings import Settings
from sculptsvc.store import ArtifactStore
from sculptsvc.store.waiting import StoreWaiter

log = get_logger(__name__)
T = TypeVar("T")

REPLAY_HEADER = "sculpt-replay"
StageEnded = Callable[[OrderState], Awaitable[None]]
"""Called (and awaited) with the state each pipeline stage ends in, when it ends."""


@dataclass(frozen=True)
class InboundRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @property
    def is_replay(self) -> bool:
        return any(k == REPLAY_HEADER and v == b"1" for k, v in self.headers)

    @property
    def coordinates(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Outgoing:
    topic: str
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "topic": self.topic,
            "key": b64(self.key),
            "value": b64(self.value),
            "headers": [[k, b64(v)] for k, v in self.headers],
        }

    @classmethod
    def from_json(cls, doc: dict) -> Outgoing:
        return cls(
            topic=doc["topic"],
            key=None if doc["key"] is None else base64.b64decode(doc["key"]),
            value=base64.b64decode(doc["value"]),
            headers=tuple((k, base64.b64decode(v)) for k, v in doc["headers"]),
        )


class Publisher(Protocol):
    async def publish(
        self, messages: Sequence[Outgoing], *, source: InboundRecord, commit: bool
    ) -> None:
        """Send messages atomically, through the producer of ``source``'s partition; with
        ``commit``, the offset after ``source`` is committed in the same transaction."""
        ...

    def outcome(
        self, messages: Sequence[Outgoing], *, source: InboundRecord
    ) -> AbstractAsyncContextManager[None]:
        """A transaction open for the block: ``messages`` and the offset after ``source``
        are sent while the block runs, and committed when it ends without an error (aborted
        otherwise); nothing is visible to read_committed consumers before the commit."""
        ...

    async def publish_progress(self, message: Outgoing, *, source: InboundRecord) -> None:
        """Send one progress status of ``source``'s order, at least once; returns when the
        broker has it (a read_committed consumer can see it), without committing anything."""
        ...

    async def already_committed(self, record: InboundRecord) -> bool:
        """Whether the group already committed past ``record`` (fencing older owners)."""
        ...


class JobRunner(Protocol):
    async def run(self, job: OrderJob, on_stage: StageEnded) -> JobOutput:
        """Run ``job``; await ``on_stage(state)`` at each stage end, before the next starts."""
        ...


class OrderProcessor:
    def __init__(
        self,
        settings: Settings,
        publisher: Publisher,
        runner: JobRunner,
        store: ArtifactStore,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.runner = runner
        self.store = store
        self.ledger = Ledger(store)
        self.metrics = metrics or Metrics()
        self.store_waiter = StoreWaiter.from_settings(
            settings, on_retry=lambda exc: self.metrics.retries.labels(exc.code).inc()
        )

    @property
    def store_outage(self) -> str | None:
        """Why the artifact store failed the last call, until a call succeeds again."""
        return self.store_waiter.outage

    # -- entry point ------------------------------------------------------------------

    async def handle(self, record: InboundRecord) -> None:
        started = time.monotonic()
        if await self.publisher.already_committed(record):
            log.info("order.already_committed", offset=record.coordinates)
            return
        try:
            order = parse_order(record.value)
        except InvalidEvent as exc:
            order_id = order_id_hint(record.value, record.key)
            with bound_order(order_id or "unknown", offset=record.coordinates):
                log.warning("order.invalid", code=exc.code, reason=exc.message)
                await self._finish_unhappy(record, None, order_id, exc, attempts=1)
                self.metrics.orders.labels("rejected").inc()
            return

        with bound_order(order.order_id, revision=order.revision, offset=record.coordinates):
            if await self._replayed_from_ledger(record, order):
                return
            self.metrics.in_flight.inc()
            try:
                outcome = await self._process(record, order)
            finally:
                self.metrics.in_flight.dec()
            self.metrics.order_seconds.labels(outcome).observe(time.monotonic() - started)
            self.metrics.orders.labels(outcome).inc()

    # -- steps ------------------------------------------------------------------------

    async def _replayed_from_ledger(self, record: InboundRecord, order: OrderPlaced) -> bool:
        entry = await self._stored(self.ledger.read, order.order_id, order.revision)
        if entry is None:
            return False
        if record.is_replay and entry.input != record.coordinates:
            log.info("order.replay", first_seen=entry.input, outcome=entry.outcome)
            return False  # a deliberate QA/operator replay runs the order again
        if entry.input == record.coordinates:
            # Crash after the ledger write but before the commit: finish the same outcome.
            messages = [Outgoing.from_json(m) for m in entry.messages]
            log.info("order.redelivered", outcome=entry.outcome)
            await self.publisher.publish(messages, source=record, commit=True)
            self.metrics.redeliveries.inc()
        else:
            log.info("order.duplicate", first_seen=entry.input, outcome=entry.outcome)
            await self.publisher.publish([], source=record, commit=True)
            self.metrics.duplicates.inc()
        return True

    async def _process(self, record: InboundRecord, order: OrderPlaced) -> str:
        await self.publisher.publish_progress(
            self._status(order, OrderState.accepted, attempt=1), source=record
        )
        log.info("order.accepted", mode=order.mode.value, size_mm=order.size_mm)
        options = options_from_order(order, self.settings)
        attempt = 1
        while True:

            async def stage_ended(state: OrderState, attempt: int = attempt) -> None:
                # Called from the pool's task: bind the order again for this log line.
                with bound_order(order.order_id, revision=order.revision):
                    await self.publisher.publish_progress(
                        self._status(order, state, attempt), source=record
                    )
                    log.info("order.stage_ended", state=state.value, attempt=attempt)

            try:
                image = await asyncio.to_thread(resolve_image, order.image, self.settings)
                job = OrderJob(order.order_id, order.revision, options, image)
                output = await self.runner.run(job, stage_ended)
                break
            except Exception as exc:
                error = as_sculpt_error(exc)
                action = disposition(
                    error, attempt=attempt, max_attempts=self.settings.max_attempts
                )
                if action is Action.redeliver:
                    raise  # shutting down: commit nothing, the order is redelivered
                if action is Action.retry:
                    delay = self.settings.retry_backoff_s * 2 ** (attempt - 1)
                    log.warning("order.retry", code=error.code, reason=error.message, delay_s=delay)
                    self.metrics.retries.labels(error.code).inc()
                    await asyncio.sleep(delay)
                    attempt += 1
                    continue
                if error is not exc:  # not a typed error: a bug must not stall the partition
                    log.exception("order.crashed")
                # The pool already retried crashes on fresh workers: count its attempts.
                attempts = max(attempt, int(error.detail.get("attempts", attempt)))
                log.warning(
                    "order.unhappy",
                    code=error.code,
                    reason=error.message,
                    attempts=attempts,
                    detail=error.detail,  # what the message leaves out (no_subject: why)
                )
                await self._finish_unhappy(record, order, order.order_id, error, attempts)
                return "rejected" if action is Action.reject else "failed"

        for stage, seconds in output.stage_seconds.items():
            self.metrics.stage_seconds.labels(stage).observe(seconds)
        refs = await self._refs(output.artifacts)
        messages = self._success_messages(order, output, attempt, refs)
        await self._commit_completed(record, order, output.artifacts, refs, messages)
        log.info("order.completed", triangles=output.triangles, attempts=attempt)
        return "completed"

    async def _commit_completed(
        self,
        record: InboundRecord,
        order: OrderPlaced,
        outputs: dict[str, bytes],
        refs: dict[str, ArtifactRef],
        messages: list[Outgoing],
    ) -> None:
        """The events name the artifacts by content (sha256), so their transaction fills
        while the artifacts upload and the ledger is written, and commits after both. A
        store slower than ``outcome_overlap_s`` gets the transaction aborted (an open one
        holds back what read_committed consumers see) and the outcome published after it."""

        overlap_s = self.settings.outcome_overlap_s
        if overlap_s <= 0:
            await self._write_artifacts(outputs, refs)
            await self._commit_outcome(record, order, "completed", messages)
            return

        async def store_outcome() -> None:
            await self._write_artifacts(outputs, refs)
            await self._write_ledger(record, order, "completed", messages)

        stored = asyncio.ensure_future(store_outcome())
        try:
            async with self.publisher.outcome(messages, source=record):
                await asyncio.wait_for(asyncio.shield(stored), overlap_s)
            return
        except TimeoutError:
            log.info("order.store_slow", overlap_s=overlap_s)
            await stored
        except BaseException:
            if not stored.done():
                stored.cancel()
            raise
        await self.publisher.publish(messages, source=record, commit=True)

    async def _finish_unhappy(
        self,
        record: InboundRecord,
        order: OrderPlaced | None,
        order_id: str | None,
        error: SculptError,
        attempts: int,
    ) -> None:
        rejected = disposition(error) is Action.reject
        state = OrderState.rejected if rejected else OrderState.failed
        messages: list[Outgoing] = []
        if order_id is not None:
            # An order that failed validation has no revision of its own: the default one.
            revision = order.revision if order else OrderPlaced.model_fields["revision"].default
            status = OrderStatus(
                event_id=deterministic_event_id(order_id, revision, "status", state.value),
                order_id=order_id,
                revision=revision,
                correlation_id=order.correlation_id if order else "",
                state=state,
                attempt=attempts,
                error=ErrorInfo(code=error.code, message=error.message, retryable=error.retryable),
            )
            messages.append(self._message(self.settings.topic_status, order_id, status))
        dead = DeadLetter(
            event_id=deterministic_event_id(record.coordinates, "dead-letter"),
            order_id=order_id,
            correlation_id=order.correlation_id if order else "",
            original_topic=record.topic,
            original_partition=record.partition,
            original_offset=record.offset,
            original_timestamp_ms=record.timestamp_ms,
            original_key_base64=b64(record.key),
            **await self._original_value(record.value or b""),
            original_headers=[
                DeadLetterHeader(key=k, value_base64=b64(v) or "") for k, v in record.headers
            ],
            error_class=type(error).__name__,
            error_code=error.code,
            error_message=error.message,
            attempts=attempts,
        )
        messages.append(self._message(self.settings.topic_dlq, order_id, dead))
        self.metrics.dead_letters.labels(error.code).inc()
        if order is None:
            await self.publisher.publish(messages, source=record, commit=True)
        else:
            await self._commit_outcome(record, order, state.value, messages)

    async def _commit_outcome(
        self, record: InboundRecord, order: OrderPlaced, outcome: str, messages: list[Outgoing]
    ) -> None:
        await self._write_ledger(record, order, outcome, messages)
        await self.publisher.publish(messages, source=record, commit=True)

    async def _write_ledger(
        self, record: InboundRecord, order: OrderPlaced, outcome: str, messages: list[Outgoing]
    ) -> None:
        """Before the outcome's commit: a redelivery then re-publishes it (ledger.py)."""
        entry = LedgerEntry(record.coordinates, outcome, [m.to_json() for m in messages])
        await self._stored(self.ledger.write, order.order_id, order.revision, entry)

    # -- the artifact store (blocking, possibly remote) ---------------------------------

    async def _stored(self, call: Callable[..., T], *args: object) -> T:
        """A store call off the event loop, waiting out an outage (never a dead letter)."""
        return await self.store_waiter.call(call, *args)

    async def _refs(self, outputs: dict[str, bytes]) -> dict[str, ArtifactRef]:
        """What each artifact's upload will return (its sha256 and where it goes)."""
        names = sorted(outputs)
        refs = await asyncio.gather(
            *(asyncio.to_thread(self.store.ref, outputs[n], artifacts.media_type(n)) for n in names)
        )
        return dict(zip(names, refs, strict=True))

    async def _write_artifacts(
        self, outputs: dict[str, bytes], refs: dict[str, ArtifactRef]
    ) -> None:
        """Every artifact under the ref its events name, uploaded side by side (the client
        is thread-safe)."""
        await asyncio.gather(*(self._stored(self.store.write, refs[n], outputs[n]) for n in refs))

    # -- event builders ---------------------------------------------------------------

    async def _original_value(self, value: bytes) -> dict[str, object]:
        """Inline the input in its dead letter, or store it (claim check) when inlining it
        would push the letter past Kafka's message limit and stall the partition."""
        if len(value) <= self.settings.dead_letter_inline_bytes:
            return {"original_value_base64": b64(value)}
        ref = await self._stored(self.store.put, value, artifacts.UNKNOWN_MEDIA_TYPE)
        return {"original_value_base64": None, "original_value_ref": ref}

    def _success_messages(
        self, order: OrderPlaced, output: JobOutput, attempt: int, refs: dict[str, ArtifactRef]
    ) -> list[Outgoing]:
        common = {
            "order_id": order.order_id,
            "revision": order.revision,
            "correlation_id": order.correlation_id,
        }
        model = ModelReady(
            event_id=deterministic_event_id(order.order_id, order.revision, "model"),
            **artifacts.refs_for(ModelReady.event_type, refs),
            triangles=output.triangles,
            watertight=output.watertight,
            mode=order.mode,
            color=order.color,
            **common,
        )
        mold = MoldReady(
            event_id=deterministic_event_id(order.order_id, order.revision, "mold"),
            **artifacts.refs_for(MoldReady.event_type, refs),
            cavity_volume_ml=output.cavity_volume_ml,
            material=order.mold.material,
            **common,
        )
        messages = [
            self._message(self.settings.topic_models, order.order_id, model),
            self._message(self.settings.topic_molds, order.order_id, mold),
        ]
        messages.append(self._status(order, OrderState.completed, attempt))
        return messages

    def _status(self, order: OrderPlaced, state: OrderState, attempt: int) -> Outgoing:
        status = OrderStatus(
            event_id=deterministic_event_id(order.order_id, order.revision, "status", state.value),
            order_id=order.order_id,
            revision=order.revision,
            correlation_id=order.correlation_id,
            state=state,
            attempt=attempt,
        )
        return self._message(self.settings.topic_status, order.order_id, status)

    @staticmethod
    def _message(topic: str, order_id: str | None, event: Event) -> Outgoing:
        return event_message(topic, order_id, event)


def event_message(topic: str, order_id: str | None, event: Event) -> Outgoing:
    """An event as a Kafka record: key = order id, the contract's headers."""
    return Outgoing(
        topic=topic,
        key=order_id.encode() if order_id else None,
        value=event.model_dump_json().encode(),
        headers=(
            ("event-type", event.event_type.encode()),
            ("schema-version", str(event.schema_version).encode()),
            ("content-type", b"application/json"),
        ),
    )
