"""Finding and re-sending lost work: what the workers do every ``reconcile_seconds``, and ``homeshots resume``.

Work is lost when a worker host dies (its running, prefetched and countdown-parked tasks come back
only after the broker's visibility timeout, 2 x the hard time limit + 60 s: 21 minutes by default), when
a chord callback is lost, or when a broker forgets its queue. The cluster notices by itself, whether or
not anyone waits on the CLI:

* every worker says it is alive (``keys.WORKERS``) and every lane task it receives or starts carries a
  lease naming it, so a task whose worker fell silent is sent again at once;
* a task with no lease (never received) is sent again once its lane has made no progress for
  ``lost_after`` seconds (a moving lane's queue is only busy, not lost);
* a chunk whose properties have all recorded but whose callback did not run gets its callback again;
* a run whose last chunks are done but which is not finalized is finalized.

Everything re-sent is idempotent (a lane that completed meanwhile is skipped), so reconciling twice,
or a late copy of a lost task, is harmless. A task re-sent ``MAX_RESENDS`` times without ever recording
is failed as ``lost``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis
from celery.result import denied_join_result

from homeshots.core.errors import ConfigError
from homeshots.core.settings import Settings, get_settings
from homeshots.pipeline.lane_recording import record_lane_failure
from homeshots.storage import open_store
from managers import keys
from managers.run_manager import RunManager
from managers.state_manager import StateManager
from tasks.chunks import chunk_properties, finalize_run, lane_signature, send_finish

MAX_RESENDS = 5


@dataclass
class Reconciled:
    callbacks_sent: list[str] = field(default_factory=list)
    """``lane:chunk`` of each chunk callback sent again."""
    tasks_resent: list[str] = field(default_factory=list)
    """``lane:property`` of each lane task sent again."""
    lost: list[str] = field(default_factory=list)
    finalized: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.callbacks_sent or self.tasks_resent or self.lost or self.finalized)


def live_workers(client: redis.Redis, settings: Settings, now: float) -> set[str]:
    """Workers heard from within three heartbeats."""
    return set(client.zrangebyscore(keys.WORKERS, now - 3 * settings.heartbeat_seconds, "+inf"))


def reconcile(
    client: redis.Redis, run_id: str, *, force: bool = False, settings: Settings | None = None, now: float | None = None
) -> Reconciled:
    """Send again whatever the current submission of ``run_id`` is missing. ``force`` (``homeshots resume``)
    does not wait for lanes to stall: every unrecorded task not held by a live worker is sent again."""
    settings = settings or get_settings()
    now = time.time() if now is None else now
    runs, state = RunManager(client, run_id), StateManager(client, run_id)
    meta = runs.meta()
    if not meta:
        raise ConfigError(f"no run {run_id!r} in this Redis")
    status = meta.get("status")
    if status in ("submitting", "rejected", "interrupted"):
        raise ConfigError(
            f"run {run_id} was not fully submitted ({status}); submit it again with "
            f"`homeshots backfill {meta.get('input', 'FILE')} --run-id {run_id}`"
        )
    out = Reconciled()
    generation = runs.generation()
    if runs.is_finished(generation):
        client.srem(keys.ACTIVE, run_id)
        return out
    live = live_workers(client, settings, now)
    progress = runs.lane_progress()
    plan = runs.plan()
    for lane in runs.lanes():
        done, sent_at = runs.done_chunks(generation, lane), runs.chunk_sent_at(generation, lane)
        for chunk in range(runs.sent_chunks(generation, lane)):
            if chunk in done:
                continue
            members = chunk_properties(runs, generation, lane, chunk)
            outcomes = state.lane_outcomes([p["property_id"] for p, _ in members], lane)
            missing = [(p, lanes) for p, lanes in members if p["property_id"] not in outcomes]
            since = sent_at.get(chunk, 0.0)
            if not missing:
                if force or now - since > 2 * settings.reconcile_seconds:
                    send_finish(run_id, generation, lane, chunk)
                    out.callbacks_sent.append(f"{lane}:{chunk}")
                continue
            leases = state.leases([p["property_id"] for p, _ in missing], lane)
            idle = now - max(progress.get(lane, 0.0), since) > settings.lost_after
            for prop, lanes in missing:
                pid = prop["property_id"]
                lease = leases.get(pid)
                if not force and not _lost(lease, live, idle, now, settings):
                    continue
                resends = int(lease.get("resends", 0)) if lease else 0
                if resends >= MAX_RESENDS:
                    reason = {"source": lane, "kind": "lost", "message": f"sent {resends} times, never recorded"}
                    record_lane_failure(client, run_id, pid, lane, lanes, reason | {"retryable": True})
                    out.lost.append(f"{lane}:{pid}")
                    continue
                state.set_lease(pid, lane, {"worker": "", "state": "resent", "since": now, "resends": resends + 1})
                with denied_join_result():
                    lane_signature(run_id, prop, lane, lanes, plan).apply_async()
                out.tasks_resent.append(f"{lane}:{pid}")
    if runs.all_lanes_done(generation) and not runs.is_finished(generation):
        finalize_run(runs, generation, open_store(settings))
        out.finalized = True
    return out


def _lost(lease: dict | None, live: set[str], idle: bool, now: float, settings: Settings) -> bool:
    """Is an unrecorded task lost? Held by a live worker: no. Held by a silent one: yes. Sent again: only if
    that copy has not been picked up within ``lost_after``. Never received: only once its lane is idle."""
    if lease is None:
        return idle
    if lease.get("state") == "resent":
        return now - float(lease.get("since", 0)) > settings.lost_after
    return lease.get("worker") not in live


def reconcile_active(client: redis.Redis, settings: Settings, now: float | None = None) -> dict[str, Reconciled]:
    """Reconcile every run that is submitted and not finished (what the workers' caretaker calls)."""
    out = {}
    for run_id in sorted(client.smembers(keys.ACTIVE)):
        try:
            out[run_id] = reconcile(client, run_id, settings=settings, now=now)
        except ConfigError:
            continue  # still submitting, or interrupted: its submitter owns it
    return out
