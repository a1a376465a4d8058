"""Where the CLI's Redis and workers come from: ``HOMESHOTS_REDIS_URL``, or embedded ones."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import redis

from celery_app import configure
from celery_app.app import release_result_subscriptions
from homeshots.core.settings import Settings, get_settings
from homeshots.ops.embedded import EmbeddedRedis, EmbeddedWorkers
from managers.connection import connect


@dataclass
class Session:
    settings: Settings
    client: redis.Redis
    workers: EmbeddedWorkers | None
    embedded: bool


def absolute_store_url(url: str) -> str:
    """``file://./x`` relative to here, made absolute so workers in other folders agree."""
    parsed = urlparse(url)
    if parsed.scheme in ("file", ""):
        path = Path(parsed.netloc + parsed.path) if parsed.scheme else Path(url)
        return f"file://{path.resolve()}"
    return url


@contextmanager
def open_session(*, workers: bool) -> Iterator[Session]:
    """Connect to the configured Redis, or start the embedded one (and local workers)."""
    settings = get_settings()
    if settings.redis_url:
        yield Session(settings, connect(settings.redis_url, cluster=settings.redis_cluster), None, embedded=False)
        return
    embedded = EmbeddedRedis(settings.embedded_dir)
    url = embedded.start()
    os.environ["HOMESHOTS_REDIS_URL"] = url
    os.environ["HOMESHOTS_STORE_URL"] = absolute_store_url(settings.store_url)
    get_settings.cache_clear()
    settings = get_settings()

    configure(settings)
    pool = None
    try:
        if workers:
            pool = EmbeddedWorkers(
                dict(os.environ),
                settings.embedded_dir.resolve() / "logs" / "worker.log",
                settings.worker_concurrency,
                pool=settings.embedded_pool,
                task_threads=settings.embedded_task_threads,
            )
            pool.start()
        yield Session(settings, connect(url), pool, embedded=True)
    finally:
        if pool is not None:
            pool.stop()

        release_result_subscriptions()
        embedded.stop()
        os.environ.pop("HOMESHOTS_REDIS_URL", None)
        get_settings.cache_clear()
