"""A run in Redis: its metadata, its windows and lanes' chunks, its counters, and the final ExtractionResult.

Stats merge by property and lane as each lane records (``managers.lane_recorder``): the shard keeps
the counters it last merged for each, and adds only the difference, so a redelivered task or a failed
lane that later succeeds on resume is never counted twice. The run's counters are the sum over shards.

Each lane (source) walks the run's windows in chunks of its own size, claimed one after another by the
chunk callbacks (``next_for``), so a slow source never holds up a fast one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from managers import keys
from managers.extraction_stats import ExtractionResult
from managers.state_manager import AT, COMPLETED, FAILED, LaneOutcome, StateManager

WINDOW_TTL = 30 * 24 * 3600
PROGRESS_EVERY = 5.0
"""Seconds between two progress samples (a sample sums every shard: not one per chunk of a fast lane)."""


_CHAIN = """
local claimed = redis.call('HGET', KEYS[1], ARGV[1])
if claimed then return tonumber(claimed) end
local follow = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], follow)
return follow
"""


@dataclass(frozen=True, slots=True)
class LaneChunks:
    """How one lane walks the run: ``chunk_size`` properties of a window per chunk, ``chunks`` in all."""

    chunk_size: int
    per_window: int
    chunks: int

    def to_dict(self) -> dict[str, int]:
        return {"chunk_size": self.chunk_size, "per_window": self.per_window, "chunks": self.chunks}


class RunManager:
    """Everything about one run that is not per property: meta, windows, lanes' chunks, counters, result."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.keys = run = keys.RunKeys(run_id)
        self.meta_key = run.meta
        self.result_key = run.result
        self.bad_rows_key = run.bad_rows
        self._chain = client.register_script(_CHAIN)

    # --- metadata -------------------------------------------------------------------------------
    def exists(self) -> bool:
        return bool(self.client.exists(self.meta_key))

    def meta(self) -> dict[str, str]:
        return self.client.hgetall(self.meta_key)

    def generation(self) -> int:
        return int(self.client.hget(self.meta_key, "generation") or 0)

    def sources(self) -> list[str]:
        return json.loads(self.client.hget(self.meta_key, "sources") or "[]")

    def lanes(self) -> dict[str, LaneChunks]:
        """Each lane's chunking in the current submission."""
        raw = json.loads(self.client.hget(self.meta_key, "lanes") or "{}")
        return {lane: LaneChunks(**plan) for lane, plan in raw.items()}

    def plan(self) -> dict[str, Any] | None:
        """How the run treats each property (``pipeline.Plan`` as JSON); None for a full backfill."""
        raw = self.client.hget(self.meta_key, "plan")
        return json.loads(raw) if raw else None

    def start_submission(
        self, *, input_file: str, sources: list[str], reset: bool, extra: dict[str, Any] | None = None
    ) -> int:
        """Open a new submission (generation) of the run; ``reset`` forgets earlier progress; ``extra``
        goes into the run's meta (values as JSON). Delivery counts start afresh either way."""
        state = StateManager(self.client, self.run_id)
        if reset:
            state.reset()
            self.client.unlink(self.result_key, self.bad_rows_key, self.keys.progress, *self.keys.totals_stripes())
            self.client.hdel(self.meta_key, "started_at")
        state.clear_deliveries()
        now = _now()
        pipe = self.client.pipeline(transaction=True)
        pipe.hincrby(self.meta_key, "generation", 1)
        pipe.hsetnx(self.meta_key, "started_at", now)
        pipe.hset(
            self.meta_key,
            mapping={
                "run_id": self.run_id,
                "input": input_file,
                "status": "submitting",
                "sources": json.dumps(sources),
                "submitted_at": now,
            },
        )
        if extra:
            pipe.hset(self.meta_key, mapping={k: json.dumps(v, sort_keys=True) for k, v in extra.items()})
        pipe.hdel(self.meta_key, "finished_at", "records", "archived_at")
        pipe.delete(self.result_key)
        generation = int(pipe.execute()[0])
        self.client.zadd(keys.RUNS, {self.run_id: datetime.now(UTC).timestamp()})
        return generation

    def write_window(self, generation: int, index: int, properties: list[dict[str, Any]]) -> None:
        self.client.set(self.keys.window(generation, index), json.dumps(properties), ex=WINDOW_TTL)

    def window_properties(self, generation: int, index: int) -> list[dict[str, Any]]:
        raw = self.client.get(self.keys.window(generation, index))
        return json.loads(raw) if raw else []

    def finish_submission(
        self,
        generation: int,
        *,
        total_properties: int,
        skipped: int,
        windows: int,
        lanes: dict[str, LaneChunks],
        in_flight: int,
        bad_rows: list[dict[str, Any]],
        deferred: int = 0,
    ) -> None:
        """Record the submission's size; each lane's first ``in_flight`` chunks are the caller's to send."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            self.meta_key,
            mapping={
                "total_properties": total_properties,
                "properties_skipped": skipped,
                "properties_deferred": deferred,
                "windows": windows,
                "lanes": json.dumps({lane: plan.to_dict() for lane, plan in lanes.items()}, sort_keys=True),
                "bad_rows": len(bad_rows),
                "status": "running",
            },
        )
        for lane, plan in lanes.items():
            pipe.set(self.keys.next_chunk(generation, lane), min(in_flight, plan.chunks))
        pipe.delete(self.bad_rows_key)
        for row in bad_rows[:1000]:
            pipe.rpush(self.bad_rows_key, json.dumps(row, sort_keys=True))
        pipe.execute()
        self.client.sadd(keys.ACTIVE, self.run_id)

    def next_for(self, generation: int, lane: str, chunk: int) -> int | None:
        """The chunk of ``lane`` that chunk ``chunk``'s callback sends next: claimed once, the same on a rerun."""
        follow = int(
            self._chain(
                keys=[self.keys.chained(generation, lane), self.keys.next_chunk(generation, lane)], args=[chunk]
            )
        )
        plan = self.lanes().get(lane)
        return follow if plan is not None and follow < plan.chunks else None

    def window_count(self) -> int:
        return int(self.client.hget(self.meta_key, "windows") or 0)

    def sent_chunks(self, generation: int, lane: str) -> int:
        """How many chunks of ``lane`` have been claimed for sending (a prefix)."""
        sent = int(self.client.get(self.keys.next_chunk(generation, lane)) or 0)
        plan = self.lanes().get(lane)
        return min(sent, plan.chunks if plan else 0)

    def done_chunks(self, generation: int, lane: str) -> set[int]:
        return {int(i) for i in self.client.smembers(self.keys.chunks_done(generation, lane))}

    def mark_chunk_sent(self, generation: int, lane: str, chunk: int, at: float) -> None:
        self.client.hset(self.keys.chunk_sent(generation, lane), str(chunk), f"{at:.3f}")

    def chunk_sent_at(self, generation: int, lane: str) -> dict[int, float]:
        return {int(k): float(v) for k, v in self.client.hgetall(self.keys.chunk_sent(generation, lane)).items()}

    def mark_chunk_done(self, generation: int, lane: str, chunk: int) -> bool:
        """Record that chunk ``chunk`` of ``lane`` is done and chained; True the first time."""
        return bool(self.client.sadd(self.keys.chunks_done(generation, lane), chunk))

    def lanes_done(self, generation: int) -> dict[str, tuple[int, int]]:
        """lane -> (chunks done, chunks): how far each lane has walked."""
        plans = self.lanes()
        pipe = self.client.pipeline(transaction=False)
        for lane in plans:
            pipe.scard(self.keys.chunks_done(generation, lane))
        counts = pipe.execute() if plans else []
        return {lane: (int(n), plan.chunks) for (lane, plan), n in zip(plans.items(), counts, strict=True)}

    def all_lanes_done(self, generation: int) -> bool:
        return all(done >= total for done, total in self.lanes_done(generation).values())

    def is_finished(self, generation: int) -> bool:
        meta = self.client.hmget(self.meta_key, "status", "finished_generation")
        return meta[0] == "finished" and meta[1] == str(generation)

    def lane_progress(self) -> dict[str, float]:
        """Lane -> when a property last recorded an outcome in it (the reconciler's sign of life)."""
        return StateManager(self.client, self.run_id).totals()[1]

    # --- stats ----------------------------------------------------------------------------------
    def record_progress(self, *, force: bool = False) -> bool:
        """A sample of the run's totals, at most every ``PROGRESS_EVERY`` seconds: throughput and failures
        over time, for the report's plots. Returns whether a sample was taken."""
        gate = self.keys.progress_gate
        if not force and not self.client.set(gate, "1", nx=True, px=int(PROGRESS_EVERY * 1000)):
            return False
        seconds, micros = self.client.time()
        summary = StateManager(self.client, self.run_id).summary()
        sample = {
            "t": seconds + micros / 1e6,
            "completed": summary.completed,
            "failed": summary.failed,
            "counters": self.counters(),
        }
        self.client.rpush(self.keys.progress, json.dumps(sample, sort_keys=True, separators=(",", ":")))
        return True

    def progress(self) -> list[dict[str, Any]]:
        """The run's progress samples, oldest first (see ``record_progress``)."""
        return [json.loads(raw) for raw in self.client.lrange(self.keys.progress, 0, -1)]

    def counters(self) -> dict[str, int]:
        """The run's counters, from its totals (one command)."""
        counters, _ = StateManager(self.client, self.run_id).totals()
        return {k: v for k, v in counters.items() if k not in (COMPLETED, FAILED) and v}

    def recount(self) -> dict[str, int]:
        """Count the run again from its shards (every lane's recorded counters, the state sets) and make that
        the run's totals: exact whatever happened to the running totals (a worker killed between its lane
        record and its totals update). O(properties), done when the run is finalized or restored."""
        total: dict[str, int] = {}
        for shard in self.keys.shards():
            for _, raw in self.client.hscan_iter(shard.lanes, count=1000):
                for name, value in (LaneOutcome.decode(raw).counters or {}).items():
                    total[name] = total.get(name, 0) + int(value)
        state = StateManager(self.client, self.run_id)
        exact = state.exact_summary()
        total[COMPLETED], total[FAILED] = exact.completed, exact.failed
        _, latest = state.totals()
        stripes = self.keys.totals_stripes()
        pipe = self.client.pipeline(transaction=False)  # the stripes are in different slots
        for stripe in stripes:
            pipe.delete(stripe)
        pipe.hset(stripes[0], mapping=total | {f"{AT}{lane}": f"{t:.3f}" for lane, t in latest.items()})
        pipe.execute()
        return total

    # --- result ---------------------------------------------------------------------------------
    def current_result(self) -> ExtractionResult:
        """The run's result as of now (final once the last window's callback has run)."""
        meta = self.meta()
        state = StateManager(self.client, self.run_id).summary()
        result = ExtractionResult(
            run_id=self.run_id,
            total_properties=int(meta.get("total_properties", 0)),
            properties_completed=state.completed,
            properties_failed=state.failed,
            properties_skipped=int(meta.get("properties_skipped", 0)),
            properties_deferred=int(meta.get("properties_deferred", 0)),
            night=json.loads(meta["night"]) if meta.get("night") else None,
            bad_rows=int(meta.get("bad_rows", 0)),
            start_time=_parse(meta.get("started_at")),
            end_time=_parse(meta.get("finished_at")) or datetime.now(UTC),
        )
        for source in self.sources():
            result.add_source(source)
        result.apply_counters(self.counters())
        return result

    def final_result_draft(self) -> dict[str, Any]:
        """The result as it will be final, from an exact recount; stamps the end time once, so reruns agree."""
        self.recount()
        self.client.hsetnx(self.meta_key, "finished_at", _now())
        return self.current_result().to_dict()

    def finalize(self, generation: int, result: dict[str, Any]) -> None:
        """Publish the final result and mark the submission finished (idempotent)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.result_key, json.dumps(result, sort_keys=True))
        pipe.hset(self.meta_key, mapping={"status": "finished", "finished_generation": generation})
        pipe.execute()
        self.client.srem(keys.ACTIVE, self.run_id)

    def result(self) -> dict[str, Any]:
        """The final result once the run finished (its records may have left Redis), else the one so far."""
        finished = self.meta().get("status") == "finished"
        return (self.final_result() if finished else None) or self.current_result().to_dict()

    def final_result(self) -> dict[str, Any] | None:
        raw = self.client.get(self.result_key)
        return json.loads(raw) if raw else None

    def bad_rows(self) -> list[dict[str, Any]]:
        return [json.loads(r) for r in self.client.lrange(self.bad_rows_key, 0, -1)]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
