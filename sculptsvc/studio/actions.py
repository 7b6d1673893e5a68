"""QA and shop actions: replay an order, reproduce it, send a design as an order.

Each is logged with the name of the person whose token allowed it (never the token). They
use the same code as the command line: ``sculptsvc.service.replay`` for scanning and
re-publishing, ``run_pipeline`` (on the Studio's pool) for reproducing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from sculptsvc.errors import SculptError
from sculptsvc.events import ModelReady, MoldReady, OrderPlaced
from sculptsvc.logging import get_logger
from sculptsvc.service.intake import parse_order, resolve_image
from sculptsvc.service.kafka import client_kwargs
from sculptsvc.service.replay import Selection, compare_hashes, original_of, republish, scan
from sculptsvc.settings import Settings
from sculptsvc.studio.jobs import PipelineJob

if TYPE_CHECKING:
    from sculptsvc.studio.app import Studio
    from sculptsvc.studio.orders import OrderRecord

log = get_logger(__name__)

ORDER_SOURCE_HEADER = ("source", b"sculpt-studio")


class ActionFailed(Exception):
    """An action could not be done; the message is for the page."""


@dataclass(frozen=True)
class ActionRecord:
    at: float
    actor: str
    action: str
    result: str

    @classmethod
    def now(cls, actor: str, action: str, result: str) -> ActionRecord:
        return cls(time.time(), actor, action, result)


@dataclass
class Reproduction:
    """A re-run of a published order, and its artifacts' sha256 next to the published ones."""

    order_id: str
    actor: str
    state: Literal["running", "done", "failed"] = "running"
    revision: int | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: float = field(default_factory=time.time)

    @property
    def identical(self) -> bool:
        return bool(self.rows) and all(r["equal"] for r in self.rows)


async def replay(
    settings: Settings,
    order_id: str,
    source: Literal["orders", "dlq"],
    target: Literal["qa", "input"],
    actor: str,
) -> ActionRecord:
    """Re-publish the order's input records (or its dead letters' originals)."""
    topic = settings.topic_dlq if source == "dlq" else settings.topic_orders
    target_topic = settings.topic_orders if target == "input" else settings.topic_qa
    try:
        found = await scan(settings, topic, Selection(order_id=order_id))
        records = [original_of(r, settings) for r in found] if source == "dlq" else found
        count = await republish(settings, records, target_topic)
    except (KafkaError, OSError, SculptError) as exc:
        log.warning("studio.action_failed", action="replay", actor=actor, order_id=order_id)
        return ActionRecord.now(actor, f"replay {source} -> {target}", f"failed: {exc}")
    log.info(
        "studio.action",
        action="replay",
        actor=actor,
        order_id=order_id,
        source=topic,
        target=target_topic,
        records=count,
    )
    return ActionRecord.now(
        actor, f"replay {source} -> {target}", f"{count} record(s) to {target_topic}"
    )


async def reproduce(studio: Studio, order: OrderRecord, job: Reproduction) -> None:
    """Run the published order again on the Studio's pool and compare every artifact hash."""
    settings = studio.settings
    try:
        revision = max(order.models)
        found = await scan(settings, settings.topic_orders, Selection(order_id=order.order_id))
        placed = [parse_order(r.value) for r in found]
        matching = [o for o in placed if o.revision == revision]
        if not matching:
            raise ActionFailed(f"revision {revision} is not on {settings.topic_orders} any more")
        event = matching[-1]
        from sculptsvc.pipeline import options_from_order

        image = await asyncio.to_thread(resolve_image, event.image, settings)
        artifacts = await studio.run_pipeline(
            PipelineJob(image, options_from_order(event, settings))
        )
        mold = order.molds.get(revision)
        published = {
            ModelReady.event_type: order.models[revision].model_dump(mode="json"),
            MoldReady.event_type: mold.model_dump(mode="json") if mold else {},
        }
        job.rows = compare_hashes(published, artifacts)
        job.revision, job.state = revision, "done"
        await asyncio.to_thread(studio.store_artifacts, artifacts)
    except (SculptError, ActionFailed, KafkaError, ValueError) as exc:
        job.state, job.error = "failed", str(exc)
    log.info(
        "studio.action",
        action="reproduce",
        actor=job.actor,
        order_id=order.order_id,
        state=job.state,
        identical=job.identical,
    )
    studio.action_log.setdefault(order.order_id, []).append(
        ActionRecord.now(
            job.actor,
            "reproduce",
            job.error or ("identical" if job.identical else "DIFFERENT"),
        )
    )


async def send_order(settings: Settings, order: OrderPlaced, actor: str) -> None:
    """Publish ``order`` to the input topic as a shop would (key = order id)."""
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
    try:
        await producer.start()
        await producer.send_and_wait(
            settings.topic_orders,
            order.model_dump_json().encode(),
            key=order.order_id.encode(),
            headers=[ORDER_SOURCE_HEADER, ("event-type", b"OrderPlaced")],
        )
    except MessageSizeTooLargeError:
        raise ActionFailed(
            "the picture is too large to travel inside an order (Kafka's 1 MiB message "
            "limit, about 700 kB of picture): upload a smaller picture"
        ) from None
    except KafkaError as exc:
        raise ActionFailed(f"could not publish the order: {type(exc).__name__}: {exc}") from exc
    finally:
        await producer.stop()
    log.info("studio.action", action="send_order", actor=actor, order_id=order.order_id)
