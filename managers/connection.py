"""Redis connections that ride out a restart: retries with backoff instead of failing a task.

``cluster=True`` gives a Redis Cluster client that finds every node from the one named: homeshots'
keys carry hash tags so every transaction and script stays inside one slot (``managers.keys``).
"""

from __future__ import annotations

from typing import TypeAlias

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from homeshots.core.errors import ConfigError

Client: TypeAlias = redis.Redis | RedisCluster
"""What the managers are given: a plain Redis or a Redis Cluster client (same commands, keys in one slot)."""


def connect(url: str | None, *, cluster: bool = False, attempts: int = 12) -> redis.Redis:
    """A client for ``url``; commands retry on connection loss for about a minute."""
    if not url:
        raise ConfigError("HOMESHOTS_REDIS_URL is not set")
    retry = Retry(ExponentialBackoff(cap=10, base=0.2), attempts)
    if cluster:
        return RedisCluster.from_url(  # type: ignore[return-value]
            url,
            decode_responses=True,
            socket_timeout=30,
            socket_connect_timeout=10,
            retry=retry,
            retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
        )
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=30,
        socket_connect_timeout=10,
        health_check_interval=30,
        retry=retry,
        retry_on_error=[redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError],
    )


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def primaries(client: redis.Redis) -> list[redis.Redis]:
    """One plain client per node holding data: each master of a cluster, or the one server itself.

    What scans (snapshot, restore, ``runs``), memory metrics and FLUSH-like maintenance iterate over.
    """
    if isinstance(client, RedisCluster):
        return [client.get_redis_connection(node) for node in client.get_primaries()]
    return [client]
