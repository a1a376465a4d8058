"""The per-property task: one chord header task per property."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from celery_app import app
from homeshots.errors import StoreError
from homeshots.models import Property
from homeshots.pipeline import PropertyOutcome, PropertyPipeline
from homeshots.worker_context import get_context, reset_context
from managers.run_manager import RunManager
from managers.state_manager import StateManager

log = logging.getLogger(__name__)


@app.task(name="homeshots.extract_property", bind=True, max_retries=20)
def extract_property(self: Task, run_id: str, prop: dict[str, Any], sources: list[str]) -> dict[str, Any]:
    """Collect the images of one property. Returns counters; never raises for source/image failures."""
    item = Property.from_dict(prop)
    ctx = get_context()
    try:
        if StateManager(ctx.redis, run_id).is_completed(item.property_id):
            return {"property_id": item.property_id, "status": "skipped", "counters": {}, "reason": None}
        outcome = ctx.run(PropertyPipeline(ctx, run_id).run(item, sources))
    except SoftTimeLimitExceeded:
        reset_context()
        outcome = _record_failure(run_id, item, "timeout", "soft time limit exceeded")
    except (redis.RedisError, StoreError) as exc:
        # Infrastructure, not the property: try again later rather than record a false failure.
        log.warning("infrastructure error on %s, retrying: %s", item.property_id, exc)
        raise self.retry(exc=exc, countdown=min(60, 2 ** self.request.retries)) from exc
    except Exception as exc:
        log.exception("unexpected error on property %s", item.property_id)
        outcome = _record_failure(run_id, item, "error", f"{type(exc).__name__}: {exc}")
    return outcome.to_result()


def _record_failure(run_id: str, item: Property, kind: str, message: str) -> PropertyOutcome:
    ctx = get_context()
    reason = {"source": "", "kind": kind, "message": message}
    pipe = ctx.redis.pipeline(transaction=True)
    StateManager(ctx.redis, run_id).mark_failed(pipe, item.property_id, reason)
    RunManager(ctx.redis, run_id).record_property_stats(pipe, item.property_id, {})
    pipe.execute()
    return PropertyOutcome(item.property_id, "failed", {}, reason)
