"""The service's side of the worker pool: run an order job, relay its stage ends.

The job itself (``init_worker``/``run_order_job``) and the records both sides share live in
``sculptsvc.jobs``; they are re-exported here for ``SCULPT_JOB_MODULE=sculptsvc.service.jobs``.
"""

from __future__ import annotations

import importlib
from functools import partial

from sculptsvc.jobs import JobOutput, OrderJob, init_worker, run_order_job, wants_helper
from sculptsvc.service.processor import StageEnded
from sculptsvc.settings import Settings
from sculptsvc.workers.placement import Placement

__all__ = ["PoolJobRunner", "init_worker", "run_order_job"]


class PoolJobRunner:
    """Runs orders on the worker pool; ``await run()`` never blocks the event loop."""

    def __init__(self, settings: Settings, placement: Placement) -> None:
        from sculptsvc.workers import WorkerPool

        module = importlib.import_module(settings.job_module)
        # "auto" resolved here, against the placement's worker count (one per GPU there)
        helpers = "on" if wants_helper(settings, placement.workers) else "off"
        self.stage_helpers = helpers  # for the start-up log line
        worker_settings = settings.model_copy(update={"stage_helpers": helpers})
        self.pool = WorkerPool.from_settings(
            module.run_order_job,
            partial(module.init_worker, worker_settings.model_dump_json()),
            settings,
            placement=placement,
        )

    async def start(self) -> PoolJobRunner:
        await self.pool.start()  # every worker has loaded (and checked) its models
        return self

    async def run(self, job: OrderJob, on_stage: StageEnded) -> JobOutput:
        return await self.pool.submit(job, on_progress=on_stage)

    async def close(self) -> None:
        await self.pool.close()
