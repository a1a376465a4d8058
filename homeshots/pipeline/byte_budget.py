"""A byte budget for image bodies held by one worker process, shared by all its tasks and threads.

Downloads run ahead of the image lane (8 at a time by default), so without a bound a listing of fifty
16 MB photos holds ~800 MB of bodies waiting to be standardized. Each download takes room from this
budget as its decoded bytes arrive and gives it back once its image is stored; when the budget is
full, downloads wait. The oldest holder is never made to wait, so the budget cannot deadlock: memory
stays under ``limit`` plus one image (``max_image_bytes``), whatever the listing.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]


class ByteBudget:
    """``limit`` bytes shared by reservations; thread-safe, usable from any thread's event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._active: dict[int, int] = {}
        """Reservation number -> bytes it holds, in the order reservations were opened."""
        self._waiters: list[_Waiter] = []

    def reservation(self) -> Reservation:
        with self._lock:
            number = next(self._seq)
            self._active[number] = 0
        return Reservation(self, number)

    def _try_take(self, number: int, size: int) -> bool:
        with self._lock:
            oldest = next(iter(self._active)) == number
            if not oldest and self.used + size > self.limit:
                return False
            self._active[number] += size
            self.used += size
            self.peak = max(self.peak, self.used)
            return True

    def _wait_handle(self) -> _Waiter:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop, loop.create_future())
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def _release(self, number: int) -> None:
        with self._lock:
            self.used -= self._active.pop(number, 0)
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:  # every waiter re-checks; the new oldest one always gets through
            waiter.loop.call_soon_threadsafe(_wake, waiter.future)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(eq=False)
class Reservation:
    """The room one image body holds. ``take`` as bytes arrive; ``release`` when the image is done."""

    budget: ByteBudget
    number: int
    released: bool = field(default=False)

    async def take(self, size: int) -> None:
        """Wait until ``size`` more bytes fit (never waits when this is the oldest reservation)."""
        while not self.budget._try_take(self.number, size):
            waiter = self.budget._wait_handle()
            if self.budget._try_take(self.number, size):  # room freed between the check and the wait
                return
            await waiter.future

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.budget._release(self.number)
