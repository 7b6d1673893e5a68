"""Worker processes: spawning one (and waiting for its models), stopping it, reaping it.

Each worker is a ``spawn``-ed process (fork after torch/CUDA is unsafe) that leads its own
process group, so a SIGKILL also takes down helpers a job started. The parent watches the
process sentinel on its event loop, so an exit (segfault, OOM kill) is noticed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import signal
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from sculptsvc.errors import SculptError, WorkerStartFailed
from sculptsvc.settings import Settings
from sculptsvc.workers._child import ChildConfig, worker_main
from sculptsvc.workers._job import discard, log
from sculptsvc.workers._wire import PICKLE_PROTOCOL, Channel, RemoteError, rebuild_error


@dataclass(frozen=True)
class PoolTuning:
    """Timings of the pool's own housekeeping (the job timeout is a constructor argument)."""

    start_timeout_s: float = Settings.model_fields["worker_start_timeout_s"].default
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


def exit_detail(exitcode: int | None) -> dict[str, Any]:
    sig: str | None = None
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = str(-exitcode)
    return {"exitcode": exitcode, "signal": sig}


def pickle_callable(fn: Callable[..., Any], role: str) -> bytes:
    """Pickle by reference now, so a lambda or nested function fails at construction."""
    try:
        return pickle.dumps(fn, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"{role} must be an importable top-level function (workers are spawned and "
            f"import it by name); got {fn!r}: {exc}"
        ) from exc


@dataclass(eq=False)
class Worker:
    """One live worker process and the parent's end of its socket."""

    slot: int
    pid: int
    process: BaseProcess
    channel: Channel
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
        self.channel.close()


class WorkerProcesses:
    """Starts, stops and reaps the worker processes of one pool."""

    def __init__(
        self,
        job_fn: Callable[..., Any],
        init_fn: Callable[[], Any],
        worker_env: Sequence[Mapping[str, str]],
        *,
        log_level: str,
        log_format: str,
        tuning: PoolTuning,
        name: str,
    ) -> None:
        self._job_fn = pickle_callable(job_fn, "job_fn")
        self._init_fn = pickle_callable(init_fn, "init_fn")
        self._env = [dict(e) for e in worker_env]
        self._log_level = log_level
        self._log_format = log_format
        self.tuning = tuning
        self.name = name
        self._ctx = multiprocessing.get_context("spawn")

    async def spawn(self, slot: int) -> Worker:
        """Start worker ``slot`` and wait until its ``init_fn`` returned."""
        loop = asyncio.get_running_loop()
        parent_sock, child_sock = socket.socketpair()
        config = ChildConfig(
            slot=slot,
            init_fn=self._init_fn,
            job_fn=self._job_fn,
            env=self._env[slot],
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
        channel = await Channel.connect(parent_sock)
        exited: asyncio.Future[int | None] = loop.create_future()

        def on_exit() -> None:
            loop.remove_reader(process.sentinel)
            process.join()  # the sentinel fired: the process has ended, reaping is immediate
            if not exited.done():
                exited.set_result(process.exitcode)
            process.close()  # release its file descriptors now, not at garbage collection

        loop.add_reader(process.sentinel, on_exit)
        assert process.pid is not None  # started above
        worker = Worker(slot, process.pid, process, channel, exited)
        started = time.monotonic()
        try:
            message = await self._await_ready(worker)
            if message[0] == "init_error":
                await self.stop(worker)
                raise self._init_error(slot, message[1])
        except BaseException:
            # Cancelled (another worker failed first) or failed: never leave it running.
            worker.kill()
            await asyncio.shield(self.reap(worker))
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

    async def _await_ready(self, worker: Worker) -> tuple[Any, ...]:
        reply = asyncio.ensure_future(worker.channel.read())
        try:
            done, _ = await asyncio.wait(
                {reply, worker.exited},
                timeout=self.tuning.start_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            discard(reply)
        if reply in done and reply.exception() is None:
            return reply.result()
        if not done:
            raise WorkerStartFailed(
                f"worker {worker.slot} did not finish init within "
                f"{self.tuning.start_timeout_s:g} s",
                slot=worker.slot,
            )
        exitcode = await self.reap(worker)
        raise WorkerStartFailed(
            f"worker {worker.slot} (pid {worker.pid}) died during start-up: "
            f"{describe_exit(exitcode)}",
            slot=worker.slot,
            **exit_detail(exitcode),
        )

    async def reap(self, worker: Worker) -> int | None:
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

    async def stop(self, worker: Worker) -> None:
        """Ask an idle worker to exit; SIGKILL it after the grace period (or if cancelled)."""
        try:
            if not worker.exited.done():
                with contextlib.suppress(ConnectionError, OSError, TimeoutError):
                    await asyncio.wait_for(
                        worker.channel.write(("stop",)), self.tuning.stop_grace_s
                    )
                worker.close_transport()
                try:
                    await asyncio.wait_for(asyncio.shield(worker.exited), self.tuning.stop_grace_s)
                except TimeoutError:
                    log.warning("worker_stop_timeout", slot=worker.slot, pid=worker.pid)
                    worker.kill()
        except asyncio.CancelledError:
            worker.kill()
            await asyncio.shield(self.reap(worker))
            raise
        await self.reap(worker)

    def kill_now(self, worker: Worker) -> None:
        """Last resort at interpreter exit: SIGKILL and join synchronously."""
        if not worker.exited.done():
            worker.kill()
            worker.process.join(self.tuning.kill_wait_s)
