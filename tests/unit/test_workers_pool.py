"""WorkerPool with real spawned CPU workers running the tiny jobs of ``tests/workers_jobs.py``."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from sculptsvc.errors import (
    InvalidImage,
    JobTimeout,
    ModelUnavailable,
    PoolClosed,
    ProcessingFailed,
    WorkerCrashed,
    WorkerStartFailed,
)
from sculptsvc.logging import bound_order
from sculptsvc.workers import PoolTuning, RemoteTraceback, WorkerPool
from tests import workers_jobs as jobs

pytestmark = pytest.mark.timeout(60)

FAST = PoolTuning(respawn_backoff_s=0.05, stop_grace_s=2.0, parent_poll_s=0.2)


def make_pool(workers: int = 1, **kwargs: Any) -> WorkerPool[Any, Any, Any]:
    kwargs.setdefault("job_timeout_s", 20.0)
    kwargs.setdefault("max_attempts", 2)
    kwargs.setdefault("tuning", FAST)
    init = kwargs.pop("init_fn", jobs.init)
    return WorkerPool(jobs.run, init, workers=workers, **kwargs)


def worker_children() -> list[psutil.Process]:
    """Live children of the test process, minus multiprocessing's resource tracker and the
    process-wide glTF validator (one long-lived Node process that earlier tests started)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if "resource_tracker" in cmdline or "validate-gltf.mjs" in cmdline:
                continue
            if child.status() == psutil.STATUS_ZOMBIE:
                out.append(child)  # a zombie is a bug too: reported, not skipped
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(child)
    return out


def assert_reaped(pid: int) -> None:
    """``pid`` is neither running nor a zombie of ours."""
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).ppid() != os.getpid()


async def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool[Any, Any, Any]]:
    async with make_pool(1) as p:
        yield p


async def test_a_worker_runs_jobs_with_collection_on_and_its_start_up_frozen(
    pool: WorkerPool[Any, Any, Any],
) -> None:
    """Paused while the worker loads (sculptsvc/loading.py), on again before its first job."""
    state = await pool.submit({"op": "gc"})
    assert state["enabled"] is True
    assert state["frozen"] > 1_000


async def test_two_workers_run_two_jobs_in_parallel() -> None:
    async with make_pool(2) as pool:
        assert pool.stats()["alive"] == 2
        started = time.perf_counter()
        results = await asyncio.gather(
            pool.submit({"op": "sleep", "seconds": 1.0}),
            pool.submit({"op": "sleep", "seconds": 1.0}),
        )
        wall = time.perf_counter() - started
    assert {r["slept"] for r in results} == {1.0}
    assert len({r["pid"] for r in results}) == 2, "both workers should have taken a job"
    assert wall < 1.7, f"2 x 1 s on 2 workers took {wall:.2f} s: not parallel"


async def test_event_loop_keeps_ticking_during_cpu_bound_job(pool: WorkerPool) -> None:
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    result = await pool.submit({"op": "spin", "seconds": 3.0})
    stop.set()
    await tick
    assert result["loops"] > 0
    assert len(gaps) >= 40, f"only {len(gaps)} ticks in 3 s"
    assert max(gaps) < 0.5, f"event loop blocked for {max(gaps):.3f} s"


async def test_init_runs_once_per_worker(tmp_path: Path) -> None:
    env = [{"WORKERS_TEST_INIT_DIR": str(tmp_path)}] * 2
    async with make_pool(2, worker_env=env) as pool:
        results = await asyncio.gather(*(pool.submit({"op": "echo", "value": i}) for i in range(8)))
    init_pids = {int(p.name.removeprefix("init-")) for p in tmp_path.iterdir()}
    assert len(init_pids) == 2
    assert {r["pid"] for r in results} <= init_pids
    assert [r["value"] for r in results] == list(range(8))


async def test_worker_env_is_applied_per_worker() -> None:
    env = [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}]
    async with make_pool(2, worker_env=env) as pool:
        # Two concurrent jobs that hold their worker for a moment land on different workers.
        states = await asyncio.gather(*(pool.submit({"op": "state", "hold": 0.5}) for _ in "ab"))
    assert sorted(s["cuda"] for s in states) == ["0", "1"]
    assert all(s["pgid"] == s["pid"] for s in states), "each worker leads its process group"


async def test_init_fn_may_be_a_partial_carrying_configuration() -> None:
    config = '{"device": "cpu", "target_faces": 20000}'
    async with make_pool(1, init_fn=functools.partial(jobs.init_with, config)) as pool:
        assert (await pool.submit({"op": "state"}))["config"] == config


async def test_worker_killed_mid_job_is_respawned_and_the_job_retried() -> None:
    async with make_pool(1, max_attempts=2) as pool:
        task = asyncio.create_task(pool.submit({"op": "sleep", "seconds": 1.0}))
        await wait_for(lambda: pool.stats()["busy"] == 1)
        (victim,) = pool.stats()["pids"]
        os.kill(victim, signal.SIGKILL)
        result = await task
        stats = pool.stats()
    assert result["slept"] == 1.0
    assert result["pid"] != victim
    assert (stats["crashes"], stats["retries"], stats["respawns"]) == (1, 1, 1)
    assert_reaped(victim)


async def test_crash_on_every_attempt_fails_with_worker_crashed() -> None:
    async with make_pool(1, max_attempts=2) as pool:
        with pytest.raises(WorkerCrashed) as info:
            await pool.submit({"op": "crash"})
        assert info.value.detail == {"attempts": 2, "exitcode": -9, "signal": "SIGKILL"}
        assert "2 of 2 attempts" in info.value.message
        assert "SIGKILL" in info.value.message
        # The slot got a fresh worker: the pool still works.
        assert (await pool.submit({"op": "echo", "value": 7}))["value"] == 7
        assert pool.stats()["crashes"] == 2


async def test_segfault_is_reported_with_its_signal() -> None:
    async with make_pool(1, max_attempts=1) as pool:
        with pytest.raises(WorkerCrashed) as info:
            await pool.submit({"op": "segfault"})
    assert info.value.detail["signal"] == "SIGSEGV"
    assert info.value.retryable


async def test_job_crashing_once_succeeds_on_retry(tmp_path: Path) -> None:
    async with make_pool(1, max_attempts=3) as pool:
        result = await pool.submit({"op": "crash_once", "marker": str(tmp_path / "m")})
    assert result["pid"] != result["crashed_pid"]


async def test_timeout_kills_worker_and_next_job_runs_on_a_fresh_one() -> None:
    async with make_pool(1, job_timeout_s=1.0) as pool:
        (first_pid,) = pool.stats()["pids"]
        started = time.perf_counter()
        with pytest.raises(JobTimeout) as info:
            await pool.submit({"op": "sleep", "seconds": 30})
        assert time.perf_counter() - started < 3.0
        assert info.value.detail == {"timeout_s": 1.0}
        result = await pool.submit({"op": "echo", "value": "after"})
        stats = pool.stats()
    assert result == {"pid": result["pid"], "value": "after"}
    assert result["pid"] != first_pid
    assert (stats["timeouts"], stats["respawns"], stats["crashes"]) == (1, 1, 0)
    assert_reaped(first_pid)


async def test_timeout_also_kills_helpers_the_job_started(tmp_path: Path) -> None:
    pidfile = tmp_path / "helper.pid"
    async with make_pool(1, job_timeout_s=1.5) as pool:
        with pytest.raises(JobTimeout):
            await pool.submit({"op": "spawn_helper", "pidfile": str(pidfile)})
    helper = int(pidfile.read_text())
    await wait_for(lambda: not psutil.pid_exists(helper) or _is_zombie(helper), timeout=5)


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_backpressure_bounds_queued_jobs() -> None:
    async with make_pool(1, queue_size=1) as pool:
        job = {"op": "sleep", "seconds": 0.6}
        tasks = [asyncio.create_task(pool.submit(job)) for _ in range(3)]
        await wait_for(lambda: pool.stats()["busy"] == 1)
        await asyncio.sleep(0.1)
        stats = pool.stats()
        assert (stats["busy"], stats["queued"], stats["waiting"]) == (1, 1, 1)
        assert stats["submitted"] == 2, "the third submit must still be waiting for room"
        # enqueue() returns only once the job is accepted: here it has to wait.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(pool.enqueue(job), 0.2)
        results = await asyncio.gather(*tasks)
    assert [r["slept"] for r in results] == [0.6] * 3


async def test_queue_size_zero_means_workers() -> None:
    pool = make_pool(2, queue_size=0)
    assert pool.queue_size == 2


async def test_typed_error_comes_back_as_the_same_class(pool: WorkerPool) -> None:
    with pytest.raises(InvalidImage) as info:
        await pool.submit({"op": "raise_typed"})
    assert info.value.message == "image is 0x0 pixels"
    assert info.value.detail == {"width": 0, "height": 0}
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "raise InvalidImage" in info.value.__cause__.text

    with pytest.raises(jobs.OddInitError) as odd:
        await pool.submit({"op": "raise_odd"})
    assert (odd.value.message, odd.value.detail) == ("bad size 3x4", {"width": 3, "height": 4})
    assert odd.value.code == "odd_init"


async def test_unknown_error_becomes_processing_failed(pool: WorkerPool) -> None:
    (pid,) = pool.stats()["pids"]
    with pytest.raises(ProcessingFailed) as info:
        await pool.submit({"op": "raise_unknown"})
    err = info.value
    assert type(err) is ProcessingFailed
    assert err.message == "tests.workers_jobs.LocalOnlyError: the flux capacitor is empty"
    assert err.detail["error_type"] == "tests.workers_jobs.LocalOnlyError"
    with pytest.raises(ProcessingFailed, match="ValueError: mesh has 0 faces"):
        await pool.submit({"op": "raise_value"})
    # A job error is not a crash: same worker, nothing respawned.
    assert pool.stats()["pids"] == [pid]
    assert pool.stats()["respawns"] == 0


async def test_log_context_of_the_submitter_reaches_the_worker(pool: WorkerPool) -> None:
    with bound_order("ord-123", attempt=2):
        seen = await pool.submit({"op": "log_context"}, key="job-7")
    assert seen == {"order_id": "ord-123", "attempt": 2, "key": "job-7"}


async def test_large_job_and_result_round_trip(pool: WorkerPool) -> None:
    size = 6 * 1024 * 1024
    result = await pool.submit({"op": "blob", "size": size})
    assert len(result["glb"]) == size and result["report"] == {"size": size}
    assert await pool.submit({"op": "size_of", "data": os.urandom(size)}) == size


async def test_unpicklable_job_and_result_are_processing_failed(pool: WorkerPool) -> None:
    with pytest.raises(ProcessingFailed, match="result cannot be pickled"):
        await pool.submit({"op": "unpicklable_result"})
    with pytest.raises(ProcessingFailed, match="job cannot be pickled"):
        await pool.submit({"op": "echo", "value": lambda: None})
    assert (await pool.submit({"op": "echo", "value": 1}))["value"] == 1


def test_callables_must_be_importable() -> None:
    with pytest.raises(TypeError, match="importable top-level function"):
        WorkerPool(lambda state, job: job, jobs.init, workers=1)


async def test_cancelled_running_job_kills_its_worker(pool: WorkerPool) -> None:
    (pid,) = pool.stats()["pids"]
    task = asyncio.create_task(pool.submit({"op": "sleep", "seconds": 30}))
    await wait_for(lambda: pool.stats()["busy"] == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await pool.submit({"op": "echo", "value": 2}))["pid"] != pid
    assert pool.stats()["respawns"] == 1
    assert_reaped(pid)


async def test_cancelled_queued_job_never_runs(tmp_path: Path) -> None:
    async with make_pool(1, queue_size=2) as pool:
        blocker = asyncio.create_task(pool.submit({"op": "sleep", "seconds": 0.5}))
        await wait_for(lambda: pool.stats()["busy"] == 1)
        marker = tmp_path / "m"
        queued = asyncio.create_task(pool.submit({"op": "crash_once", "marker": str(marker)}))
        await wait_for(lambda: pool.stats()["queued"] == 1)
        queued.cancel()
        await wait_for(lambda: pool.stats()["queued"] == 0)
        await blocker
        assert (await pool.submit({"op": "echo", "value": 3}))["value"] == 3
    assert not marker.exists()


async def test_worker_dying_while_idle_is_replaced_without_costing_a_job(pool: WorkerPool) -> None:
    (pid,) = pool.stats()["pids"]
    os.kill(pid, signal.SIGKILL)
    await wait_for(lambda: pool.stats()["respawns"] == 1 and pool.stats()["alive"] == 1)
    result = await pool.submit({"op": "echo", "value": 4})
    assert result["pid"] != pid
    assert pool.stats()["crashes"] == 0


@pytest.mark.parametrize(
    ("init_fn", "error", "match"),
    [
        (jobs.init_fails, WorkerStartFailed, "RuntimeError: weights are corrupt"),
        (jobs.init_typed_fails, ModelUnavailable, "no checkpoint in /models/triposr"),
        (jobs.init_crashes, WorkerStartFailed, "died during start-up: killed by signal SIGKILL"),
    ],
)
async def test_init_failure_fails_start_and_leaves_no_worker(
    init_fn: Callable[[], Any], error: type[Exception], match: str
) -> None:
    pool = make_pool(2, init_fn=init_fn)
    with pytest.raises(error, match=match):
        async with pool:
            pytest.fail("start() should have raised")
    assert pool.stats()["phase"] == "closed"
    assert worker_children() == []


async def test_cancelled_start_leaves_no_worker() -> None:
    pool = make_pool(2, init_fn=jobs.init_slow)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(1.0)
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    assert pool.stats()["phase"] == "closed"
    assert worker_children() == []


async def test_close_during_start_stops_the_new_workers() -> None:
    pool = make_pool(1)
    start = asyncio.create_task(pool.start())
    await asyncio.sleep(0.05)
    await pool.close()
    await start
    assert pool.stats()["phase"] == "closed"
    assert worker_children() == []


async def test_slot_that_cannot_respawn_goes_down_and_pool_reports_it(tmp_path: Path) -> None:
    env = [{"WORKERS_TEST_ONCE": str(tmp_path / "once")}]
    async with make_pool(1, max_attempts=2, init_fn=jobs.init_only_once, worker_env=env) as pool:
        assert pool.healthy
        with pytest.raises(WorkerCrashed, match="could not be restarted"):
            await pool.submit({"op": "crash"})
        assert not pool.healthy
        assert pool.stats()["slots_down"] == 1
        with pytest.raises(WorkerCrashed, match="no worker can be started"):
            await pool.submit({"op": "echo"})
    assert worker_children() == []


async def test_close_waits_for_running_jobs_then_leaves_no_children() -> None:
    pool = make_pool(2)
    async with pool:
        pids = pool.stats()["pids"]
        running = asyncio.create_task(pool.submit({"op": "sleep", "seconds": 0.8}))
        await wait_for(lambda: pool.stats()["busy"] == 1)
        await pool.close(timeout=10)
        assert (await running)["slept"] == 0.8
    assert pool.stats()["alive"] == 0
    for pid in pids:
        assert_reaped(pid)
    assert worker_children() == []
    with pytest.raises(PoolClosed):
        await pool.submit({"op": "echo"})


async def test_close_deadline_kills_running_and_fails_queued_jobs() -> None:
    pool = make_pool(1, queue_size=2)
    async with pool:
        running = asyncio.create_task(pool.submit({"op": "sleep", "seconds": 30}))
        await wait_for(lambda: pool.stats()["busy"] == 1)
        queued = asyncio.create_task(pool.submit({"op": "echo"}))
        await wait_for(lambda: pool.stats()["queued"] == 1)
        started = time.perf_counter()
        await pool.close(timeout=0.5)
        assert time.perf_counter() - started < 5.0
    with pytest.raises(PoolClosed, match="before the job started"):
        await queued
    with pytest.raises(PoolClosed, match="while the job was running"):
        await running
    assert worker_children() == []


async def test_workers_exit_when_the_service_dies(tmp_path: Path) -> None:
    """A worker must not outlive a service that was SIGKILLed (no close() ran)."""
    script = tmp_path / "service.py"
    script.write_text(
        "import asyncio, os, sys\n"
        "from sculptsvc.workers import PoolTuning, WorkerPool\n"
        "from tests import workers_jobs as jobs\n"
        "async def main():\n"
        "    pool = WorkerPool(jobs.run, jobs.init, workers=1,\n"
        "                      tuning=PoolTuning(parent_poll_s=0.1))\n"
        "    await pool.start()\n"
        "    task = asyncio.create_task(pool.submit({'op': 'sleep', 'seconds': 60}))\n"
        "    await asyncio.sleep(0.3)\n"
        "    print('WORKER', pool.stats()['pids'][0], flush=True)\n"
        "    os._exit(0)\n"
        "if __name__ == '__main__':\n"
        "    asyncio.run(main())\n"
    )
    repo = Path(__file__).resolve().parents[2]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(script),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    out, _ = await proc.communicate()
    (line,) = [ln for ln in out.decode().splitlines() if ln.startswith("WORKER ")]
    worker_pid = int(line.split()[1])
    await wait_for(lambda: _is_zombie(worker_pid) or not psutil.pid_exists(worker_pid), 5)
