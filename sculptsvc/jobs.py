"""The order job: the records both sides of the worker pool share, and the job itself.

The service (``sculptsvc/service``) builds an :class:`OrderJob` from a validated order and
reads a :class:`JobOutput`; a worker process (``sculptsvc/workers``) runs
:func:`run_order_job` on it. Neither side owns this module, so neither imports the other.

``Settings.job_module`` names the module whose ``init_worker``/``run_order_job`` the pool
uses; this one is the real pipeline. Tests point it at slow or crashing stand-ins.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sculptsvc.options import PipelineOptions
from sculptsvc.settings import Settings
from sculptsvc.workers.helper import HelperJob, HelperSpec
from sculptsvc.workers.placement import usable_cpus

if TYPE_CHECKING:
    from sculptsvc.pipeline import PipelineResult
    from sculptsvc.workers.helper import StageHelper


@dataclass(frozen=True)
class OrderJob:
    """What crosses the process boundary: the pipeline options and the image bytes, already
    validated by the service (the worker does not parse the event again). ``order_id`` and
    ``revision`` only label the job (logs, test stand-ins)."""

    order_id: str
    revision: int
    options: PipelineOptions
    image: bytes


@dataclass
class JobOutput:
    """What the pipeline hands back: artifacts by file name, plus the few facts events carry."""

    artifacts: dict[str, bytes]
    triangles: int
    watertight: bool
    cavity_volume_ml: float
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, result: PipelineResult) -> JobOutput:
        return cls(
            artifacts=result.artifacts,
            triangles=result.report.mesh.triangles,
            watertight=result.report.mesh.watertight,
            cavity_volume_ml=result.report.mold.cavity_volume_ml,
            stage_seconds=dict(result.report.timings),
        )


@dataclass
class WorkerState:
    settings: Settings
    stylizer: Any
    reconstructor: Any
    helper: StageHelper | None = None
    """The process that makes the mold and the preview meanwhile (:func:`wants_helper`)."""


STAGE_HELPER = HelperSpec(
    "stages",
    jobs={
        "mold": HelperJob("sculptsvc.pipeline:mold_request", "sculptsvc.pipeline:warm_up_mold"),
        "preview": HelperJob(
            "sculptsvc.mesh.preview:render_scene", "sculptsvc.mesh.preview:warm_up_renderer"
        ),
    },
)


MESH_HELPER = HelperSpec(
    "mesh",
    jobs={"uv": HelperJob("sculptsvc.mesh.uv:unwrap_arrays", "sculptsvc.mesh.uv:warm_up_unwrap")},
)
"""``sculpt mesh``'s helper: the UV atlas of a multicolor GLB, made on the other core while
the command checks the mesh and writes the report."""


def start_helper(settings: Settings, spec: HelperSpec = STAGE_HELPER) -> StageHelper:
    """Start the helper (first thing: it imports and warms up its stages while this process
    loads the rest; ``sculptsvc.workers.helper``)."""
    from sculptsvc.workers.helper import StageHelper

    return StageHelper(spec, settings.log_level, settings.log_format)


def wants_helper(settings: Settings, workers: int) -> bool:
    """Whether each of ``workers`` worker processes gets a :class:`StageHelper`
    (``Settings.stage_helpers``): with a spare core per worker, the mold and the preview
    run beside the GLB writer instead of after it; without one they would only contend."""
    if settings.stage_helpers == "auto":
        return usable_cpus() >= 2 * workers
    return settings.stage_helpers == "on"


def init_worker(settings_json: str, with_helper: bool | None = None) -> WorkerState:
    """Runs once in each worker: load (and check) the configured models, then import the
    stages, so the first order pays for neither. The stages' native libraries load here too:
    pymeshlab's Qt must first load in the thread that also ends the process (the in-process
    pool runs this in its caller's thread), or freeing its statics at exit corrupts the heap.
    ``with_helper``: None decides by :func:`wants_helper` for ``settings.workers``."""
    settings = Settings.model_validate_json(settings_json)
    if with_helper is None:
        with_helper = wants_helper(settings, settings.workers)
    helper = start_helper(settings) if with_helper else None
    from sculptsvc.ai.backends import load_reconstructor, load_stylizer

    state = WorkerState(settings, load_stylizer(settings), load_reconstructor(settings), helper)
    import sculptsvc.mesh.preview
    import sculptsvc.pipeline  # noqa: F401
    from sculptsvc.loading import modules_loaded

    modules_loaded()  # collection resumes (if a command or the worker paused it)
    return state


def run_pipeline_job(state: WorkerState, job: OrderJob) -> PipelineResult:
    """The pipeline on ``job``; each stage end is reported to the submitter as it happens
    (``sculpt make`` runs this in-process and keeps the whole result)."""
    from sculptsvc.pipeline import run_pipeline
    from sculptsvc.workers import progress

    return run_pipeline(
        job.image,
        job.options,
        state.stylizer,
        state.reconstructor,
        state.settings,
        on_stage=progress.report,
        helper=state.helper,
    )


def run_order_job(state: WorkerState, job: OrderJob) -> JobOutput:
    """One order on this worker: what the service needs back across the process boundary."""
    return JobOutput.of(run_pipeline_job(state, job))
