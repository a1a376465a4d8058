"""What one worker process keeps between tasks: its event loops, HTTP clients, Redis, store, image lane.

Celery's ``worker_process_init`` calls ``process_started`` in each prefork child (dropping anything
inherited from the parent) and ``worker_process_shutdown`` calls ``process_stopping``, which closes the
HTTP clients and Redis connections. Contexts are built lazily, one per thread, so a thread-pool worker
(``-P threads``), a solo worker and a test work too; an HTTP client with keep-alive is reused across
properties instead of one per task. The image lane (decode, resize, encode) is shared by the whole
process, so a process does ``image_threads`` images at a time however many tasks it runs: with two
task threads, one property downloads while another one's photos are standardized.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import sys
import threading
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Any, TypeVar

import httpx
import redis

from homeshots.core.settings import Settings, get_settings
from homeshots.imaging.standardizer import ImageStandardizer, StandardizedImage
from homeshots.pipeline.byte_budget import ByteBudget
from homeshots.sources import ImageExtractor, build_extractor
from homeshots.storage import Store, open_store
from managers.connection import connect
from managers.deduplicator import ImageDeduplicator
from managers.request_metrics import RequestRecorder
from managers.source_limiter import SourceLimiter

T = TypeVar("T")


class WorkerContext:
    """Per-thread resources of a worker process. Use ``run`` to drive a coroutine on its loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self._extractors: dict[str, ImageExtractor] = {}
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._limiters: dict[str, SourceLimiter] = {}

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    @cached_property
    def redis(self) -> redis.Redis:
        return connect(self.settings.redis_url, cluster=self.settings.redis_cluster)

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings)

    def client_for(self, source: str) -> httpx.AsyncClient:
        """One keep-alive HTTP client per source: its User-Agent, proxy and timeouts."""
        if source not in self._clients:
            s, policy = self.settings, self.settings.policy(source)
            limits = httpx.Limits(
                max_connections=max(s.download_concurrency * 2, 10),
                max_keepalive_connections=s.download_concurrency,
                keepalive_expiry=30,
            )
            timeout = httpx.Timeout(max(policy.timeout, s.download_timeout), connect=s.connect_timeout)
            self._clients[source] = httpx.AsyncClient(
                limits=limits,
                timeout=timeout,
                headers={"User-Agent": policy.user_agent},
                follow_redirects=False,
                trust_env=False,
                proxy=policy.proxy_url,
            )
        return self._clients[source]

    @property
    def byte_budget(self) -> ByteBudget:
        """The process's budget for image bodies (shared by every task and thread of the process)."""
        return byte_budget(self.settings.max_buffered_bytes)

    @cached_property
    def standardizer(self) -> ImageStandardizer:
        s = self.settings
        return ImageStandardizer(
            max_dimension=s.max_dimension,
            output_format=s.output_format,
            png_compress_level=s.png_compress_level,
            jpeg_quality=s.jpeg_quality,
            max_pixels=s.max_image_pixels,
            max_decoded_bytes=s.max_decoded_bytes,
            png_strategy=s.png_strategy,
            png_encoder=s.png_encoder,
        )

    async def standardize(self, data: bytes) -> StandardizedImage:
        """Standardize on the process's image lane (queued while ``image_threads`` images are in work)."""
        lane = image_lane(self.settings.image_threads)
        return await asyncio.get_running_loop().run_in_executor(lane, self.standardizer.standardize, data)

    @cached_property
    def deduplicator(self) -> ImageDeduplicator:
        return ImageDeduplicator(self.redis, self.settings.dedup_threshold, self.settings.dedup_dhash_threshold)

    def limiter(self, source: str) -> SourceLimiter:
        """The source's cluster-wide token bucket, as this thread's extractor of the source uses it."""
        if source not in self._limiters:
            s = self.settings
            self._limiters[source] = SourceLimiter(self.redis, source, s.policy(source).rate, max_wait=s.token_wait_max)
        return self._limiters[source]

    def extractors(self, names: list[str]) -> list[ImageExtractor]:
        for name in names:
            if name not in self._extractors:
                self._extractors[name] = build_extractor(name, self.client_for(name), self.settings, self.limiter(name))
                self._extractors[name].fetcher.observe = RequestRecorder(self.redis, name)
        return [self._extractors[n] for n in names]

    def close(self) -> None:
        """Close the HTTP clients (their keep-alive sockets), Redis connections and the event loop."""
        for client in self._clients.values():
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(client.aclose())
        if "redis" in self.__dict__:
            with contextlib.suppress(Exception):
                self.redis.close()
        self.loop.close()


_contexts: dict[tuple[int, int], WorkerContext] = {}
"""(process id, thread ident) -> context: a forked child never finds (or uses) its parent's."""
_lane: ThreadPoolExecutor | None = None
_budget: ByteBudget | None = None
_lane_lock = threading.Lock()


def process_started() -> None:
    """A new worker process (Celery's ``worker_process_init``): forget whatever the parent had, since
    its sockets, loops and executor threads are not this process's."""
    global _lane, _lane_lock, _budget
    _contexts.clear()
    _lane, _lane_lock, _budget = None, threading.Lock(), None


def process_stopping() -> None:
    """The worker process ends (``worker_process_shutdown``): close every context and the image lane."""
    global _lane
    for key in [k for k in _contexts if k[0] == os.getpid()]:
        with contextlib.suppress(Exception):
            _contexts.pop(key).close()
    if _lane is not None:
        _lane.shutdown(wait=False, cancel_futures=True)
        _lane = None


def byte_budget(limit: int) -> ByteBudget:
    """The process's byte budget for image bodies waiting for (or in) the image lane."""
    global _budget
    if _budget is None:
        with _lane_lock:
            if _budget is None:
                _budget = ByteBudget(limit)
    return _budget


def image_lane(threads: int) -> ThreadPoolExecutor:
    """The process's executor for image work: ``threads`` images at a time, shared by all its tasks."""
    global _lane
    if _lane is None:
        with _lane_lock:
            if _lane is None:
                keep_image_buffers()
                _lane = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="homeshots-image")
    return _lane


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_image_buffers() -> bool:
    """glibc only: reuse freed image buffers instead of returning them to the kernel after each photo.

    By default glibc maps large blocks afresh and trims a thread's heap after each free, so every
    photo's decode buffers (~6 MB) are page-faulted in again: ~2 ms of kernel time per photo in a
    worker. Blocks up to 32 MiB now come from the heap, and up to 64 MiB of free heap is kept; a
    huge photo (over 32 MiB decoded) is still mapped and unmapped on its own.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 64 << 20))


def get_context() -> WorkerContext:
    """This thread's context (a forked child never reuses its parent's sockets)."""
    key = (os.getpid(), threading.get_ident())
    ctx = _contexts.get(key)
    if ctx is None:
        ctx = _contexts[key] = WorkerContext(get_settings())
    return ctx


def reset_context() -> None:
    """Drop this thread's context after an interrupted task (its loop may be mid-callback)."""
    ctx = _contexts.pop((os.getpid(), threading.get_ident()), None)
    if ctx is not None:
        with contextlib.suppress(Exception):
            ctx.close()
