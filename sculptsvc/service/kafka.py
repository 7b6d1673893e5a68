"""Kafka adapter: client settings, and transactional publishing with one producer per input
partition (its transactional id fences a zombie instance that lost the partition)."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.helpers import create_ssl_context
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from sculptsvc.errors import PublishFailed
from sculptsvc.logging import get_logger
from sculptsvc.service.processor import InboundRecord, Outgoing
from sculptsvc.settings import Settings

MAX_REQUEST_BYTES = 1_048_576
"""Kafka's default ``message.max.bytes``: larger inputs go by claim check (dead letters)."""

log = get_logger(__name__)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    return create_ssl_context(
        cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None,
        certfile=str(settings.kafka_ssl_certfile) if settings.kafka_ssl_certfile else None,
        keyfile=str(settings.kafka_ssl_keyfile) if settings.kafka_ssl_keyfile else None,
    )


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection and security arguments for aiokafka clients, from settings."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
        "ssl_context": ssl_context(settings),
    }
    if settings.kafka_security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.kafka_sasl_username
        kwargs["sasl_plain_password"] = (
            settings.kafka_sasl_password.get_secret_value()
            if settings.kafka_sasl_password
            else None
        )
    return kwargs


def faststream_security(settings: Settings) -> BaseSecurity | None:
    """The same security settings, in FastStream's terms, for the consuming broker."""
    context = ssl_context(settings)
    if not settings.kafka_security_protocol.startswith("SASL"):
        return BaseSecurity(ssl_context=context) if context else None
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    cls = {
        "SCRAM-SHA-256": SASLScram256,
        "SCRAM-SHA-512": SASLScram512,
    }.get(settings.kafka_sasl_mechanism or "PLAIN", SASLPlaintext)
    return cls(
        username=settings.kafka_sasl_username or "",
        password=password,
        ssl_context=context,
        use_ssl=context is not None,
    )


class TransactionalPublisher:
    """Publishes an order's events, and optionally commits its input offset, atomically.

    Progress statuses are single at-least-once records: by default they skip the
    transaction (its AddPartitionsToTxn, the broker's produce check and EndTxn made each
    one cost about 5 ms instead of 2 on the test broker, five times per order) and go
    through one idempotent producer, acknowledged by every in-sync replica before
    :meth:`publish_progress` returns. What that gives up: an instance that lost the
    partition (a zombie) is fenced only at its next transaction, its outcome, so it may
    still send progress statuses of that order, which the new owner sends too (the same
    deterministic event ids). ``progress_in_transactions`` keeps the fenced path.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._producers: dict[tuple[str, int], AIOKafkaProducer] = {}
        self._locks: dict[tuple[str, int], asyncio.Lock] = {}
        self._admin: AIOKafkaAdminClient | None = None
        self._progress: AIOKafkaProducer | None = None
        self._coordinator: int | None = None
        """Node id of the consumer group's coordinator, once looked up."""
        self._progress_lock = asyncio.Lock()
        self._committed_here: dict[tuple[str, int], int] = {}
        """The next offset this process committed, per partition, since it was assigned."""
        self._fence_before_reading: set[tuple[str, int]] = set()
        """Partitions assigned since their producer was initialised: fence again first."""

    def transactional_id(self, topic: str, partition: int) -> str:
        return f"{self.settings.transactional_id_prefix}.{topic}.{partition}"

    def partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Called by the consumer at each rebalance. A partition may have been away and
        back (A, then B, then A): B may still be committing a message that A reads again,
        and A's cached producer, fenced by B, no longer fences B. The next read of the
        committed offset therefore starts a fresh producer, whose init_transactions fences
        B and waits for its open transaction to settle."""
        for tp in assigned:
            key = (tp.topic, tp.partition)
            self._fence_before_reading.add(key)
            self._committed_here.pop(key, None)

    def _remember_commit(self, source: InboundRecord) -> None:
        key = (source.topic, source.partition)
        self._committed_here[key] = max(self._committed_here.get(key, 0), source.offset + 1)

    async def _producer(self, topic: str, partition: int) -> AIOKafkaProducer:
        key = (topic, partition)
        producer = self._producers.get(key)
        if producer is None:
            producer = AIOKafkaProducer(
                **client_kwargs(self.settings),
                transactional_id=self.transactional_id(topic, partition),
                enable_idempotence=True,
                acks="all",
                max_request_size=MAX_REQUEST_BYTES,
            )
            await producer.start()  # init_transactions: aborts what a dead predecessor left open
            self._producers[key] = producer
        return producer

    async def publish(
        self, messages: Sequence[Outgoing], *, source: InboundRecord, commit: bool
    ) -> None:
        if not messages and not commit:
            return
        partition = (source.topic, source.partition)
        lock = self._locks.setdefault(partition, asyncio.Lock())
        async with lock:
            try:
                producer = await self._producer(*partition)
                async with producer.transaction():
                    await self._send(producer, messages, source, commit=commit)
            except (ProducerFenced, KafkaError, OSError) as exc:
                await self._discard(partition)
                raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
            if commit:
                self._remember_commit(source)

    async def _send(
        self,
        producer: AIOKafkaProducer,
        messages: Sequence[Outgoing],
        source: InboundRecord,
        *,
        commit: bool,
    ) -> None:
        """The records of an open transaction, then (with ``commit``) the offset after
        ``source``. Records first: the broker checks each transactional produce with the
        transaction coordinator (KIP-890); an AddOffsetsToTxn still in flight makes that
        check fail, the broker answers NOT_ENOUGH_REPLICAS, and aiokafka retries after
        retry_backoff_ms (100 ms). That happened to about one order in ten on the test
        broker."""
        futures = [
            await producer.send(m.topic, m.value, key=m.key, headers=list(m.headers))
            for m in messages
        ]
        for future in futures:
            await future
        if commit:
            next_offset = {TopicPartition(source.topic, source.partition): source.offset + 1}
            await producer.send_offsets_to_transaction(next_offset, self.settings.group_id)

    @contextlib.asynccontextmanager
    async def outcome(
        self, messages: Sequence[Outgoing], *, source: InboundRecord
    ) -> AsyncIterator[None]:
        partition = (source.topic, source.partition)
        lock = self._locks.setdefault(partition, asyncio.Lock())
        async with lock:
            try:
                producer = await self._producer(*partition)
                await producer.begin_transaction()
            except (ProducerFenced, KafkaError, OSError) as exc:
                await self._discard(partition)
                raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
            sending = asyncio.ensure_future(self._send(producer, messages, source, commit=True))
            try:
                yield  # the caller's uploads and ledger write, while the transaction fills
            except BaseException:  # the block's own error, passed on as it is
                if not sending.done():
                    sending.cancel()
                elif not sending.cancelled():
                    sending.exception()  # seen: the block's error is what the caller gets
                await self._abort(producer, partition)
                raise
            try:
                await sending
                await producer.commit_transaction()
            except BaseException as exc:
                await self._abort(producer, partition)
                if isinstance(exc, ProducerFenced | KafkaError | OSError):
                    raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc
                raise
            self._remember_commit(source)

    async def _abort(self, producer: AIOKafkaProducer, partition: tuple[str, int]) -> None:
        """Abort an open transaction; a producer that cannot is dropped (its successor's
        init_transactions aborts what it left open)."""
        try:
            await asyncio.shield(producer.abort_transaction())
        except Exception as exc:
            log.warning("producer.abort_failed", error=str(exc))
            await self._discard(partition)

    async def publish_progress(self, message: Outgoing, *, source: InboundRecord) -> None:
        if self.settings.progress_in_transactions:
            await self.publish([message], source=source, commit=False)
            return
        try:
            async with self._progress_lock:
                if self._progress is None:
                    producer = AIOKafkaProducer(
                        **client_kwargs(self.settings),
                        enable_idempotence=True,
                        acks="all",
                        max_request_size=MAX_REQUEST_BYTES,
                    )
                    await producer.start()
                    self._progress = producer
                producer = self._progress
            await producer.send_and_wait(
                message.topic, message.value, key=message.key, headers=list(message.headers)
            )
        except (KafkaError, OSError) as exc:
            await self._discard_progress()
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc

    async def already_committed(self, record: InboundRecord) -> bool:
        """True when the group's committed offset is already past ``record``.

        After a rebalance the new owner may fetch its start offset while the previous owner
        is still committing the same message. Initialising this partition's transactional
        producer first fences that owner and settles its open transaction, so the offset
        read afterwards is final: a message it committed is skipped, not run twice.

        A message this process committed itself since the partition was assigned is known
        here. The broker cannot be asked about it: its transaction returns once the commit
        is decided, before the offset is written to the group (the consumer read one such
        message again when a rebalance kept its partition here, 6 ms after the commit, and
        the broker still gave the old offset).
        """
        partition = (record.topic, record.partition)
        lock = self._locks.setdefault(partition, asyncio.Lock())
        tp = TopicPartition(*partition)
        try:
            async with lock:
                if record.offset < self._committed_here.get(partition, 0):
                    return True
                if partition in self._fence_before_reading:
                    self._fence_before_reading.discard(partition)
                    await self._discard(partition)
                await self._producer(*partition)
            committed = await self._committed(tp)
            if committed is None and self._coordinator is not None:
                self._coordinator = None  # it may have moved: ask who it is now, once
                committed = await self._committed(tp)
        except (KafkaError, OSError) as exc:
            self._coordinator = None
            await self._discard(partition)
            raise PublishFailed(f"cannot read the committed offset: {exc}") from exc
        if committed is None:
            # The partition was asked for by name, so a healthy coordinator answers for it
            # (-1: nothing committed yet). No answer is an error aiokafka does not raise (a
            # top-level NOT_COORDINATOR or COORDINATOR_LOAD_IN_PROGRESS): reading it as
            # "not committed" could run a committed message again. Read the message again.
            raise PublishFailed(f"the group coordinator did not answer for {tp}")
        return committed > record.offset

    async def _committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` (-1: none), or None when the coordinator
        left it out of its answer. The coordinator's id is remembered between calls: looking
        it up every time cost a round trip per order."""
        if self._admin is None:
            admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
            await admin.start()
            self._admin = admin
        if self._coordinator is None:
            self._coordinator = await self._admin.find_coordinator(self.settings.group_id)
        offsets = await self._admin.list_consumer_group_offsets(
            self.settings.group_id, self._coordinator, partitions=[tp]
        )
        answer = offsets.get(tp)
        return None if answer is None else answer.offset

    async def _discard(self, source: tuple[str, int]) -> None:
        producer = self._producers.pop(source, None)
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # already broken; closing is best effort
                log.warning("producer.close_failed", error=str(exc))

    async def _discard_progress(self) -> None:
        async with self._progress_lock:
            producer, self._progress = self._progress, None
        if producer is not None:
            try:
                await producer.stop()
            except Exception as exc:  # already broken; closing is best effort
                log.warning("producer.close_failed", error=str(exc))

    async def close(self) -> None:
        for source in list(self._producers):
            await self._discard(source)
        await self._discard_progress()
        if self._admin is not None:
            await self._admin.close()
            self._admin = None
