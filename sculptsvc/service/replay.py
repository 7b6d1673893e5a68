"""QA tools over the topics: find records, re-publish them, and fetch what was published.

Replayed records carry the header ``sculpt-replay`` (and ``replayed-from``): the service
then re-runs the order even when its ledger already holds an outcome for that revision,
so a replay is a deliberate second run, never silently de-duplicated.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sculptsvc.artifacts import DETERMINISTIC
from sculptsvc.events import DeadLetter, ModelReady, MoldReady
from sculptsvc.service.kafka import client_kwargs
from sculptsvc.service.processor import REPLAY_HEADER
from sculptsvc.settings import Settings
from sculptsvc.store import open_store

REPLAYED_FROM_HEADER = "replayed-from"


@dataclass(frozen=True)
class FoundRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Selection:
    """Which records to pick; unset fields do not filter."""

    order_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    partition: int | None = None
    start_offset: int | None = None
    end_offset: int | None = None  # inclusive

    def matches(self, rec: FoundRecord) -> bool:
        if (
            self.order_id is not None
            and (rec.key or b"").decode("utf-8", "replace") != self.order_id
        ):
            return False
        if self.partition is not None and rec.partition != self.partition:
            return False
        if self.start_offset is not None and rec.offset < self.start_offset:
            return False
        if self.end_offset is not None and rec.offset > self.end_offset:
            return False
        if self.since is not None and rec.timestamp_ms < self.since.timestamp() * 1000:
            return False
        return not (self.until is not None and rec.timestamp_ms > self.until.timestamp() * 1000)


async def partitions_of(settings: Settings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(p["partition"] for t in described for p in t.get("partitions", []))


async def scan(settings: Settings, topic: str, selection: Selection) -> list[FoundRecord]:
    """Every committed record of ``topic`` that matches, read from the start to the current end
    without joining a consumer group (nothing is committed, the service is not disturbed)."""
    consumer = AIOKafkaConsumer(
        **client_kwargs(settings), enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = await partitions_of(settings, topic)
        if selection.partition is not None:
            partitions = [p for p in partitions if p == selection.partition]
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        end = await consumer.end_offsets(tps)
        begin = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(begin[tp], selection.start_offset or 0))
        found: list[FoundRecord] = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if not remaining:
                break
            batch = await consumer.getmany(*remaining, timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    rec = FoundRecord(
                        r.topic,
                        r.partition,
                        r.offset,
                        r.timestamp,
                        r.key,
                        r.value,
                        tuple((k, v or b"") for k, v in (r.headers or ())),
                    )
                    if selection.matches(rec):
                        found.append(rec)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


def original_of(dead_letter_record: FoundRecord, settings: Settings) -> FoundRecord:
    """The message a dead letter preserved, byte for byte."""
    letter = DeadLetter.model_validate_json(dead_letter_record.value or b"")
    return FoundRecord(
        topic=letter.original_topic,
        partition=letter.original_partition,
        offset=letter.original_offset,
        timestamp_ms=letter.original_timestamp_ms or dead_letter_record.timestamp_ms,
        key=None
        if letter.original_key_base64 is None
        else base64.b64decode(letter.original_key_base64),
        value=base64.b64decode(letter.original_value_base64)
        if letter.original_value_base64 is not None
        else open_store(settings).get(letter.original_value_ref),  # type: ignore[arg-type]
        headers=tuple((h.key, base64.b64decode(h.value_base64)) for h in letter.original_headers),
    )


async def republish(settings: Settings, records: list[FoundRecord], target: str) -> int:
    producer = AIOKafkaProducer(**client_kwargs(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for rec in records:
            headers = [
                (k, v) for k, v in rec.headers if k not in (REPLAY_HEADER, REPLAYED_FROM_HEADER)
            ]
            headers += [
                (REPLAY_HEADER, b"1"),
                (REPLAYED_FROM_HEADER, f"{rec.topic}/{rec.partition}/{rec.offset}".encode()),
            ]
            await producer.send_and_wait(target, rec.value, key=rec.key, headers=headers)
    finally:
        await producer.stop()
    return len(records)


async def published_outcome(
    settings: Settings, order_id: str, revision: int | None
) -> dict[str, dict]:
    """The latest ModelReady and MoldReady of an order (revision: the given or the latest),
    by event type (the ``event`` column of ``sculptsvc.artifacts``)."""
    outcome: dict[str, dict] = {}
    for kind, topic in (
        (ModelReady.event_type, settings.topic_models),
        (MoldReady.event_type, settings.topic_molds),
    ):
        events = [
            json.loads(r.value or b"{}")
            for r in await scan(settings, topic, Selection(order_id=order_id))
        ]
        if revision is not None:
            events = [e for e in events if e.get("revision") == revision]
        if events:
            outcome[kind] = max(events, key=lambda e: e.get("revision", 0))
    return outcome


def compare_hashes(published: dict[str, dict], artifacts: dict[str, bytes]) -> list[dict]:
    """One row per deterministic artifact (``report.json`` carries timings: not compared):
    the published sha256 (``published_outcome``'s events as JSON, by event type), the
    re-run's, and whether they are equal."""
    rows = []
    for artifact in DETERMINISTIC:
        expected = published.get(artifact.event, {}).get(artifact.field, {}).get("sha256")
        local = hashlib.sha256(artifacts[artifact.name]).hexdigest()
        rows.append(
            {
                "artifact": artifact.name,
                "published": expected,
                "local": local,
                "equal": expected == local,
            }
        )
    return rows
