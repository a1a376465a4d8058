"""Cluster-wide politeness: one token bucket per source in Redis, shared by every worker.

Celery's ``rate_limit`` counts per worker, so 100 workers would send 100x the rate. Here each
request to a source takes a token from a bucket kept in Redis (refilled at the source's rate, using
Redis' own clock), and a 429 or ``Retry-After`` parks the whole cluster's traffic to that source.

A task never sleeps in its worker slot for long: before a lane starts it *reserves* the requests it
will make (``reserve``). The bucket may go into debt up to ``horizon`` seconds of tokens, so the
reservation tells the task when its tokens are due; the task then retries with that countdown, holding
no slot, and spends the prepaid tokens when it comes back (``prepay``). A request never goes out before
its token is due; one that goes out late (its task started a moment after the reservation) leaves the
source seeing at most ``rate x lateness`` more in a window than a strict bucket would. A request beyond what was
prepaid takes a token as before, but a wait longer than ``max_wait`` raises ``TokenWait`` instead of
sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis

from homeshots.core.errors import TokenWait
from managers import keys

_TAKE = """
-- KEYS[1] bucket hash, KEYS[2] back-off key; ARGV: rate per second, burst. Returns ms to wait (0 = go).
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return pause end
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 3600000)
return wait
"""

_RESERVE = """
-- KEYS[1] bucket hash, KEYS[2] back-off key; ARGV: rate per second, burst, cost, horizon ms.
-- Returns {1, ms until the reserved tokens are due} (reserved: the bucket goes into debt), or
-- {0, ms until a reservation could be granted} when the debt would pass the horizon (or a pause holds).
local pause = redis.call('PTTL', KEYS[2])
if pause > 0 then return {0, pause} end
local now_t = redis.call('TIME')
local now = tonumber(now_t[1]) * 1000 + math.floor(tonumber(now_t[2]) / 1000)
local rate, burst, cost, horizon = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens, ts = tonumber(state[1]) or burst, tonumber(state[2]) or now
tokens = math.min(burst, tokens + (now - ts) * rate / 1000)
local after = tokens - cost
local due = 0
if after < 0 then due = math.ceil(-after * 1000 / rate) end
if due > horizon then return {0, due - horizon} end
redis.call('HSET', KEYS[1], 'tokens', tostring(after), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + horizon + 3600000)
return {1, due}
"""

_PAUSE = """
-- Extend (never shorten) the source's cluster-wide pause to ARGV[1] ms.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Reservation:
    """``granted``: the tokens are ours, due in ``delay`` seconds. Else try to reserve again after ``delay``."""

    granted: bool
    delay: float


class SourceLimiter:
    """Takes a token before each request to one source; pauses the source for everyone on 429."""

    def __init__(
        self,
        client: redis.Redis,
        source: str,
        rate: float,
        *,
        burst: float | None = None,
        max_wait: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.source = source
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.max_wait = max_wait
        """Longest sleep for a token inside a task; longer raises ``TokenWait`` (None: always sleep)."""
        self.prepaid = 0
        """Tokens this task reserved before it started: spent first, without asking Redis."""
        self._sleep = sleep
        self._take = client.register_script(_TAKE)
        self._reserve = client.register_script(_RESERVE)
        self._pause = client.register_script(_PAUSE)
        self._keys = [keys.bucket(source), keys.pause(source)]

    def reserve(self, cost: int, horizon: float) -> Reservation:
        """Reserve ``cost`` requests, due at most ``horizon`` seconds ahead (see the module doc)."""
        granted, delay_ms = self._reserve(
            keys=self._keys, args=[self.rate, max(self.burst, cost), cost, int(horizon * 1000)]
        )
        if int(granted) and int(delay_ms) > 0:
            self.client.hincrbyfloat(keys.BUCKET_WAITS, self.source, int(delay_ms) / 1000)
        return Reservation(bool(int(granted)), int(delay_ms) / 1000)

    def prepay(self, tokens: int) -> None:
        """The task about to run reserved ``tokens`` earlier (and waited for them off its slot)."""
        self.prepaid = max(0, tokens)

    async def acquire(self) -> float:
        """Wait until this worker may send one request; returns the seconds waited."""
        if self.prepaid > 0:
            self.prepaid -= 1
            return 0.0
        waited = 0.0
        while True:
            wait_ms = int(self._take(keys=self._keys, args=[self.rate, self.burst]))
            if wait_ms <= 0:
                if waited:
                    self.client.hincrbyfloat(keys.BUCKET_WAITS, self.source, waited)
                return waited
            if self.max_wait is not None and waited + wait_ms / 1000 > self.max_wait:
                raise TokenWait(self.source, wait_ms / 1000)
            await self._sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    def pause(self, seconds: float) -> None:
        """Hold every worker's requests to this source for ``seconds`` (a 429 / Retry-After)."""
        self._pause(keys=[keys.pause(self.source)], args=[max(1, int(seconds * 1000))])
