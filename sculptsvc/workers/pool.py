"""The worker pool: heavy pipeline work in separate processes, off the service's event loop.

Why processes and not threads: model inference and mesh work hold the GIL for seconds and
can crash the interpreter (segfaults in native code, the OOM killer); aiokafka's heartbeat
runs on the event loop and must keep flowing. So each worker is a ``spawn``-ed process (fork
after torch/CUDA is unsafe) that loads its models once and then runs one job at a time.

How it fits together::

    submit(job) ──► ClosableQueue (bounded: backpressure) ──► slot task i ──► worker process i
         ▲                                                        │  socketpair, framed pickles
         └──────────── result / typed error ◄─────────────────────┘

One asyncio task per slot owns one worker process. It takes the next job, writes it to the
worker's socket and waits (without blocking the loop) for whichever comes first: the reply,
the worker's exit, the job timeout, or the caller cancelling. Then:

- reply -> result, or the job's typed error rebuilt in the caller (see ``_wire``);
- worker exit (segfault, ``kill -9``, OOM) -> respawn, retry up to ``max_attempts`` attempts,
  then :class:`~sculptsvc.errors.WorkerCrashed`;
- timeout -> kill the worker (its whole process group), respawn, raise ``JobTimeout``;
- caller cancelled -> kill and respawn (the worker holds no other job: nothing else is lost).

``workers=0`` runs the same ``init_fn``/``job_fn`` in the caller's process through
``asyncio.to_thread``, one job at a time: for tests, ``sculpt make`` and debugging.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import multiprocessing
import os
import pickle
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar

import structlog

from sculptsvc.errors import (
    JobTimeout,
    PoolClosed,
    ProcessingFailed,
    SculptError,
    WorkerCrashed,
    WorkerStartFailed,
)
from sculptsvc.logging import get_logger
from sculptsvc.settings import Settings
from sculptsvc.workers._child import ChildConfig, worker_main
from sculptsvc.workers._queue import ClosableQueue
from sculptsvc.workers._wire import (
    PICKLE_PROTOCOL,
    RemoteError,
    qualified_name,
    read_message,
    rebuild_error,
    unknown_error,
    write_message,
)
from sculptsvc.workers.placement import Placement, plan_workers

State = TypeVar("State")
Job = TypeVar("Job")
Result = TypeVar("Result")

log = get_logger("sculptsvc.workers")


@dataclass(frozen=True)
class PoolTuning:
    """Timings of the pool's own housekeeping (the job timeout is a constructor argument)."""

    start_timeout_s: float = 900.0
    """Longest a worker may take to start and run ``init_fn`` (model loading)."""
    stop_grace_s: float = 5.0
    """How long an idle worker gets to exit after being told to stop, before SIGKILL."""
    kill_wait_s: float = 10.0
    """How long to wait for a SIGKILLed worker to be reaped before giving up on it."""
    respawn_backoff_s: float = 1.0
    """Delay after a failed respawn; doubles on each consecutive failure."""
    respawn_backoff_max_s: float = 30.0
    parent_poll_s: float = 1.0
    """How often a worker checks that the service is alive (it exits when orphaned)."""


def describe_exit(exitcode: int | None) -> str:
    """Human words for a ``multiprocessing`` exit code (negative = killed by that signal)."""
    if exitcode is None:
        return "exit status unknown"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


def _exit_detail(exitcode: int | None) -> dict[str, Any]:
    sig: str | None = None
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = str(-exitcode)
    return {"exitcode": exitcode, "signal": sig}


def _discard(task: asyncio.Future[Any] | None) -> None:
    """Cancel a helper task we no longer wait for, or mark its exception as seen."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _run_bound(
    job_fn: Callable[[Any, Any], Any], state: Any, job: Any, context: dict[str, Any]
) -> Any:
    """In-process mode: run the job with the submitter's log context, as a worker would."""
    with structlog.contextvars.bound_contextvars(**context):
        return job_fn(state, job)


def _pickle_callable(fn: Callable[..., Any], role: str) -> bytes:
    """Pickle by reference now, so a lambda or nested function fails at construction."""
    try:
        return pickle.dumps(fn, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"{role} must be an importable top-level function (workers are spawned and "
            f"import it by name); got {fn!r}: {exc}"
        ) from exc


class _BadReply(Exception):
    """A complete reply frame that does not unpickle (e.g. a class missing in the parent)."""


@dataclass(eq=False)
class _Job:
    id: int
    payload: Any
    """Pickled job (bytes) in process mode; the job object itself in inline mode."""
    future: asyncio.Future[Any]
    context: dict[str, Any]
    """The submitter's structlog context (e.g. ``order_id``), bound in the worker's logs too."""
    attempts: int = 0
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def log(self) -> Any:
        return log.bind(**self.context)


def _log_context(key: str | None) -> dict[str, Any]:
    """Plain-valued structlog contextvars of the caller, plus ``key`` when given."""
    context = {
        name: value
        for name, value in structlog.contextvars.get_contextvars().items()
        if isinstance(value, str | int | float | bool)
    }
    if key is not None:
        context["key"] = key
    return context


@dataclass(eq=False)
class _Worker:
    """One live worker process and the parent's end of its socket."""

    slot: int
    pid: int
    process: BaseProcess
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    exited: asyncio.Future[int | None]
    """Resolves with the exit code once the process has ended and been reaped."""
    busy: bool = False

    def kill(self) -> None:
        """SIGKILL the worker's process group (it leads one) so helpers it started die too."""
        if self.exited.done():
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, ValueError):
            self.process.kill()

    def close_transport(self) -> None:
        self.writer.close()


class WorkerPool(Generic[State, Job, Result]):
    """N worker processes running ``job_fn(state, job)`` with ``state = init_fn()`` per worker.

    ``job_fn`` and ``init_fn`` must be importable top-level functions; jobs and results must
    pickle. ``queue_size`` (0: same as ``workers``) bounds jobs waiting for a worker: beyond
    it, ``submit`` waits, so in-flight work is bounded by ``workers + queue_size``.
    ``worker_env`` gives each worker extra environment variables (e.g. its
    ``CUDA_VISIBLE_DEVICES``), applied before ``init_fn``/``job_fn`` are imported.
    """

    def __init__(
        self,
        job_fn: Callable[[State, Job], Result],
        init_fn: Callable[[], State],
        workers: int,
        queue_size: int = 0,
        job_timeout_s: float = 600.0,
        max_attempts: int = 3,
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
        self._job_fn_bytes = b"" if self.inline else _pickle_callable(job_fn, "job_fn")
        self._init_fn_bytes = b"" if self.inline else _pickle_callable(init_fn, "init_fn")
        self._worker_env = [dict(e) for e in worker_env] if worker_env else [{}] * workers
        self._log_level = log_level
        self._log_format = log_format
        self._ctx = multiprocessing.get_context("spawn")

        self._queue: ClosableQueue[_Job] = ClosableQueue(self.queue_size)
        self._slots: list[_Worker | None] = [None] * workers
        self._slots_down: set[int] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._inline_state: Any = None
        self._ids = itertools.count(1)
        self._phase: Literal["new", "starting", "running", "closing", "closed"] = "new"
        self._closing = asyncio.Event()
        self._closed = asyncio.Event()
        self._start_done = asyncio.Event()
        self._atexit_registered = False
        self._inline_busy = False
        self._counters = dict.fromkeys(
            ("submitted", "completed", "failed", "timeouts", "crashes", "retries", "respawns"), 0
        )

    @classmethod
    def from_settings(
        cls,
        job_fn: Callable[[State, Job], Result],
        init_fn: Callable[[], State],
        settings: Settings,
        *,
        inline: bool = False,
        tuning: PoolTuning | None = None,
    ) -> WorkerPool[State, Job, Result]:
        """The service's pool: one worker per GPU, else ``settings.workers`` CPU workers.

        ``inline=True`` (``sculpt make``, debugging) runs jobs in this process instead.
        """
        placement = Placement(workers=0) if inline else plan_workers(settings)
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
            tuning=tuning,
        )

    # --- life cycle ---------------------------------------------------------------------------

    async def __aenter__(self) -> WorkerPool[State, Job, Result]:
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
        if self.inline:
            try:
                self._inline_state = await asyncio.to_thread(self._init_fn)
            except SculptError:
                self._phase = "closed"
                raise
            except Exception as exc:
                self._phase = "closed"
                raise WorkerStartFailed(
                    f"in-process init failed: {type(exc).__name__}: {exc}",
                    error_type=type(exc).__name__,
                ) from exc
            self._tasks = [asyncio.create_task(self._inline_slot(), name=f"{self.name}-inline")]
        else:
            spawns = [
                asyncio.create_task(self._spawn(slot), name=f"{self.name}-{slot}-start")
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
                await asyncio.shield(self._abort_start(spawns))
                self._phase = "closed"
                raise
            self._slots = [t.result() for t in spawns]
            atexit.register(self._kill_all_now)
            self._atexit_registered = True
            self._tasks = [
                asyncio.create_task(self._slot_main(slot), name=f"{self.name}-{slot}")
                for slot in range(self.workers)
            ]
        self._phase = "running"
        log.info(
            "pool_started",
            mode="inline" if self.inline else "process",
            workers=self.workers,
            queue_size=self.queue_size,
            seconds=round(time.monotonic() - started, 3),
        )

    async def _abort_start(self, spawns: list[asyncio.Task[_Worker]]) -> None:
        """Wait for cancelled spawns to clean up; stop the workers that did start."""
        await asyncio.gather(*spawns, return_exceptions=True)
        started = [t.result() for t in spawns if not t.cancelled() and t.exception() is None]
        await asyncio.gather(*(self._stop_worker(w) for w in started))

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
            self._fail(job, PoolClosed("worker pool shut down before the job started"))
        busy = self.stats()["busy"]
        log.info("pool_closing", running=busy, timeout_s=timeout)
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        # Slots stop their own workers; this only catches one a failed slot left behind.
        await asyncio.gather(*(self._stop_worker(w) for w in self._slots if w is not None))
        self._slots = [None] * self.workers
        if self._atexit_registered:
            atexit.unregister(self._kill_all_now)
            self._atexit_registered = False
        self._phase = "closed"
        self._closed.set()
        log.info("pool_closed", **self._counters)

    def _kill_all_now(self) -> None:
        """Last resort at interpreter exit when ``close()`` was never awaited."""
        for worker in self._slots:
            if worker is not None and not worker.exited.done():
                worker.kill()
                worker.process.join(self.tuning.kill_wait_s)

    # --- submitting ---------------------------------------------------------------------------

    async def enqueue(self, job: Job, *, key: str | None = None) -> asyncio.Future[Result]:
        """Queue ``job`` (waiting while the queue is full) and return the future of its result.

        ``key`` labels log lines; the caller's structlog context (``bound_order``) is bound
        in the pool's and the worker's log lines for this job as well. Cancelling the future
        withdraws a queued job, or kills and respawns the worker running it.
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
        entry = _Job(next(self._ids), payload, loop.create_future(), _log_context(key))
        entry.future.add_done_callback(lambda _: self._queue.remove(entry))
        await self._queue.put(entry)
        self._counters["submitted"] += 1
        return entry.future

    async def submit(self, job: Job, *, key: str | None = None) -> Result:
        """Run ``job`` on a worker and return its result (see the module docstring for errors).

        Waits first while ``queue_size`` jobs are already waiting: that is the backpressure.
        """
        future = await self.enqueue(job, key=key)
        return await future

    # --- observing ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Gauges and counters for /metrics and /ready."""
        live = [w for w in self._slots if w is not None and not w.exited.done()]
        if self.inline:
            alive = int(self._phase == "running")
            busy = int(self._inline_busy)
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

    # --- process mode -------------------------------------------------------------------------

    async def _spawn(self, slot: int) -> _Worker:
        """Start worker ``slot`` and wait until its ``init_fn`` returned."""
        loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair()
        config = ChildConfig(
            slot=slot,
            init_fn=self._init_fn_bytes,
            job_fn=self._job_fn_bytes,
            env=self._worker_env[slot],
            log_level=self._log_level,
            log_format=self._log_format,
            parent_poll_s=self.tuning.parent_poll_s,
        )
        process = self._ctx.Process(
            target=worker_main, args=(child_sock, config), name=f"{self.name}-{slot}"
        )
        try:
            process.start()  # fork+exec and a small pipe write: milliseconds
        finally:
            child_sock.close()
        reader, writer = await asyncio.open_unix_connection(sock=parent_sock)
        exited: asyncio.Future[int | None] = loop.create_future()

        def on_exit() -> None:
            loop.remove_reader(process.sentinel)
            process.join()  # the sentinel fired: the process has ended, reaping is immediate
            if not exited.done():
                exited.set_result(process.exitcode)
            process.close()  # release its file descriptors now, not at garbage collection

        loop.add_reader(process.sentinel, on_exit)
        assert process.pid is not None  # started above
        worker = _Worker(slot, process.pid, process, reader, writer, exited)
        started = time.monotonic()
        try:
            message = await self._await_ready(worker)
            if message[0] == "init_error":
                await self._stop_worker(worker)
                raise self._init_error(slot, message[1])
        except BaseException:
            # Cancelled (another worker failed first) or failed: never leave it running.
            worker.kill()
            await asyncio.shield(self._reap(worker))
            raise
        log.info(
            "worker_ready",
            slot=slot,
            pid=worker.pid,
            init_s=round(message[2], 3),
            start_s=round(time.monotonic() - started, 3),
        )
        return worker

    @staticmethod
    def _init_error(slot: int, remote: RemoteError) -> SculptError:
        """The error ``start()`` raises: the typed one itself, else ``WorkerStartFailed``."""
        error = rebuild_error(remote)
        log.error("worker_init_failed", slot=slot, error=str(error))
        if remote.typed:
            return error
        failed = WorkerStartFailed(
            f"worker {slot} failed to initialise: {error.message}", slot=slot, **error.detail
        )
        failed.__cause__ = error.__cause__
        return failed

    async def _await_ready(self, worker: _Worker) -> tuple[Any, ...]:
        reply = asyncio.ensure_future(read_message(worker.reader))
        try:
            done, _ = await asyncio.wait(
                {reply, worker.exited},
                timeout=self.tuning.start_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            _discard(reply)
        if reply in done and reply.exception() is None:
            return reply.result()
        if not done:
            raise WorkerStartFailed(
                f"worker {worker.slot} did not finish init within "
                f"{self.tuning.start_timeout_s:g} s",
                slot=worker.slot,
            )
        exitcode = await self._reap(worker)
        raise WorkerStartFailed(
            f"worker {worker.slot} (pid {worker.pid}) died during start-up: "
            f"{describe_exit(exitcode)}",
            slot=worker.slot,
            **_exit_detail(exitcode),
        )

    async def _reap(self, worker: _Worker) -> int | None:
        """Wait for the worker's exit (it was killed or died); close its socket."""
        worker.close_transport()
        try:
            return await asyncio.wait_for(asyncio.shield(worker.exited), self.tuning.kill_wait_s)
        except TimeoutError:
            # The sentinel stays open while a grandchild holds it; poll the process instead.
            if not worker.exited.done() and not worker.process.is_alive():
                worker.exited.set_result(worker.process.exitcode)
                return worker.process.exitcode
            log.error("worker_unreaped", slot=worker.slot, pid=worker.pid)
            return None

    async def _stop_worker(self, worker: _Worker) -> None:
        """Ask an idle worker to exit; SIGKILL it after the grace period (or if cancelled)."""
        try:
            if not worker.exited.done():
                with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                    await asyncio.wait_for(
                        write_message(worker.writer, ("stop",)), self.tuning.stop_grace_s
                    )
                worker.close_transport()
                try:
                    await asyncio.wait_for(asyncio.shield(worker.exited), self.tuning.stop_grace_s)
                except TimeoutError:
                    log.warning("worker_stop_timeout", slot=worker.slot, pid=worker.pid)
                    worker.kill()
        except asyncio.CancelledError:
            worker.kill()
            await asyncio.shield(self._reap(worker))
            raise
        await self._reap(worker)

    async def _respawn(self, slot: int) -> _Worker | None:
        """A fresh worker for ``slot``, retrying with backoff; ``None`` when the slot is down."""
        delay = self.tuning.respawn_backoff_s
        for attempt in range(1, self.max_attempts + 1):
            if self._closing.is_set():
                return None
            try:
                worker = await self._spawn(slot)
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
                self._fail(job, WorkerCrashed(error))
        return None

    async def _slot_main(self, slot: int) -> None:
        """Own worker ``slot``: take jobs one by one, respawning the worker when it dies."""
        worker = self._slots[slot]
        job: _Job | None = None
        try:
            while True:
                if worker is None or worker.exited.done():
                    if worker is not None:
                        await self._reap(worker)
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
                    await self._reap(worker)
                    worker = await self._respawn(slot)
                    if worker is None:
                        self._fail(job, WorkerCrashed("worker died and could not be restarted"))
                        return
                worker = await self._run(slot, worker, job)
                job = None
                if worker is None:
                    return
        except asyncio.CancelledError:
            if job is not None:
                self._fail(job, PoolClosed("worker pool shut down while the job was running"))
            for victim in {worker, self._slots[slot]} - {None}:
                victim.kill()
            raise
        finally:
            # ``_run`` may have respawned: the slot's current worker is the one to stop.
            leftovers = {worker, self._slots[slot]} - {None}
            self._slots[slot] = None
            await asyncio.shield(asyncio.gather(*(self._stop_worker(w) for w in leftovers)))

    async def _run(self, slot: int, worker: _Worker, job: _Job) -> _Worker | None:
        """Run ``job`` to an outcome (retrying on crashes); return the slot's live worker."""
        while True:
            if job.future.done():  # withdrawn while its worker was being respawned
                return worker
            job.attempts += 1
            outcome, exitcode = await self._attempt(worker, job)
            if outcome == "done":
                return worker
            if outcome == "killed":  # timed out or withdrawn: a fresh worker for the next job
                return await self._respawn(slot)
            self._counters["crashes"] += 1
            job.log.warning(
                "worker_crashed",
                slot=slot,
                pid=worker.pid,
                attempt=job.attempts,
                exit=describe_exit(exitcode),
            )
            if job.attempts >= self.max_attempts or self._closing.is_set():
                self._fail(
                    job,
                    WorkerCrashed(
                        f"worker crashed running the job ({job.attempts} of "
                        f"{self.max_attempts} attempts; last: {describe_exit(exitcode)})",
                        attempts=job.attempts,
                        **_exit_detail(exitcode),
                    ),
                )
                return await self._respawn(slot)
            replacement = await self._respawn(slot)
            if replacement is None:
                self._fail(
                    job,
                    WorkerCrashed(
                        f"worker crashed ({describe_exit(exitcode)}) and could not be "
                        f"restarted to retry the job",
                        attempts=job.attempts,
                        **_exit_detail(exitcode),
                    ),
                )
                return None
            self._counters["retries"] += 1
            worker = replacement

    async def _attempt(
        self, worker: _Worker, job: _Job
    ) -> tuple[Literal["done", "crashed", "killed"], int | None]:
        """One try of ``job`` on ``worker``; settles the job's future unless it crashed."""
        worker.busy = True
        started = time.monotonic()
        send: asyncio.Future[None] | None = None
        reply: asyncio.Future[Any] | None = None
        try:
            send = asyncio.ensure_future(
                write_message(worker.writer, ("job", job.id, job.payload, job.context))
            )
            reply = asyncio.ensure_future(self._read_after(send, worker.reader))
            done, _ = await asyncio.wait(
                {reply, worker.exited, job.future},
                timeout=self.job_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if reply in done and isinstance(reply.exception(), _BadReply):
                error = ProcessingFailed(f"worker reply cannot be unpickled: {reply.exception()}")
                job.log.error("job_bad_reply", slot=worker.slot, error=str(error))
                self._fail(job, error)
                return "done", None
            if reply in done and reply.exception() is None:
                message = reply.result()
                if message[0] == "result":
                    self._counters["completed"] += 1
                    if not job.future.done():
                        job.future.set_result(message[2])
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
                    self._fail(job, error)
                return "done", None
            if reply in done or worker.exited in done:
                worker.kill()  # take any helpers it spawned down with it
                return "crashed", await self._reap(worker)
            if job.future in done:
                job.log.info("job_cancelled", slot=worker.slot, pid=worker.pid)
            else:
                self._counters["timeouts"] += 1
                job.log.warning("job_timeout", slot=worker.slot, timeout_s=self.job_timeout_s)
                self._fail(
                    job,
                    JobTimeout(
                        f"job ran over {self.job_timeout_s:g} s; its worker was killed",
                        timeout_s=self.job_timeout_s,
                    ),
                    count=False,
                )
            worker.kill()
            await self._reap(worker)
            return "killed", None
        finally:
            worker.busy = False
            for task in (send, reply):
                _discard(task)

    @staticmethod
    async def _read_after(send: asyncio.Future[None], reader: asyncio.StreamReader) -> Any:
        """The worker's reply to the job being sent; ``_BadReply`` when it does not unpickle."""
        await send
        try:
            return await read_message(reader)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            raise
        except Exception as exc:
            raise _BadReply(f"{type(exc).__name__}: {exc}") from exc

    def _fail(self, job: _Job, error: BaseException, *, count: bool = True) -> None:
        if count:
            self._counters["failed"] += 1
        if not job.future.done():
            job.future.set_exception(error)

    # --- inline mode --------------------------------------------------------------------------

    async def _inline_slot(self) -> None:
        """The single in-process 'worker': same queue, same error mapping, no isolation."""
        job: _Job | None = None
        try:
            while (job := await self._queue.get()) is not None:
                if job.future.done():
                    continue
                self._inline_busy = True
                job.attempts = 1
                run = asyncio.ensure_future(
                    asyncio.to_thread(
                        _run_bound, self._job_fn, self._inline_state, job.payload, job.context
                    )
                )
                done, _ = await asyncio.wait(
                    {run, job.future},
                    timeout=self.job_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if run in done:
                    self._settle_inline(job, run)
                elif job.future not in done:
                    self._counters["timeouts"] += 1
                    self._fail(
                        job,
                        JobTimeout(
                            f"job ran over {self.job_timeout_s:g} s (in-process mode cannot "
                            "kill it; the next job waits for it to end)",
                            timeout_s=self.job_timeout_s,
                        ),
                        count=False,
                    )
                # A thread cannot be killed: keep the slot busy until the job really ends.
                with contextlib.suppress(BaseException):
                    await asyncio.shield(run)
                self._inline_busy = False
                job = None
        except asyncio.CancelledError:
            if job is not None:
                self._fail(job, PoolClosed("worker pool shut down while the job was running"))
            raise
        finally:
            self._inline_busy = False

    def _settle_inline(self, job: _Job, run: asyncio.Future[Any]) -> None:
        exc = run.exception()
        if exc is None:
            self._counters["completed"] += 1
            if not job.future.done():
                job.future.set_result(run.result())
        elif isinstance(exc, SculptError):
            self._fail(job, exc)
        else:
            cls = type(exc)
            error = unknown_error(qualified_name(cls.__module__, cls.__qualname__), str(exc))
            error.__cause__ = exc
            self._fail(job, error)


__all__ = ["PoolTuning", "WorkerPool", "describe_exit"]
