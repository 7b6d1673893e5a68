"""`sculpt station` on the real broker and the real S3 server: one verified job folder per
order revision, StationJob events exactly once, tampered bytes never released, crashes
mid-download leave exactly one folder after the restart."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
import trimesh

from mold import MoldSpec, make_mold, shapes
from sculptsvc.events import MoldMaterial, MoldReady, deterministic_event_id
from sculptsvc.settings import Settings
from sculptsvc.store import open_store
from tests.integration.conftest import S3Store
from tests.kafka_harness import KafkaHarness
from tests.service_support import ServiceProcess, committed_offset, read_topic
from tests.tcp_relay import TcpRelay

pytestmark = pytest.mark.slow
HAS_SLICER = shutil.which("prusa-slicer") is not None


def box_stl(size: tuple[float, float, float]) -> bytes:
    mesh = trimesh.creation.box(size)
    mesh.apply_translation((0.0, 0.0, size[2] / 2))  # on the bed (z = 0)
    buf = io.BytesIO()
    mesh.export(buf, file_type="stl")
    return buf.getvalue()


def publish_mold(
    kafka: KafkaHarness,
    topic: str,
    settings: Settings,
    order_id: str,
    revision: int = 1,
    material: MoldMaterial = MoldMaterial.pla,
    half_bytes: int | None = None,
    halves: tuple[bytes, bytes] | None = None,
) -> MoldReady:
    """Upload a mold's four artifacts to the S3 store and publish its MoldReady, as the
    service does (small real STL boxes, or ``half_bytes`` of opaque bytes per half)."""
    store = open_store(settings)
    seed = f"{order_id}/{revision}".encode()

    def half(n: int) -> bytes:
        if halves is not None:
            return halves[n]
        if half_bytes is None:
            return box_stl((30.0 + n, 20.0, 10.0))
        block = hashlib.sha256(seed + bytes([n])).digest()
        return (block * (half_bytes // 32 + 1))[:half_bytes]

    mold = MoldReady(
        event_id=deterministic_event_id(order_id, revision, "mold"),
        order_id=order_id,
        revision=revision,
        correlation_id=f"corr-{order_id}",
        half_a=store.put(half(0), "model/stl"),
        half_b=store.put(half(1), "model/stl"),
        three_mf=store.put(b"3mf:" + seed, "model/3mf"),
        report=store.put(json.dumps({"order": order_id}).encode(), "application/json"),
        cavity_volume_ml=10.0,
        material=material,
    )
    kafka.kcat_produce(topic, order_id, mold.model_dump_json())
    return mold


@pytest.fixture
def station_settings(kafka: KafkaHarness, topics, make_topic, s3_store: S3Store, tmp_path: Path):
    return Settings(
        kafka_bootstrap_servers=kafka.bootstrap,
        **topics.settings(),
        topic_station_jobs=make_topic("sculpt.station-jobs"),
        station_group_id=f"station-{uuid.uuid4().hex[:8]}",
        transactional_id_prefix=f"sculpt-{uuid.uuid4().hex[:8]}",
        station_id="hall-1",
        station_jobs_dir=tmp_path / "jobs",
        retry_backoff_s=0.2,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        **s3_store.settings(),
    )


def station(settings: Settings, s3_store: S3Store, log: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(settings, log, command=("station",), **{**s3_store.env, **env})


def jobs(settings: Settings, count: int, timeout: float = 60) -> list[dict]:
    return asyncio.run(
        read_topic(settings.kafka_bootstrap_servers, settings.topic_station_jobs, count, timeout)
    )


def all_jobs(settings: Settings) -> list[dict]:
    return jobs(settings, 10_000, timeout=3)


def folders(jobs_dir: Path) -> list[str]:
    return sorted(
        f"{p.parent.name}/{p.name}" for p in jobs_dir.glob("*/r*") if p.parent.name != ".partial"
    )


def station_offset(settings: Settings) -> int:
    return asyncio.run(
        committed_offset(
            settings.kafka_bootstrap_servers, settings.station_group_id, settings.topic_molds
        )
    )


def assert_folder_matches(folder: Path, mold: MoldReady) -> None:
    for name, ref in (
        ("mold_a.stl", mold.half_a),
        ("mold_b.stl", mold.half_b),
        ("mold.3mf", mold.three_mf),
        ("report.json", mold.report),
    ):
        data = (folder / name).read_bytes()
        assert (len(data), hashlib.sha256(data).hexdigest()) == (ref.size_bytes, ref.sha256)


def test_one_verified_folder_per_revision_and_none_for_a_repeat(
    kafka: KafkaHarness, station_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    s = station_settings
    first = publish_mold(kafka, s.topic_molds, s, "st-1")
    second = publish_mold(kafka, s.topic_molds, s, "st-2")
    kafka.kcat_produce(s.topic_molds, "st-1", first.model_dump_json())  # the same revision again
    proc = station(s, s3_store, tmp_path / "station.log").start()
    try:
        proc.wait_ready()
        events = jobs(s, 2)
        assert sorted((e["order_id"], e["state"]) for e in events) == [
            ("st-1", "received"),
            ("st-2", "received"),
        ]
        assert_until(lambda: station_offset(s) == 3, "the repeat to be committed")
    finally:
        proc.terminate()
    assert folders(s.station_jobs_dir) == ["st-1/r1", "st-2/r1"]
    assert_folder_matches(s.station_jobs_dir / "st-1" / "r1", first)
    assert_folder_matches(s.station_jobs_dir / "st-2" / "r1", second)
    assert len(all_jobs(s)) == 2, "the repeated MoldReady must publish nothing"
    event = next(e for e in events if e["order_id"] == "st-1")
    assert event["mold_event_id"] == str(first.event_id) and event["station_id"] == "hall-1"
    assert {f["name"] for f in event["files"]} == {
        "mold_a.stl",
        "mold_b.stl",
        "mold.3mf",
        "report.json",
    }


def test_tampered_blob_fails_the_job_and_the_station_moves_on(
    kafka: KafkaHarness, station_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    s = station_settings
    store = open_store(s)
    good_half = box_stl((25.0, 25.0, 8.0))
    ref = store.put(good_half, "model/stl")
    tampered = bytearray(good_half)
    tampered[100] ^= 0xFF  # same size, different bytes, changed on the server itself
    key = urlparse(ref.uri).path.lstrip("/")
    s3_store.harness.object_path(s3_store.bucket, key).write_bytes(bytes(tampered))
    bad = MoldReady.model_validate(
        {
            **publish_mold(kafka, s.topic_molds, s, "ok-0").model_dump(mode="json"),
            "order_id": "bad-1",
            "half_a": ref.model_dump(mode="json"),
        }
    )
    kafka.kcat_produce(s.topic_molds, "bad-1", bad.model_dump_json())
    publish_mold(kafka, s.topic_molds, s, "ok-2")
    proc = station(s, s3_store, tmp_path / "station.log").start()
    try:
        proc.wait_ready()
        events = {e["order_id"]: e for e in jobs(s, 3)}
        assert_until(lambda: station_offset(s) == 3, "every offset committed")
    finally:
        proc.terminate()
    assert events["bad-1"]["state"] == "failed"
    assert events["bad-1"]["error"]["code"] == "sha256_mismatch"
    assert events["ok-2"]["state"] == "received", "a poison event must not stall the station"
    assert folders(s.station_jobs_dir) == ["ok-0/r1", "ok-2/r1"]


@pytest.mark.skipif(not HAS_SLICER, reason="prusa-slicer not installed (scripts/bootstrap)")
def test_slicing_with_a_named_profile_and_a_material_check(
    kafka: KafkaHarness, station_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    s = station_settings.model_copy(
        update={"station_slice": True, "station_profile": "generic-petg"}
    )
    real = make_mold(*shapes.torus(), MoldSpec())  # a real two-part mold, as the service makes
    halves = (real.stl_a, real.stl_b)
    publish_mold(kafka, s.topic_molds, s, "petg-1", material=MoldMaterial.petg, halves=halves)
    publish_mold(kafka, s.topic_molds, s, "pla-1", material=MoldMaterial.pla)
    proc = station(s, s3_store, tmp_path / "station.log").start()
    try:
        proc.wait_ready()
        events = jobs(s, 3, timeout=120)
    finally:
        proc.terminate()
    states = sorted((e["order_id"], e["state"]) for e in events)
    assert states == [("petg-1", "received"), ("petg-1", "sliced"), ("pla-1", "failed")]
    failed = next(e for e in events if e["state"] == "failed")
    assert failed["error"]["code"] == "material_mismatch"
    sliced = next(e for e in events if e["state"] == "sliced")
    assert sliced["profile"] == "generic-petg"
    folder = s.station_jobs_dir / "petg-1" / "r1"
    for half in ("mold_a", "mold_b"):
        gcode = (folder / f"{half}.gcode").read_text()
        assert "; filament_type = PETG" in gcode and "M104 S240" in gcode
        listed = next(f for f in sliced["files"] if f["name"] == f"{half}.gcode")
        assert listed["sha256"] == hashlib.sha256(gcode.encode()).hexdigest()
    assert folders(s.station_jobs_dir) == ["petg-1/r1"]


def test_station_killed_mid_download_makes_exactly_one_folder(
    kafka: KafkaHarness, station_settings: Settings, s3_store: S3Store, tmp_path: Path
) -> None:
    endpoint = urlparse(s3_store.env["SCULPT_S3_ENDPOINT_URL"])
    relay = TcpRelay(endpoint.hostname or "127.0.0.1", endpoint.port or 80).start()
    s = station_settings
    mold = publish_mold(kafka, s.topic_molds, s, "kill-1", half_bytes=2_000_000)
    through_relay = s.model_copy(update={"s3_endpoint_url": relay.url})
    relay.freeze_after("down", 500_000)  # half_a is coming in
    first = station(
        through_relay, s3_store, tmp_path / "station1.log", SCULPT_S3_ENDPOINT_URL=relay.url
    ).start()
    try:
        assert relay.frozen.wait(90), first.log_tail()
        first.kill()
    finally:
        relay.close()
    assert folders(s.station_jobs_dir) == []
    assert list((s.station_jobs_dir / ".partial").iterdir()), "the killed run left its partial"
    assert station_offset(s) == 0
    second = station(s, s3_store, tmp_path / "station2.log").start()
    try:
        second.wait_ready()
        events = jobs(s, 1)
        assert_until(lambda: station_offset(s) == 1, "the commit")
    finally:
        second.terminate()
    assert [(e["order_id"], e["state"]) for e in events] == [("kill-1", "received")]
    assert folders(s.station_jobs_dir) == ["kill-1/r1"]
    assert list((s.station_jobs_dir / ".partial").iterdir()) == []
    assert_folder_matches(s.station_jobs_dir / "kill-1" / "r1", mold)
    assert len(all_jobs(s)) == 1


def assert_until(predicate, what: str, timeout: float = 60) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.3)
