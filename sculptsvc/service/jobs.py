"""The order job as the worker pool runs it: models load once per worker, orders run many times.

``Settings.job_module`` names the module whose ``init_worker``/``run_order_job`` the pool
uses; this one is the real pipeline. Tests point it at slow or crashing stand-ins.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import partial
from typing import Any

from sculptsvc.events import OrderPlaced
from sculptsvc.service.metrics import Metrics
from sculptsvc.service.processor import JobOutput
from sculptsvc.settings import Settings


@dataclass(frozen=True)
class OrderJob:
    """What crosses the process boundary: the validated order as JSON and its image bytes."""

    order_json: str
    image: bytes


@dataclass
class WorkerState:
    settings: Settings
    stylizer: Any
    reconstructor: Any


def init_worker(settings_json: str) -> WorkerState:
    """Runs once in each worker process: load (and check) the configured models."""
    from sculptsvc.ai.backends import load_reconstructor, load_stylizer

    settings = Settings.model_validate_json(settings_json)
    return WorkerState(settings, load_stylizer(settings), load_reconstructor(settings))


def run_order_job(state: WorkerState, job: OrderJob) -> JobOutput:
    from sculptsvc.pipeline import options_from_order, run_pipeline

    order = OrderPlaced.model_validate_json(job.order_json)
    result = run_pipeline(
        job.image,
        options_from_order(order, state.settings),
        state.stylizer,
        state.reconstructor,
        state.settings,
    )
    return JobOutput(
        artifacts=result.artifacts,
        triangles=result.report.mesh.triangles,
        watertight=result.report.mesh.watertight,
        cavity_volume_ml=result.report.mold.cavity_volume_ml,
        stage_seconds=dict(result.report.timings),
    )


class PoolJobRunner:
    """Runs orders on the worker pool; ``await run()`` never blocks the event loop."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        from sculptsvc.workers import WorkerPool

        module = importlib.import_module(settings.job_module)
        self.pool = WorkerPool.from_settings(
            module.run_order_job,
            partial(module.init_worker, settings.model_dump_json()),
            settings,
        )
        self.metrics = metrics

    async def start(self) -> PoolJobRunner:
        await self.pool.start()  # every worker has loaded (and checked) its models
        return self

    async def run(self, order: OrderPlaced, image: bytes) -> JobOutput:
        return await self.pool.submit(OrderJob(order.model_dump_json(), image))

    async def close(self) -> None:
        await self.pool.close()
