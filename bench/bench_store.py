"""What leaving the machine costs: per-order store overhead of S3 (s3proxy over loopback)
against the local store, and station throughput with and without slicing.

Run with ``python -m bench store``. It starts its own s3proxy through ``scripts/s3``.

- **per order**: what the service does with one order's artifacts after the job, the same
  code path (``OrderProcessor._upload`` + the ledger read and write): six artifacts of
  realistic sizes, new bytes every order. Target: S3 adds < 100 ms per order (p95).
- **station**: ``build_job`` (download 4 files, verify size + sha256, write the folder,
  rename) on a real two-part mold, without and with PrusaSlicer on both halves.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import REPO_ROOT, print_table
from sculptsvc.events import MoldMaterial, MoldReady, deterministic_event_id
from sculptsvc.ledger import LedgerEntry
from sculptsvc.service.processor import OrderProcessor
from sculptsvc.settings import Settings
from sculptsvc.store import ArtifactStore, LocalArtifactStore, open_store

SCRIPT = REPO_ROOT / "scripts" / "s3"
BUCKET = "bench-artifacts"
# Sizes of one classic order's artifacts (bytes), as the pipeline writes them.
ARTIFACT_SIZES = {
    "model.glb": 1_600_000,
    "preview.png": 120_000,
    "mold_a.stl": 1_100_000,
    "mold_b.stl": 1_100_000,
    "mold.3mf": 900_000,
    "report.json": 12_000,
}


@dataclass(frozen=True)
class BenchParams:
    orders: int = 30
    station_jobs: int = 10
    sliced_jobs: int = 3
    added_target_ms: float = 100.0
    seed: int = 7


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def start_s3(workdir: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHON": str(REPO_ROOT / ".venv" / "bin" / "python")}
    subprocess.run(
        [str(SCRIPT), "start", str(workdir), "--bucket", BUCKET],
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    out = subprocess.run(
        [str(SCRIPT), "env", str(workdir)], check=True, capture_output=True, text=True, timeout=30
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def order_artifacts(rng: np.random.Generator) -> dict[str, bytes]:
    return {name: rng.bytes(size) for name, size in ARTIFACT_SIZES.items()}


async def one_order(processor: OrderProcessor, order_id: str, artifacts: dict[str, bytes]) -> float:
    t0 = time.perf_counter()
    await processor._stored(processor.ledger.read, order_id, 1)
    refs = await processor._refs(artifacts)
    await processor._write_artifacts(artifacts, refs)
    entry = LedgerEntry("bench/0/0", "completed", [{"refs": [r.uri for r in refs.values()]}])
    await processor._stored(processor.ledger.write, order_id, 1, entry)
    return time.perf_counter() - t0


def per_order_seconds(store: ArtifactStore, settings: Settings, params: BenchParams) -> list[float]:
    processor = OrderProcessor(settings, None, None, store)  # type: ignore[arg-type]
    rng = np.random.default_rng(params.seed)
    orders = [order_artifacts(rng) for _ in range(params.orders)]

    async def run() -> list[float]:
        return [await one_order(processor, f"bench-{i}", a) for i, a in enumerate(orders)]

    return asyncio.run(run())


def real_mold() -> tuple[bytes, bytes]:
    from mold import MoldSpec, make_mold, shapes

    result = make_mold(*shapes.torus(), MoldSpec())
    return result.stl_a, result.stl_b


def station_rate(store: ArtifactStore, settings: Settings, jobs: int, root: Path) -> float:
    from sculptsvc.station.app import station_config
    from sculptsvc.station.jobs import build_job

    config = station_config(settings.model_copy(update={"station_jobs_dir": root}))
    stl_a, stl_b = real_mold()
    molds = []
    for i in range(jobs):
        tag = f"job-{i}".encode()

        def tagged(stl: bytes, tag: bytes = tag) -> bytes:
            return tag.ljust(80, b" ") + stl[80:]  # new bytes per job: binary STL header

        molds.append(
            MoldReady(
                event_id=deterministic_event_id("bench", i, "mold"),
                order_id=f"bench-{i}",
                half_a=store.put(tagged(stl_a), "model/stl"),
                half_b=store.put(tagged(stl_b), "model/stl"),
                three_mf=store.put(os.urandom(900_000), "model/3mf"),
                report=store.put(b"{}" + tag, "application/json"),
                cavity_volume_ml=1.0,
                material=MoldMaterial.pla,
            )
        )
    t0 = time.perf_counter()
    for i, mold in enumerate(molds):
        build_job(mold, store, config, f"bench/0/{i}")
    return jobs / (time.perf_counter() - t0) * 60.0


def main(params: BenchParams | None = None) -> None:
    params = params or BenchParams()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        root = Path(tmp)
        env = start_s3(root / "s3")
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
        try:
            s3_settings = Settings(
                store_url=f"s3://{BUCKET}/bench", s3_endpoint_url=env["SCULPT_S3_ENDPOINT_URL"]
            )
            s3 = open_store(s3_settings)
            local = LocalArtifactStore(root / "local")
            timings = {
                "local": per_order_seconds(local, Settings(), params),
                "s3 (loopback)": per_order_seconds(s3, s3_settings, params),
            }
            rows = [
                {
                    "store": name,
                    "orders": len(t),
                    "p50_ms": round(percentile(t, 50) * 1000, 1),
                    "p95_ms": round(percentile(t, 95) * 1000, 1),
                }
                for name, t in timings.items()
            ]
            added = {
                q: percentile(timings["s3 (loopback)"], q) - percentile(timings["local"], q)
                for q in (50, 95)
            }
            rows.append(
                {
                    "store": "added by s3",
                    "orders": params.orders,
                    "p50_ms": round(added[50] * 1000, 1),
                    "p95_ms": round(added[95] * 1000, 1),
                }
            )
            megabytes = sum(ARTIFACT_SIZES.values()) / 1e6
            print_table(
                f"Per-order store overhead (6 artifacts, {megabytes:.1f} MB + ledger read/write);"
                f" target: s3 adds < {params.added_target_ms:.0f} ms",
                rows,
            )
            station_rows = [
                {
                    "station": "download + verify + folder",
                    "jobs": params.station_jobs,
                    "jobs_per_min": round(
                        station_rate(s3, s3_settings, params.station_jobs, root / "jobs"), 1
                    ),
                }
            ]
            if shutil.which(s3_settings.slicer_command):
                sliced = s3_settings.model_copy(update={"station_slice": True})
                station_rows.append(
                    {
                        "station": "+ PrusaSlicer, both halves",
                        "jobs": params.sliced_jobs,
                        "jobs_per_min": round(
                            station_rate(s3, sliced, params.sliced_jobs, root / "sliced"), 1
                        ),
                    }
                )
            print_table(
                "Station throughput (real torus mold from s3proxy, sequential)", station_rows
            )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            subprocess.run([str(SCRIPT), "stop", str(root / "s3")], check=False, timeout=60)


if __name__ == "__main__":
    main()
