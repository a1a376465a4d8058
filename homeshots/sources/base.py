"""What every source extractor is: given a Property, say which images the source has for it."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

import httpx

from homeshots.core.errors import ParseError, SourceFailedError
from homeshots.core.models import ImageRef, Property
from homeshots.core.settings import Settings
from homeshots.network.http import Sleep, fetch
from homeshots.network.limiter import RateLimiter


class ImageExtractor(ABC):
    """A source. ``extract`` returns the images in the source's order, [] when it has no listing,
    and raises a ``SourceError`` (``SourceUnavailableError`` or ``SourceFailedError``) when the source fails."""

    name: str

    async def extract(self, prop: Property) -> list[ImageRef]:
        """Image references for one property; an answer the parser rejects is a permanent failure."""
        try:
            return await self._extract(prop)
        except ParseError as exc:
            raise SourceFailedError(self.name, prop.property_id, str(exc), kind="parse") from exc

    @abstractmethod
    async def _extract(self, prop: Property) -> list[ImageRef]:
        """The source's own lookup; may raise ``ParseError`` for answers of the wrong shape."""


class HttpExtractor(ImageExtractor):
    """A source reached over HTTP: its own client (User-Agent, proxy), timeouts, retries, and the
    cluster-wide rate limiter, all from ``settings.policy(name)``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._s = settings
        self._policy = settings.policy(self.name)
        self._limiter = limiter
        self._sleep = sleep

    async def _fetch(
        self, url: str, prop: Property, *, headers: dict[str, str], params: dict[str, str] | None = None
    ) -> httpx.Response:
        """One GET with the source's retries, size cap and politeness; the caller judges the status."""
        return await fetch(
            self._client,
            "GET",
            url,
            source=self.name,
            property_id=prop.property_id,
            max_retries=self._policy.max_retries,
            timeout=self._policy.timeout,
            max_bytes=self._s.page_max_bytes,
            headers=headers,
            params=params,
            sleep=self._sleep,
            limiter=self._limiter,
        )
