"""Per-source request latency, recorded by every worker into Redis for the exporter to serve.

Workers have no metrics endpoint of their own (any number of them, coming and going): like the token
bucket's wait seconds, what they observe goes to Redis and ``homeshots metrics`` serves it at each
scrape, as the histogram ``homeshots_source_request_seconds{source}``. A ``RequestRecorder`` is the
``observe`` hook of a source's ``Fetcher``: called after every attempt's response with (seconds,
status), status 0 when no response came (a transport error). One Redis hash per source
(``keys.request_latency``) holds:

    le:<bound>     cumulative bucket counts (observations <= bound), ``le:+Inf`` included
    sum, count     the sum of the seconds, and the number of observations
    code:<class>   answers by status class: 2xx, 3xx, 4xx, 5xx, or ``error`` (no response)
    errors         failed writes of this hash (Redis unreachable), counted once it is back

Cheap: an observation only adds to counts in memory; they are written at most once every
``flush_every`` seconds, as HINCRBY/HINCRBYFLOAT in one MULTI/EXEC (a reader never sees a bucket
without its count). Never raises into the fetch: a Redis error keeps the counts for a later write
(they are sums, so memory stays constant), counts the error and waits ``backoff`` seconds before
trying again, so an outage costs the fetches one failed write per ``backoff`` at most. Counts of the
last ``flush_every`` seconds wait for the next observation, or for ``flush()``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable

import redis

from managers import keys

log = logging.getLogger(__name__)

LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the histogram's buckets; the request and download deadlines are 60 s."""


def bucket_field(bound: float) -> str:
    """The hash field of the cumulative bucket ``le=bound`` (``le:0.05``, ``le:+Inf``)."""
    return "le:+Inf" if math.isinf(bound) else f"le:{bound:g}"


def status_class(status: int) -> str:
    """``2xx`` .. ``5xx`` for an HTTP status, ``error`` for 0 (no response: a transport error)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "error"


class RequestRecorder:
    """``observe(seconds, status)`` hook of one source's fetcher: a latency histogram in Redis.

    ``RequestRecorder(redis_client, "zillow")``; one per fetcher (it holds a small lock, so sharing one
    between threads is safe too).
    """

    def __init__(
        self,
        client: redis.Redis,
        source: str,
        *,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
        flush_every: float = 1.0,
        backoff: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.source = source
        self.key = keys.request_latency(source)
        self.buckets = tuple(sorted(buckets))
        self.flush_every = flush_every
        self.backoff = backoff
        self.errors = 0
        """Writes that failed (Redis errors swallowed), since this recorder was made."""
        self._clock = clock
        self._counts: Counter[str] = Counter()
        self._sum = 0.0
        self._unreported_errors = 0
        self._next_flush = -math.inf
        self._lock = threading.Lock()

    def __call__(self, seconds: float, status: int) -> None:
        """Count one attempt; write the counts to Redis when ``flush_every`` has passed. Never raises."""
        try:
            seconds = max(0.0, float(seconds))
            with self._lock:
                counts = self._counts
                for bound in self.buckets:
                    if seconds <= bound:
                        counts[bucket_field(bound)] += 1
                counts["le:+Inf"] += 1
                counts["count"] += 1
                counts[f"code:{status_class(status)}"] += 1
                self._sum += seconds
                due = self._clock() >= self._next_flush
            if due:
                self.flush()
        except Exception:  # a metric must never break a fetch
            log.debug("request latency of %s not recorded", self.source, exc_info=True)

    def flush(self) -> bool:
        """Write what was counted since the last write; False (counts kept) when Redis failed."""
        with self._lock:
            counts, total, errors = self._counts, self._sum, self._unreported_errors
            self._counts, self._sum, self._unreported_errors = Counter(), 0.0, 0
            self._next_flush = self._clock() + self.flush_every
        if not counts and not errors:
            return True
        try:
            pipe = self.client.pipeline(transaction=True)
            for name, n in counts.items():
                pipe.hincrby(self.key, name, n)
            if total:
                pipe.hincrbyfloat(self.key, "sum", total)
            if errors:
                pipe.hincrby(self.key, "errors", errors)
            pipe.execute()
            return True
        except Exception as exc:  # Redis down or refusing writes: keep the counts, try again later
            with self._lock:
                self._counts.update(counts)
                self._sum += total
                self.errors += 1
                self._unreported_errors += errors + 1
                self._next_flush = self._clock() + self.backoff
                first = self.errors == 1
            (log.warning if first else log.debug)(
                "request latency of %s not written to Redis (%s); kept, next try in %.0f s",
                self.source,
                type(exc).__name__,
                self.backoff,
            )
            return False
