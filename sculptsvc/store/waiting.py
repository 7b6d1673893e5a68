"""Blocking store calls from async code, waiting out an unreachable store.

An outage of the artifact store is nobody's fault: the order (or station job) waits and
tries again, doubling the delay from ``retry_backoff_s`` up to ``store_retry_max_backoff_s``;
it is never dead-lettered or failed for it. ``outage`` says why meanwhile, for ``/ready``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sculptsvc.errors import StorageUnavailable
from sculptsvc.logging import get_logger
from sculptsvc.settings import Settings

log = get_logger(__name__)
T = TypeVar("T")
MIN_FIRST_DELAY_S = 0.1  # first wait when retry_backoff_s is 0 (tests): never a busy loop


def _ignore(exc: StorageUnavailable) -> None:
    return None


@dataclass
class StoreWaiter:
    first_delay_s: float
    max_delay_s: float
    on_retry: Callable[[StorageUnavailable], None] = _ignore
    #: Why the store failed the last call, until a call succeeds again.
    outage: str | None = field(default=None, init=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, on_retry: Callable[[StorageUnavailable], None] = _ignore
    ) -> StoreWaiter:
        return cls(
            max(settings.retry_backoff_s, MIN_FIRST_DELAY_S),
            settings.store_retry_max_backoff_s,
            on_retry,
        )

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in a thread; on ``StorageUnavailable`` wait, then call it again."""
        delay = self.first_delay_s
        while True:
            try:
                result = await asyncio.to_thread(fn, *args)
            except StorageUnavailable as exc:
                self.outage = exc.message
                self.on_retry(exc)
                log.warning("store.unavailable", reason=exc.message, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_delay_s)
                continue
            self.outage = None
            return result
