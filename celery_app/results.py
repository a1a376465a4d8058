"""Celery's Redis result backend, lean for homeshots' chords: no result subscriptions, a counter per chord.

Celery's Redis backend subscribes to a pub/sub channel for every result it might wait on; ``apply_chord``
does so for every header task even inside ``denied_join_result()``. homeshots never waits on a task's
result, so inside ``denied_join_result()`` this backend keeps nothing pending (no SUBSCRIBE per task, no
``AsyncResult.__del__`` traceback in a CLI whose Redis has gone).

Its chords are lane chunks whose callbacks read everything they need from Redis (``tasks.chunks``), and
whose header tasks store no result (``ignore_result``). So a header task's return is counted, not kept:
one INCR and one GET of the chord's size in one round trip, where Celery's own keeps each result in a
sorted set, refreshes five expiries and claims the callback (about 20 commands per task). The task that
brings the count to the chord's size sends the callback, once; a redelivered copy counts too and may
send it early, which the callback notices (it checks the chunk's records and waits for stragglers).
"""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend
from celery.canvas import maybe_signature
from celery.result import denied_join_result, task_join_will_block
from celery.utils.log import get_task_logger

log = get_task_logger(__name__)


class ChordResultsBackend(RedisBackend):
    """Stores results as Celery's Redis backend does; never subscribes for them; counts chord parts."""

    def add_pending_result(self, result: Any, weak: bool = False, start_drainer: bool = True) -> Any:
        if task_join_will_block():
            return result
        return super().add_pending_result(result, weak=weak, start_drainer=start_drainer)

    def set_chord_size(self, group_id: str, chord_size: int) -> None:
        """A chord (re)applied under this group id counts from zero."""
        self.client.delete(self.get_key_for_group(group_id, ".n"))
        super().set_chord_size(group_id, chord_size)

    def on_chord_part_return(
        self, request: Any, state: str, result: Any, propagate: bool | None = None, **kw: Any
    ) -> None:
        gid = request.group
        if not gid or not request.id or not request.chord:
            return
        counter = self.get_key_for_group(gid, ".n")
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.get(self.get_key_for_group(gid, ".s"))
        done, size = pipe.execute()
        if int(done) == 1:
            self.client.expire(counter, int(self.expires or 86400))
        if size is None or int(done) != int(size):
            return
        callback = maybe_signature(request.chord, app=self.app)
        try:
            with denied_join_result():
                self.app.amqp._retry_publish(callback.delay, [])
        except Exception as exc:  # the reconciler sends a lost callback again
            log.exception("chord callback of %r not sent: %r", gid, exc)
        self.client.delete(counter, self.get_key_for_group(gid, ".s"))


BACKEND = f"{__name__}:{ChordResultsBackend.__name__}"


def backend_url(url: str | None) -> str | None:
    """The ``result_backend`` setting for ``url``: this backend for a Redis URL, anything else as given."""
    if url and url.startswith(("redis://", "rediss://")):
        return f"{BACKEND}+{url}"
    return url
