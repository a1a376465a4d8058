"""The listing sources, one module per source: pure ``parse_*`` functions and a thin client each."""

from __future__ import annotations

import httpx

from homeshots.core.settings import Settings
from homeshots.network.limiter import RateLimiter
from homeshots.sources.base import ImageExtractor
from homeshots.sources.maricopa import MaricopaExtractor
from homeshots.sources.mls import MlsExtractor
from homeshots.sources.redfin import RedfinExtractor
from homeshots.sources.zillow import ZillowExtractor


def build_extractor(
    name: str, client: httpx.AsyncClient, settings: Settings, limiter: RateLimiter | None
) -> ImageExtractor:
    """The extractor for source ``name``, on that source's own HTTP client and rate limiter."""
    if name == "mls":
        return MlsExtractor(client, settings, limiter=limiter)
    classes: dict[str, type[MaricopaExtractor | ZillowExtractor | RedfinExtractor]] = {
        "maricopa": MaricopaExtractor,
        "zillow": ZillowExtractor,
        "redfin": RedfinExtractor,
    }
    return classes[name](client, settings, limiter=limiter)


__all__ = [
    "ImageExtractor",
    "MaricopaExtractor",
    "MlsExtractor",
    "RedfinExtractor",
    "ZillowExtractor",
    "build_extractor",
]
