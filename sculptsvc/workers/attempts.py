"""One job on one worker slot: each attempt, its outcome, and the retry after a crash.

An attempt waits (without blocking the loop) for whichever comes first: the reply, the
worker's exit, the job timeout, or the caller withdrawing the job. Meanwhile it relays the
job's progress reports to the submitter and acknowledges each once handled.

- reply -> result, or the job's typed error rebuilt in the caller (see ``_wire``);
- worker exit (segfault, ``kill -9``, OOM) -> respawn; ``disposition`` decides whether
  the job runs again on the fresh worker or fails with ``WorkerCrashed``;
- timeout -> kill the worker (its whole process group), respawn, ``JobTimeout``;
- withdrawn -> kill and respawn (the worker holds no other job: nothing else is lost).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from sculptsvc.errors import (
    Action,
    JobTimeout,
    ProcessingFailed,
    WorkerCrashed,
    disposition,
)
from sculptsvc.workers._job import Job, discard
from sculptsvc.workers._wire import rebuild_error
from sculptsvc.workers.process import Worker, WorkerProcesses, describe_exit, exit_detail

Outcome = Literal["done", "crashed", "killed"]


class _BadReply(Exception):
    """A complete reply frame that does not unpickle (e.g. a class missing in the parent)."""


class _ProgressFailed(Exception):
    """The submitter's progress handler raised: the job fails with that error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class Attempts:
    """What running a job needs from its pool."""

    processes: WorkerProcesses
    respawn: Callable[[int], Awaitable[Worker | None]]
    """A fresh worker for a slot, or None when the slot is down."""
    closing: asyncio.Event
    counters: dict[str, int]
    job_timeout_s: float
    max_attempts: int

    async def run(self, slot: int, worker: Worker, job: Job) -> Worker | None:
        """Run ``job`` to an outcome (retrying on crashes); return the slot's live worker."""
        while True:
            if job.future.done():  # withdrawn while its worker was being respawned
                return worker
            job.attempts += 1
            outcome, exitcode = await self.attempt(worker, job)
            if outcome == "done":
                return worker
            if outcome == "killed":  # timed out or withdrawn: a fresh worker for the next job
                return await self.respawn(slot)
            self.counters["crashes"] += 1
            job.log.warning(
                "worker_crashed",
                slot=slot,
                pid=worker.pid,
                attempt=job.attempts,
                exit=describe_exit(exitcode),
            )
            crash = WorkerCrashed(
                f"worker crashed running the job ({job.attempts} of "
                f"{self.max_attempts} attempts; last: {describe_exit(exitcode)})",
                attempts=job.attempts,
                **exit_detail(exitcode),
            )
            action = disposition(
                crash, attempt=job.attempts, max_attempts=self.max_attempts, in_pool=True
            )
            if action is not Action.retry or self.closing.is_set():
                job.fail(crash, self.counters)
                return await self.respawn(slot)
            replacement = await self.respawn(slot)
            if replacement is None:
                job.fail(
                    WorkerCrashed(
                        f"worker crashed ({describe_exit(exitcode)}) and could not be "
                        f"restarted to retry the job",
                        attempts=job.attempts,
                        **exit_detail(exitcode),
                    ),
                    self.counters,
                )
                return None
            self.counters["retries"] += 1
            worker = replacement

    async def attempt(self, worker: Worker, job: Job) -> tuple[Outcome, int | None]:
        """One try of ``job`` on ``worker``; settles the job's future unless it crashed."""
        worker.busy = True
        started = time.monotonic()
        send: asyncio.Future[None] | None = None
        reply: asyncio.Future[Any] | None = None
        try:
            send = asyncio.ensure_future(
                worker.channel.write(("job", job.id, job.payload, job.context))
            )
            reply = asyncio.ensure_future(_exchange(send, worker, job))
            done, _ = await asyncio.wait(
                {reply, worker.exited, job.future},
                timeout=self.job_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reply in done and isinstance(reply.exception(), _BadReply):
                error = ProcessingFailed(f"worker reply cannot be unpickled: {reply.exception()}")
                job.log.error("job_bad_reply", slot=worker.slot, error=str(error))
                job.fail(error, self.counters)
                return "done", None
            if reply in done and isinstance(reply.exception(), _ProgressFailed):
                failure = reply.exception()
                assert isinstance(failure, _ProgressFailed)
                job.log.warning("job_progress_failed", slot=worker.slot, error=str(failure))
                job.fail(failure.error, self.counters)
                worker.kill()  # it waits for an acknowledgement that never comes
                await self.processes.reap(worker)
                return "killed", None
            if reply in done and reply.exception() is None:
                message = reply.result()
                if message[0] == "result":
                    job.succeed(message[2], self.counters)
                    job.log.info(
                        "job_done",
                        slot=worker.slot,
                        attempt=job.attempts,
                        job_s=round(message[3], 3),
                        wait_s=round(started - job.enqueued_at, 3),
                    )
                else:
                    error = rebuild_error(message[2])
                    job.log.info("job_failed", slot=worker.slot, error=str(error))
                    job.fail(error, self.counters)
                return "done", None
            if reply in done or worker.exited in done:
                worker.kill()  # take any helpers it spawned down with it
                return "crashed", await self.processes.reap(worker)
            if job.future in done:
                job.log.info("job_cancelled", slot=worker.slot, pid=worker.pid)
            else:
                self.counters["timeouts"] += 1
                job.log.warning("job_timeout", slot=worker.slot, timeout_s=self.job_timeout_s)
                job.fail(
                    JobTimeout(
                        f"job ran over {self.job_timeout_s:g} s; its worker was killed",
                        timeout_s=self.job_timeout_s,
                    ),
                    self.counters,
                    count=False,
                )
            worker.kill()
            await self.processes.reap(worker)
            return "killed", None
        finally:
            worker.busy = False
            for task in (send, reply):
                discard(task)


async def _exchange(send: asyncio.Future[None], worker: Worker, job: Job) -> Any:
    """The worker's final reply to the job being sent, relaying its progress reports on the
    way (each acknowledged once the submitter handled it); ``_BadReply`` when a frame does
    not unpickle."""
    await send
    while True:
        try:
            message = await worker.channel.read()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            raise
        except Exception as exc:
            raise _BadReply(f"{type(exc).__name__}: {exc}") from exc
        if message[0] != "progress":
            return message
        try:
            await job.progress(message[2])
        except Exception as exc:
            raise _ProgressFailed(exc) from exc
        await worker.channel.write(("progress_ack", message[1]))
