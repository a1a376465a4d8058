"""What every source extractor is: given a Property, say which images the source has for it."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod

import httpx

from homeshots.core.errors import FetchError, ParseError, SourceFailedError, SourceUnavailableError
from homeshots.core.models import ImageRef, Parsed, Property, SourceListing
from homeshots.core.settings import Settings
from homeshots.network.fetcher import Fetched, Fetcher, Observe, RedirectRule, Sleep, api_policy, source_guard
from homeshots.network.limiter import RateLimiter


class ImageExtractor(ABC):
    """A source. ``extract`` returns the images in the source's order, [] when it has no listing,
    and raises a ``SourceError`` (``SourceUnavailableError`` or ``SourceFailedError``) when the source fails."""

    name: str
    fetcher: Fetcher
    """The source's HTTP stack; the pipeline downloads the source's images through it too."""

    async def extract(self, prop: Property) -> list[ImageRef]:
        """Image references for one property (the items of ``extract_listing``)."""
        return list((await self.extract_listing(prop)).items)

    async def extract_listing(self, prop: Property) -> SourceListing:
        """The property's images, the items of the answer left out (malformed, over the photo cap, pages
        never fetched) and the listing's change stamps; an answer the parser rejects as a whole is a
        permanent failure."""
        try:
            found = await self._extract(prop)
        except ParseError as exc:
            raise SourceFailedError(self.name, prop.property_id, str(exc), kind="parse") from exc
        return found if isinstance(found, SourceListing) else SourceListing(found.items, found.problems)

    @abstractmethod
    async def _extract(self, prop: Property) -> Parsed[ImageRef]:
        """The source's own lookup; may raise ``ParseError`` for answers of the wrong shape."""


class HttpExtractor(ImageExtractor):
    """A source reached over HTTP, through its own ``Fetcher``: its client (User-Agent, proxy), URL guard,
    and the cluster-wide rate limiter. The pipeline downloads the source's images through the same fetcher."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        observe: Observe | None = None,
    ) -> None:
        self._s = settings
        self._policy = settings.policy(self.name)
        self._api = api_policy(settings, self.name)
        self._max_photos = settings.max_photos_per_listing
        self.fetcher = Fetcher(client, source_guard(settings, self.name), limiter=limiter, sleep=sleep, observe=observe)

    async def _request(
        self,
        url: str,
        prop: Property,
        *,
        headers: dict[str, str],
        params: dict[str, str] | None = None,
        follow: RedirectRule | None = None,
        method: str = "GET",
        data: dict[str, str] | None = None,
    ) -> Fetched:
        """One request with the source's retries, size cap, deadline and politeness; the caller judges the
        status. A fetch that failed for good becomes this source's failure for this property."""
        try:
            return await self.fetcher.fetch(
                url, self._api, method=method, headers=headers, params=params, data=data, follow=follow
            )
        except FetchError as exc:
            cls = SourceUnavailableError if exc.retryable else SourceFailedError
            raise cls(self.name, prop.property_id, str(exc), kind=exc.kind) from exc
