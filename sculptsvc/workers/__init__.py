"""The worker pool: runs the heavy pipeline in spawned processes, off the event loop.

    from sculptsvc.workers import WorkerPool

    pool = WorkerPool.from_settings(run_order, load_models, settings)
    async with pool:                      # every worker has loaded its models
        result = await pool.submit(job)   # waits while the queue is full (backpressure)

Names resolve lazily: a spawned worker imports ``sculptsvc.workers._child`` and should not
pay for pydantic settings and the pool it never uses (each respawn would).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sculptsvc.workers._wire import RemoteTraceback
    from sculptsvc.workers.placement import Placement, plan_workers, visible_gpus
    from sculptsvc.workers.pool import WorkerPool
    from sculptsvc.workers.process import PoolTuning, describe_exit

_EXPORTS = {
    "Placement": "sculptsvc.workers.placement",
    "plan_workers": "sculptsvc.workers.placement",
    "visible_gpus": "sculptsvc.workers.placement",
    "PoolTuning": "sculptsvc.workers.process",
    "WorkerPool": "sculptsvc.workers.pool",
    "describe_exit": "sculptsvc.workers.process",
    "RemoteTraceback": "sculptsvc.workers._wire",
}

__all__ = [
    "Placement",
    "PoolTuning",
    "RemoteTraceback",
    "WorkerPool",
    "describe_exit",
    "plan_workers",
    "visible_gpus",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
