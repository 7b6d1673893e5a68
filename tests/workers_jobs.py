"""Tiny importable init/job functions for the worker-pool tests (spawned workers import them).

Each job is a dict ``{"op": ..., ...}``; ``run`` dispatches on ``op``. The state returned by
``init`` records the worker's pid and environment so tests can check where a job ran.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from sculptsvc.errors import InvalidImage, SculptError


class LocalOnlyError(Exception):
    """An exception class the caller does not know how to handle (becomes ProcessingFailed)."""


class OddInitError(SculptError):
    """A typed error whose __init__ signature differs from SculptError's (unpicklable args)."""

    code = "odd_init"

    def __init__(self, width: int, height: int) -> None:
        super().__init__(f"bad size {width}x{height}", width=width, height=height)


def init() -> dict[str, Any]:
    """Count each call in a marker file (``WORKERS_TEST_INIT_DIR``) so tests can count inits."""
    marker_dir = os.environ.get("WORKERS_TEST_INIT_DIR")
    if marker_dir:
        (Path(marker_dir) / f"init-{os.getpid()}").write_text("1")
    return {
        "pid": os.getpid(),
        "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "omp": os.environ.get("OMP_NUM_THREADS"),
        "pgid": os.getpgrp(),
    }


def init_with(config_json: str) -> dict[str, Any]:
    """Takes its configuration as an argument: the pool gets ``partial(init_with, json)``."""
    return {**init(), "config": config_json}


def init_slow() -> dict[str, Any]:
    time.sleep(30)
    return init()


def init_only_once() -> dict[str, Any]:
    """Succeeds the first time (marker ``WORKERS_TEST_ONCE``), fails every respawn after."""
    marker = Path(os.environ["WORKERS_TEST_ONCE"])
    if marker.exists():
        raise RuntimeError("GPU is gone")
    marker.write_text(str(os.getpid()))
    return init()


def init_fails() -> dict[str, Any]:
    raise RuntimeError("weights are corrupt")


def init_typed_fails() -> dict[str, Any]:
    from sculptsvc.errors import ModelUnavailable

    raise ModelUnavailable("no checkpoint in /models/triposr", path="/models/triposr")


def init_crashes() -> dict[str, Any]:
    os.kill(os.getpid(), signal.SIGKILL)
    return {}


def helper_job(job: dict[str, Any]) -> Any:
    """``run`` as a ``StageHelper`` job (one argument: the payload)."""
    return run(init(), job)


def run(state: dict[str, Any], job: dict[str, Any]) -> Any:
    op = job["op"]
    if op == "echo":
        return {"pid": state["pid"], "value": job.get("value")}
    if op == "log_context":
        import structlog

        return structlog.contextvars.get_contextvars()
    if op == "state":
        time.sleep(job.get("hold", 0.0))
        return state
    if op == "sleep":
        time.sleep(job["seconds"])
        return {"pid": state["pid"], "slept": job["seconds"]}
    if op == "spin":  # CPU-bound, holds the GIL of the worker
        deadline = time.perf_counter() + job["seconds"]
        n = 0
        while time.perf_counter() < deadline:
            n += 1
        return {"pid": state["pid"], "loops": n}
    if op == "gc":
        import gc

        return {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
    if op == "blob":
        return {"glb": os.urandom(job["size"]), "report": {"size": job["size"]}}
    if op == "size_of":
        return len(job["data"])
    if op == "raise_typed":
        raise InvalidImage("image is 0x0 pixels", width=0, height=0)
    if op == "raise_odd":
        raise OddInitError(3, 4)
    if op == "raise_unknown":
        raise LocalOnlyError("the flux capacitor is empty")
    if op == "raise_value":
        raise ValueError("mesh has 0 faces")
    if op == "unpicklable_result":
        return lambda: None
    if op == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    if op == "segfault":
        import ctypes

        ctypes.string_at(0)
    if op == "crash_once":
        # Crash the first time (no marker yet), succeed on the retry.
        marker = Path(job["marker"])
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return {"pid": state["pid"], "crashed_pid": int(marker.read_text())}
    if op == "spawn_helper":
        import subprocess

        helper = subprocess.Popen(["sleep", "60"])
        Path(job["pidfile"]).write_text(str(helper.pid))
        time.sleep(60)
        return None
    raise ValueError(f"unknown op {op!r}")
