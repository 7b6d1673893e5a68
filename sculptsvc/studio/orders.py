"""What the Studio knows about orders: an in-memory index fed from the output topics.

``OrderIndex`` is plain data: ``ingest(role, record)`` files one Kafka record (status, model,
mold, dead letter or QA copy) under its order id. ``follow`` is the thin Kafka edge: a
``read_committed`` consumer without a group (it commits nothing and disturbs no one) that
reads every partition of those topics from the beginning and keeps following them; while
Kafka is unreachable it retries and the pages say so.
"""

from __future__ import annotations

import asyncio
import base64
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from sculptsvc.events import (
    ArtifactRef,
    DeadLetter,
    ModelReady,
    MoldReady,
    OrderState,
    OrderStatus,
)
from sculptsvc.logging import get_logger
from sculptsvc.service.kafka import client_kwargs
from sculptsvc.service.replay import REPLAYED_FROM_HEADER, partitions_of
from sculptsvc.settings import Settings

log = get_logger(__name__)

Role = Literal["status", "model", "mold", "dlq", "qa"]
RETRY_S = 2.0
"""Pause before reconnecting to Kafka or looking again for a topic that does not exist yet."""
POLL_MS = 500


def topics_by_role(settings: Settings) -> dict[Role, str]:
    return {
        "status": settings.topic_status,
        "model": settings.topic_models,
        "mold": settings.topic_molds,
        "dlq": settings.topic_dlq,
        "qa": settings.topic_qa,
    }


@dataclass(frozen=True)
class Coordinates:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Letter:
    """A dead letter and where it sits."""

    at: Coordinates
    event: DeadLetter

    def original_bytes(self) -> bytes | None:
        """The input value as it arrived, when it is inline (else ``event.original_value_ref``)."""
        if self.event.original_value_base64 is None:
            return None
        return base64.b64decode(self.event.original_value_base64)


@dataclass(frozen=True)
class QaCopy:
    """An order re-published to the QA topic (``sculpt replay --to qa`` or the Studio)."""

    at: Coordinates
    replayed_from: str
    size_bytes: int


@dataclass
class OrderRecord:
    order_id: str
    statuses: list[tuple[Coordinates, OrderStatus]] = field(default_factory=list)
    models: dict[int, ModelReady] = field(default_factory=dict)
    molds: dict[int, MoldReady] = field(default_factory=dict)
    letters: list[Letter] = field(default_factory=list)
    qa_copies: list[QaCopy] = field(default_factory=list)
    updated_ms: int = 0

    @property
    def latest(self) -> OrderStatus | None:
        """The newest status of the highest revision seen."""
        if not self.statuses:
            return None
        top = max(s.revision for _, s in self.statuses)
        return [s for _, s in self.statuses if s.revision == top][-1]

    @property
    def state(self) -> str:
        latest = self.latest
        return latest.state.value if latest else "unknown"

    @property
    def error_code(self) -> str | None:
        latest = self.latest
        if latest and latest.error:
            return latest.error.code
        return self.letters[-1].event.error_code if self.letters else None

    @property
    def revision(self) -> int:
        return self.latest.revision if self.latest else 1

    @property
    def updated(self) -> datetime:
        return datetime.fromtimestamp(self.updated_ms / 1000, UTC)

    def refs(self) -> Iterable[ArtifactRef]:
        for model in self.models.values():
            yield from (model.glb, model.preview)
        for mold in self.molds.values():
            yield from (mold.half_a, mold.half_b, mold.three_mf, mold.report)
        for letter in self.letters:
            if letter.event.original_value_ref is not None:
                yield letter.event.original_value_ref


UNHAPPY = (OrderState.rejected.value, OrderState.failed.value)


class OrderIndex:
    """The most recent ``max_orders`` orders by last update, and every artifact they name.

    ``artifacts`` maps sha256 -> ``ArtifactRef``: the artifact routes serve exactly these
    (plus what the Studio stored itself), so no other file or object is reachable.
    """

    def __init__(self, max_orders: int) -> None:
        self.max_orders = max_orders
        self.orders: OrderedDict[str, OrderRecord] = OrderedDict()
        self.artifacts: dict[str, ArtifactRef] = {}
        self.connected = False
        self.problem: str | None = "not connected to Kafka yet"
        self.records_seen = 0
        self.changed = asyncio.Event()

    # -- writing ------------------------------------------------------------------------

    def ingest(
        self,
        role: Role,
        at: Coordinates,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes]] = (),
    ) -> None:
        """File one record; a record that does not parse is logged and skipped (the Studio
        only reads: the service owns what the topics hold)."""
        self.records_seen += 1
        try:
            order_id, apply = self._parse(role, at, key, value, dict(headers))
        except (ValidationError, ValueError) as exc:
            log.warning("studio.record_unreadable", role=role, at=str(at), reason=str(exc)[:200])
            return
        if order_id is None:
            return
        order = self.orders.pop(order_id, None) or OrderRecord(order_id)
        apply(order)
        order.updated_ms = max(order.updated_ms, at.timestamp_ms)
        self.orders[order_id] = order  # most recently updated last
        for ref in order.refs():
            self.artifacts[ref.sha256] = ref
        while len(self.orders) > self.max_orders:
            self.orders.popitem(last=False)
        self.changed.set()

    def _parse(self, role, at, key, value, headers):  # type: ignore[no-untyped-def]
        raw = value or b""
        if role == "status":
            status = OrderStatus.model_validate_json(raw)
            return status.order_id, lambda o: o.statuses.append((at, status))
        if role == "model":
            model = ModelReady.model_validate_json(raw)
            return model.order_id, lambda o: o.models.__setitem__(model.revision, model)
        if role == "mold":
            mold = MoldReady.model_validate_json(raw)
            return mold.order_id, lambda o: o.molds.__setitem__(mold.revision, mold)
        if role == "dlq":
            letter = DeadLetter.model_validate_json(raw)
            order_id = letter.order_id or _key_text(key)
            return order_id, lambda o: o.letters.append(Letter(at, letter))
        copy = QaCopy(
            at, headers.get(REPLAYED_FROM_HEADER, b"").decode("utf-8", "replace"), len(raw)
        )
        return _key_text(key), lambda o: o.qa_copies.append(copy)

    def remember(self, ref: ArtifactRef) -> None:
        """An artifact the Studio stored itself (a design run) becomes servable."""
        self.artifacts[ref.sha256] = ref

    # -- reading ------------------------------------------------------------------------

    def get(self, order_id: str) -> OrderRecord | None:
        return self.orders.get(order_id)

    def listing(
        self, *, state: str | None = None, error_code: str | None = None, limit: int = 200
    ) -> list[OrderRecord]:
        """Newest first, filtered by the latest state and by error code."""
        out = []
        for order in reversed(self.orders.values()):
            if state and order.state != state:
                continue
            if error_code and order.error_code != error_code:
                continue
            out.append(order)
            if len(out) >= limit:
                break
        return out

    def error_codes(self) -> list[str]:
        return sorted({o.error_code for o in self.orders.values() if o.error_code})


def _key_text(key: bytes | None) -> str | None:
    return key.decode("utf-8", "replace") if key else None


async def follow(settings: Settings, index: OrderIndex) -> None:
    """Keep ``index`` current until cancelled; reconnects after any Kafka error.

    Partitions are assigned once every topic exists (the Studio waits, and says so, until
    then); partitions added later are followed after a Studio restart."""
    roles = {topic: role for role, topic in topics_by_role(settings).items()}
    while True:
        consumer = AIOKafkaConsumer(
            **client_kwargs(settings),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            client_id="sculpt-studio",
        )
        try:
            await consumer.start()
            partitions = await _wait_for_topics(settings, roles, index)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            index.connected, index.problem = True, None
            while True:
                batch = await consumer.getmany(timeout_ms=POLL_MS)
                for tp, records in batch.items():
                    for r in records:
                        index.ingest(
                            roles[tp.topic],
                            Coordinates(r.topic, r.partition, r.offset, r.timestamp),
                            r.key,
                            r.value,
                            tuple((k, v or b"") for k, v in (r.headers or ())),
                        )
        except asyncio.CancelledError:
            raise
        except (KafkaError, OSError) as exc:
            index.connected, index.problem = False, f"Kafka: {type(exc).__name__}: {exc}"
            log.warning("studio.kafka_unavailable", reason=str(exc))
        except Exception as exc:  # a bug must not stop the feed silently: say so, retry
            index.connected, index.problem = False, f"order feed error: {type(exc).__name__}"
            log.exception("studio.feed_crashed")
        finally:
            await consumer.stop()
        await asyncio.sleep(RETRY_S)


async def _wait_for_topics(
    settings: Settings, roles: dict[str, Role], index: OrderIndex
) -> list[TopicPartition]:
    """Every partition of the followed topics, once each topic exists."""
    while True:
        found = {topic: await partitions_of(settings, topic) for topic in roles}
        missing = sorted(topic for topic, partitions in found.items() if not partitions)
        if not missing:
            return [TopicPartition(t, p) for t, partitions in found.items() for p in partitions]
        index.connected, index.problem = True, f"topics not found yet: {', '.join(missing)}"
        await asyncio.sleep(RETRY_S)
