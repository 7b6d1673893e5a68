"""The worker pool: heavy pipeline work in separate processes, off the service's event loop.

Why processes and not threads: model inference and mesh work hold the GIL for seconds and
can crash the interpreter (segfaults in native code, the OOM killer); aiokafka's heartbeat
runs on the event loop and must keep flowing. So each worker is a process that loads its
models once and then runs one job at a time.

How it fits together::

    submit(job) ──► ClosableQueue (bounded: backpressure) ──► slot task i ──► worker process i
         ▲                                                        │  socketpair, framed pickles
         └──────────── result / typed error / progress ◄──────────┘

This module is the pool's surface and its slots (one asyncio task per slot owns one worker
process: take the next job, run it, respawn the worker when it dies). The parts:

    process.py    spawning, stopping and reaping worker processes (``PoolTuning``)
    attempts.py   one job on one slot: attempts, timeout, crash -> retry or ``WorkerCrashed``
    placement.py  how many workers, which GPU and how many threads each (decided once)
    inline.py     ``workers=0``: the same queue and errors in this process (``sculpt make``)
    progress.py   stage ends reported from inside a job to the submitter
    _child.py     the worker process's main loop; _wire.py its framing and error records
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

from sculptsvc.errors import (
    PoolClosed,
    ProcessingFailed,
    SculptError,
    WorkerCrashed,
    WorkerStartFailed,
)
from sculptsvc.settings import Settings
from sculptsvc.workers._job import COUNTERS, Job, OnProgress, log, log_context
from sculptsvc.workers._queue import ClosableQueue
from sculptsvc.workers._wire import PICKLE_PROTOCOL
from sculptsvc.workers.attempts import Attempts
from sculptsvc.workers.inline import InlineSlot
from sculptsvc.workers.placement import Placement, plan_workers
from sculptsvc.workers.process import PoolTuning, Worker, WorkerProcesses, describe_exit

State = TypeVar("State")
JobT = TypeVar("JobT")
Result = TypeVar("Result")


class WorkerPool(Generic[State, JobT, Result]):
    """N worker processes running ``job_fn(state, job)`` with ``state = init_fn()`` per worker.

    ``job_fn`` and ``init_fn`` must be importable top-level functions; jobs and results must
    pickle. ``queue_size`` (0: same as ``workers``) bounds jobs waiting for a worker: beyond
    it, ``submit`` waits, so in-flight work is bounded by ``workers + queue_size``.
    ``worker_env`` gives each worker extra environment variables (e.g. its
    ``CUDA_VISIBLE_DEVICES``), applied before ``init_fn``/``job_fn`` are imported.
    ``workers=0`` runs jobs in this process (``inline.py``).
    """

    def __init__(
        self,
        job_fn: Callable[[State, JobT], Result],
        init_fn: Callable[[], State],
        workers: int,
        queue_size: int = 0,
        job_timeout_s: float = Settings.model_fields["job_timeout_s"].default,
        max_attempts: int = Settings.model_fields["max_attempts"].default,
        *,
        worker_env: Sequence[Mapping[str, str]] | None = None,
        close_timeout_s: float | None = None,
        log_level: str = "INFO",
        log_format: Literal["json", "console"] = "json",
        tuning: PoolTuning | None = None,
        name: str = "sculpt-worker",
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = in-process), got {workers}")
        if queue_size < 0:
            raise ValueError(f"queue_size must be >= 0, got {queue_size}")
        if job_timeout_s <= 0:
            raise ValueError(f"job_timeout_s must be > 0, got {job_timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        if worker_env is not None and len(worker_env) != workers:
            raise ValueError(f"worker_env has {len(worker_env)} entries for {workers} workers")
        self.inline = workers == 0
        self.workers = workers
        self.queue_size = queue_size or max(workers, 1)
        self.job_timeout_s = job_timeout_s
        self.max_attempts = max_attempts
        self.close_timeout_s = job_timeout_s if close_timeout_s is None else close_timeout_s
        self.tuning = tuning or PoolTuning()
        self.name = name
        self._job_fn = job_fn
        self._init_fn = init_fn
        self._processes: WorkerProcesses | None = (
            None
            if self.inline
            else WorkerProcesses(
                job_fn,
                init_fn,
                worker_env or [{}] * workers,
                log_level=log_level,
                log_format=log_format,
                tuning=self.tuning,
                name=name,
            )
        )
        self._queue: ClosableQueue[Job] = ClosableQueue(self.queue_size)
        self._slots: list[Worker | None] = [None] * workers
        self._slots_down: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._inline: InlineSlot | None = None
        self._ids = itertools.count(1)
        self._phase: Literal["new", "starting", "running", "closing", "closed"] = "new"
        self._closing = asyncio.Event()
        self._closed = asyncio.Event()
        self._start_done = asyncio.Event()
        self._atexit_registered = False
        self._counters = dict.fromkeys(COUNTERS, 0)

    @classmethod
    def from_settings(
        cls,
        job_fn: Callable[[State, JobT], Result],
        init_fn: Callable[[], State],
        settings: Settings,
        *,
        placement: Placement | None = None,
        inline: bool = False,
        tuning: PoolTuning | None = None,
    ) -> WorkerPool[State, JobT, Result]:
        """The service's pool, shaped by ``placement`` (one worker per GPU, else
        ``settings.workers`` CPU workers; computed here when not given).

        ``inline=True`` (``sculpt make``, debugging) runs jobs in this process instead.
        """
        if inline:
            placement = Placement(workers=0)
        elif placement is None:
            placement = plan_workers(settings)
        log.info("pool_placement", workers=placement.workers, gpus=placement.gpus)
        return cls(
            job_fn,
            init_fn,
            workers=placement.workers,
            queue_size=settings.job_queue_size,
            job_timeout_s=settings.job_timeout_s,
            max_attempts=settings.max_attempts,
            worker_env=placement.env or None,
            close_timeout_s=settings.graceful_timeout_s,
            log_level=settings.log_level,
            log_format=settings.log_format,
            tuning=tuning or PoolTuning(start_timeout_s=settings.worker_start_timeout_s),
        )

    # --- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> WorkerPool[State, JobT, Result]:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Leaving on an error (or cancellation) is a crash path: do not wait for running jobs.
        await self.close(None if exc is None else 0.0)

    async def start(self) -> None:
        """Start every worker and wait until each has finished ``init_fn``.

        Raises the init error itself when it is a ``SculptError`` (e.g. ``ModelUnavailable``),
        otherwise ``WorkerStartFailed``; no worker is left running in either case.
        """
        if self._phase != "new":
            raise RuntimeError(f"pool already {self._phase}")
        self._phase = "starting"
        try:
            await self._start()
        finally:
            self._start_done.set()

    async def _start(self) -> None:
        started = time.monotonic()
        if self._processes is None:
            await self._start_inline()
        else:
            await self._start_processes(self._processes)
        self._phase = "running"
        log.info(
            "pool_started",
            mode="inline" if self.inline else "process",
            workers=self.workers,
            queue_size=self.queue_size,
            seconds=round(time.monotonic() - started, 3),
        )

    async def _start_inline(self) -> None:
        try:
            # In the caller's thread, not a helper thread: native libraries the init loads
            # (pymeshlab's Qt) must be loaded by the thread that ends the process.
            state = self._init_fn()
        except SculptError:
            self._phase = "closed"
            raise
        except Exception as exc:
            self._phase = "closed"
            raise WorkerStartFailed(
                f"in-process init failed: {type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
            ) from exc
        self._inline = InlineSlot(
            self._job_fn, state, self._queue, self._counters, self.job_timeout_s
        )
        self._tasks = [asyncio.create_task(self._inline.main(), name=f"{self.name}-inline")]

    async def _start_processes(self, processes: WorkerProcesses) -> None:
        spawns = [
            asyncio.create_task(processes.spawn(slot), name=f"{self.name}-{slot}-start")
            for slot in range(self.workers)
        ]
        try:
            done, _ = await asyncio.wait(spawns, return_when=asyncio.FIRST_EXCEPTION)
            failure = next((t.exception() for t in done if t.exception() is not None), None)
            if failure is not None:
                raise failure
        except BaseException:  # one worker failed, or start() itself was cancelled
            for task in spawns:
                task.cancel()
            await asyncio.shield(self._abort_start(processes, spawns))
            self._phase = "closed"
            raise
        self._slots = [t.result() for t in spawns]
        atexit.register(self._kill_all_now)
        self._atexit_registered = True
        attempts = Attempts(
            processes,
            self._respawn,
            self._closing,
            self._counters,
            self.job_timeout_s,
            self.max_attempts,
        )
        self._tasks = [
            asyncio.create_task(self._slot_main(slot, attempts), name=f"{self.name}-{slot}")
            for slot in range(self.workers)
        ]

    @staticmethod
    async def _abort_start(processes: WorkerProcesses, spawns: list[asyncio.Task[Worker]]) -> None:
        """Wait for cancelled spawns to clean up; stop the workers that did start."""
        await asyncio.gather(*spawns, return_exceptions=True)
        started = [t.result() for t in spawns if not t.cancelled() and t.exception() is None]
        await asyncio.gather(*(processes.stop(w) for w in started))

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs; let running ones finish for up to ``timeout`` s, then kill them.

        Jobs still queued fail at once with ``PoolClosed`` (transient: the order is
        redelivered after restart); jobs still running at the deadline fail with it too.
        Returns after every worker process has exited and been reaped.
        """
        if self._phase in ("new", "closed"):
            self._phase = "closed"
            return
        if self._phase == "closing":
            await self._closed.wait()
            return
        if self._phase == "starting":  # let start() finish (or fail), then stop what it made
            self._closing.set()
            await self._start_done.wait()
            if self._phase == "closed":
                return
        self._phase = "closing"
        self._closing.set()
        timeout = self.close_timeout_s if timeout is None else timeout
        for job in self._queue.close(lambda: PoolClosed("worker pool is shutting down")):
            job.fail(PoolClosed("worker pool shut down before the job started"), self._counters)
        busy = self.stats()["busy"]
        log.info("pool_closing", running=busy, timeout_s=timeout)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._processes is not None:
            # Slots stop their own workers; this only catches one a failed slot left behind.
            await asyncio.gather(*(self._processes.stop(w) for w in self._slots if w is not None))
        self._slots = [None] * self.workers
        if self._atexit_registered:
            atexit.unregister(self._kill_all_now)
            self._atexit_registered = False
        self._phase = "closed"
        self._closed.set()
        log.info("pool_closed", **self._counters)

    def _kill_all_now(self) -> None:
        """Last resort at interpreter exit when ``close()`` was never awaited."""
        if self._processes is not None:
            for worker in self._slots:
                if worker is not None:
                    self._processes.kill_now(worker)

    # --- submitting ---------------------------------------------------------------------------

    async def enqueue(
        self, job: JobT, *, key: str | None = None, on_progress: OnProgress | None = None
    ) -> asyncio.Future[Result]:
        """Queue ``job`` (waiting while the queue is full) and return the future of its result.

        ``key`` labels log lines; the caller's structlog context (``bound_order``) is bound
        in the pool's and the worker's log lines for this job as well. ``on_progress`` is
        awaited with each event the job reports (the job waits for it). Cancelling the
        future withdraws a queued job, or kills and respawns the worker running it.
        """
        if self._phase != "running":
            if self._phase == "closing" or self._phase == "closed":
                raise PoolClosed("worker pool is shut down")
            raise RuntimeError("worker pool not started: use `async with pool:` or start()")
        if len(self._slots_down) == self.workers and not self.inline:
            raise WorkerCrashed("no worker can be started", slots_down=sorted(self._slots_down))
        payload: Any = job
        if not self.inline:
            try:
                payload = pickle.dumps(job, protocol=PICKLE_PROTOCOL)
            except Exception as exc:
                raise ProcessingFailed(
                    f"job cannot be pickled: {type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                ) from exc
        loop = asyncio.get_running_loop()
        entry = Job(next(self._ids), payload, loop.create_future(), log_context(key), on_progress)
        entry.future.add_done_callback(lambda _: self._queue.remove(entry))
        await self._queue.put(entry)
        self._counters["submitted"] += 1
        return entry.future

    async def submit(
        self, job: JobT, *, key: str | None = None, on_progress: OnProgress | None = None
    ) -> Result:
        """Run ``job`` on a worker and return its result (errors: see ``attempts.py``).

        Waits first while ``queue_size`` jobs are already waiting: that is the backpressure.
        """
        future = await self.enqueue(job, key=key, on_progress=on_progress)
        return await future

    # --- observing ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Gauges and counters for /metrics and /ready."""
        live = [w for w in self._slots if w is not None and not w.exited.done()]
        if self.inline:
            alive = int(self._phase == "running")
            busy = int(self._inline is not None and self._inline.busy)
        else:
            alive = len(live)
            busy = sum(w.busy for w in live)
        return {
            "mode": "inline" if self.inline else "process",
            "phase": self._phase,
            "workers": self.workers,
            "alive": alive,
            "busy": busy,
            "idle": alive - busy,
            "queued": len(self._queue),
            "waiting": self._queue.waiting_putters,
            "slots_down": len(self._slots_down),
            "pids": [w.pid for w in live],
            **self._counters,
        }

    @property
    def healthy(self) -> bool:
        """Running with every worker slot able to start a worker (for /health)."""
        return self._phase == "running" and not self._slots_down

    # --- slots --------------------------------------------------------------------------------

    async def _respawn(self, slot: int) -> Worker | None:
        """A fresh worker for ``slot``, retrying with backoff; ``None`` when the slot is down."""
        assert self._processes is not None
        delay = self.tuning.respawn_backoff_s
        for attempt in range(1, self.max_attempts + 1):
            if self._closing.is_set():
                return None
            try:
                worker = await self._processes.spawn(slot)
            except SculptError as exc:
                log.error("worker_respawn_failed", slot=slot, attempt=attempt, error=str(exc))
                if attempt < self.max_attempts:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._closing.wait(), delay)
                    delay = min(delay * 2, self.tuning.respawn_backoff_max_s)
                continue
            self._counters["respawns"] += 1
            self._slots[slot] = worker
            return worker
        self._slots[slot] = None
        self._slots_down.add(slot)
        log.error("worker_slot_down", slot=slot, attempts=self.max_attempts)
        if len(self._slots_down) == self.workers:
            error = "no worker can be started: every slot failed to respawn"
            for job in self._queue.close(lambda: WorkerCrashed(error)):
                job.fail(WorkerCrashed(error), self._counters)
        return None

    async def _slot_main(self, slot: int, attempts: Attempts) -> None:
        """Own worker ``slot``: take jobs one by one, respawning the worker when it dies."""
        assert self._processes is not None
        worker = self._slots[slot]
        job: Job | None = None
        try:
            while True:
                if worker is None or worker.exited.done():
                    if worker is not None:
                        await self._processes.reap(worker)
                        log.warning(
                            "worker_died_idle",
                            slot=slot,
                            pid=worker.pid,
                            exit=describe_exit(worker.exited.result()),
                        )
                    worker = await self._respawn(slot)
                    if worker is None:
                        return
                getter = asyncio.ensure_future(self._queue.get())
                try:
                    await asyncio.wait({getter, worker.exited}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    if not getter.done():
                        getter.cancel()
                if not getter.done() or getter.cancelled():
                    continue  # the worker died while idle: respawn, then take a job
                job = getter.result()
                if job is None:
                    return  # closed
                if job.future.done():
                    job = None
                    continue  # withdrawn while queued
                if worker.exited.done():  # died in the same instant: not the job's fault
                    await self._processes.reap(worker)
                    worker = await self._respawn(slot)
                    if worker is None:
                        job.fail(
                            WorkerCrashed("worker died and could not be restarted"),
                            self._counters,
                        )
                        return
                worker = await attempts.run(slot, worker, job)
                job = None
                if worker is None:
                    return
        except asyncio.CancelledError:
            if job is not None:
                job.fail(
                    PoolClosed("worker pool shut down while the job was running"), self._counters
                )
            for victim in {worker, self._slots[slot]} - {None}:
                victim.kill()
            raise
        finally:
            # ``attempts.run`` may have respawned: the slot's current worker is the one to stop.
            leftovers = {worker, self._slots[slot]} - {None}
            self._slots[slot] = None
            await asyncio.shield(asyncio.gather(*(self._processes.stop(w) for w in leftovers)))


__all__ = ["PoolTuning", "WorkerPool", "describe_exit"]
