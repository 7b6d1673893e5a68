"""docker/compose.yaml and Prometheus config: checked here because Docker cannot run in CI.

Everything an operator would otherwise find out at ``docker compose up`` time: settings that
do not exist or do not parse, files that are not there, topics that differ from the
service's, a scrape port that is not the service's port, a stop timeout shorter than the
drain.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from sculptsvc.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "compose.yaml"
SERVICE_NAMES = ("sculpt", "sculpt-gpu")
DURATION_UNITS_S = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def prometheus() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "prometheus.yml").read_text())


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def settings_from_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as the container would build them from its environment."""
    for key in [k for k in os.environ if k.startswith("SCULPT_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def interpolate(text: str) -> str:
    """Compose's ``${VAR:-default}`` with an empty environment: the defaults."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", text)


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Short-syntax volumes as ``{target: (source, mode)}``; a source may use ``${VAR:-x}``."""
    out = {}
    for volume in service.get("volumes", []):
        source, target, *mode = interpolate(volume).split(":")
        out[target] = (source, mode[0] if mode else "rw")
    return out


def parse_duration_s(text: str) -> float:
    """Compose durations: ``12m``, ``1h30m``, ``90s``."""
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(float(n) * DURATION_UNITS_S[u] for n, u in parts)


def sculpt_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: compose["services"][name] for name in SERVICE_NAMES}


def test_compose_has_the_whole_system(compose: dict[str, Any]) -> None:
    assert {"kafka", "kafka-init", "prometheus", *SERVICE_NAMES} <= set(compose["services"])
    assert compose["services"]["sculpt"]["profiles"] == ["cpu"]
    assert compose["services"]["sculpt-gpu"]["profiles"] == ["gpu"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_sculpt_variable_is_a_setting_and_parses(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_of(compose["services"][name])
    known = {f"SCULPT_{field.upper()}" for field in Settings.model_fields}
    sculpt_vars = {k for k in env if k.startswith("SCULPT_")}
    assert sculpt_vars, "the service sets no SCULPT_* variables"
    assert sculpt_vars <= known, f"not settings: {sorted(sculpt_vars - known)}"

    settings = settings_from_env(env, monkeypatch)
    assert settings.http_host == "0.0.0.0"  # probes and /metrics reachable from other containers
    assert settings.kafka_bootstrap_servers == "kafka:19092"
    # Artifacts and the ledger are in S3: no instance needs a volume another one writes.
    assert settings.store_url and settings.store_url.startswith("s3://")
    mounted = mounts(compose["services"][name])
    assert all(source not in compose["volumes"] for source, _ in mounted.values())
    for root in settings.allowed_file_roots:
        assert str(root) in mounted, f"file root {root} is not mounted"


def test_gpu_service_reserves_one_gpu_per_worker(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose["services"]["sculpt-gpu"]
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    settings = settings_from_env(env_of(service), monkeypatch)
    # The pool starts one worker per visible GPU, the consumer count follows SCULPT_WORKERS.
    assert int(device["count"]) == settings.workers
    assert settings.device == "cuda"
    assert settings.stylizer == "diffusion" and settings.reconstructor == "triposr"
    assert mounts(service)["/models"][1] == "ro", "weights must be mounted read-only"
    assert str(settings.triposr_model_dir).startswith("/models/")
    assert str(settings.diffusion_model_dir).startswith("/models/")


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_stop_grace_period_outlasts_the_drain(compose: dict[str, Any], name: str) -> None:
    service = compose["services"][name]
    graceful = Settings.model_fields["graceful_timeout_s"].default
    assert parse_duration_s(service["stop_grace_period"]) > graceful


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_build_contexts_and_targets_exist(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    context = (DOCKER / build["context"]).resolve()
    assert context == REPO
    dockerfile = context / build["dockerfile"]
    assert dockerfile.is_file()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile.read_text(), re.M | re.I)
    assert build["target"] in stages


def test_bind_mounted_files_exist(compose: dict[str, Any]) -> None:
    checked = 0
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith(".") and "${" not in source:
                assert (DOCKER / source).exists(), f"{source} (mounted in compose) is missing"
                checked += 1
    assert checked >= 4  # create-topics.sh, prometheus.yml, alerts.yml, samples


def topics_created(compose: dict[str, Any]) -> dict[str, tuple[int, list[str]]]:
    spec = env_of(compose["services"]["kafka-init"])["TOPICS"].split()
    out = {}
    for entry in spec:
        name, partitions, *configs = entry.split(":")
        out[name] = (int(partitions), configs)
    return out


def test_init_container_creates_exactly_the_settings_topics(compose: dict[str, Any]) -> None:
    expected = {
        info.default for field, info in Settings.model_fields.items() if field.startswith("topic_")
    }
    created = topics_created(compose)
    assert set(created) == expected
    defaults = Settings.model_construct()
    orders_partitions = created[defaults.topic_orders][0]
    # Room to scale: every consumer the compose file can start, many times over.
    consumers = sum(
        int(env_of(s).get("SCULPT_WORKERS", "1")) for s in sculpt_services(compose).values()
    )
    assert orders_partitions >= 12 and orders_partitions >= consumers
    init = compose["services"]["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    for service in sculpt_services(compose).values():
        assert service["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


def test_kafka_is_single_node_kraft_with_transactions(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = env_of(kafka)
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "CLUSTER_ID" in env and "KAFKA_ZOOKEEPER_CONNECT" not in env
    # Transactions on one broker need the transaction log to accept a single replica.
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    listeners = env["KAFKA_ADVERTISED_LISTENERS"]
    assert "kafka:19092" in listeners  # what the containers use
    host_port = kafka["ports"][0].split(":")[0]
    assert f"localhost:{host_port}" in listeners  # what kcat on the host uses


def test_kafka_image_is_the_version_the_tests_run_against(compose: dict[str, Any]) -> None:
    pom = ET.parse(REPO / "kafka" / "pom.xml").getroot()
    ns = {"m": pom.tag.split("}")[0].strip("{")} if pom.tag.startswith("{") else {}
    version = pom.find("m:properties/m:kafka.version" if ns else "properties/kafka.version", ns)
    assert version is not None
    for name in ("kafka", "kafka-init"):
        image = compose["services"][name]["image"]
        assert image == f"apache/kafka:{version.text}"


def test_prometheus_scrapes_the_service_port(
    compose: dict[str, Any], prometheus: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    (sd,) = job["dns_sd_configs"]
    assert set(sd["names"]) == set(SERVICE_NAMES)
    for name in SERVICE_NAMES:
        settings = settings_from_env(env_of(compose["services"][name]), monkeypatch)
        assert sd["port"] == settings.http_port
        assert str(settings.http_port) in compose["services"][name]["expose"]
    mounted = mounts(compose["services"]["prometheus"])
    assert mounted["/etc/prometheus/prometheus.yml"] == ("./prometheus.yml", "ro")
    for rule_file in prometheus["rule_files"]:
        assert rule_file in mounted, f"{rule_file} is not mounted into Prometheus"


S3_USERS = ("sculpt", "sculpt-gpu", "station", "s3-init")


def test_everything_shares_one_s3_store_with_the_servers_credentials(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    server = compose["services"]["s3"]
    server_env = {k: interpolate(v) for k, v in env_of(server).items()}
    port = server_env["S3_PORT"]
    assert mounts(server)["/data"][0] in compose["volumes"], "objects must survive a restart"
    assert (DOCKER / server["build"]["dockerfile"].removeprefix("docker/")).is_file()
    urls = set()
    for name in S3_USERS:
        env = {k: interpolate(v) for k, v in env_of(compose["services"][name]).items()}
        settings = settings_from_env(env, monkeypatch)
        assert settings.s3_endpoint_url == f"http://s3:{port}", name
        urls.add(settings.store_url)
        # The standard AWS chain carries the credentials; they match the server's keys.
        assert env["AWS_ACCESS_KEY_ID"] == server_env["S3_ACCESS_KEY"], name
        assert env["AWS_SECRET_ACCESS_KEY"] == server_env["S3_SECRET_KEY"], name
        assert not any("SECRET" in k for k in env if k.startswith("SCULPT_")), name
    assert len(urls) == 1 and next(iter(urls)).startswith("s3://"), urls
    init = compose["services"]["s3-init"]
    assert init["command"] == ["store", "init"]
    assert init["depends_on"]["s3"]["condition"] == "service_healthy"
    for name in ("sculpt", "sculpt-gpu", "station"):
        depends = compose["services"][name]["depends_on"]
        assert depends["s3-init"]["condition"] == "service_completed_successfully", name


def test_station_service_runs_the_station_command_with_a_known_profile(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from sculptsvc.cli import app
    from sculptsvc.station.slicer import Profile

    station = compose["services"]["station"]
    command = station["command"]
    assert command[0] == "station" and "--slice" in command
    Profile.resolve(command[command.index("--profile") + 1])  # raises for an unknown one
    assert CliRunner().invoke(app, [*command, "--help"]).exit_code == 0
    settings = settings_from_env(env_of(station), monkeypatch)
    mounted = mounts(station)
    assert mounted[str(settings.station_jobs_dir)][0] in compose["volumes"]
    assert station["build"]["target"] == "station"
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM cpu AS station$", dockerfile, re.M)
    assert "prusa-slicer" in dockerfile.split("AS station", 1)[1]
