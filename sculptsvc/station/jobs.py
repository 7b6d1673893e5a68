"""One MoldReady -> one verified job folder on the station host, or a typed failure.

    {jobs_dir}/{order_id}/r{revision}/     the job: what the printer operator takes
        mold_a.stl  mold_b.stl  mold.3mf  report.json   (each checked: size + sha256)
        mold_a.gcode  mold_b.gcode                      (with slicing)
        job.json                                        manifest: source, files, events
    {jobs_dir}/.partial/                   work in progress; emptied at station start

The folder is assembled under ``.partial/`` and renamed into place in one step, so a job
folder is either complete and verified or absent: a station killed mid-download leaves
only a partial folder, which the next start deletes. A file that does not match its claim
check aborts the job before anything reaches the final folder.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sculptsvc import artifacts
from sculptsvc.errors import ArtifactMismatch, SculptError
from sculptsvc.events import (
    ArtifactRef,
    ErrorInfo,
    JobFile,
    MoldReady,
    StationJob,
    StationJobState,
    deterministic_event_id,
)
from sculptsvc.station.slicer import Profile, slice_stl
from sculptsvc.store import ArtifactStore, sha256_hex

PARTIAL_DIR = ".partial"
MANIFEST = "job.json"
HALVES = tuple(  # the STL halves, sliced one by one: "mold_a", "mold_b"
    Path(a.name).stem for a in (artifacts.MOLD_A_STL, artifacts.MOLD_B_STL)
)


@dataclass(frozen=True)
class StationConfig:
    station_id: str
    jobs_dir: Path
    profile: Profile | None  # None: no slicing
    slicer_command: str
    slice_timeout_s: float


@dataclass(frozen=True)
class Manifest:
    source: str  # "topic/partition/offset" of the MoldReady that made the folder
    events: list[StationJob]


class JobAlreadyThere(Exception):
    """Another run renamed the same job folder into place first."""


def job_folder(jobs_dir: Path, order_id: str, revision: int) -> Path:
    return jobs_dir / order_id / f"r{revision}"


JOB_ARTIFACTS = tuple(  # (file name in the job folder, MoldReady field): the artifact table's
    (a.name, a.field) for a in artifacts.ARTIFACTS if a.event == MoldReady.event_type
)


def artifacts_of(mold: MoldReady) -> list[tuple[str, ArtifactRef]]:
    return [(name, getattr(mold, field)) for name, field in JOB_ARTIFACTS]


def clear_partials(jobs_dir: Path) -> int:
    """Delete what a killed run left half-made; returns how many folders went."""
    partial = jobs_dir / PARTIAL_DIR
    if not partial.is_dir():
        return 0
    stale = [p for p in partial.iterdir() if p.is_dir()]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)
    return len(stale)


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    doc = json.loads(path.read_bytes())
    return Manifest(doc["source"], [StationJob.model_validate(e) for e in doc["events"]])


def station_event(
    config: StationConfig,
    order_id: str,
    revision: int,
    state: StationJobState,
    *,
    mold: MoldReady | None = None,
    correlation_id: str = "",
    folder: Path | None = None,
    files: Iterable[JobFile] = (),
    error: SculptError | None = None,
) -> StationJob:
    """A StationJob with a deterministic id (order, revision, station, state): a consumer
    de-duplicates on it, across redeliveries and restarts."""
    return StationJob(
        event_id=deterministic_event_id(order_id, revision, "station", config.station_id, state),
        order_id=order_id,
        revision=revision,
        correlation_id=mold.correlation_id if mold else correlation_id,
        station_id=config.station_id,
        state=state,
        mold_event_id=mold.event_id if mold else None,
        job_folder=str(folder) if folder else None,
        profile=config.profile.name if config.profile and state is StationJobState.sliced else None,
        files=list(files),
        error=None if error is None else failure_info(error),
    )


def failure_info(error: SculptError) -> ErrorInfo:
    """``sha256_mismatch`` / ``size_mismatch`` for a claim-check mismatch, else the code."""
    code = (
        error.detail.get("reason", error.code)
        if isinstance(error, ArtifactMismatch)
        else error.code
    )
    return ErrorInfo(code=code, message=error.message, retryable=error.retryable)


def build_job(
    mold: MoldReady, store: ArtifactStore, config: StationConfig, source: str
) -> list[StationJob]:
    """Download, verify and (optionally) slice into a partial folder, write the manifest,
    rename it into place; return the events of the job (received, then sliced).

    Raises ``ArtifactMismatch``/``ArtifactMissing``/``SlicingFailed``/``MaterialMismatch``
    (the job fails; nothing is left behind), ``StorageUnavailable`` (try again later) or
    ``JobAlreadyThere``.
    """
    final = job_folder(config.jobs_dir, mold.order_id, mold.revision)
    partial = (
        config.jobs_dir / PARTIAL_DIR / f"{mold.order_id}-r{mold.revision}-{uuid.uuid4().hex[:8]}"
    )
    partial.mkdir(parents=True)
    try:
        if config.profile is not None:
            config.profile.check_material(mold.material.value)  # before any download
        files = []
        for name, ref in artifacts_of(mold):
            data = store.get(ref)  # raises ArtifactMismatch unless size and sha256 match
            _write_synced(partial / name, data)
            files.append(JobFile(name=name, sha256=ref.sha256, size_bytes=ref.size_bytes))
        events = [
            station_event(
                config,
                mold.order_id,
                mold.revision,
                StationJobState.received,
                mold=mold,
                folder=final,
                files=files,
            )
        ]
        if config.profile is not None:
            for half in HALVES:
                gcode = partial / f"{half}.gcode"
                slice_stl(
                    partial / f"{half}.stl",
                    gcode,
                    config.profile,
                    config.slicer_command,
                    config.slice_timeout_s,
                )
                data = gcode.read_bytes()
                files.append(
                    JobFile(name=gcode.name, sha256=sha256_hex(data), size_bytes=len(data))
                )
            events.append(
                station_event(
                    config,
                    mold.order_id,
                    mold.revision,
                    StationJobState.sliced,
                    mold=mold,
                    folder=final,
                    files=files,
                )
            )
        manifest = {"source": source, "events": [e.model_dump(mode="json") for e in events]}
        _write_synced(partial / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
        _fsync_dir(partial)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(partial, final)  # atomic: the folder appears complete or not at all
        except OSError as exc:
            if final.exists():
                raise JobAlreadyThere(str(final)) from exc
            raise
        _fsync_dir(final.parent)
        return events
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
