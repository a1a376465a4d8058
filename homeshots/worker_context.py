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

from extractors import ImageExtractor, build_extractors
from homeshots.download import Downloader
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

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.redis_url)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings)

    @cached_property
    def http(self) -> httpx.AsyncClient:
        s = self.settings
        limits = httpx.Limits(max_connections=max(s.download_concurrency * 2, 10),
                              max_keepalive_connections=s.download_concurrency, keepalive_expiry=30)
        timeout = httpx.Timeout(s.download_timeout, connect=s.connect_timeout)
        return httpx.AsyncClient(limits=limits, timeout=timeout, headers={"User-Agent": s.user_agent},
                                 follow_redirects=False, trust_env=False)

    @cached_property
    def downloader(self) -> Downloader:
        return Downloader(self.http, URLGuard(self.settings.allow_private_hosts),
                          max_bytes=self.settings.max_image_bytes, max_redirects=self.settings.max_redirects)

    @cached_property
    def standardizer(self) -> ImageStandardizer:
        s = self.settings
        return ImageStandardizer(max_dimension=s.max_dimension, output_format=s.output_format,
                                 png_compress_level=s.png_compress_level, jpeg_quality=s.jpeg_quality,
                                 max_pixels=s.max_image_pixels)

    @cached_property
    def deduplicator(self) -> ImageDeduplicator:
        return ImageDeduplicator(self.redis, self.settings.dedup_threshold)

    def extractors(self, names: list[str]) -> list[ImageExtractor]:
        missing = [n for n in names if n not in self._extractors]
        if missing:
            for name, extractor in zip(missing, build_extractors(missing, self.http, self.settings), strict=True):
                self._extractors[name] = extractor
        return [self._extractors[n] for n in names]

    def close(self) -> None:
        if "http" in self.__dict__:
            self.loop.run_until_complete(self.http.aclose())
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
