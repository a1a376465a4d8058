"""What the HTTP stack needs from a rate limiter; the cluster-wide one lives in ``managers``.

The network layer knows nothing of Redis: it asks for a token before each request and reports a
``429``/``Retry-After``; ``managers.source_limiter.SourceLimiter`` answers both from Redis.
"""

from __future__ import annotations

from typing import Protocol


class RateLimiter(Protocol):
    """Takes a token before each request to one source; pauses the source after a 429."""

    async def acquire(self) -> float:
        """Wait until one request may be sent; returns the seconds waited."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every request to the source for ``seconds``."""
        ...
