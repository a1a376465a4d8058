"""A run in Redis: its metadata, its chord windows, merged stats, and the final ExtractionResult.

Stats merge by property: the run keeps the counters it last merged for each property and adds
only the difference, so a redelivered task, a callback that runs twice, or a failed property
that later succeeds on resume is never counted twice.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import redis

from managers import keys
from managers.extraction_stats import ExtractionResult
from managers.state_manager import StateManager

WINDOW_TTL = 30 * 24 * 3600

_MERGE = """
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then return 0 end
if old then
  for k, v in pairs(cjson.decode(old)) do redis.call('HINCRBY', KEYS[2], k, -v) end
end
for k, v in pairs(cjson.decode(ARGV[2])) do redis.call('HINCRBY', KEYS[2], k, v) end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


_CHAIN = """
local claimed = redis.call('HGET', KEYS[1], ARGV[1])
if claimed then return tonumber(claimed) end
local follow = redis.call('INCR', KEYS[2]) - 1
redis.call('HSET', KEYS[1], ARGV[1], follow)
return follow
"""


class RunManager:
    """Everything about one run that is not per-image: meta, windows, counters, result."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.run_id = run_id
        self.keys = run = keys.RunKeys(run_id)
        self.meta_key = run.meta
        self.counters_key = run.counters
        self.merged_key = run.merged
        self.pstats_key = run.pstats
        self.result_key = run.result
        self.bad_rows_key = run.bad_rows
        self.deliveries_key = run.deliveries
        self._merge = client.register_script(_MERGE)
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

    def plan(self) -> dict[str, Any] | None:
        """How the run treats each property (``pipeline.Plan`` as JSON); None for a full backfill."""
        raw = self.client.hget(self.meta_key, "plan")
        return json.loads(raw) if raw else None

    def start_submission(
        self, *, input_file: str, sources: list[str], reset: bool, extra: dict[str, Any] | None = None
    ) -> int:
        """Open a new submission (generation) of the run; ``reset`` forgets earlier progress; ``extra``
        goes into the run's meta (values as JSON)."""
        pipe = self.client.pipeline(transaction=True)
        if reset:
            pipe.unlink(
                self.counters_key,
                self.merged_key,
                self.pstats_key,
                self.result_key,
                self.bad_rows_key,
                self.keys.manifest,
                self.keys.image_failures,
            )
            StateManager(self.client, self.run_id).reset(pipe)
            pipe.hdel(self.meta_key, "started_at")
        now = _now()
        generation_at = len(pipe.command_stack)
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
        pipe.zadd(keys.RUNS, {self.run_id: datetime.now(UTC).timestamp()})
        replies = pipe.execute()
        return int(replies[generation_at])

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
        in_flight: int,
        bad_rows: list[dict[str, Any]],
        deferred: int = 0,
    ) -> None:
        """Record the submission's size; the first ``in_flight`` windows are the caller's to send."""
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(
            self.meta_key,
            mapping={
                "total_properties": total_properties,
                "properties_skipped": skipped,
                "properties_deferred": deferred,
                "windows": windows,
                "bad_rows": len(bad_rows),
                "status": "running",
            },
        )
        pipe.set(self.keys.next_window(generation), min(in_flight, windows))
        pipe.delete(self.bad_rows_key)
        for row in bad_rows[:1000]:
            pipe.rpush(self.bad_rows_key, json.dumps(row, sort_keys=True))
        pipe.execute()

    def next_for(self, generation: int, index: int) -> int | None:
        """The window that window ``index``'s callback sends next: claimed once, the same on a rerun."""
        follow = int(self._chain(keys=[self.keys.chained(generation), self.keys.next_window(generation)], args=[index]))
        return follow if follow < self.window_count() else None

    def window_count(self) -> int:
        return int(self.client.hget(self.meta_key, "windows") or 0)

    def sent_windows(self, generation: int) -> int:
        """How many windows of the submission have been claimed for sending (a prefix)."""
        sent = int(self.client.get(self.keys.next_window(generation)) or 0)
        return min(sent, self.window_count())

    def done_windows(self, generation: int) -> set[int]:
        return {int(i) for i in self.client.smembers(self.keys.windows_done(generation))}

    def mark_window_done(self, generation: int, index: int) -> bool:
        """Record that window ``index`` is merged and chained; True the first time."""
        return bool(self.client.sadd(self.keys.windows_done(generation), index))

    def all_windows_done(self, generation: int) -> bool:
        done = int(self.client.scard(self.keys.windows_done(generation)))
        return done >= self.window_count()

    def is_finished(self, generation: int) -> bool:
        meta = self.client.hmget(self.meta_key, "status", "finished_generation")
        return meta[0] == "finished" and meta[1] == str(generation)

    # --- stats ----------------------------------------------------------------------------------
    def record_property_stats(self, pipe: redis.client.Pipeline, property_id: str, counters: dict[str, int]) -> None:
        """The counters of a property's latest attempt, for a callback that lacks its result.

        Recording an outcome also clears the property's delivery count: only tasks killed before
        they recorded anything (SIGKILL, out of memory) add up to "poison".
        """
        pipe.hset(self.pstats_key, property_id, json.dumps(counters, sort_keys=True))
        pipe.hdel(self.deliveries_key, property_id)

    def property_stats(self, property_ids: list[str]) -> dict[str, dict[str, int]]:
        if not property_ids:
            return {}
        raw = self.client.hmget(self.pstats_key, property_ids)
        return {pid: json.loads(r) for pid, r in zip(property_ids, raw, strict=True) if r}

    def merge(self, stats: dict[str, dict[str, int]]) -> int:
        """Merge per-property counters into the run's; returns how many properties changed."""
        pipe = self.client.pipeline(transaction=False)
        for pid, counters in stats.items():
            self._merge(
                keys=[self.merged_key, self.counters_key], args=[pid, json.dumps(counters, sort_keys=True)], client=pipe
            )
        return sum(int(x) for x in pipe.execute())

    def record_progress(self, window: int) -> None:
        """A sample of the run's totals as a window finishes: throughput and failures over time, for the
        report's plots (one sample a window: a thousand for a million properties)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.time()
        pipe.hgetall(self.counters_key)
        pipe.scard(self.keys.completed)
        pipe.hlen(self.keys.failed)
        (seconds, micros), counters, completed, failed = pipe.execute()
        sample = {
            "t": seconds + micros / 1e6,
            "window": window,
            "completed": completed,
            "failed": failed,
            "counters": {k: int(v) for k, v in counters.items()},
        }
        self.client.rpush(self.keys.progress, json.dumps(sample, sort_keys=True, separators=(",", ":")))

    def progress(self) -> list[dict[str, Any]]:
        """The run's progress samples, oldest first (see ``record_progress``)."""
        return [json.loads(raw) for raw in self.client.lrange(self.keys.progress, 0, -1)]

    def counters(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.client.hgetall(self.counters_key).items()}

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
        """The result as it will be final: stamps the end time once, so reruns agree."""
        self.client.hsetnx(self.meta_key, "finished_at", _now())
        return self.current_result().to_dict()

    def finalize(self, generation: int, result: dict[str, Any]) -> None:
        """Publish the final result and mark the submission finished (idempotent)."""
        pipe = self.client.pipeline(transaction=True)
        pipe.set(self.result_key, json.dumps(result, sort_keys=True))
        pipe.hset(self.meta_key, mapping={"status": "finished", "finished_generation": generation})
        pipe.execute()

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
