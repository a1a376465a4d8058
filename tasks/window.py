"""Chord windows: sending one, and the callback that merges its stats and chains the next.

A backfill never builds one giant chord: properties go in windows (default 1000); a few windows
are in flight, and each window's callback sends the next one, so the broker holds at most
``windows_in_flight * window_size`` messages however large the run. Every step of the callback is
safe to repeat, so a callback that dies half-way is simply run again (retry, errback, or
``homeshots resume``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from celery import Task, chord
from celery.result import denied_join_result

from celery_app import app
from celery_app.app import CALLBACK_QUEUE
from homeshots.core.errors import StoreError
from homeshots.core.settings import get_settings
from homeshots.pipeline.property_pipeline import Plan
from homeshots.pipeline.worker_context import get_context
from homeshots.storage import Store
from managers.deduplicator import ImageDeduplicator
from managers.run_archive import RunArchive
from managers.run_manager import RunManager
from managers.snapshot_manager import SnapshotManager
from managers.state_manager import StateManager
from tasks.property import extract_property

log = logging.getLogger(__name__)


def submit_window(
    client: redis.Redis,
    run_id: str,
    generation: int,
    index: int,
    *,
    properties: list[dict[str, Any]] | None = None,
    sources: list[str] | None = None,
) -> None:
    """Send window ``index`` of a submission as one chord (header: one task per property).

    The submitter passes the window it has just written; a callback or the reconciler, which did
    not write it, reads it back from Redis (that is why windows are kept there).
    """
    runs = RunManager(client, run_id)
    if properties is None:
        properties = runs.window_properties(generation, index)
    if sources is None:
        sources = runs.sources()
    plan = runs.plan()
    header = []
    for item in properties:
        prop = dict(item)
        visit = prop.pop("sources", sources)  # a nightly window names the sources each property fits in
        header.append(extract_property.s(run_id, prop, visit, plan).set(argsrepr=_readable(run_id, prop)))
    body = finish_window.s(run_id, generation, index).set(queue=CALLBACK_QUEUE)
    body.link_error(window_failed.s(run_id=run_id, generation=generation, index=index).set(queue=CALLBACK_QUEUE))
    with denied_join_result():
        # Nobody waits on these results: don't subscribe to a result channel per sent task.
        chord(header)(body)


def _readable(run_id: str, prop: dict[str, Any]) -> str:
    """What Flower shows for a task: run, property id and address (the arguments hold no secrets)."""
    return f"run={run_id} property={prop['property_id']} address={prop.get('address', '')!r}"


def send_finish(run_id: str, generation: int, index: int) -> None:
    """Run a window's callback without chord results (they are read back from Redis)."""
    finish_window.apply_async(([], run_id, generation, index), queue=CALLBACK_QUEUE)


@app.task(
    name="homeshots.finish_window",
    bind=True,
    max_retries=None,
    autoretry_for=(redis.RedisError, StoreError),
    retry_backoff=2,
    retry_backoff_max=60,
)
def finish_window(
    self: Task, results: list[dict[str, Any]] | None, run_id: str, generation: int, index: int
) -> dict[str, Any]:
    """Merge the window's stats into the run, send the next window, finalize after the last."""
    ctx = get_context()  # the process's Redis client and store, not new ones per callback
    outcome = complete_window(
        ctx.redis,
        ctx.store,
        run_id,
        generation,
        index,
        results or [],
        may_wait=self.request.retries < ctx.settings.window_callback_max_waits,
    )
    if outcome is None:
        # A redelivered duplicate can complete the chord early; wait for the real stragglers.
        raise self.retry(countdown=5)
    return outcome


@app.task(name="homeshots.window_failed")
def window_failed(*failure: Any, run_id: str, generation: int, index: int) -> None:
    """A header task failed (so Celery will not call the callback): finish the window anyway."""
    log.warning("window %s/%s of run %s failed in Celery; finishing it from Redis", generation, index, run_id)
    send_finish(run_id, generation, index)


def complete_window(
    client: redis.Redis,
    store: Store,
    run_id: str,
    generation: int,
    index: int,
    results: list[dict[str, Any]],
    *,
    may_wait: bool,
) -> dict[str, Any] | None:
    """The callback's work; None means "some properties have no outcome yet, try again later"."""
    runs, state = RunManager(client, run_id), StateManager(client, run_id)
    property_ids = [p["property_id"] for p in runs.window_properties(generation, index)]
    terminal = state.terminal_among(property_ids)
    pending = [pid for pid in property_ids if pid not in terminal]
    if pending and may_wait:
        return None
    for pid in pending:
        reason = {"source": "", "kind": "lost", "message": "no outcome after the window's wait", "retryable": True}
        pipe = client.pipeline()
        state.mark_failed(pipe, pid, reason)
        pipe.execute()
    stats = {
        r["property_id"]: r["counters"]
        for r in results
        if isinstance(r, dict) and r.get("status") in ("completed", "failed")
    }
    stats |= runs.property_stats([pid for pid in property_ids if pid not in stats])
    merged = runs.merge({pid: stats.get(pid, {}) for pid in property_ids})
    runs.record_progress(index)
    SnapshotManager(client, store).write_window(run_id, property_ids)
    if generation != runs.generation():
        # A window of an earlier submission (e.g. left in the queue by a killed CLI): its stats
        # count, but the current submission owns chaining and finalizing.
        return {"run_id": run_id, "window": index, "stale": True, "merged": merged}
    collect_garbage(client, store)
    follow = runs.next_for(generation, index)
    if follow is not None:
        submit_window(client, run_id, generation, follow)
    runs.mark_window_done(generation, index)
    if runs.all_windows_done(generation) and not runs.is_finished(generation):
        finalize_run(runs, generation, store)
    return {"run_id": run_id, "window": index, "properties": len(property_ids), "merged": merged}


def collect_garbage(client: redis.Redis, store: Store) -> int:
    """Delete files a larger copy replaced whose worker died before deleting them."""
    settings = get_settings()
    dedup = ImageDeduplicator(client, settings.dedup_threshold, settings.dedup_dhash_threshold)
    leftovers = dedup.garbage()
    if not leftovers:
        return 0
    try:
        for key in leftovers:
            store.delete(key)
    except StoreError:
        log.warning("store unavailable; %d replaced files wait for the next window", len(leftovers))
        return 0
    dedup.forget_garbage(leftovers)
    return len(leftovers)


def finalize_run(runs: RunManager, generation: int, store: Store) -> dict[str, Any]:
    """Write the run result durably (``metadata/runs/<id>/result.json``), then mark the run finished."""
    result = runs.final_result_draft()
    store.put(
        f"metadata/runs/{runs.run_id}/result.json",
        json.dumps(result, indent=2, sort_keys=True).encode(),
        overwrite=True,
    )
    runs.finalize(generation, result)
    SnapshotManager(runs.client, store).write_run(runs.run_id)
    # Bounded state: the records go to the store; what only a running run needs leaves Redis now, the
    # rest after the retention period (a nightly run also drops its completed set: it is never resumed).
    archive = RunArchive(runs.client, store)
    archive.archive(runs.run_id)
    archive.compact(runs.run_id, for_good=Plan.from_dict(runs.plan()).incremental)
    archive.sweep(get_settings().run_retention_days)
    return result
