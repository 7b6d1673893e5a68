"""How many workers, and which GPU and how many CPU threads each one gets.

One worker per visible GPU, pinned with ``CUDA_VISIBLE_DEVICES`` so every process sees its
own device as ``cuda:0``; otherwise ``Settings.workers`` CPU workers. Each worker's BLAS/OpenMP
thread pools get an equal share of the cores, because N processes each spinning up one
thread per core make every job slower (unless the operator set those variables already;
``sculpt`` itself sets OpenBLAS to one thread, ``sculptsvc/cli.py``).

GPUs are found without importing torch in the service process: ``CUDA_VISIBLE_DEVICES``
when the operator set it, else ``nvidia-smi``.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sculptsvc.errors import ConfigurationError
from sculptsvc.logging import get_logger
from sculptsvc.settings import Settings

log = get_logger("sculptsvc.workers")

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
NVIDIA_SMI_TIMEOUT_S = 10.0


CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may keep busy: its affinity mask (a container's cpuset,
    ``taskset``), capped by a CPU quota (``docker --cpus``, a Kubernetes limit), which the
    mask does not show: a container limited to 1 CPU on a 16-core host sees 16."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    quota = _cpu_quota(cgroup_root)
    return max(1, min(cpus, math.ceil(quota))) if quota is not None else cpus


def _cpu_quota(root: Path) -> float | None:
    """CPUs' worth of time per period allowed by cgroup v2 ``cpu.max`` or v1
    ``cpu.cfs_quota_us``/``cpu.cfs_period_us``; None when unlimited or unknown."""
    try:
        v2 = root / "cpu.max"
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        for folder in (root / "cpu", root / "cpu,cpuacct"):
            if (folder / "cpu.cfs_quota_us").is_file():
                quota_us = int((folder / "cpu.cfs_quota_us").read_text())
                period_us = int((folder / "cpu.cfs_period_us").read_text())
                return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


@dataclass(frozen=True)
class Placement:
    """The pool's shape: ``workers`` processes, ``env[i]`` applied in worker ``i``."""

    workers: int
    env: list[dict[str, str]] = field(default_factory=list)
    gpus: list[str] = field(default_factory=list)
    """Device id per worker (``CUDA_VISIBLE_DEVICES`` value); empty for CPU workers."""


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """GPU ids this process may use, one worker each (empty: none or no driver)."""
    environ = os.environ if environ is None else environ
    pinned = environ.get("CUDA_VISIBLE_DEVICES")
    if pinned is not None:
        ids = [part.strip() for part in pinned.split(",") if part.strip()]
        # CUDA stops at the first invalid id, "-1" being the usual way to hide every GPU.
        valid: list[str] = []
        for gpu in ids:
            if gpu.startswith("-"):
                break
            valid.append(gpu)
        return valid
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia_smi_failed", error=str(exc))
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def plan_workers(
    settings: Settings,
    *,
    gpus: list[str] | None = None,
    cpu_count: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> Placement:
    """The placement for ``settings`` (``gpus``/``cpu_count``/``environ`` default to this host)."""
    environ = os.environ if environ is None else environ
    cpu_count = cpu_count or len(os.sched_getaffinity(0))
    if settings.device == "cpu":
        gpus = []
    elif gpus is None:
        gpus = visible_gpus(environ)
    if settings.device == "cuda" and not gpus:
        raise ConfigurationError(
            "device=cuda but no GPU is visible (CUDA_VISIBLE_DEVICES / nvidia-smi)",
            cuda_visible_devices=environ.get("CUDA_VISIBLE_DEVICES"),
        )
    workers = len(gpus) if gpus else settings.workers
    threads = str(max(1, cpu_count // workers))
    shared = {var: threads for var in THREAD_VARS if var not in environ}
    if gpus:
        env = [{**shared, "CUDA_VISIBLE_DEVICES": gpu} for gpu in gpus]
    else:
        # Hide GPUs from CPU workers so no library silently grabs one.
        env = [{**shared, "CUDA_VISIBLE_DEVICES": ""} for _ in range(workers)]
    return Placement(workers=workers, env=env, gpus=list(gpus))
