"""Celery's Redis result backend, without the result subscriptions nobody in homeshots waits for.

Celery's Redis backend subscribes to a pub/sub channel for every result it might wait on; ``apply_chord``
does so for every header task even inside ``denied_join_result()``. homeshots never waits on a task's
result (chord callbacks read what they need from Redis), so each chord sent by the CLI or a callback
would cost a SUBSCRIBE per task, keep the results in memory, and, in the CLI, print an
``AsyncResult.__del__`` traceback at exit when the Redis has gone. Inside ``denied_join_result()`` this
backend keeps nothing pending; everywhere else it is Celery's own.
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend
from celery.result import task_join_will_block


class ChordResultsBackend(RedisBackend):
    """Stores results and counts chord parts as Celery's Redis backend does; never subscribes for them."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        if task_join_will_block():
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)


BACKEND = f"{__name__}:{ChordResultsBackend.__name__}"


def backend_url(url: str | None) -> str | None:
    """The ``result_backend`` setting for ``url``: this backend for a Redis URL, anything else as given."""
    if url and url.startswith(("redis://", "rediss://")):
        return f"{BACKEND}+{url}"
    return url
