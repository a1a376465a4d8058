"""A photo being kept when the lane's deadline strikes is kept to the end: its row is never lost."""

from __future__ import annotations

import asyncio
import threading
import time

from homeshots.pipeline.source_pass import _unless_started


def test_a_keep_under_way_finishes_and_returns_despite_the_deadline() -> None:
    started, kept = threading.Event(), []

    def keep() -> str:  # claims the index and writes files, in a thread like ImageKeeper.keep
        started.set()
        time.sleep(0.2)
        kept.append("row")
        return "row"

    async def photo() -> str:
        return await _unless_started(asyncio.to_thread(keep))

    async def lane() -> tuple[bool, str | None]:
        task = asyncio.create_task(photo())
        await asyncio.to_thread(started.wait)
        task.cancel()  # the lane's deadline
        result = await asyncio.gather(task, return_exceptions=True)
        return task.cancelled(), result[0]

    cancelled, result = asyncio.run(lane())
    assert not cancelled and result == "row" and kept == ["row"], "the row comes back with the photo"
