"""Download one image: guarded URL, manual redirects, streamed body with a byte cap, retries."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from urllib.parse import urljoin

import httpx

from homeshots.core.errors import FetchError, FetchFailedError, FetchUnavailableError, UnsafeURLError
from homeshots.network.urlguard import URLGuard

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}


class Downloader:
    """Fetches image bytes. Shares the worker's httpx client (keep-alive across tasks)."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        guard: URLGuard,
        *,
        max_bytes: int,
        max_redirects: int = 5,
        retries: int = 2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.client = client
        self.guard = guard
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.retries = retries
        self._sleep = sleep

    async def fetch(self, url: str) -> bytes:
        """The body of ``url``; raises ``FetchUnavailableError``, ``FetchFailedError`` or ``UnsafeURLError``."""
        attempt = 0
        while True:
            try:
                return await self._fetch_once(url)
            except FetchUnavailableError:
                if attempt >= self.retries:
                    raise
            attempt += 1
            await self._sleep(min(8.0, 0.5 * 2**attempt) * (0.5 + random.random()))

    async def _fetch_once(self, url: str) -> bytes:
        current = url
        for _ in range(self.max_redirects + 1):
            await self.guard.check(current)
            try:
                async with self.client.stream("GET", current, follow_redirects=False) as response:
                    if response.is_redirect:
                        location = response.headers.get("location")
                        if not location:
                            raise FetchFailedError(
                                url, f"HTTP {response.status_code} without Location", kind="redirect"
                            )
                        current = urljoin(current, location)
                        continue
                    if response.status_code != 200:
                        status = response.status_code
                        cls = FetchUnavailableError if status in RETRYABLE_STATUS else FetchFailedError
                        raise cls(url, f"HTTP {status}", kind=_status_kind(status))
                    return await self._read_capped(url, response)
            except httpx.TimeoutException as exc:
                raise FetchUnavailableError(url, f"timed out ({type(exc).__name__})", kind="timeout") from exc
            except httpx.TransportError as exc:
                raise FetchUnavailableError(url, f"transport error: {exc}", kind="connection") from exc
        raise FetchFailedError(url, f"more than {self.max_redirects} redirects", kind="redirect")

    async def _read_capped(self, url: str, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchFailedError(
                url, f"body of {declared} bytes exceeds the {self.max_bytes} byte cap", kind="too_large"
            )
        chunks: list[bytes] = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > self.max_bytes:
                raise FetchFailedError(url, f"body exceeds the {self.max_bytes} byte cap", kind="too_large")
            chunks.append(chunk)
        return b"".join(chunks)


def _status_kind(status: int) -> str:
    """A failure kind a person can act on: missing, refused, throttled, server trouble."""
    if status in (404, 410):
        return "not_found"
    if status in (401, 403):
        return "forbidden"
    if status == 429:
        return "throttled"
    return "server_error" if status >= 500 else "http_error"


__all__ = ["Downloader", "FetchError", "UnsafeURLError"]
