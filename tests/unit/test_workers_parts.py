"""The pool's pieces without processes: error encoding, the closable queue, GPU placement,
and the in-process (``workers=0``) mode."""

from __future__ import annotations

import asyncio
import functools
import os
import pickle
import random
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sculptsvc.errors import (
    ConfigurationError,
    InvalidImage,
    JobTimeout,
    MoldFailed,
    PoolClosed,
    ProcessingFailed,
    SculptError,
    WorkerStartFailed,
)
from sculptsvc.logging import bound_order
from sculptsvc.settings import Settings
from sculptsvc.workers import PoolTuning, RemoteTraceback, WorkerPool, describe_exit
from sculptsvc.workers._job import Job
from sculptsvc.workers._queue import ClosableQueue
from sculptsvc.workers._wire import (
    Channel,
    encode_error,
    frame,
    rebuild_error,
    recv_message,
    send_message,
)
from sculptsvc.workers.placement import plan_workers, visible_gpus
from tests import workers_jobs as jobs

pytestmark = pytest.mark.timeout(30)


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback, as a worker would have caught it."""
    try:
        raise exc
    except BaseException as caught:
        return caught


# --- error round trip --------------------------------------------------------------------------


# --- framing ------------------------------------------------------------------------------------


def _message(big: int) -> tuple[Any, ...]:
    artifacts = {f"a{i}.bin": random.Random(i).randbytes(big + i) for i in range(3)}
    return ("result", 7, {"artifacts": artifacts, "small": b"x" * 10, "n": 3}, 0.5)


async def test_a_channel_rebuilds_frames_from_any_split_of_the_stream() -> None:
    """Frames cut at arbitrary points (and several in one read) come out whole, in order,
    with ``bytes`` where ``bytes`` went in."""
    messages = [_message(200_000), ("progress", 1, "stylized"), _message(10)]
    stream = b"".join(bytes(p) for m in messages for p in frame(m))
    channel = Channel()
    rng = random.Random(0)
    at = 0
    while at < len(stream):
        buffer = channel.get_buffer(-1)
        n = min(len(buffer), rng.randint(1, 50_000), len(stream) - at)
        buffer[:n] = stream[at : at + n]
        channel.buffer_updated(n)
        at += n
    received = [await channel.read() for _ in messages]
    assert received == messages
    assert all(type(v) is bytes for v in received[0][2]["artifacts"].values())


async def test_a_channel_talks_to_a_blocking_socket_and_sees_it_close() -> None:
    ours, theirs = socket.socketpair()
    channel = await Channel.connect(ours)
    message = _message(3 * 1024 * 1024)  # far larger than a socket buffer
    sender = threading.Thread(target=send_message, args=(theirs, message))
    sender.start()
    assert await asyncio.wait_for(channel.read(), 10) == message
    sender.join()
    await channel.write(("progress_ack", 7))
    assert recv_message(theirs) == ("progress_ack", 7)
    theirs.close()
    with pytest.raises(asyncio.IncompleteReadError):
        await asyncio.wait_for(channel.read(), 10)
    channel.close()


@pytest.mark.parametrize(
    "error",
    [
        InvalidImage("not a PNG", size=12),
        MoldFailed("wall too thin", wall_mm=0.4, where=[1.0, 2.0]),
        jobs.OddInitError(640, 480),
    ],
)
def test_sculpt_errors_survive_the_trip(error: SculptError) -> None:
    remote = pickle.loads(pickle.dumps(encode_error(_raised(error))))
    rebuilt = rebuild_error(remote)
    assert type(rebuilt) is type(error)
    assert (rebuilt.code, rebuilt.message, rebuilt.detail) == (
        error.code,
        error.message,
        error.detail,
    )
    assert str(rebuilt) == str(error)
    assert isinstance(rebuilt.__cause__, RemoteTraceback)
    assert type(error).__name__ in rebuilt.__cause__.text


def test_sculpt_error_with_unpicklable_detail_keeps_class_and_message() -> None:
    lock = threading.Lock()
    remote = encode_error(_raised(MoldFailed("boolean failed", handle=lock, faces=12)))
    assert remote.pickled is None
    rebuilt = rebuild_error(pickle.loads(pickle.dumps(remote)))
    assert type(rebuilt) is MoldFailed
    assert rebuilt.message == "boolean failed"
    assert rebuilt.detail["faces"] == 12
    assert rebuilt.detail["handle"].startswith("<unlocked _thread.lock")


def test_unknown_errors_become_processing_failed_with_their_class_name() -> None:
    rebuilt = rebuild_error(encode_error(_raised(KeyError("uv"))))
    assert type(rebuilt) is ProcessingFailed
    assert rebuilt.message == "KeyError: 'uv'"
    assert rebuilt.detail == {"error_type": "KeyError", "error_message": "'uv'"}


def test_error_class_missing_in_parent_still_arrives() -> None:
    remote = encode_error(_raised(jobs.LocalOnlyError("gone")))
    moved = type(remote)(
        module="not_a_module", qualname="Gone", message=remote.message, traceback="tb"
    )
    rebuilt = rebuild_error(moved)
    assert rebuilt.message == "not_a_module.Gone: gone"


@pytest.mark.parametrize(
    ("code", "words"),
    [(-9, "killed by signal SIGKILL"), (-11, "killed by signal SIGSEGV"), (1, "exit code 1")],
)
def test_describe_exit(code: int, words: str) -> None:
    assert describe_exit(code) == words


# --- closable queue ----------------------------------------------------------------------------


async def test_queue_put_waits_while_full_and_get_is_fifo() -> None:
    queue: ClosableQueue[int] = ClosableQueue(2)
    await queue.put(1)
    await queue.put(2)
    blocked = asyncio.create_task(queue.put(3))
    await asyncio.sleep(0.01)
    assert not blocked.done() and queue.waiting_putters == 1
    assert await queue.get() == 1
    await blocked
    assert [await queue.get(), await queue.get()] == [2, 3]


async def test_queue_close_fails_putters_and_releases_getters() -> None:
    queue: ClosableQueue[int] = ClosableQueue(1)
    await queue.put(1)
    putter = asyncio.create_task(queue.put(2))
    await asyncio.sleep(0.01)
    assert queue.close(lambda: PoolClosed("bye")) == [1]
    with pytest.raises(PoolClosed):
        await putter
    assert await queue.get() is None
    with pytest.raises(PoolClosed):
        await queue.put(3)


async def test_cancelled_get_loses_no_item() -> None:
    queue: ClosableQueue[int] = ClosableQueue(1)
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0.01)
    getter.cancel()
    await queue.put(7)  # lands while the cancelled getter is still being woken
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert await queue.get() == 7


async def test_queue_remove_frees_room() -> None:
    queue: ClosableQueue[str] = ClosableQueue(1)
    await queue.put("a")
    putter = asyncio.create_task(queue.put("b"))
    await asyncio.sleep(0.01)
    assert queue.remove("a") and not queue.remove("a")
    await putter
    assert await queue.get() == "b"


class _NoRepr:
    def __repr__(self) -> str:
        raise AssertionError("repr() of a queued item was built")


async def test_removing_a_job_never_builds_its_repr() -> None:
    """The pool removes every finished job from its queue (a done-callback on the loop): a
    finished job's repr holds its whole result, megabytes of artifacts, so building one
    (``deque.remove``'s error message does) stalled the loop for tens of ms per order."""
    queue: ClosableQueue[_NoRepr] = ClosableQueue(2)
    taken, queued = _NoRepr(), _NoRepr()
    await queue.put(taken)
    await queue.put(queued)
    assert await queue.get() is taken
    assert not queue.remove(taken)  # no longer queued: no error, and no repr built
    assert queue.remove(queued) and len(queue) == 0


def test_a_jobs_repr_leaves_out_its_payload_and_result() -> None:
    loop = asyncio.new_event_loop()
    try:
        future = loop.create_future()
        future.set_result(b"r" * 100_000)
        job = Job(7, b"p" * 100_000, future, {"order_id": "o-1"})
        assert len(repr(job)) < 300 and "o-1" in repr(job)
    finally:
        loop.close()


# --- placement -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pinned", "gpus"),
    [
        ("0,1", ["0", "1"]),
        ("GPU-1f2e, 3", ["GPU-1f2e", "3"]),
        ("", []),
        ("-1", []),
        ("2,-1,3", ["2"]),
    ],
)
def test_visible_gpus_honours_cuda_visible_devices(pinned: str, gpus: list[str]) -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": pinned}) == gpus


def test_one_worker_per_gpu_each_pinned_to_its_device() -> None:
    plan = plan_workers(
        Settings(workers=1, device="auto"), gpus=["0", "1"], cpu_count=16, environ={}
    )
    assert plan.workers == 2
    assert [e["CUDA_VISIBLE_DEVICES"] for e in plan.env] == ["0", "1"]
    assert all(e["OMP_NUM_THREADS"] == "8" for e in plan.env)


def test_cpu_workers_share_the_cores_and_see_no_gpu() -> None:
    plan = plan_workers(Settings(workers=3, device="cpu"), gpus=["0"], cpu_count=8, environ={})
    assert plan.workers == 3 and plan.gpus == []
    assert plan.env == [
        {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
         "CUDA_VISIBLE_DEVICES": ""}
    ] * 3  # fmt: skip


def test_operator_thread_settings_win() -> None:
    plan = plan_workers(
        Settings(workers=2, device="cpu"), cpu_count=8, environ={"OMP_NUM_THREADS": "1"}
    )
    assert "OMP_NUM_THREADS" not in plan.env[0]
    assert plan.env[0]["MKL_NUM_THREADS"] == "4"


def test_cuda_without_gpu_refuses_to_start() -> None:
    with pytest.raises(ConfigurationError, match="no GPU is visible"):
        plan_workers(Settings(device="cuda"), gpus=[], environ={})


def test_from_settings_wires_every_knob(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    settings = Settings(
        workers=1, job_queue_size=5, job_timeout_s=42, max_attempts=4, graceful_timeout_s=50
    )
    pool = WorkerPool.from_settings(jobs.run, jobs.init, settings)
    assert (pool.workers, pool.queue_size, pool.job_timeout_s) == (3, 5, 42)
    assert (pool.max_attempts, pool.close_timeout_s, pool.inline) == (4, 50, False)
    assert WorkerPool.from_settings(jobs.run, jobs.init, settings, inline=True).inline


@pytest.mark.parametrize(
    ("mode", "cpus", "workers", "expected"),
    [
        ("auto", 2, 1, True),  # the 2-core machine: one worker, its helper on the other core
        ("auto", 2, 2, False),  # every core runs an order of its own
        ("auto", 3, 2, False),
        ("auto", 16, 2, True),  # a GPU host: one worker per GPU, cores to spare
        ("on", 1, 4, True),
        ("off", 64, 1, False),
    ],
)
def test_stage_helpers_only_where_a_core_is_spare(
    monkeypatch: pytest.MonkeyPatch, mode: str, cpus: int, workers: int, expected: bool
) -> None:
    import sculptsvc.jobs as order_jobs

    monkeypatch.setattr(order_jobs, "usable_cpus", lambda: cpus)
    assert order_jobs.wants_helper(Settings(stage_helpers=mode), workers) is expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, 64),  # cgroup v2, no limit
        ({"cpu.max": "150000 100000\n"}, 2),  # docker --cpus 1.5: two cores' worth, rounded up
        ({"cpu.max": "100000 100000\n"}, 1),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 64),  # v1
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
        ({}, 64),  # no cgroup files: the affinity mask alone
    ],
)
def test_usable_cpus_honour_a_containers_cpu_quota(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, str], expected: int
) -> None:
    """A container limited to 1 CPU still sees every host core in its affinity mask: the
    helper would then only contend with its worker."""
    import sculptsvc.jobs as order_jobs

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert order_jobs.usable_cpus(tmp_path) == expected


def test_the_service_resolves_auto_helpers_against_the_placed_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a GPU host the pool has one worker per GPU whatever ``workers`` says: the workers'
    settings carry the decision made for that count, not ``auto``."""
    import sculptsvc.jobs as order_jobs
    from sculptsvc.service.jobs import PoolJobRunner
    from sculptsvc.workers.placement import Placement

    monkeypatch.setattr(order_jobs, "usable_cpus", lambda: 4)
    decided = {}
    for gpus in (1, 4):
        runner = PoolJobRunner(Settings(workers=1), Placement(workers=gpus))
        init = runner.pool._init_fn
        assert isinstance(init, functools.partial)
        decided[gpus] = Settings.model_validate_json(init.args[0]).stage_helpers
        assert runner.stage_helpers == decided[gpus]  # what service.starting logs
    assert decided == {1: "on", 4: "off"}


# --- in-process mode ------------------------------------------------------------------------


async def test_inline_mode_runs_jobs_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORKERS_TEST_INIT_DIR", str(tmp_path))
    async with WorkerPool(jobs.run, jobs.init, workers=0) as pool:
        results = await asyncio.gather(*(pool.submit({"op": "echo", "value": i}) for i in range(4)))
        stats = pool.stats()
    assert [r["value"] for r in results] == [0, 1, 2, 3]
    assert {r["pid"] for r in results} == {os.getpid()}
    assert len(list(tmp_path.iterdir())) == 1, "init runs once"
    assert (stats["mode"], stats["completed"], stats["queued"]) == ("inline", 4, 0)


async def test_inline_mode_maps_errors_like_the_pool() -> None:
    async with WorkerPool(jobs.run, jobs.init, workers=0) as pool:
        with pytest.raises(InvalidImage) as typed:
            await pool.submit({"op": "raise_typed"})
        assert typed.value.detail == {"width": 0, "height": 0}
        with pytest.raises(ProcessingFailed) as unknown:
            await pool.submit({"op": "raise_unknown"})
    assert unknown.value.message == "tests.workers_jobs.LocalOnlyError: the flux capacitor is empty"
    assert isinstance(unknown.value.__cause__, jobs.LocalOnlyError)


async def test_inline_mode_binds_the_submitters_log_context() -> None:
    async with WorkerPool(jobs.run, jobs.init, workers=0) as pool:
        with bound_order("ord-9"):
            seen = await pool.submit({"op": "log_context"})
    assert seen == {"order_id": "ord-9"}


async def test_inline_timeout_reports_and_holds_the_slot_until_the_job_ends() -> None:
    async with WorkerPool(jobs.run, jobs.init, workers=0, job_timeout_s=0.3) as pool:
        started = time.perf_counter()
        with pytest.raises(JobTimeout):
            await pool.submit({"op": "sleep", "seconds": 0.8})
        assert time.perf_counter() - started < 0.7
        result = await pool.submit({"op": "echo", "value": 1})
        assert time.perf_counter() - started >= 0.8, "next job waited for the stuck one"
    assert result["value"] == 1


async def test_inline_init_failure_raises_worker_start_failed() -> None:
    with pytest.raises(WorkerStartFailed, match="RuntimeError: weights are corrupt"):
        async with WorkerPool(jobs.run, jobs.init_fails, workers=0):
            pass


async def test_submit_before_start_is_a_programming_error() -> None:
    pool: WorkerPool[Any, Any, Any] = WorkerPool(
        jobs.run, jobs.init, workers=0, tuning=PoolTuning()
    )
    with pytest.raises(RuntimeError, match="not started"):
        await pool.submit({"op": "echo"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"workers": -1},
        {"workers": 1, "queue_size": -1},
        {"workers": 1, "job_timeout_s": 0},
        {"workers": 1, "max_attempts": 0},
        {"workers": 2, "worker_env": [{}]},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        WorkerPool(jobs.run, jobs.init, **kwargs)
