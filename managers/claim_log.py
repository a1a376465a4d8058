"""The claim log: every kept image, in the order it was kept, as ``<phash hex><sha256>`` members.

Deciding that an image is new (nothing kept within the threshold) must be atomic across the cluster,
yet searching the corpus in Redis costs hundreds of probes per image. So workers search their own
replica of the log (``managers.index_replica``) and Redis only serialises: an append succeeds only if the
appender has seen every entry before it; otherwise it gets the entries it missed, checks them and tries
again. One script on one key per kept image, whatever the corpus size.

The log is cut into segments of ``keys.LOG_SEGMENT`` entries, each under its own hash tag, so a Redis
Cluster spreads both the appends (the tail moves from node to node) and the replicas' reads. Beside its
list of members, a segment keeps its pHashes packed in one string (16 hex each, APPENDed): a starting
replica loads a segment in one GET, and an append reports what a worker missed as one GETRANGE, a copy
of bytes, so the Redis work per image stays flat however many workers read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from managers import keys

_DISTANCE = """
local function popcount(x)
  local c = 0
  while x ~= 0 do x = bit.band(x, x - 1); c = c + 1 end
  return c
end
local function distance(a, b)
  return popcount(bit.bxor(tonumber(string.sub(a, 1, 8), 16), tonumber(string.sub(b, 1, 8), 16)))
       + popcount(bit.bxor(tonumber(string.sub(a, 9, 16), 16), tonumber(string.sub(b, 9, 16), 16)))
end
"""

_APPEND = (
    _DISTANCE
    + """
-- KEYS[1]: the segment's members, KEYS[2]: its pHashes (16 hex each, the segment's length is STRLEN/16).
-- ARGV: entries the caller has seen in this segment, the member, the segment size, the pHash of the last
-- entry the caller saw in it ('' at its start), the threshold, the most missed entries to check here.
-- Returns {0, position in segment, missed pHashes} once appended (the missed entries were all farther
-- than the threshold); {1, missed pHashes} when the caller must check what it missed; {2} when the
-- segment is full; {3} when the segment is not what the caller has seen (the index was flushed).
local packed, seen, size = KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[3])
local n = redis.call('STRLEN', packed) / 16
if n < seen then return {3} end
if seen > 0 and redis.call('GETRANGE', packed, (seen - 1) * 16, seen * 16 - 1) ~= ARGV[4] then return {3} end
local mine, missed = string.sub(ARGV[2], 1, 16), ''
if n > seen then
  missed = redis.call('GETRANGE', packed, seen * 16, -1)
  if n - seen > tonumber(ARGV[6]) or n >= size then return {1, missed} end
  local threshold = tonumber(ARGV[5])
  for i = 0, n - seen - 1 do
    if distance(mine, string.sub(missed, i * 16 + 1, i * 16 + 16)) <= threshold then return {1, missed} end
  end
elseif n >= size then
  return {2}
end
redis.call('RPUSH', KEYS[1], ARGV[2])
redis.call('APPEND', packed, mine)
return {0, n, missed}
"""
)

_APPEND_MANY = """
-- KEYS[1]: the segment's members, KEYS[2]: its pHashes. ARGV: the segment size, then members. Appends as
-- many as fit, unchecked (a restore of records known to be distinct); returns how many it appended.
local size, n = tonumber(ARGV[1]), redis.call('STRLEN', KEYS[2]) / 16
local room = math.min(size - n, #ARGV - 1)
if room <= 0 then return 0 end
redis.call('RPUSH', KEYS[1], unpack(ARGV, 2, room + 1))
local parts = {}
for i = 2, room + 1 do parts[#parts + 1] = string.sub(ARGV[i], 1, 16) end
redis.call('APPEND', KEYS[2], table.concat(parts))
return room
"""

CHECK_HERE = 32
"""Missed entries the append script checks itself (a retry's few); more go back to the caller's replica."""


@dataclass(frozen=True, slots=True)
class Appended:
    """The member is in the log at ``position`` (global: segment * size + offset), after ``missed``."""

    position: int
    missed: str = ""
    """pHashes (16 hex each) appended before it that the caller had not seen, none within the threshold."""


@dataclass(frozen=True, slots=True)
class Behind:
    """The caller had not seen ``missed`` (pHashes, 16 hex each, in order from where it stood)."""

    missed: str


@dataclass(frozen=True, slots=True)
class SegmentFull:
    """The caller has seen the whole segment: the log goes on in the next one."""


@dataclass(frozen=True, slots=True)
class LogReset:
    """The log is shorter than the caller has seen (the index was flushed): reload from the start."""


AppendReply = Appended | Behind | SegmentFull | LogReset


class ClaimLog:
    """Redis side of the claim log: conditional appends and the reads a replica syncs with."""

    def __init__(self, client: redis.Redis, segment_size: int = keys.LOG_SEGMENT) -> None:
        self.client = client
        self.size = segment_size
        self._append = client.register_script(_APPEND)
        self._append_many = client.register_script(_APPEND_MANY)

    def append(self, position: int, member: str, threshold: int, last_seen: str = "") -> AppendReply:
        """Append ``member`` if nothing the caller has not seen (past the first ``position`` entries) is
        within ``threshold`` of its pHash: the few entries of a retry are checked here, more go back.

        ``last_seen`` (the pHash hex of entry ``position - 1``) lets the log tell a caller whose replica
        is of an index since flushed and refilled.
        """
        segment, seen = divmod(position, self.size)
        reply = self._append(
            keys=[keys.log_segment(segment), keys.log_packed(segment)],
            args=[seen, member, self.size, last_seen if seen else "", threshold, CHECK_HERE],
        )
        kind = int(reply[0])
        if kind == 0:
            return Appended(segment * self.size + int(reply[1]), reply[2])
        if kind == 1:
            return Behind(reply[1])
        return SegmentFull() if kind == 2 else LogReset()

    def append_many(self, position: int, members: list[str]) -> int:
        """Append ``members`` unchecked from the segment of ``position`` on; returns the end position."""
        segment = position // self.size
        while members:
            done = int(
                self._append_many(
                    keys=[keys.log_segment(segment), keys.log_packed(segment)], args=[self.size, *members]
                )
            )
            members = members[done:]
            if members:
                segment += 1
        return segment * self.size + int(self.client.strlen(keys.log_packed(segment))) // 16

    def packed(self, segments: range) -> list[str]:
        """The pHashes of ``segments`` (16 hex each; short or empty for the open one), one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for segment in segments:
            pipe.get(keys.log_packed(segment))
        return [blob or "" for blob in pipe.execute()]

    def members_at(self, positions: list[int]) -> list[str | None]:
        """The members at these global positions (the sha256 of a replica's candidates), one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for position in positions:
            segment, offset = divmod(position, self.size)
            pipe.lindex(keys.log_segment(segment), offset)
        return list(pipe.execute())
