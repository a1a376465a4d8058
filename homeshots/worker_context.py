"""What one worker process keeps between tasks: its event loop, HTTP client, Redis, store.

Built lazily after the prefork fork, so every child process has its own connections, and an
HTTP client with keep-alive is reused across properties instead of one per task.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from functools import cached_property
from typing import Any, TypeVar

import httpx
import redis

from extractors import ImageExtractor, build_extractor
from homeshots.download import Downloader
from homeshots.politeness import SourceLimiter
from homeshots.redis_client import connect
from homeshots.settings import Settings, get_settings
from homeshots.store import Store, open_store
from homeshots.urlguard import URLGuard
from imaging.standardizer import ImageStandardizer
from managers.deduplicator import ImageDeduplicator

T = TypeVar("T")


class WorkerContext:
    """Per-process resources. Use ``run`` to drive a coroutine on the process's loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._extractors: dict[str, ImageExtractor] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._downloaders: dict[str, Downloader] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.redis_url)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings)

    def client_for(self, source: str) -> httpx.AsyncClient:
        """One keep-alive HTTP client per source: its User-Agent, proxy and timeouts."""
        if source not in self._clients:
            s, policy = self.settings, self.settings.policy(source)
            limits = httpx.Limits(max_connections=max(s.download_concurrency * 2, 10),
                                  max_keepalive_connections=s.download_concurrency, keepalive_expiry=30)
            timeout = httpx.Timeout(max(policy.timeout, s.download_timeout), connect=s.connect_timeout)
            self._clients[source] = httpx.AsyncClient(
                limits=limits, timeout=timeout, headers={"User-Agent": policy.user_agent},
                follow_redirects=False, trust_env=False, proxy=policy.proxy_url)
        return self._clients[source]

    def downloader_for(self, source: str) -> Downloader:
        """Image downloads go through the source's client (and proxy) too."""
        if source not in self._downloaders:
            self._downloaders[source] = Downloader(
                self.client_for(source), URLGuard(self.settings.allow_private_hosts),
                max_bytes=self.settings.max_image_bytes, max_redirects=self.settings.max_redirects)
        return self._downloaders[source]

    @cached_property
    def standardizer(self) -> ImageStandardizer:
        s = self.settings
        return ImageStandardizer(max_dimension=s.max_dimension, output_format=s.output_format,
                                 png_compress_level=s.png_compress_level, jpeg_quality=s.jpeg_quality,
                                 max_pixels=s.max_image_pixels)

    @cached_property
    def deduplicator(self) -> ImageDeduplicator:
        return ImageDeduplicator(self.redis, self.settings.dedup_threshold, self.settings.dedup_dhash_threshold)

    def extractors(self, names: list[str]) -> list[ImageExtractor]:
        for name in names:
            if name not in self._extractors:
                limiter = SourceLimiter(self.redis, name, self.settings.policy(name).rate)
                self._extractors[name] = build_extractor(name, self.client_for(name), self.settings, limiter)
        return [self._extractors[n] for n in names]

    def close(self) -> None:
        for client in self._clients.values():
            self.loop.run_until_complete(client.aclose())
        self.loop.close()


_context: tuple[int, WorkerContext] | None = None


def get_context() -> WorkerContext:
    """This process's context (a forked child never reuses its parent's sockets)."""
    global _context
    if _context is None or _context[0] != os.getpid():
        _context = (os.getpid(), WorkerContext(get_settings()))
    return _context[1]


def reset_context() -> None:
    """Drop the context after an interrupted task (its loop may be mid-callback)."""
    global _context
    if _context is not None and _context[0] == os.getpid():
        with contextlib.suppress(Exception):
            _context[1].close()
    _context = None
