"""The order processor without Kafka: outcomes, dead letters, retries, ledger, duplicates."""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from sculptsvc.artifacts import NAMES
from sculptsvc.errors import JobTimeout, NoSubject, StorageUnavailable
from sculptsvc.events import DeadLetter, ModelReady, MoldReady, OrderStatus
from sculptsvc.jobs import JobOutput, OrderJob
from sculptsvc.service.processor import InboundRecord, OrderProcessor, Outgoing, StageEnded
from sculptsvc.settings import Settings
from sculptsvc.store import LocalArtifactStore
from tests.service_jobs import STAGE_ENDS

PNG = base64.b64encode(b"\x89PNG fake").decode()


class FakePublisher:
    def __init__(self, timeline: list[str] | None = None) -> None:
        self.batches: list[tuple[list[Outgoing], bool]] = []
        self.timeline = [] if timeline is None else timeline

    async def publish(self, messages: Sequence[Outgoing], *, source: InboundRecord, commit: bool):
        self.batches.append((list(messages), commit))
        for m in messages:
            if m.topic == Settings().topic_status:
                self.timeline.append(f"published {json.loads(m.value)['state']}")

    async def publish_progress(self, message: Outgoing, *, source: InboundRecord) -> None:
        await self.publish([message], source=source, commit=False)

    aborted_outcomes = 0

    @contextlib.asynccontextmanager
    async def outcome(self, messages: Sequence[Outgoing], *, source: InboundRecord):
        try:
            yield  # visible only if the block ends without an error: a committed transaction
        except BaseException:
            self.aborted_outcomes += 1
            raise
        await self.publish(messages, source=source, commit=True)

    async def already_committed(self, record: InboundRecord) -> bool:
        return record.offset in self.committed_before

    committed_before: frozenset[int] = frozenset()

    def on(self, topic: str) -> list[dict]:
        return [json.loads(m.value) for b, _ in self.batches for m in b if m.topic == topic]


class FakeRunner:
    """Runs the stages as the pipeline does: each reports its end before the next starts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.timeline: list[str] = []

    async def run(self, job: OrderJob, on_stage: StageEnded) -> JobOutput:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        for state in STAGE_ENDS:
            self.timeline.append(f"start {state.value}")
            await on_stage(state)
        return JobOutput(
            artifacts={n: f"{n}:{job.order_id}".encode() for n in NAMES},
            triangles=20000,
            watertight=True,
            cavity_volume_ml=42.5,
            stage_seconds={"mesh": 0.5},
        )


def record(value: bytes, offset: int = 0, key: bytes | None = b"o1") -> InboundRecord:
    return InboundRecord("orders", 0, offset, key, value, (("source", b"shop"),), 1000)


def order_bytes(**extra: object) -> bytes:
    doc = {
        "order_id": "o1",
        "image": {"kind": "inline", "media_type": "image/png", "data_base64": PNG},
    }
    doc.update(extra)
    return json.dumps(doc).encode()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(artifact_root=tmp_path / "store", retry_backoff_s=0.0, max_attempts=3)


def make(settings: Settings, runner: FakeRunner) -> tuple[OrderProcessor, FakePublisher]:
    publisher = FakePublisher(runner.timeline)
    store = LocalArtifactStore(settings.artifact_root)
    return OrderProcessor(settings, publisher, runner, store), publisher


async def test_completed_order_publishes_everything_in_one_committed_batch(settings) -> None:
    processor, pub = make(settings, FakeRunner())
    await processor.handle(record(order_bytes()))
    # accepted, then each stage's status as it ends (at least once), then the outcome
    assert [commit for _, commit in pub.batches] == [False] * 5 + [True]
    states = [s["state"] for s in pub.on(settings.topic_status)]
    assert states == [
        "accepted",
        "stylized",
        "reconstructed",
        "validated",
        "mold_ready",
        "completed",
    ]
    model = ModelReady.model_validate(pub.on(settings.topic_models)[0])
    mold = MoldReady.model_validate(pub.on(settings.topic_molds)[0])
    store = LocalArtifactStore(settings.artifact_root)
    assert store.get(model.glb) == b"model.glb:o1"
    assert store.get(mold.half_b) == b"mold_b.stl:o1"
    assert mold.cavity_volume_ml == 42.5
    final_batch, _ = pub.batches[-1]
    assert all(m.key == b"o1" for m in final_batch)
    assert pub.on(settings.topic_dlq) == []


@pytest.mark.parametrize("value", [b"", b"{not json", b'{"order_id": "o1"}', b"\xff\xfe"])
async def test_invalid_events_go_to_the_dead_letter_topic_with_their_bytes(settings, value):
    runner = FakeRunner()
    processor, pub = make(settings, runner)
    await processor.handle(record(value, offset=7))
    assert runner.calls == 0
    (letter,) = [DeadLetter.model_validate(d) for d in pub.on(settings.topic_dlq)]
    assert letter.error_code == "invalid_event"
    assert base64.b64decode(letter.original_value_base64) == value
    assert (letter.original_partition, letter.original_offset) == (0, 7)
    assert letter.original_headers[0].key == "source"
    assert pub.batches[-1][1] is True  # offset committed with the dead letter
    statuses = pub.on(settings.topic_status)
    assert [s["state"] for s in statuses] == ["rejected"]  # order id known from the key


async def test_rejected_input_is_not_retried(settings) -> None:
    runner = FakeRunner(NoSubject("nothing stands out"))
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes()))
    assert runner.calls == 1
    final = OrderStatus.model_validate(pub.on(settings.topic_status)[-1])
    assert final.state == "rejected" and final.error and final.error.code == "no_subject"
    assert DeadLetter.model_validate(pub.on(settings.topic_dlq)[0]).error_class == "NoSubject"


async def test_transient_errors_retry_then_succeed(settings) -> None:
    runner = FakeRunner(JobTimeout("slow"), JobTimeout("slow"))
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes()))
    assert runner.calls == 3
    assert pub.on(settings.topic_status)[-1]["state"] == "completed"
    assert pub.on(settings.topic_status)[-1]["attempt"] == 3


async def test_transient_errors_exhausted_dead_letter_with_attempts(settings) -> None:
    runner = FakeRunner(*(JobTimeout("slow") for _ in range(3)))
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes()))
    assert runner.calls == 3
    letter = DeadLetter.model_validate(pub.on(settings.topic_dlq)[0])
    assert (letter.error_code, letter.attempts) == ("job_timeout", 3)
    assert pub.on(settings.topic_status)[-1]["state"] == "failed"


async def test_worker_crashes_are_not_retried_again_on_top_of_the_pool(settings) -> None:
    from sculptsvc.errors import WorkerCrashed

    runner = FakeRunner(WorkerCrashed("2 of 2 attempts; last: killed by SIGKILL", attempts=2))
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes()))
    assert runner.calls == 1
    letter = DeadLetter.model_validate(pub.on(settings.topic_dlq)[0])
    assert (letter.error_code, letter.attempts) == ("worker_crashed", 2)


async def test_bug_in_the_pipeline_fails_the_order_instead_of_stalling(settings) -> None:
    processor, pub = make(settings, FakeRunner(ZeroDivisionError("oops")))
    await processor.handle(record(order_bytes()))
    assert pub.on(settings.topic_status)[-1]["state"] == "failed"
    assert "ZeroDivisionError" in pub.on(settings.topic_dlq)[0]["error_message"]


async def test_duplicate_order_revision_runs_once_and_publishes_nothing_new(settings) -> None:
    runner = FakeRunner()
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes(), offset=1))
    published = len(pub.on(settings.topic_status))
    await processor.handle(record(order_bytes(), offset=2))
    assert runner.calls == 1
    assert len(pub.on(settings.topic_status)) == published
    assert pub.batches[-1] == ([], True)  # only the offset moves on
    await processor.handle(record(order_bytes(revision=2), offset=3))
    assert runner.calls == 2  # a new revision is a new job


async def test_redelivery_after_crash_republishes_the_stored_outcome(settings) -> None:
    runner = FakeRunner()
    processor, pub = make(settings, runner)
    await processor.handle(record(order_bytes(), offset=5))
    first = pub.batches[-1]
    await processor.handle(record(order_bytes(), offset=5))  # same coordinates: redelivery
    assert runner.calls == 1
    assert pub.batches[-1] == first  # byte-identical events, same event ids


async def test_oversized_bad_input_is_dead_lettered_by_claim_check(settings) -> None:
    processor, pub = make(settings, FakeRunner())
    huge = b"{" + b"x" * (settings.dead_letter_inline_bytes + 10)
    await processor.handle(record(huge))
    (letter,) = [DeadLetter.model_validate(d) for d in pub.on(settings.topic_dlq)]
    assert letter.original_value_base64 is None and letter.original_value_ref is not None
    assert LocalArtifactStore(settings.artifact_root).get(letter.original_value_ref) == huge
    (message,) = [m for b, _ in pub.batches for m in b if m.topic == settings.topic_dlq]
    assert len(message.value) < 4096


async def test_message_committed_by_a_previous_owner_is_skipped(settings) -> None:
    runner = FakeRunner()
    processor, pub = make(settings, runner)
    pub.committed_before = frozenset({4})
    await processor.handle(record(order_bytes(), offset=4))
    assert runner.calls == 0 and pub.batches == []


class FlakyStore(LocalArtifactStore):
    """The local store behind an outage: the first ``failures`` calls raise."""

    def __init__(self, root: Path, failures: int) -> None:
        super().__init__(root)
        self.failures = failures
        self.processor: OrderProcessor | None = None
        self.outages_seen: list[str | None] = []  # what the processor reported per call

    def _maybe_fail(self, what: str) -> None:
        assert self.processor is not None
        self.outages_seen.append(self.processor.store_outage)
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable(f"{what}: connection refused")

    def write(self, ref, data: bytes) -> None:  # type: ignore[no-untyped-def]
        self._maybe_fail("write")
        super().write(ref, data)

    def put_record(self, name: str, data: bytes) -> None:
        self._maybe_fail("put_record")
        super().put_record(name, data)

    def get_record(self, name: str) -> bytes | None:
        self._maybe_fail("get_record")
        return super().get_record(name)


async def test_a_store_outage_waits_and_never_dead_letters(settings) -> None:
    store = FlakyStore(settings.artifact_root, failures=3)
    publisher = FakePublisher()
    runner = FakeRunner()
    processor = OrderProcessor(settings, publisher, runner, store)
    store.processor = processor
    await processor.handle(record(order_bytes()))
    assert store.failures == 0
    assert runner.calls == 1, "an outage after the job must not run the job again"
    assert publisher.on(settings.topic_dlq) == []
    assert [s["state"] for s in publisher.on(settings.topic_status)][-1] == "completed"
    assert store.outages_seen[1] == "get_record: connection refused", "/ready can say why"
    assert processor.store_outage is None, "a successful call clears the outage"
    assert processor.metrics.retries.labels("storage_unavailable")._value.get() == 3


async def test_each_stage_status_is_published_before_the_next_stage_starts(settings) -> None:
    runner = FakeRunner()
    processor, _ = make(settings, runner)
    await processor.handle(record(order_bytes()))
    assert runner.timeline == [
        "published accepted",
        "start stylized",
        "published stylized",
        "start reconstructed",
        "published reconstructed",
        "start validated",
        "published validated",
        "start mold_ready",
        "published mold_ready",
        "published completed",
    ]


async def test_every_published_message_validates_against_its_schema_file(settings) -> None:
    """What a consumer in another language checks: each message on the status, model, mold
    and dead-letter topics, as bytes on the wire, is valid against ``schemas/*.v1.json``
    under a standard Draft 2020-12 validator (completed, rejected and dead-lettered runs)."""
    from jsonschema import Draft202012Validator

    from sculptsvc import schemas

    def validator(name: str) -> Draft202012Validator:
        path = schemas.SCHEMA_DIR / f"{name}.v1.json"
        return Draft202012Validator(json.loads(path.read_text(encoding="utf-8")))

    by_topic = {
        settings.topic_status: validator("OrderStatus"),
        settings.topic_models: validator("ModelReady"),
        settings.topic_molds: validator("MoldReady"),
        settings.topic_dlq: validator("DeadLetter"),
    }
    seen: dict[str, int] = {}
    for runner, value, key in (
        (FakeRunner(), order_bytes(), b"o1"),
        (FakeRunner(NoSubject("nothing stands out")), order_bytes(order_id="o2"), b"o2"),
        (FakeRunner(), b"{not json", b"o3"),
    ):
        processor, pub = make(settings, runner)
        await processor.handle(record(value, key=key))
        assert pub.batches  # (a duplicate would publish nothing and prove nothing)
        for batch, _ in pub.batches:
            for message in batch:
                errors = list(by_topic[message.topic].iter_errors(json.loads(message.value)))
                assert errors == [], (message.topic, [e.message for e in errors])
                seen[message.topic] = seen.get(message.topic, 0) + 1
    assert set(seen) == set(by_topic)  # every topic was exercised


class SlowStore(LocalArtifactStore):
    """Uploads that take ``seconds`` each (a store slower than the overlap allows)."""

    def __init__(self, root: Path, seconds: float) -> None:
        super().__init__(root)
        self.seconds = seconds

    def write(self, ref, data: bytes) -> None:  # type: ignore[no-untyped-def]
        time.sleep(self.seconds)
        super().write(ref, data)


@pytest.mark.parametrize("overlap_s", [0.05, 0.0])
async def test_a_slow_store_gets_the_outcome_published_after_it(settings, overlap_s) -> None:
    """Uploads slower than ``outcome_overlap_s``: the open transaction is aborted (it would
    hold back what read_committed readers see) and the outcome is published once, after the
    uploads and the ledger; with 0 no transaction is opened before them at all."""
    settings = settings.model_copy(update={"outcome_overlap_s": overlap_s})
    publisher = FakePublisher()
    store = SlowStore(settings.artifact_root, seconds=0.2)
    processor = OrderProcessor(settings, publisher, FakeRunner(), store)
    await processor.handle(record(order_bytes()))
    assert publisher.aborted_outcomes == (1 if overlap_s else 0)
    committed = [batch for batch, commit in publisher.batches if commit]
    assert len(committed) == 1
    assert [json.loads(m.value).get("state") for m in committed[0]][-1] == "completed"
    entry = processor.ledger.read("o1", 1)
    assert entry is not None and entry.outcome == "completed"
