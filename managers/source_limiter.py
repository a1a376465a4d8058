"""Cluster-wide politeness: one token bucket per source in Redis, shared by every worker.

Celery's ``rate_limit`` counts per worker, so 100 workers would send 100x the rate. Here each
request to a source takes a token from a bucket kept in Redis (refilled at the source's rate, using
Redis' own clock), and a 429 or ``Retry-After`` parks the whole cluster's traffic to that source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import redis

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
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 60000)
return wait
"""

_PAUSE = """
-- Extend (never shorten) the source's cluster-wide pause to ARGV[1] ms.
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
  return 1
end
return 0
"""


class SourceLimiter:
    """Takes a token before each request to one source; pauses the source for everyone on 429."""

    def __init__(
        self,
        client: redis.Redis,
        source: str,
        rate: float,
        *,
        burst: float | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.source = source
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._sleep = sleep
        self._take = client.register_script(_TAKE)
        self._pause = client.register_script(_PAUSE)
        self._keys = [keys.bucket(source), keys.pause(source)]

    async def acquire(self) -> float:
        """Wait until this worker may send one request; returns the seconds waited."""
        waited = 0.0
        while True:
            wait_ms = int(self._take(keys=self._keys, args=[self.rate, self.burst]))
            if wait_ms <= 0:
                if waited:
                    self.client.hincrbyfloat(keys.BUCKET_WAITS, self.source, waited)
                return waited
            await self._sleep(wait_ms / 1000)
            waited += wait_ms / 1000

    def pause(self, seconds: float) -> None:
        """Hold every worker's requests to this source for ``seconds`` (a 429 / Retry-After)."""
        self._pause(keys=[keys.pause(self.source)], args=[max(1, int(seconds * 1000))])
