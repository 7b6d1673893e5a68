"""Fixtures for tests against a real Apache Kafka broker (see ``tests/kafka_harness.py``).

- ``kafka``: one broker for the whole session (started by ``scripts/kafka`` in a temp dir,
  stopped at the end even when tests fail). Skips only when Java is missing.
  ``SCULPT_TEST_KAFKA_BOOTSTRAP=host:port`` uses a broker that is already running instead.
- ``topics``: the service's topics under unique names, created, per test.
- ``make_topic``: a factory for any other topic a test needs.
- ``restart_kafka``: restart the session broker (same ports and data) mid-test.

Every test that uses ``kafka`` (directly or through these fixtures) gets ``@pytest.mark.kafka``
automatically, so ``-m "not kafka"`` deselects them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from tests.kafka_harness import KafkaHarness
from tests.s3_harness import S3Harness

BROKER_LOG_LINES = 40
KAFKA_FIXTURES = frozenset({"kafka", "topics", "make_topic", "restart_kafka", "kafka_log"})
S3_FIXTURES = frozenset({"s3", "s3_store"})


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that need the broker before ``-m`` selection runs."""
    for item in items:
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)
        if S3_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.s3)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failed broker test, show the end of the broker log next to the traceback."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    for name, title in (("kafka", "kafka broker log (tail)"), ("s3", "s3proxy log (tail)")):
        harness = getattr(item, "funcargs", {}).get(name)
        log_path = getattr(harness, "log_path", None)
        if report.failed and log_path is not None and log_path.exists():
            lines = log_path.read_text(errors="replace").splitlines()[-BROKER_LOG_LINES:]
            report.sections.append((title, "\n".join(lines)))


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaHarness]:
    """The session's broker, ready to take clients at ``kafka.bootstrap``."""
    harness = KafkaHarness.from_env(tmp_path_factory.mktemp("kafka"))
    if harness.managed and shutil.which("java") is None:
        pytest.skip("Java (>= 17) not found: the Kafka broker cannot run (scripts/bootstrap)")
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()


@dataclass(frozen=True)
class Topics:
    """The service's topics under names unique to one test (created, one partition each)."""

    orders: str
    status: str
    models: str
    molds: str
    dlq: str
    qa: str

    def names(self) -> list[str]:
        return list(asdict(self).values())

    def settings(self) -> dict[str, str]:
        """Keyword arguments for ``sculptsvc.settings.Settings`` (``topic_orders=...``)."""
        return {f"topic_{role}": name for role, name in asdict(self).items()}


def unique_name(prefix: str) -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def make_topic(kafka: KafkaHarness) -> Callable[..., str]:
    """``make_topic("name-prefix", partitions=3, config={...})`` -> a fresh, created topic."""

    def make(
        prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None
    ) -> str:
        name = unique_name(prefix)
        kafka.create_topics([name], partitions=partitions, config=config)
        return name

    return make


@pytest.fixture
def topics(kafka: KafkaHarness) -> Topics:
    return create_service_topics(kafka)


def create_service_topics(kafka: KafkaHarness) -> Topics:
    """The service's topics under fresh names, created (for fixtures of any scope)."""
    suffix = uuid.uuid4().hex[:12]
    created = Topics(
        orders=f"sculpt.orders.{suffix}",
        status=f"sculpt.order-status.{suffix}",
        models=f"sculpt.models.{suffix}",
        molds=f"sculpt.molds.{suffix}",
        dlq=f"sculpt.orders.dlq.{suffix}",
        qa=f"sculpt.orders.qa.{suffix}",
    )
    kafka.create_topics(created.names())
    return created


@pytest.fixture
def restart_kafka(kafka: KafkaHarness) -> Iterator[Callable[..., str]]:
    """``restart_kafka(hard=False, downtime_s=0.0)`` -> bootstrap (unchanged).

    ``hard=True`` SIGKILLs the broker (a crash) instead of a clean shutdown. Skips the test
    when the session uses an external broker it cannot restart. Whatever the test did, the
    broker is running again afterwards, so later tests are not hit by a failed fault test.
    """
    if not kafka.managed:
        pytest.skip("restart needs the broker this session started (SCULPT_TEST_KAFKA_BOOTSTRAP)")

    def restart(*, hard: bool = False, downtime_s: float = 0.0) -> str:
        return kafka.restart(hard=hard, downtime_s=downtime_s)

    yield restart
    if not kafka.is_running():
        kafka.start()


@pytest.fixture
def kafka_log(kafka: KafkaHarness) -> Path:
    """The broker's log file, to attach to a failure message."""
    return kafka.log_path


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Harness]:
    """The session's S3-compatible server (s3proxy via ``scripts/s3``), a real JVM."""
    if shutil.which("java") is None:
        pytest.skip("Java not found: the s3proxy server cannot run (scripts/bootstrap)")
    harness = S3Harness(tmp_path_factory.mktemp("s3"))
    try:
        harness.start()
        yield harness
    finally:
        harness.stop()


@dataclass(frozen=True)
class S3Store:
    """A fresh bucket on the session's server, and how to reach it."""

    harness: S3Harness
    bucket: str
    prefix: str
    env: dict[str, str]

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def settings(self) -> dict[str, str]:
        """Keyword arguments for ``Settings`` (the credentials stay in the AWS variables)."""
        return {"store_url": self.url, "s3_endpoint_url": self.env["SCULPT_S3_ENDPOINT_URL"]}


@pytest.fixture
def s3_store(s3: S3Harness, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A new bucket; the AWS credential variables are set for in-process clients, and
    ``.env`` carries them for ``sculpt`` subprocesses."""
    if not s3.is_running():  # a fault test stopped it
        s3.start()
    env = s3.env()
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.setenv(name, env[name])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return S3Store(harness=s3, bucket=s3.create_bucket(), prefix="artifacts", env=env)
