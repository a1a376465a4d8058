"""A worker's life around its tasks, on Celery's signals.

* ``worker_process_init`` / ``worker_process_shutdown``: each pool process opens its resources (event
  loop, HTTP clients, Redis, store) fresh and closes them when it ends (``pipeline.worker_context``).
* ``worker_ready`` starts the caretaker, a thread of the worker's main process that says every
  ``heartbeat_seconds`` that the worker is alive and, every ``reconcile_seconds``, if it wins the
  cluster-wide lock, reconciles the active runs (``tasks.reconcile``): lost hosts cost minutes, not the
  broker's visibility timeout, even when nobody waits on the CLI.
* ``task_received``: a lane task names the worker that holds it (its lease) as soon as the message
  arrives, so a task parked for a countdown or prefetched on a host that dies is found.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from typing import Any

import redis
from celery.signals import task_received, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from homeshots.core.redact import redact_text
from homeshots.core.settings import Settings, get_settings
from homeshots.pipeline.worker_context import process_started, process_stopping
from managers import keys
from managers.connection import connect
from tasks.lane import TASK as LANE_TASK
from tasks.reconcile import reconcile_active

log = logging.getLogger(__name__)


@worker_process_init.connect
def _process_init(**_: Any) -> None:
    process_started()


@worker_process_shutdown.connect
def _process_shutdown(**_: Any) -> None:
    process_stopping()


class Caretaker(threading.Thread):
    """Heartbeat and periodic reconciliation, in the worker's main process (never in a pool process)."""

    def __init__(self, worker: str, settings: Settings) -> None:
        super().__init__(name="homeshots-caretaker", daemon=True)
        self.worker = worker
        self.settings = settings
        self.stopped = threading.Event()
        self.client = connect(settings.redis_url, cluster=settings.redis_cluster)

    def run(self) -> None:
        next_reconcile = time.time() + self.settings.reconcile_seconds
        while True:
            now = time.time()
            try:
                self.client.zadd(keys.WORKERS, {self.worker: now})
                if now >= next_reconcile:
                    next_reconcile = now + self.settings.reconcile_seconds
                    self._reconcile(now)
            except Exception as exc:  # Redis down, a bug: say so, keep beating
                log.warning("caretaker: %s: %s", type(exc).__name__, redact_text(str(exc)))
            if self.stopped.wait(self.settings.heartbeat_seconds):
                return

    def _reconcile(self, now: float) -> None:
        hold = max(1000, int(self.settings.reconcile_seconds * 900))
        if not self.client.set(keys.RECONCILER, self.worker, nx=True, px=hold):
            return  # another worker reconciles this round
        self.client.zremrangebyscore(keys.WORKERS, "-inf", now - 86400)
        for run_id, fixed in reconcile_active(self.client, self.settings, now).items():
            if fixed.anything:
                log.warning(
                    "reconciled run %s: re-sent %d tasks, %d callbacks; %d lost%s",
                    run_id,
                    len(fixed.tasks_resent),
                    len(fixed.callbacks_sent),
                    len(fixed.lost),
                    "; finalized" if fixed.finalized else "",
                )

    def stop(self) -> None:
        self.stopped.set()
        with contextlib.suppress(redis.RedisError):
            self.client.zrem(keys.WORKERS, self.worker)
        self.client.close()


_caretaker: Caretaker | None = None


@worker_ready.connect
def _start_caretaker(sender: Any = None, **_: Any) -> None:
    global _caretaker
    settings = get_settings()
    if not settings.redis_url or _caretaker is not None:
        return
    _caretaker = Caretaker(getattr(sender, "hostname", "") or "worker", settings)
    _caretaker.start()


@worker_shutdown.connect
def _stop_caretaker(**_: Any) -> None:
    global _caretaker
    if _caretaker is not None:
        _caretaker.stop()
        _caretaker = None


@task_received.connect
def _lease_on_receipt(request: Any = None, **_: Any) -> None:
    """The worker holds this lane task from now (running it, or keeping it until its countdown)."""
    if _caretaker is None or request is None or getattr(request, "name", None) != LANE_TASK:
        return
    try:
        run_id, prop, lane = request.args[:3]
        shard = keys.RunKeys(run_id).of(prop["property_id"])
        lease = {"worker": _caretaker.worker, "since": round(time.time(), 3), "state": "received"}
        _caretaker.client.hset(
            shard.leases, keys.lane_field(prop["property_id"], lane), json.dumps(lease, sort_keys=True)
        )
    except Exception as exc:  # a lease is a hint: never refuse a task for it
        log.debug("no lease for %s: %s", getattr(request, "id", "?"), exc)
