"""The worker process: load models once, then run one job at a time until told to stop.

Runs in a fresh interpreter (``spawn``). It owns no asyncio loop and never talks to Kafka:
it reads a job from its socket, calls ``job_fn(state, job)`` and writes back the result or
an encoded error. A crash (segfault, OOM kill) simply ends the process; the pool notices
the closed socket and the exit status.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from sculptsvc.errors import ProcessingFailed
from sculptsvc.loading import modules_loaded, pause_collection
from sculptsvc.workers import progress
from sculptsvc.workers._wire import encode_error, recv_message, send_message

# Messages, parent -> worker: ("job", job_id, pickled_job, log_context) | ("stop",)
#                           | ("progress_ack", job_id)
# Messages, worker -> parent: ("ready", pid, init_seconds) | ("init_error", RemoteError)
#                           | ("progress", job_id, event)   (then wait for its ack)
#                           | ("result", job_id, result, seconds) | ("error", job_id, RemoteError)

ORPHANED_EXIT_CODE = 70
"""Exit status of a worker whose service died (``EX_SOFTWARE`` of sysexits.h)."""


@dataclass(frozen=True)
class ChildConfig:
    """What a worker needs before it can import anything heavy."""

    slot: int
    init_fn: bytes
    """``pickle.dumps(init_fn)``: unpickled only after ``env`` is applied."""
    job_fn: bytes
    env: Mapping[str, str] = field(default_factory=dict)
    """Applied before the callables' modules load, e.g. ``CUDA_VISIBLE_DEVICES``."""
    log_level: str = "INFO"
    log_format: str = "json"
    parent_poll_s: float = 1.0
    """How often the worker checks that the service process is still alive."""


def _watch_parent(parent_pid: int, poll_s: float) -> None:
    """Exit when the service dies, even mid-job: a worker must never outlive the pool."""
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent_pid:
            os._exit(ORPHANED_EXIT_CODE)


def worker_main(sock: socket.socket, config: ChildConfig) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    # The pool decides when workers stop: a Ctrl-C in the terminal reaches the whole process
    # group, and the service's own shutdown must not be pre-empted by its workers dying.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pause_collection()  # until the models and stages are loaded (sculptsvc/loading.py)
    # Lead a process group so the pool's SIGKILL also reaches helpers a job starts.
    os.setpgrp()
    os.environ.update(config.env)
    threading.Thread(
        target=_watch_parent,
        args=(os.getppid(), config.parent_poll_s),
        name="parent-watch",
        daemon=True,
    ).start()

    from sculptsvc.logging import configure_logging, get_logger

    configure_logging(config.log_level, config.log_format)
    log = get_logger("sculptsvc.workers.child").bind(slot=config.slot, pid=os.getpid())

    started = time.perf_counter()
    try:
        init_fn = pickle.loads(config.init_fn)
        job_fn = pickle.loads(config.job_fn)
        state = init_fn()
        modules_loaded()
    except BaseException as exc:
        log.error("worker_init_failed", error=repr(exc))
        send_message(sock, ("init_error", encode_error(exc)))
        return
    send_message(sock, ("ready", os.getpid(), time.perf_counter() - started))

    try:
        _serve(sock, job_fn, state)
    except OSError:
        return  # the pool closed the socket or died: nothing left to answer


class ParentGone(Exception):
    """The pool closed the socket while the job waited for a progress acknowledgement."""


def _report_progress(sock: socket.socket, job_id: int, event: Any) -> None:
    """Send a progress event and block until the pool has handled it."""
    send_message(sock, ("progress", job_id, event))
    reply = recv_message(sock)
    if reply is None or reply[0] != "progress_ack":
        raise ParentGone(f"expected a progress acknowledgement, got {reply!r}")


def _serve(sock: socket.socket, job_fn: Callable[[Any, Any], Any], state: Any) -> None:
    """Run jobs until the pool says stop or closes the socket."""
    while True:
        message = recv_message(sock)
        if message is None or message[0] == "stop":
            return
        _, job_id, payload, context = message
        started = time.perf_counter()
        try:
            with (
                structlog.contextvars.bound_contextvars(**context),
                progress.reporting_to(partial(_report_progress, sock, job_id)),
            ):
                result = job_fn(state, pickle.loads(payload))
        except BaseException as exc:  # SystemExit/KeyboardInterrupt in a job are job errors too
            send_message(sock, ("error", job_id, encode_error(exc)))
            continue
        try:
            send_message(sock, ("result", job_id, result, time.perf_counter() - started))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            bad = ProcessingFailed(f"job result cannot be pickled: {type(exc).__name__}: {exc}")
            send_message(sock, ("error", job_id, encode_error(bad)))
