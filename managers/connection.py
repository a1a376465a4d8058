"""Redis connections that ride out a restart: retries with backoff instead of failing a task."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from homeshots.core.errors import ConfigError


def connect(url: str | None, *, attempts: int = 12) -> redis.Redis:
    """A client for ``url``; commands retry on connection loss for about a minute."""
    if not url:
        raise ConfigError("HOMESHOTS_REDIS_URL is not set")
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=30,
        socket_connect_timeout=10,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=10, base=0.2), attempts),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
    )
