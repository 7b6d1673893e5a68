"""In-process mode (``workers=0``): the pool's queue and error mapping, no processes.

``sculpt make`` runs its one order through it, so the command takes the service's job path
(same job function, same error mapping, same progress reports) without spawning a worker;
tests use it to exercise jobs quickly. A thread cannot be killed: a job that runs over the
timeout fails with ``JobTimeout`` but holds the slot until it really ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog

from sculptsvc.errors import JobTimeout, PoolClosed, as_sculpt_error
from sculptsvc.workers import progress
from sculptsvc.workers._job import Job
from sculptsvc.workers._queue import ClosableQueue


class InlineSlot:
    """The single in-process 'worker' of a ``workers=0`` pool."""

    def __init__(
        self,
        job_fn: Callable[[Any, Any], Any],
        state: Any,
        queue: ClosableQueue[Job],
        counters: dict[str, int],
        job_timeout_s: float,
    ) -> None:
        self._job_fn = job_fn
        self._state = state
        self._queue = queue
        self._counters = counters
        self._job_timeout_s = job_timeout_s
        self.busy = False

    async def main(self) -> None:
        job: Job | None = None
        try:
            while (job := await self._queue.get()) is not None:
                if job.future.done():
                    continue
                self.busy = True
                job.attempts = 1
                run = asyncio.ensure_future(asyncio.to_thread(self._run_bound, job))
                done, _ = await asyncio.wait(
                    {run, job.future},
                    timeout=self._job_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if run in done:
                    self._settle(job, run)
                elif job.future not in done:
                    self._counters["timeouts"] += 1
                    job.fail(
                        JobTimeout(
                            f"job ran over {self._job_timeout_s:g} s (in-process mode cannot "
                            "kill it; the next job waits for it to end)",
                            timeout_s=self._job_timeout_s,
                        ),
                        self._counters,
                        count=False,
                    )
                # A thread cannot be killed: keep the slot busy until the job really ends.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(run)
                self.busy = False
                job = None
        except asyncio.CancelledError:
            if job is not None:
                job.fail(
                    PoolClosed("worker pool shut down while the job was running"), self._counters
                )
            raise
        finally:
            self.busy = False

    def _run_bound(self, job: Job) -> Any:
        """Run the job with the submitter's log context and progress route, as a worker would."""
        loop_of_submitter = job.future.get_loop()

        def relay(event: Any) -> None:
            asyncio.run_coroutine_threadsafe(job.progress(event), loop_of_submitter).result()

        with (
            structlog.contextvars.bound_contextvars(**job.context),
            progress.reporting_to(relay),
        ):
            return self._job_fn(self._state, job.payload)

    def _settle(self, job: Job, run: asyncio.Future[Any]) -> None:
        exc = run.exception()
        if exc is None:
            job.succeed(run.result(), self._counters)
        else:
            job.fail(as_sculpt_error(exc), self._counters)
