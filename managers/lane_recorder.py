"""Recording one lane (source) of one property: one atomic script in the property's shard.

The lane's outcome and counters, manifest rows and image failures, the merge of its counters into the
shard's run counters, and the source's listing memory are written together; when every lane the property is
visited with has recorded, the same script makes the property completed (or failed with the first
failing lane's reason). All keys share the property's hash tag, so this is one command on one node of a
Redis Cluster, whatever the number of photos. Recording again (a redelivered task) replaces the lane's
rows and merges only the difference of its counters: nothing is counted twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis

from managers import keys
from managers.state_manager import LaneOutcome, encode_counters

_RECORD = """
-- KEYS: 1 lanes, 2 manifest, 3 image failures, 4 counters, 5 completed, 6 failed, 7 deliveries, 8 leases,
--       9 the property's listing memory.
-- ARGV: 1 property, 2 lane, 3 outcome (status, or status TAB reason JSON), 4 counters JSON, 5 rows JSON
--       ('' none), 6 failures JSON ('' none), 7 listing memory JSON ('' keep), then the property's lanes.
-- The lanes hash keeps "outcome LF counters" per property and lane: what was merged, so a rerun merges
-- only the difference. Returns '' while another lane is pending, else the property's status.
local pid, lane = ARGV[1], ARGV[2]
local field = pid .. '|' .. lane
local value = ARGV[3] .. '\\n' .. ARGV[4]
local old = redis.call('HGET', KEYS[1], field)
if old ~= value then
  redis.call('HSET', KEYS[1], field, value)
  local before = old and string.sub(old, string.find(old, '\\n', 1, true) + 1) or '{}'
  if before ~= ARGV[4] then
    for k, v in pairs(cjson.decode(before)) do redis.call('HINCRBY', KEYS[4], k, -v) end
    for k, v in pairs(cjson.decode(ARGV[4])) do redis.call('HINCRBY', KEYS[4], k, v) end
  end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], field, ARGV[5]) elseif old then redis.call('HDEL', KEYS[2], field) end
if ARGV[6] ~= '' then redis.call('HSET', KEYS[3], field, ARGV[6]) elseif old then redis.call('HDEL', KEYS[3], field) end
redis.call('HDEL', KEYS[7], field)
redis.call('HDEL', KEYS[8], field)
if ARGV[7] ~= '' then redis.call('HSET', KEYS[9], lane, ARGV[7]) end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = pid .. '|' .. ARGV[i] end
local reason = false
for _, outcome in ipairs(redis.call('HMGET', KEYS[1], unpack(fields))) do
  if not outcome then return '' end
  local tab = string.find(outcome, '\t', 1, true)
  if tab and not reason then reason = string.sub(outcome, tab + 1, string.find(outcome, '\\n', 1, true) - 1) end
end
if reason then
  redis.call('HSET', KEYS[6], pid, reason)
  redis.call('SREM', KEYS[5], pid)
  return 'failed'
end
redis.call('SADD', KEYS[5], pid)
redis.call('HDEL', KEYS[6], pid)
return 'completed'
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
        """Write the lane; returns the property's status once every lane has recorded, else None.
        With ``pipe`` (a plain Redis pipeline: bulk loads, benchmarks) it is queued and None is returned."""
        shard = self.keys.of(record.property_id)
        status = self._record(
            keys=[
                shard.lanes,
                shard.manifest,
                shard.image_failures,
                shard.counters,
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
                encode_counters(record.counters),
                json.dumps(record.rows, sort_keys=True) if record.rows else "",
                json.dumps(record.failures, sort_keys=True) if record.failures else "",
                record.memory or "",
                *record.lanes,
            ],
            client=pipe,
        )
        return None if pipe is not None else (str(status) or None)
