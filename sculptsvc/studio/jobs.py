"""The Studio's pipeline jobs, run on its own worker pool (never on `sculpt serve`'s).

A design run and a reproduce run are the same job: picture bytes + ``PipelineOptions`` in,
the artifacts of :func:`sculptsvc.pipeline.run_pipeline` out, the very function the service
runs, so what a person sees in the Studio is byte for byte what the factory gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from sculptsvc.jobs import WorkerState, init_worker
from sculptsvc.options import PipelineOptions


@dataclass(frozen=True)
class PipelineJob:
    image: bytes
    options: PipelineOptions


def init_studio_worker(settings_json: str) -> WorkerState:
    """The service's worker init: models loaded and stages imported before the first upload
    (the first 3D view should not pay for imports)."""
    return init_worker(settings_json)


def run_job(state: WorkerState, job: PipelineJob) -> dict[str, bytes]:
    """Artifacts by file name, ``report.json`` included."""
    from sculptsvc.pipeline import run_pipeline

    result = run_pipeline(
        job.image, job.options, state.stylizer, state.reconstructor, state.settings
    )
    return result.artifacts
