"""Celery configuration: JSON only, late acks, one message prefetched, no lost redeliveries.

A task that is killed mid-way is redelivered (``acks_late`` + ``reject_on_worker_lost``), so every
task effect is idempotent; the broker's visibility timeout outlasts the hard time limit so a slow
task is never handed to a second worker while the first still runs it.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_init
from kombu import Queue

from celery_app.results import backend_url
from homeshots.core.errors import ConfigError
from homeshots.core.settings import SOURCES, Settings, get_settings

QUEUE = "homeshots"
CALLBACK_QUEUE = "homeshots.callbacks"
"""Chunk callbacks get their own queue: they never wait behind thousands of lane tasks."""
LANE_QUEUE_PREFIX = "homeshots.src."


def lane_queue(source: str) -> str:
    """The queue of one source's lane tasks: a worker started with ``-Q homeshots.src.zillow`` serves only it."""
    return LANE_QUEUE_PREFIX + source


QUEUES = (QUEUE, CALLBACK_QUEUE, *(lane_queue(source) for source in SOURCES))
"""Every queue; a worker started without ``-Q`` consumes them all."""


def build_config(settings: Settings) -> dict[str, Any]:
    visibility = settings.effective_visibility_timeout
    hour, minute = settings.nightly_at.split(":")
    beat = {"homeshots-nightly": {"task": "homeshots.nightly", "schedule": crontab(hour=hour, minute=minute)}}
    return {
        "beat_schedule": beat if settings.nightly_file else {},
        "broker_url": settings.effective_broker_url,
        "result_backend": backend_url(settings.effective_result_backend_url),
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "broker_transport_options": {"visibility_timeout": visibility},
        "result_backend_transport_options": {"visibility_timeout": visibility},
        "result_expires": int(settings.result_expires_hours * 3600),
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_mb * 1024 or None,
        "task_default_queue": QUEUE,
        "task_queues": [Queue(name, routing_key=name) for name in QUEUES],  # distinct keys: no fan-out
        "task_track_started": False,  # STARTED is in the task events Flower reads; no result write per task
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "redis_backend_health_check_interval": 30,
        "result_chord_join_timeout": 30,
    }


app = Celery("homeshots", include=["tasks.lane", "tasks.chunks", "tasks.nightly", "tasks.worker_life"])


def configure(settings: Settings) -> Celery:
    """(Re)apply settings; the CLI calls this after it has started an embedded Redis."""
    app.conf.update(build_config(settings))
    return app


configure(get_settings())


def release_result_subscriptions() -> None:
    """Drop a submitter's result-channel subscriptions while its Redis is still up.

    Celery's AsyncResult.__del__ unsubscribes at interpreter exit; against an embedded Redis that
    has already stopped, that prints a traceback. Nobody here waits on task results.
    """
    consumer = getattr(app.backend, "result_consumer", None)
    if consumer is None:
        return
    getattr(consumer, "subscribed_to", set()).clear()
    with contextlib.suppress(Exception):
        consumer.stop()


@worker_init.connect
def _require_redis(**_: Any) -> None:
    if not get_settings().redis_url:
        raise ConfigError("workers need HOMESHOTS_REDIS_URL (state, manifest and hash index live there)")
