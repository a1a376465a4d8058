"""Lane chunks: sending one as a chord, and the callback that chains the lane's next chunk.

A run never builds one giant chord: its properties are stored in windows (default 1000), and each
lane (source) walks them in chunks of its own size (``tasks.lanes``), with ``windows_in_flight`` chunks
queued per lane; each chunk's callback sends that lane's next chunk. So the broker holds a few minutes
of work per source however large the run, and the MLS lane never waits for Zillow's. Every step of
the callback is safe to repeat: a callback that dies half-way is run again (retry, errback, or the
reconciler).
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from typing import Any

import redis
from celery import Signature, Task, chord
from celery.result import denied_join_result

from celery_app import app
from celery_app.app import CALLBACK_QUEUE, lane_queue
from homeshots.core.errors import StoreError
from homeshots.core.settings import get_settings
from homeshots.pipeline.lane_pipeline import Plan
from homeshots.pipeline.worker_context import get_context
from homeshots.storage import Store
from managers import keys
from managers.deduplicator import ImageDeduplicator
from managers.run_archive import RunArchive
from managers.run_manager import RunManager
from managers.snapshot_manager import SnapshotManager
from managers.state_manager import StateManager
from tasks.lane import extract_lane
from tasks.lanes import chunk_members, chunk_slice

log = logging.getLogger(__name__)


def chunk_properties(
    runs: RunManager, generation: int, lane: str, chunk: int
) -> list[tuple[dict[str, Any], list[str]]]:
    """(property, its lanes) for each property chunk ``chunk`` of ``lane`` visits (read from its window)."""
    plan = runs.lanes()[lane]
    window, _, _ = chunk_slice(plan, chunk)
    return list(chunk_members(runs.window_properties(generation, window), plan, chunk, lane, runs.sources()))


def lane_signature(
    run_id: str, prop: dict[str, Any], lane: str, lanes: list[str], plan: dict[str, Any] | None
) -> Signature:
    """The lane task of one property, on its source's queue, readable in Flower."""
    readable = f"run={run_id} property={prop['property_id']} source={lane} address={prop.get('address', '')!r}"
    return extract_lane.s(run_id, prop, lane, lanes, plan).set(queue=lane_queue(lane), argsrepr=readable)


def submit_chunk(
    client: redis.Redis,
    run_id: str,
    generation: int,
    lane: str,
    chunk: int,
    *,
    members: list[tuple[dict[str, Any], list[str]]] | None = None,
) -> None:
    """Send chunk ``chunk`` of ``lane`` as one chord (header: one lane task per property of the chunk).

    The submitter passes the members it has at hand; a callback or the reconciler reads them back from
    the window kept in Redis.
    """
    runs = RunManager(client, run_id)
    if members is None:
        members = chunk_properties(runs, generation, lane, chunk)
    plan = runs.plan()
    runs.mark_chunk_sent(generation, lane, chunk, time.time())
    if not members:  # a chunk of properties that skip this lane: straight to its callback
        send_finish(run_id, generation, lane, chunk)
        return
    header = [lane_signature(run_id, prop, lane, lanes, plan) for prop, lanes in members]
    body = finish_chunk.s(run_id, generation, lane, chunk).set(queue=CALLBACK_QUEUE)
    body.link_error(
        chunk_failed.s(run_id=run_id, generation=generation, lane=lane, chunk=chunk).set(queue=CALLBACK_QUEUE)
    )
    with denied_join_result():
        # Nobody waits on these results: don't subscribe to a result channel per sent task.
        chord(header)(body)


def send_finish(run_id: str, generation: int, lane: str, chunk: int) -> None:
    """Run a chunk's callback without chord results (everything it needs is in Redis)."""
    with denied_join_result():  # nobody waits on its result: no subscription for it
        finish_chunk.apply_async(([], run_id, generation, lane, chunk), queue=CALLBACK_QUEUE)


@app.task(
    name="homeshots.finish_chunk",
    bind=True,
    max_retries=None,
    autoretry_for=(redis.RedisError, StoreError),
    retry_backoff=2,
    retry_backoff_max=60,
)
def finish_chunk(
    self: Task, results: list[dict[str, Any]] | None, run_id: str, generation: int, lane: str, chunk: int
) -> dict[str, Any]:
    """Snapshot the chunk, send the lane's next chunk, finalize the run after the last chunk of every lane."""
    ctx = get_context()  # the process's Redis client and store, not new ones per callback
    outcome = complete_chunk(ctx.redis, ctx.store, run_id, generation, lane, chunk)
    if outcome is None:
        if self.request.retries < ctx.settings.window_callback_max_waits:
            # A redelivered duplicate can complete the chord early; wait for the real stragglers.
            raise self.retry(countdown=5)
        return {"run_id": run_id, "lane": lane, "chunk": chunk, "incomplete": True}  # the reconciler's now
    return outcome


@app.task(name="homeshots.chunk_failed")
def chunk_failed(*failure: Any, run_id: str, generation: int, lane: str, chunk: int) -> None:
    """A header task failed (so Celery will not call the callback): finish the chunk anyway."""
    log.warning("chunk %s/%s/%s of run %s failed in Celery; finishing it from Redis", generation, lane, chunk, run_id)
    send_finish(run_id, generation, lane, chunk)


def complete_chunk(
    client: redis.Redis, store: Store, run_id: str, generation: int, lane: str, chunk: int
) -> dict[str, Any] | None:
    """The callback's work; None means "some properties have no outcome in this lane yet"."""
    runs = RunManager(client, run_id)
    ids = [prop["property_id"] for prop, _ in chunk_properties(runs, generation, lane, chunk)]
    recorded = StateManager(client, run_id).lane_outcomes(ids, lane)
    if len(recorded) < len(ids):
        return None
    runs.record_progress()
    if ids:
        SnapshotManager(client, store).write_chunk(run_id, ids)
    if generation != runs.generation():
        # A chunk of an earlier submission (e.g. left in the queue by a killed CLI): its records count,
        # but the current submission owns chaining and finalizing.
        return {"run_id": run_id, "lane": lane, "chunk": chunk, "stale": True}
    collect_garbage(client, store, garbage_shards(lane, chunk))
    follow = runs.next_for(generation, lane, chunk)
    if follow is not None:
        submit_chunk(client, run_id, generation, lane, follow)
    runs.mark_chunk_done(generation, lane, chunk)
    if runs.all_lanes_done(generation) and not runs.is_finished(generation):
        finalize_run(runs, generation, store)
    return {"run_id": run_id, "lane": lane, "chunk": chunk, "properties": len(ids)}


GARBAGE_SHARDS_PER_CHUNK = 16
"""Garbage shards a chunk callback looks at (in turn, so a long run visits them all); a run's end looks at all."""


def garbage_shards(lane: str, chunk: int) -> range:
    """The garbage shards chunk ``chunk`` of ``lane`` collects: a different slice for each chunk."""
    start = (chunk + zlib.crc32(lane.encode())) * GARBAGE_SHARDS_PER_CHUNK % keys.IMAGE_SHARDS
    return range(start, start + GARBAGE_SHARDS_PER_CHUNK)


def collect_garbage(client: redis.Redis, store: Store, shards: range | None = None) -> int:
    """Delete files a larger copy replaced whose worker died before deleting them (of ``shards``, else all)."""
    settings = get_settings()
    dedup = ImageDeduplicator(client, settings.dedup_threshold, settings.dedup_dhash_threshold)
    leftovers = dedup.garbage(shards=shards)
    if not leftovers:
        return 0
    try:
        for key in leftovers:
            store.delete(key)
    except StoreError:
        log.warning("store unavailable; %d replaced files wait for the next chunk", len(leftovers))
        return 0
    dedup.forget_garbage(leftovers)
    return len(leftovers)


def finalize_run(runs: RunManager, generation: int, store: Store) -> dict[str, Any]:
    """Write the run result durably (``metadata/runs/<id>/result.json``), then mark the run finished."""
    runs.record_progress(force=True)
    result = runs.final_result_draft()
    store.put(
        f"metadata/runs/{runs.run_id}/result.json",
        json.dumps(result, indent=2, sort_keys=True).encode(),
        overwrite=True,
    )
    runs.finalize(generation, result)
    collect_garbage(runs.client, store)
    SnapshotManager(runs.client, store).write_run(runs.run_id)
    # Bounded state: the records go to the store; what only a running run needs leaves Redis now, the
    # rest after the retention period (a nightly run also drops its completed set: it is never resumed).
    archive = RunArchive(runs.client, store)
    archive.archive(runs.run_id)
    archive.compact(runs.run_id, for_good=Plan.from_dict(runs.plan()).incremental)
    archive.sweep(get_settings().run_retention_days)
    return result
