"""Recording one lane (source) of one property: one atomic script in the property's shard.

The lane's outcome and counters, manifest rows and image failures, and the source's listing memory are
written together; when every lane the property is
visited with has recorded, the same script makes the property completed (or failed with the first
failing lane's reason). All keys share the property's hash tag, so this is one command on one node of a
Redis Cluster, whatever the number of photos. Recording again (a redelivered task) replaces the lane's
rows and counts only the difference: nothing is counted twice. The run's totals (its counters and
property counts, what progress bars and metrics poll) follow in one more round trip; a worker killed
between the two leaves them short until the run's final recount, which reads the shards themselves.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import redis

from managers import keys
from managers.state_manager import AT, COMPLETED, FAILED, LaneOutcome, encode_counters

_RECORD = """
-- KEYS: 1 lanes, 2 manifest, 3 image failures, 4 completed, 5 failed, 6 deliveries, 7 leases,
--       8 the property's listing memory.
-- ARGV: 1 property, 2 lane, 3 outcome (status, or status TAB reason JSON), 4 counters JSON, 5 rows JSON
--       ('' none), 6 failures JSON ('' none), 7 listing memory JSON ('' keep), then the property's lanes.
-- The lanes hash keeps "outcome LF counters" per property and lane: what was counted, so a rerun counts
-- only the difference. Returns {property status ('' while another lane is pending), change of the
-- completed count, change of the failed count, the counters before ('' when unchanged)}.
local pid, lane = ARGV[1], ARGV[2]
local field = pid .. '|' .. lane
local value = ARGV[3] .. '\\n' .. ARGV[4]
local old = redis.call('HGET', KEYS[1], field)
local before = ''
if old and string.sub(old, 1, 10) == 'completed\\n' and string.sub(ARGV[3], 1, 6) == 'failed' then
  -- A stale attempt (a host cut off past its deadline, a copy delivered twice) that failed after another one
  -- completed the lane: the completed one stands.
  redis.call('HDEL', KEYS[6], field)
  redis.call('HDEL', KEYS[7], field)
  return {'', 0, 0, ''}
end
if old ~= value then
  redis.call('HSET', KEYS[1], field, value)
  before = old and string.sub(old, string.find(old, '\\n', 1, true) + 1) or '{}'
  if before == ARGV[4] then before = '' end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], field, ARGV[5]) elseif old then redis.call('HDEL', KEYS[2], field) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[3], field, ARGV[6]) elseif old then redis.call('HDEL', KEYS[3], field) end
redis.call('HDEL', KEYS[6], field)
redis.call('HDEL', KEYS[7], field)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[8], lane, ARGV[7]) end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = pid .. '|' .. ARGV[i] end
local reason = false
for _, outcome in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
  if not outcome then return {'', 0, 0, before} end
  local tab = string.find(outcome, '\t', 1, true)
  if tab and not reason then reason = string.sub(outcome, tab + 1, string.find(outcome, '\\n', 1, true) - 1) end
end
if reason then
  local added = redis.call('HSET', KEYS[5], pid, reason)
  return {'failed', -redis.call('SREM', KEYS[4], pid), added, before}
end
local added = redis.call('SADD', KEYS[4], pid)
return {'completed', added, -redis.call('HDEL', KEYS[5], pid), before}
"""

_START = """
-- KEYS: 1 lanes, 2 deliveries, 3 leases. ARGV: field, worker lease. Returns -1 when the lane already
-- completed (nothing to do), else the number of times a task for it has started without recording.
local outcome = redis.call('HGET', KEYS[1], ARGV[1])
if outcome and string.sub(outcome, 1, 10) == 'completed\\n' then return -1 end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
"""


@dataclass
class LaneRecord:
    """What one lane of one property ends with (the task builds it; the recorder writes it)."""

    property_id: str
    lane: str
    lanes: list[str]
    """Every lane the property is visited with in this run: the property is terminal when all have recorded."""
    outcome: LaneOutcome
    rows: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    counters: dict[str, int]
    memory: str | None = None
    """The listing memory to keep for this source (JSON), or None to leave it as it is."""


class LaneRecorder:
    """Starts and records the lanes of one run's properties."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.keys = keys.RunKeys(run_id)
        self._record = client.register_script(_RECORD)
        self._start = client.register_script(_START)

    def start(self, property_id: str, lane: str, worker: str, now: float) -> int:
        """-1 when the lane is already completed; else how many times a task for it has now started
        without recording (counted per run submission: a healthy property never reaches the poison limit)."""
        shard = self.keys.of(property_id)
        field = keys.lane_field(property_id, lane)
        lease = json.dumps({"worker": worker, "since": round(now, 3), "state": "running"})
        return int(self._start(keys=[shard.lanes, shard.deliveries, shard.leases], args=[field, lease]))

    def unstart(self, property_id: str, lane: str) -> None:
        """Take back one start: the task gave its slot back (for tokens), it was not killed."""
        self.client.hincrby(self.keys.of(property_id).deliveries, keys.lane_field(property_id, lane), -1)

    def record(self, record: LaneRecord, pipe: redis.client.Pipeline | None = None) -> str | None:
        """Write the lane, then bring the run's totals up to date (one more round trip, in the run's slot);
        returns the property's status once every lane has recorded, else None. A failed attempt never
        replaces a completed one (it is a stale copy: the completed attempt stands). With ``pipe`` (a plain Redis
        pipeline: bulk loads, benchmarks) the lane is queued, the totals are left to ``RunManager.recount``,
        and None is returned."""
        shard = self.keys.of(record.property_id)
        counters = encode_counters(record.counters)
        reply = self._record(
            keys=[
                shard.lanes,
                shard.manifest,
                shard.image_failures,
                shard.completed,
                shard.failed,
                shard.deliveries,
                shard.leases,
                keys.listing_memory(record.property_id),
            ],
            args=[
                record.property_id,
                record.lane,
                record.outcome.encode(),
                counters,
                json.dumps(record.rows, sort_keys=True) if record.rows else "",
                json.dumps(record.failures, sort_keys=True) if record.failures else "",
                record.memory or "",
                *record.lanes,
            ],
            client=pipe,
        )
        if pipe is not None:
            return None
        status, completed, failed, before = reply
        changes: dict[str, int] = {COMPLETED: int(completed), FAILED: int(failed)}
        if before:  # what this lane counted before (nothing, or an earlier attempt): add the difference
            for name, value in json.loads(before).items():
                changes[name] = changes.get(name, 0) - int(value)
            for name, value in json.loads(counters).items():
                changes[name] = changes.get(name, 0) + int(value)
        stripe = self.keys.totals_of(record.property_id)
        totals = self.client.pipeline(transaction=False)
        for name, delta in changes.items():
            if delta:
                totals.hincrby(stripe, name, delta)
        totals.hset(stripe, f"{AT}{record.lane}", f"{time.time():.3f}")
        totals.execute()
        return str(status) or None
