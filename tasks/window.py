"""Chord windows: sending one, and the callback that merges its stats and chains the next.

A backfill never builds one giant chord: properties go in windows (default 1000); a few windows
are in flight, and each window's callback sends the next one, so the broker holds at most
``windows_in_flight * window_size`` messages however large the run.
"""

from __future__ import annotations

import json
from typing import Any

import redis
from celery import Task, chord
from celery.result import denied_join_result

from celery_app import app
from homeshots.redis_client import connect
from homeshots.settings import get_settings
from homeshots.store import open_store
from managers.deduplicator import ImageDeduplicator
from managers.run_manager import RunManager
from managers.state_manager import StateManager
from tasks.property import extract_property


def submit_window(run_id: str, generation: int, index: int) -> None:
    """Send window ``index`` of a submission as one chord (header: one task per property)."""
    client = connect(get_settings().redis_url)
    runs = RunManager(client, run_id)
    properties = runs.window_properties(generation, index)
    sources = runs.sources()
    header = [extract_property.s(run_id, p, sources) for p in properties]
    with denied_join_result():
        # Nobody waits on these results: don't subscribe to a result channel per sent task.
        chord(header)(finish_window.s(run_id, generation, index))


@app.task(name="homeshots.finish_window", bind=True, max_retries=None)
def finish_window(self: Task, results: list[dict[str, Any]] | None, run_id: str, generation: int,
                  index: int) -> dict[str, Any]:
    """Merge the window's stats into the run, send the next window, finalize after the last."""
    settings = get_settings()
    client = connect(settings.redis_url)
    runs = RunManager(client, run_id)
    state = StateManager(client, run_id)
    property_ids = [p["property_id"] for p in runs.window_properties(generation, index)]
    terminal = state.terminal_among(property_ids)
    pending = [pid for pid in property_ids if pid not in terminal]
    if pending and self.request.retries < settings.window_callback_max_waits:
        # A redelivered duplicate can complete the chord early; wait for the real stragglers.
        raise self.retry(countdown=5)
    for pid in pending:
        reason = {"source": "", "kind": "lost", "message": "no result after the window's wait"}
        pipe = client.pipeline()
        state.mark_failed(pipe, pid, reason)
        pipe.execute()
    stats = {r["property_id"]: r["counters"] for r in results or []
             if isinstance(r, dict) and r.get("status") in ("completed", "failed")}
    stats |= runs.property_stats([pid for pid in property_ids if pid not in stats])
    merged = runs.merge({pid: stats.get(pid, {}) for pid in property_ids})
    if generation != runs.generation():
        # A window of an earlier submission (e.g. left in the queue by a killed CLI): its stats
        # count, but the current submission owns chaining and finalizing.
        return {"run_id": run_id, "window": index, "stale": True, "merged": merged}
    collect_garbage(client)
    if runs.mark_window_done(generation, index):
        follow = runs.claim_next_window(generation)
        if follow is not None:
            submit_window(run_id, generation, follow)
        if runs.all_windows_done(generation):
            finalize_run(runs, generation)
    return {"run_id": run_id, "window": index, "properties": len(property_ids), "merged": merged}


def collect_garbage(client: redis.Redis) -> int:
    """Delete files a larger copy replaced whose worker died before deleting them."""
    settings = get_settings()
    dedup = ImageDeduplicator(client, settings.dedup_threshold, settings.dedup_dhash_threshold)
    leftovers = dedup.garbage()
    if leftovers:
        store = open_store(settings)
        for key in leftovers:
            store.delete(key)
        dedup.forget_garbage(leftovers)
    return len(leftovers)


def finalize_run(runs: RunManager, generation: int) -> dict[str, Any] | None:
    """Write the run result to Redis and, durably, to ``metadata/runs/<id>/result.json``."""
    result = runs.finalize(generation)
    if result is not None:
        store = open_store(get_settings())
        store.put(f"metadata/runs/{runs.run_id}/result.json",
                  json.dumps(result, indent=2, sort_keys=True).encode(), overwrite=True)
    return result
