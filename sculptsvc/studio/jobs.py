"""The Studio's pipeline jobs, run on its own worker pool (never on `sculpt serve`'s).

A design run and a reproduce run are the same job: picture bytes + ``PipelineOptions`` in,
the artifacts of :func:`sculptsvc.pipeline.run_pipeline` out, the very function the service
runs, so what a person sees in the Studio is byte for byte what the factory gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from sculptsvc.jobs import WorkerState, init_worker, wants_helper
from sculptsvc.options import PipelineOptions
from sculptsvc.settings import Settings


@dataclass(frozen=True)
class PipelineJob:
    image: bytes
    options: PipelineOptions


def init_studio_worker(settings_json: str) -> WorkerState:
    """The service's worker init: models loaded and stages imported before the first upload
    (the first 3D view should not pay for imports); a helper as the service's workers get
    one, counted against the Studio's own workers."""
    settings = Settings.model_validate_json(settings_json)
    return init_worker(settings_json, with_helper=wants_helper(settings, settings.studio_workers))


def run_job(state: WorkerState, job: PipelineJob) -> dict[str, bytes]:
    """Artifacts by file name, ``report.json`` included."""
    from sculptsvc.pipeline import run_pipeline

    result = run_pipeline(
        job.image,
        job.options,
        state.stylizer,
        state.reconstructor,
        state.settings,
        helper=state.helper,
    )
    return result.artifacts
