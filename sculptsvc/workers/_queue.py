"""A bounded FIFO that can be closed, the pool's backpressure point (asyncio's gains
``shutdown()`` only in Python 3.13).

``get`` removes an item only when the getter resumes, so cancelling a waiting ``get`` (a slot
that also watches its worker) never loses an item. Every change wakes all waiters, which then
re-check; with a handful of slots and waiting submitters that costs nothing and cannot lose
a wake-up.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class ClosableQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._items: deque[T] = deque()
        self._getters: list[asyncio.Future[None]] = []
        self._putters: list[asyncio.Future[None]] = []
        self._closed_error: Callable[[], BaseException] | None = None

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed_error is not None

    @property
    def waiting_putters(self) -> int:
        return sum(not f.done() for f in self._putters)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        waiters.clear()

    async def _wait(self, waiters: list[asyncio.Future[None]]) -> None:
        fut = asyncio.get_running_loop().create_future()
        waiters.append(fut)
        try:
            await fut
        finally:
            if fut in waiters:
                waiters.remove(fut)

    async def put(self, item: T) -> None:
        """Append ``item``, waiting while the queue is full; raises the close error if closed."""
        while self._closed_error is None and len(self._items) >= self.maxsize:
            await self._wait(self._putters)
        if self._closed_error is not None:
            raise self._closed_error()
        self._items.append(item)
        self._wake(self._getters)

    async def get(self) -> T | None:
        """Oldest item, waiting while empty; ``None`` once the queue is closed."""
        while not self._items:
            if self._closed_error is not None:
                return None
            await self._wait(self._getters)
        item = self._items.popleft()
        self._wake(self._putters)
        return item

    def remove(self, item: T) -> bool:
        """Drop a queued item (its submitter gave up); True when it was still queued.

        Checked first, not caught: ``deque.remove`` builds its ValueError from ``repr(item)``,
        and a finished job's repr holds its whole result (megabytes, tens of ms of loop)."""
        if not any(queued is item for queued in self._items):
            return False
        self._items.remove(item)
        self._wake(self._putters)
        return True

    def close(self, error: Callable[[], BaseException]) -> list[T]:
        """Refuse further puts with ``error()``, wake everyone, return the items still queued."""
        self._closed_error = error
        items = list(self._items)
        self._items.clear()
        self._wake(self._getters)
        self._wake(self._putters)
        return items
