"""Helper processes: the 2-core machine's other core, for ``sculpt make`` and for a worker
that has a core to spare (``Settings.stage_helpers``, ``sculptsvc.jobs.wants_helper``).

A one-shot ``sculpt make`` is one process, and nearly all of it runs on one core: start-up
and imports, then stylize, reconstruct and mesh, each needing the one before. The mold and
the preview need only the finished mesh, as the GLB writer does; in one process the GIL
serialises them (a mold thread gained nothing). A :class:`StageHelper` is a process started
with the command that, while this one imports and runs the early stages, imports its stage
and warms it up (the first mold or frame in a process pays for its libraries' set-up), then
runs the stage on what this process sends it, while this one writes and validates the GLB.

The helper runs the very functions this process would (named by reference), on the same
arrays, so the artifacts are the same bytes. Errors keep their type
(``_wire.encode_error``/``rebuild_error``, as the pool's workers do). A helper that is gone
(failed to start, crashed, killed) changes only where the work runs: the request is then
run in this process, with a warning.

Started as ``python -m sculptsvc.workers.helper`` (not ``multiprocessing``'s spawn, which
would first re-import the command's ``__main__``: typer and the whole CLI, for nothing),
talking over a socket pair with ``multiprocessing.connection`` framing. A pool worker's
helper is in the worker's process group: the pool's kill of a timed-out worker takes it
too, and a helper whose socket closes (its worker gone) exits. Where every core already
runs an order of its own (workers = CPUs), ``auto`` starts none: it would only contend.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

import structlog

from sculptsvc.logging import get_logger
from sculptsvc.workers._wire import RemoteError, encode_error, rebuild_error

log = get_logger(__name__)

HELPER_NICENESS = 10
"""Added to a helper's nice value (``os.nice``): the command's critical path goes first."""
STOP_WAIT_S = 5.0
"""How long ``close`` waits for a helper to exit before killing it."""


@dataclass(frozen=True)
class HelperJob:
    """One kind of request, as ``"module:function"`` names (imported in the helper). Each
    job has its own thread there: a frame can render while a mold is cut, and a job's
    thread-bound state (an OpenGL context) is made by its warm-up on the thread that uses it."""

    run: str
    """Called per request with the request's payload; its return value is sent back."""
    prepare: str | None = None
    """Called once at start, on the job's thread, with no arguments: imports, warm-up."""


@dataclass(frozen=True)
class HelperSpec:
    """A helper process: its name (for logs) and the jobs it serves, by job name."""

    name: str
    jobs: Mapping[str, HelperJob]


def resolve(reference: str) -> Callable[..., Any]:
    module, _, function = reference.partition(":")
    fn: Callable[..., Any] = getattr(importlib.import_module(module), function)
    return fn


class Pending:
    """A request sent to a helper (or to be run here, if the helper is gone)."""

    def __init__(
        self, helper: StageHelper, request_id: int, job: str, payload: Any, sent: bool
    ) -> None:
        self._helper = helper
        self._request_id = request_id
        self._job = job
        self._payload = payload
        self._sent = sent

    def __del__(self) -> None:
        self._helper.forget(self._request_id)  # a reply nobody will read is not kept

    def result(self) -> tuple[Any, float]:
        """(the function's return value, seconds it ran); raises what it raised."""
        if self._sent:
            reply = self._helper.receive(self._request_id)
            if reply is not None:
                kind, value, seconds = reply
                if kind == "error":
                    assert isinstance(value, RemoteError)
                    raise rebuild_error(value)
                return value, seconds
        started = time.perf_counter()
        value = resolve(self._helper.spec.jobs[self._job].run)(self._payload)
        return value, time.perf_counter() - started


class Sending:
    """A request being sent from a thread (:meth:`StageHelper.submit_in_background`)."""

    def __init__(self, helper: StageHelper, job: str, payload: Any) -> None:
        self._pending: list[Pending] = []
        self._thread = threading.Thread(
            target=lambda: self._pending.append(helper.submit(job, payload)),
            name=f"helper-send-{job}",
            daemon=True,
        )
        self._thread.start()

    def result(self) -> tuple[Any, float]:
        """As :meth:`Pending.result`, once the request has been sent."""
        self._thread.join()
        return self._pending[0].result()


class StageHelper:
    """One helper process and this process's end of its socket; requests run one at a time."""

    def __init__(self, spec: HelperSpec, log_level: str = "INFO", log_format: str = "console"):
        self.spec = spec
        self._ids = itertools.count(1)
        self._waiting: set[int] = set()
        """Requests sent and not yet answered to their caller."""
        self._replies: dict[int, tuple[str, Any, float]] = {}
        self._conn: Connection | None = None
        self._process: subprocess.Popen[bytes] | None = None
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-P",  # the working directory is not an import path (Python >= 3.11)
                    "-m",
                    __name__,
                    str(theirs.fileno()),
                    log_level,
                    log_format,
                    json.dumps({name: asdict(job) for name, job in spec.jobs.items()}),
                ],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
            self._conn = Connection(ours.detach())
        except OSError as exc:
            log.warning("helper_not_started", helper=spec.name, error=repr(exc))
            ours.close()
        finally:
            theirs.close()
        # Closed when this object goes, or at exit at the latest (the helper then exits).
        self._finalizer = weakref.finalize(self, _shut, self._conn, self._process)

    def submit(self, job: str, payload: Any) -> Pending:
        """Send ``job`` with ``payload`` to the helper; the caller goes on while it runs."""
        if job not in self.spec.jobs:
            raise KeyError(f"helper {self.spec.name!r} has no job {job!r}")
        request_id = next(self._ids)
        sent = False
        if self._conn is not None:
            context = structlog.contextvars.get_contextvars()
            # awaited before it is sent: a reply read meanwhile on another thread is kept
            self._waiting.add(request_id)
            try:
                self._conn.send((request_id, job, payload, context))
                sent = True
            except OSError as exc:
                self._waiting.discard(request_id)
                self._lost(exc)
        return Pending(self, request_id, job, payload, sent)

    def submit_in_background(self, job: str, payload: Any) -> Sending:
        """:meth:`submit` from a thread: a payload larger than a socket buffer (a mesh of
        about 1 MB) waits in ``send`` until the helper reads it, and a helper still loading
        its modules reads nothing yet; the caller goes on meanwhile. Only for a caller that
        makes no other request until this one's result (requests are sent one at a time)."""
        return Sending(self, job, payload)

    def receive(self, request_id: int) -> tuple[str, Any, float] | None:
        """The reply to ``request_id``, or None when the helper is gone. Jobs run on their own
        threads, so replies come in any order: one still awaited is kept for its caller,
        one whose request was abandoned is dropped."""
        if request_id in self._replies:
            self._waiting.discard(request_id)
            return self._replies.pop(request_id)
        while self._conn is not None:
            try:
                kind, replied_to, value, seconds = self._conn.recv()
            except (EOFError, OSError) as exc:
                self._lost(exc)
                return None
            if replied_to == request_id:
                self._waiting.discard(request_id)
                return kind, value, seconds
            if replied_to in self._waiting:
                self._replies[replied_to] = (kind, value, seconds)
        return None

    def forget(self, request_id: int) -> None:
        self._waiting.discard(request_id)
        self._replies.pop(request_id, None)

    def _lost(self, exc: BaseException) -> None:
        exitcode = self._process.poll() if self._process is not None else None
        log.warning("helper_lost", helper=self.spec.name, error=repr(exc), exitcode=exitcode)
        self.close()

    def close(self) -> None:
        """Close the socket: the helper exits at once (between requests it only waits)."""
        self._finalizer()
        self._conn = None
        self._process = None


def _shut(conn: Connection | None, process: subprocess.Popen[bytes] | None) -> None:
    if conn is not None:
        conn.close()
    if process is not None:
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def helper_main(fd: int, log_level: str, log_format: str, jobs_json: str) -> None:
    """The helper process: one thread per job (warm-up, then its requests in turn) until
    the command closes the socket."""
    # Below the command in the scheduler: while both compete for a core (start-up), the
    # command's own stages come first; the helper takes what they leave.
    os.nice(HELPER_NICENESS)
    from sculptsvc.logging import configure_logging

    configure_logging(log_level, log_format)
    conn = Connection(fd)
    send_lock = threading.Lock()
    queues: dict[str, queue.SimpleQueue[tuple[int, Any, dict[str, Any]]]] = {}
    jobs = {name: HelperJob(**job) for name, job in json.loads(jobs_json).items()}
    for job in jobs.values():  # the modules load here, one after the other, not on two threads
        resolve(job.run)
        if job.prepare is not None:
            resolve(job.prepare)
    for name, job in jobs.items():
        queues[name] = queue.SimpleQueue()
        threading.Thread(
            target=_serve_job,
            args=(job, queues[name], conn, send_lock),
            name=f"helper-{name}",
            daemon=True,
        ).start()
    # Requests are read as they come: the command may send the next one while a job is
    # sending a large reply, and neither may wait for the other.
    while True:
        try:
            request_id, job_name, payload, context = conn.recv()
        except (EOFError, OSError):
            # Nobody will read what this process makes: it ends at once, even mid-job.
            os._exit(0)
        queues[job_name].put((request_id, payload, context))


def _serve_job(
    job: HelperJob,
    requests: queue.SimpleQueue[tuple[int, Any, dict[str, Any]]],
    conn: Connection,
    send_lock: threading.Lock,
) -> None:
    if job.prepare is not None:
        try:
            resolve(job.prepare)()
        except Exception as exc:  # a warm-up only saves time: the job may still work
            log.warning("helper_prepare_failed", prepare=job.prepare, error=repr(exc))
    run = resolve(job.run)
    while True:
        request_id, payload, context = requests.get()
        started = time.perf_counter()
        try:
            with structlog.contextvars.bound_contextvars(**context):
                value = run(payload)
            reply = ("result", request_id, value, time.perf_counter() - started)
        except BaseException as exc:  # every outcome goes back; the caller decides
            reply = ("error", request_id, encode_error(exc), time.perf_counter() - started)
        try:
            with send_lock:
                conn.send(reply)
        except OSError:
            os._exit(0)


if __name__ == "__main__":
    helper_main(int(sys.argv[1]), *sys.argv[2:5])
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # nothing here needs the interpreter's teardown (GL contexts, MeshLab)
