"""The lane task: one source of one property, on that source's queue. It never fails its chord.

A failed header task would fail its chunk's chord (the callback would never run), so every outcome
becomes a recorded result: source and image failures by the pipeline, timeouts and bugs here,
infrastructure outages after bounded retries, and a lane whose attempts keep killing the worker
("poison") after a few deliveries.

No slot waits for a token: before it starts, the task reserves the requests it will make from the
source's cluster-wide bucket; when they are not due at once it retries with that countdown (the
reserved tokens travel with it as ``prepaid``), and a ``TokenWait`` half-way does the same.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import redis
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from celery_app import app
from homeshots.core.errors import StoreError, TokenWait
from homeshots.core.models import Property
from homeshots.core.redact import redact_text
from homeshots.core.settings import get_settings
from homeshots.pipeline.lane_pipeline import LanePipeline, Plan
from homeshots.pipeline.lane_recording import LaneResult, record_lane_failure
from homeshots.pipeline.worker_context import WorkerContext, get_context, reset_context
from managers.lane_recorder import LaneRecorder
from managers.listing_memory import ListingMemoryManager
from tasks.lanes import request_cost

log = logging.getLogger(__name__)
MAX_DELIVERIES = 5
"""A lane whose task was started this often without recording anything is failed as poison."""
MAX_INFRA_RETRIES = 12
"""Retries of a lane that met a Redis or store outage before it is recorded as an infrastructure failure."""
TASK = "homeshots.extract_lane"


@app.task(name=TASK, bind=True, max_retries=None, ignore_result=True)
def extract_lane(
    self: Task,
    run_id: str,
    prop: dict[str, Any],
    lane: str,
    lanes: list[str],
    plan: dict[str, Any] | None = None,
    prepaid: int = 0,
    infra: int = 0,
) -> dict[str, Any]:
    """Collect one source's images of one property. Returns small counters; never raises to the chord."""
    pid = str(prop.get("property_id", "?"))
    try:
        item = Property.from_dict(prop)
        ctx = get_context()
        # One script says whether the lane is done already and counts this start (poison detection).
        deliveries = LaneRecorder(ctx.redis, run_id).start(pid, lane, self.request.hostname or "", time.time())
        if deliveries < 0:
            return LaneResult(pid, lane, "skipped", {}).to_result()
        if not prepaid:
            try:
                prepaid = _reserve(self, ctx, item, lane, Plan.from_dict(plan))
            except Retry:
                _undo_delivery(run_id, pid, lane)  # parked for tokens: not a killed attempt
                raise
        if deliveries > MAX_DELIVERIES:
            message = f"its task was killed {MAX_DELIVERIES} times"
            return _failed(run_id, pid, lane, lanes, "poison", message).to_result()
        ctx.limiter(lane).prepay(prepaid)
        deadline = max(5, get_settings().task_soft_time_limit - 15)
        pipeline = LanePipeline(ctx, run_id, Plan.from_dict(plan))
        outcome = ctx.run(asyncio.wait_for(pipeline.run(item, lane, lanes), deadline))
    except TokenWait as wait:
        # More requests than reserved, and the source's next token is far: come back then, slot free.
        _undo_delivery(run_id, pid, lane)
        raise self.retry(countdown=wait.delay + random.uniform(0, 1), kwargs=_again(plan, 0, infra)) from None
    except (TimeoutError, SoftTimeLimitExceeded):
        reset_context()
        outcome = _failed(run_id, pid, lane, lanes, "timeout", "took longer than the task time limit")
    except (redis.RedisError, StoreError) as exc:
        # Infrastructure, not the property: try again later rather than record a false failure.
        if infra < MAX_INFRA_RETRIES:
            log.warning("infrastructure error on %s/%s, retrying: %s", pid, lane, redact_text(str(exc)))
            raise self.retry(countdown=min(60, 2**infra), kwargs=_again(plan, 0, infra + 1)) from exc
        message = f"{type(exc).__name__}: {redact_text(str(exc))}"
        outcome = _failed(run_id, pid, lane, lanes, "infrastructure", message)
    except Retry:
        raise  # parked until its tokens are due (``_reserve``)
    except Exception as exc:  # a bug must fail this lane, not the whole chunk
        log.exception("unexpected error on property %s, source %s", pid, lane)
        outcome = _failed(run_id, pid, lane, lanes, "error", f"{type(exc).__name__}: {redact_text(str(exc))}")
    return outcome.to_result()


def _reserve(task: Task, ctx: WorkerContext, prop: Property, lane: str, plan: Plan) -> int:
    """Reserve the lane's requests; returns the tokens reserved, or parks the task until they are due."""
    settings = ctx.settings
    replicated = plan.incremental and plan.mls_replicated and lane == "mls"
    memory = ListingMemoryManager(ctx.redis).get(prop.property_id, lane) if replicated else None
    cost = request_cost(lane, prop, memory, replicated)
    if cost <= 0:
        return 0
    reservation = ctx.limiter(lane).reserve(cost, settings.reservation_horizon)
    if reservation.granted and reservation.delay <= settings.token_wait_max:
        if reservation.delay > 0:
            time.sleep(reservation.delay)  # a moment, not a wait: shorter than a retry's round trip
        return cost
    kwargs = _again(plan.to_dict(), cost if reservation.granted else 0, 0)
    countdown = reservation.delay + (0 if reservation.granted else random.uniform(0, settings.lane_chunk_seconds))
    raise task.retry(countdown=countdown, kwargs=kwargs)


def _again(plan: dict[str, Any] | None, prepaid: int, infra: int) -> dict[str, Any]:
    return {"plan": plan, "prepaid": prepaid, "infra": infra}


def _undo_delivery(run_id: str, pid: str, lane: str) -> None:
    """A lane given back for tokens was not a killed attempt: it must not count toward poison."""
    try:
        LaneRecorder(get_context().redis, run_id).unstart(pid, lane)
    except redis.RedisError:
        log.warning("could not undo the delivery count of %s/%s", pid, lane)


def _failed(run_id: str, pid: str, lane: str, lanes: list[str], kind: str, message: str) -> LaneResult:
    """Record the lane's failure if Redis lets us; the reconciler sends the lane again otherwise."""
    reason = {"source": lane, "kind": kind, "message": message, "retryable": kind != "poison"}
    try:
        return record_lane_failure(get_context().redis, run_id, pid, lane, lanes, reason)
    except (redis.RedisError, StoreError):
        log.exception("could not record the failure of %s/%s", pid, lane)
    return LaneResult(pid, lane, "failed", {}, reason)
