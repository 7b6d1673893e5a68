"""The station's job logic without Kafka: folders, manifests, redelivery, checks, profiles."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import pytest

from sculptsvc.errors import ArtifactMismatch, ConfigurationError
from sculptsvc.events import (
    MoldMaterial,
    MoldReady,
    StationJob,
    StationJobState,
    deterministic_event_id,
)
from sculptsvc.service.processor import InboundRecord, Outgoing
from sculptsvc.settings import Settings
from sculptsvc.station.app import StationProcessor, station_config
from sculptsvc.station.jobs import PARTIAL_DIR, build_job, clear_partials, job_folder
from sculptsvc.station.slicer import MaterialMismatch, Profile
from sculptsvc.store import LocalArtifactStore


class Publisher:
    def __init__(self) -> None:
        self.batches: list[list[Outgoing]] = []

    async def publish(self, messages: Sequence[Outgoing], *, source, commit: bool) -> None:
        assert commit, "the station always commits with its events"
        self.batches.append(list(messages))

    async def already_committed(self, record: InboundRecord) -> bool:
        return False


def mold(store: LocalArtifactStore, order_id: str = "o1") -> MoldReady:
    return MoldReady(
        event_id=deterministic_event_id(order_id, 1, "mold"),
        order_id=order_id,
        half_a=store.put(b"solid a" * 100, "model/stl"),
        half_b=store.put(b"solid b" * 100, "model/stl"),
        three_mf=store.put(b"3mf", "model/3mf"),
        report=store.put(b"{}", "application/json"),
        cavity_volume_ml=1.0,
        material=MoldMaterial.pla,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        artifact_root=tmp_path / "store", station_jobs_dir=tmp_path / "jobs", station_id="s1"
    )


def record(m: MoldReady, offset: int) -> InboundRecord:
    return InboundRecord("molds", 0, offset, m.order_id.encode(), m.model_dump_json().encode())


async def test_a_folder_once_and_the_same_events_after_a_crash_before_the_commit(settings):
    store = LocalArtifactStore(settings.artifact_root)
    publisher = Publisher()
    config = station_config(settings)
    station = StationProcessor(settings, config, store, publisher)  # type: ignore[arg-type]
    m = mold(store)
    await station.handle(record(m, 5))
    folder = job_folder(config.jobs_dir, "o1", 1)
    (first,) = publisher.batches
    event = StationJob.model_validate_json(first[0].value)
    assert (event.state, event.job_folder) == (StationJobState.received, str(folder))
    for f in event.files:
        data = (folder / f.name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f.sha256 and len(data) == f.size_bytes
    # The station died after the rename, before the commit: the same message comes again.
    await station.handle(record(m, 5))
    assert [o.value for o in publisher.batches[1]] == [o.value for o in first]
    # The same revision as another message: commit, no events, still one folder.
    await station.handle(record(m, 9))
    assert publisher.batches[2] == []
    assert [p.name for p in (config.jobs_dir / "o1").iterdir()] == ["r1"]
    assert station.jobs == {"built": 1, "failed": 0, "redelivered": 1, "duplicates": 1}


def test_a_changed_blob_leaves_no_folder_and_no_partial(settings) -> None:
    store = LocalArtifactStore(settings.artifact_root)
    m = mold(store)
    path = Path(m.half_b.uri.removeprefix("file://"))
    path.write_bytes(b"solid B" * 100)
    config = station_config(settings)
    with pytest.raises(ArtifactMismatch) as err:
        build_job(m, store, config, "molds/0/1")
    assert err.value.detail["reason"] == "sha256_mismatch"
    assert not job_folder(config.jobs_dir, "o1", 1).exists()
    assert list((config.jobs_dir / PARTIAL_DIR).iterdir()) == []


async def test_invalid_mold_event_is_a_failed_job_with_the_key_as_order(settings) -> None:
    store = LocalArtifactStore(settings.artifact_root)
    publisher = Publisher()
    station = StationProcessor(settings, station_config(settings), store, publisher)  # type: ignore[arg-type]
    await station.handle(InboundRecord("molds", 0, 1, b"o7", b"{not json"))
    (batch,) = publisher.batches
    event = StationJob.model_validate_json(batch[0].value)
    assert event.state is StationJobState.failed and event.order_id == "o7"
    assert event.error is not None and event.error.code == "invalid_event"


def test_profiles_by_name_or_path_and_the_material_check(tmp_path: Path) -> None:
    pla = Profile.resolve("generic-pla")
    assert pla.filament_type == "PLA" and pla.path.is_file()
    pla.check_material("pla")
    with pytest.raises(MaterialMismatch, match="PETG"):
        Profile.resolve("generic-petg").check_material("pla")
    with pytest.raises(ConfigurationError, match=r"SCULPT_STATION_PROFILE.*generic-abs"):
        Profile.resolve("no-such-printer")
    own = tmp_path / "hall.ini"
    own.write_text("layer_height = 0.3\n")
    assert Profile.resolve(str(own)).filament_type is None  # no material: not checked


def test_partials_of_a_killed_run_are_cleared(tmp_path: Path) -> None:
    (tmp_path / PARTIAL_DIR / "o1-r1-abc").mkdir(parents=True)
    (tmp_path / PARTIAL_DIR / "o1-r1-abc" / "mold_a.stl").write_bytes(b"half")
    assert clear_partials(tmp_path) == 1
    assert list((tmp_path / PARTIAL_DIR).iterdir()) == []
