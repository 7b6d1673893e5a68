"""One submitted job as the pool tracks it, and the helpers every part of the pool shares."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from sculptsvc.logging import get_logger

log = get_logger("sculptsvc.workers")

OnProgress = Callable[[Any], Awaitable[None]]
"""Awaited with each event the job reports (``sculptsvc.workers.progress.report``)."""

COUNTERS = ("submitted", "completed", "failed", "timeouts", "crashes", "retries", "respawns")


@dataclass(eq=False)
class Job:
    id: int
    payload: Any = field(repr=False)
    """Pickled job (bytes) in process mode; the job object itself in inline mode."""
    future: asyncio.Future[Any] = field(repr=False)
    """Kept out of the repr, like the payload: once done it holds the (large) result."""
    context: dict[str, Any]
    """The submitter's structlog context (e.g. ``order_id``), bound in the worker's logs too."""
    on_progress: OnProgress | None = None
    attempts: int = 0
    enqueued_at: float = field(default_factory=time.monotonic)

    @property
    def log(self) -> Any:
        return log.bind(**self.context)

    def fail(self, error: BaseException, counters: dict[str, int], *, count: bool = True) -> None:
        if count:
            counters["failed"] += 1
        if not self.future.done():
            self.future.set_exception(error)

    def succeed(self, result: Any, counters: dict[str, int]) -> None:
        counters["completed"] += 1
        if not self.future.done():
            self.future.set_result(result)

    async def progress(self, event: Any) -> None:
        if self.on_progress is not None and not self.future.done():
            await self.on_progress(event)


def log_context(key: str | None) -> dict[str, Any]:
    """Plain-valued structlog contextvars of the caller, plus ``key`` when given."""
    context = {
        name: value
        for name, value in structlog.contextvars.get_contextvars().items()
        if isinstance(value, str | int | float | bool)
    }
    if key is not None:
        context["key"] = key
    return context


def discard(task: asyncio.Future[Any] | None) -> None:
    """Cancel a helper task we no longer wait for, or mark its exception as seen."""
    if task is None:
        return
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()
