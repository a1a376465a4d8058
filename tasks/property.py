"""The per-property task: one chord header task per property. It never fails the chord.

A failed header task would fail the whole window's chord (its callback would never run), so every
outcome becomes a recorded result: source and image failures by the pipeline, timeouts and bugs
here, infrastructure outages after bounded retries, and a property whose attempts keep killing the
worker ("poison") after a few deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from celery_app import app
from homeshots.core.errors import StoreError
from homeshots.core.models import Property
from homeshots.core.redact import redact_text
from homeshots.core.settings import get_settings
from homeshots.pipeline.property_pipeline import Plan, PropertyPipeline
from homeshots.pipeline.recording import PropertyOutcome
from homeshots.pipeline.worker_context import get_context, reset_context
from managers.run_manager import RunManager
from managers.state_manager import StateManager

log = logging.getLogger(__name__)
MAX_DELIVERIES = 5
"""A property whose task was started this often without recording anything is failed as poison."""


@app.task(name="homeshots.extract_property", bind=True, max_retries=12)
def extract_property(
    self: Task, run_id: str, prop: dict[str, Any], sources: list[str], plan: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Collect the images of one property. Returns small counters; never raises to the chord."""
    pid = str(prop.get("property_id", "?"))
    try:
        item = Property.from_dict(prop)
        ctx = get_context()
        completed, deliveries = _start(ctx.redis, run_id, pid)
        if completed:
            return {"property_id": pid, "status": "skipped", "counters": {}, "reason": None}
        if deliveries > MAX_DELIVERIES:
            outcome = _record_failure(run_id, pid, "poison", f"its task was killed {MAX_DELIVERIES} times")
        else:
            deadline = max(5, get_settings().task_soft_time_limit - 15)
            pipeline = PropertyPipeline(ctx, run_id, Plan.from_dict(plan))
            outcome = ctx.run(asyncio.wait_for(pipeline.run(item, sources), deadline))
    except (TimeoutError, SoftTimeLimitExceeded):
        reset_context()
        outcome = _record_failure(run_id, pid, "timeout", "took longer than the task time limit")
    except (redis.RedisError, StoreError) as exc:
        # Infrastructure, not the property: try again later rather than record a false failure.
        if self.request.retries < self.max_retries:
            log.warning("infrastructure error on %s, retrying: %s", pid, redact_text(str(exc)))
            raise self.retry(exc=exc, countdown=min(60, 2**self.request.retries)) from exc
        outcome = _record_failure(run_id, pid, "infrastructure", f"{type(exc).__name__}: {redact_text(str(exc))}")
    except Exception as exc:  # a bug must fail this property, not the whole window
        log.exception("unexpected error on property %s", pid)
        outcome = _record_failure(run_id, pid, "error", f"{type(exc).__name__}: {redact_text(str(exc))}")
    return outcome.to_result()


def _start(client: redis.Redis, run_id: str, pid: str) -> tuple[bool, int]:
    """Is the property already completed, and how often has a task for it started? One round trip."""
    state, runs = StateManager(client, run_id), RunManager(client, run_id)
    pipe = client.pipeline(transaction=False)
    pipe.sismember(state.completed_key, pid)
    pipe.hincrby(runs.deliveries_key, pid, 1)
    completed, deliveries = pipe.execute()
    return bool(completed), int(deliveries)


def _record_failure(run_id: str, pid: str, kind: str, message: str) -> PropertyOutcome:
    """Record the failure if Redis lets us; the window callback marks it lost otherwise."""
    reason = {"source": "", "kind": kind, "message": message, "retryable": kind != "poison"}
    try:
        client = get_context().redis
        pipe = client.pipeline(transaction=True)
        StateManager(client, run_id).mark_failed(pipe, pid, reason)
        RunManager(client, run_id).record_property_stats(pipe, pid, {})
        pipe.execute()
    except (redis.RedisError, StoreError):
        log.exception("could not record the failure of %s", pid)
    return PropertyOutcome(pid, "failed", {}, reason)
