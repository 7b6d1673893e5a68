"""Worker pool overheads: start-up, per-job round trip, big results, respawn, loop liveness.

The pipeline's jobs take seconds; the pool's own costs must stay in milliseconds per job
(targets in ``TARGETS``) and the event loop must never stall (Kafka heartbeats).
Run: ``.venv/bin/python -m bench workers``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from typing import Any

from bench.common import print_table
from sculptsvc.logging import configure_logging
from sculptsvc.workers import PoolTuning, WorkerPool

ROUND_TRIPS = 50
BLOB_BYTES = 4 * 1024 * 1024
BLOB_TRIPS = 10
SPIN_S = 2.0
TICK_S = 0.05
TARGETS_MS = {
    "round trip (tiny job)": 5.0,
    "round trip (4 MiB result)": 50.0,
    "max event-loop gap during a CPU-bound job": 200.0,
}


def init() -> dict[str, Any]:
    return {"pid": os.getpid()}


def job(state: dict[str, Any], spec: dict[str, Any]) -> Any:
    if spec["op"] == "echo":
        return spec.get("value")
    if spec["op"] == "blob":
        return {"glb": bytes(spec["size"]), "report": {"pid": state["pid"]}}
    if spec["op"] == "spin":
        deadline = time.perf_counter() + spec["seconds"]
        while time.perf_counter() < deadline:
            pass
        return None
    raise ValueError(spec["op"])


async def _measure() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def row(name: str, seconds: float) -> None:
        ms = seconds * 1000
        target = TARGETS_MS.get(name)
        verdict = "" if target is None else ("ok" if ms <= target else "SLOW")
        rows.append({"measure": name, "ms": ms, "target_ms": target or "", "verdict": verdict})

    started = time.perf_counter()
    pool: WorkerPool[Any, Any, Any] = WorkerPool(
        job, init, workers=2, job_timeout_s=60, tuning=PoolTuning(respawn_backoff_s=0.05)
    )
    async with pool:
        row("start 2 workers (spawn + init)", time.perf_counter() - started)

        await pool.submit({"op": "echo", "value": 0})
        times = []
        for i in range(ROUND_TRIPS):
            t = time.perf_counter()
            await pool.submit({"op": "echo", "value": i})
            times.append(time.perf_counter() - t)
        row("round trip (tiny job)", statistics.median(times))

        times = []
        for _ in range(BLOB_TRIPS):
            t = time.perf_counter()
            await pool.submit({"op": "blob", "size": BLOB_BYTES})
            times.append(time.perf_counter() - t)
        row("round trip (4 MiB result)", statistics.median(times))

        gaps: list[float] = []

        async def ticker(stop: asyncio.Event) -> None:
            last = time.perf_counter()
            while not stop.is_set():
                await asyncio.sleep(TICK_S)
                now = time.perf_counter()
                gaps.append(now - last - TICK_S)
                last = now

        stop = asyncio.Event()
        tick = asyncio.create_task(ticker(stop))
        await pool.submit({"op": "spin", "seconds": SPIN_S})
        stop.set()
        await tick
        row("max event-loop gap during a CPU-bound job", max(gaps))

        victim = pool.stats()["pids"][0]
        t = time.perf_counter()
        os.kill(victim, signal.SIGKILL)
        while pool.stats()["respawns"] < 1 or pool.stats()["alive"] < 2:
            await asyncio.sleep(0.01)
        row("respawn after kill -9 (idle worker)", time.perf_counter() - t)

        t = time.perf_counter()
    row("close (2 idle workers)", time.perf_counter() - t)
    return rows


def main() -> None:
    configure_logging("WARNING", "console")  # the pool's info lines would drown the table
    print_table("worker pool (2 CPU workers, spawn)", asyncio.run(_measure()))


if __name__ == "__main__":
    main()
