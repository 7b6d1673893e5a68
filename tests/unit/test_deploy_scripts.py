"""The small programs the containers run: topic creation, the health probe, alert rules."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from sculptsvc.errors import SculptError, TransientError
from sculptsvc.service.metrics import Metrics
from sculptsvc.settings import Settings
from sculptsvc.workers import WorkerPool

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
FAKE_KAFKA_TOPICS = """#!/bin/sh
# Records its arguments; --describe answers with the partition count in $FAKE_PARTITIONS.
echo "$*" >> "$FAKE_LOG"
case "$*" in *--describe*) echo "Topic: x	PartitionCount: ${FAKE_PARTITIONS:-12}	RF: 1";; esac
"""


def run_create_topics(tmp_path: Path, topics: str, partitions: int = 12) -> tuple[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "kafka-topics.sh"
    fake.write_text(FAKE_KAFKA_TOPICS)
    fake.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": os.environ["PATH"],
        "KAFKA_BIN": str(bin_dir),
        "BOOTSTRAP": "kafka:19092",
        "TOPICS": topics,
        "FAKE_LOG": str(log),
        "FAKE_PARTITIONS": str(partitions),
    }
    done = subprocess.run(
        ["sh", str(DOCKER / "create-topics.sh")], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return log.read_text(), done.stderr


def test_create_topics_creates_each_compose_topic_idempotently(tmp_path: Path) -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    topics = compose["services"]["kafka-init"]["environment"]["TOPICS"]
    calls, _ = run_create_topics(tmp_path, topics)
    creates = [line.split() for line in calls.splitlines() if "--create" in line]
    by_topic = {args[args.index("--topic") + 1]: args for args in creates}
    defaults = Settings.model_construct()
    assert set(by_topic) == {
        defaults.topic_orders,
        defaults.topic_status,
        defaults.topic_models,
        defaults.topic_molds,
        defaults.topic_dlq,
        defaults.topic_qa,
        defaults.topic_station_jobs,
    }
    for args in creates:
        assert "--if-not-exists" in args  # re-running the init container is harmless
        assert args[args.index("--replication-factor") + 1] == "1"
        assert args[args.index("--bootstrap-server") + 1] == "kafka:19092"
    orders = by_topic[defaults.topic_orders]
    assert orders[orders.index("--partitions") + 1] == "12"
    dlq = by_topic[defaults.topic_dlq]
    assert dlq[dlq.index("--config") + 1] == "retention.ms=2592000000"


def test_create_topics_passes_every_config_and_warns_on_too_few_partitions(
    tmp_path: Path,
) -> None:
    calls, stderr = run_create_topics(
        tmp_path, "a.v1:24:retention.ms=1,cleanup.policy=delete", partitions=6
    )
    (create,) = [line.split() for line in calls.splitlines() if "--create" in line]
    configs = [create[i + 1] for i, arg in enumerate(create) if arg == "--config"]
    assert configs == ["retention.ms=1", "cleanup.policy=delete"]
    assert "a.v1 has 6 partitions, 24 wanted" in stderr


def load_healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", DOCKER / "healthcheck.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Probes(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response({"/health": 200, "/ready": 503}.get(self.path, 404))
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def probe_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Probes)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthcheck_exit_codes(probe_server: int, monkeypatch: pytest.MonkeyPatch) -> None:
    healthcheck = load_healthcheck()
    monkeypatch.setenv("SCULPT_HTTP_PORT", str(probe_server))
    assert healthcheck.probe("/health") == 0
    assert healthcheck.probe("/ready") == 1  # 503: not ready
    assert healthcheck.probe("/nope") == 1
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    assert healthcheck.probe("/health", port=str(closed_port)) == 1


def known_metric_samples() -> set[str]:
    """Every sample name the service's registry can expose (counters gain ``_total``...)."""
    names = set()
    for family in Metrics().registry.collect():
        suffixes = {
            "counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created"),
            "gauge": ("",),
        }[family.type]
        names |= {family.name + suffix for suffix in suffixes}
    return names


def pool_gauge_keys() -> set[str]:
    """The ``key`` label values of ``sculpt_pool``: the pool's numeric stats."""
    pool = WorkerPool(_identity, _no_state, workers=0)  # inline: starts no process
    stats = pool.stats()
    return {k for k, v in stats.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def _identity(state: None, job: object) -> object:
    return job


def _no_state() -> None:
    return None


def alert_rules() -> list[dict[str, object]]:
    doc = yaml.safe_load((DOCKER / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def test_alerts_use_metrics_the_service_exposes() -> None:
    known = known_metric_samples()
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= {
        "SculptDeadLetterRateHigh",
        "SculptConsumerLagHigh",
        "SculptOrderLatencyP95High",
        "SculptWorkerCrashes",
        "SculptInstanceDown",
    }
    for rule in rules:
        used = set(re.findall(r"\b(sculpt_[a-z_]+)", str(rule["expr"])))
        assert used <= known, f"{rule['alert']}: unknown metrics {sorted(used - known)}"
    pool_keys = set()
    for rule in rules:
        for keys in re.findall(r'sculpt_pool\{key=~?"([^"]+)"\}', str(rule["expr"])):
            pool_keys |= set(keys.split("|"))
    assert pool_keys <= pool_gauge_keys()


def test_transient_alert_names_real_transient_codes() -> None:
    def codes(cls: type[SculptError]) -> set[str]:
        return {cls.code} | {c for sub in cls.__subclasses__() for c in codes(sub)}

    (rule,) = [r for r in alert_rules() if r["alert"] == "SculptTransientFailuresDeadLettered"]
    (pattern,) = re.findall(r'code=~"([^"]+)"', str(rule["expr"]))
    assert set(pattern.split("|")) <= codes(TransientError)
