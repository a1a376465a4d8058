"""Source extractors, one module per source; ``build_extractor`` makes one for a source name."""

from __future__ import annotations

import importlib

import httpx

from extractors.base import ImageExtractor
from homeshots.politeness import SourceLimiter
from homeshots.settings import Settings

_CLASSES = {
    "mls": ("extractors.phoenix_mls", "PhoenixMLSExtractor"),
    "maricopa": ("extractors.maricopa", "MaricopaAssessorExtractor"),
    "zillow": ("extractors.zillow", "ZillowExtractor"),
    "redfin": ("extractors.redfin", "RedfinExtractor"),
}


def build_extractor(name: str, client: httpx.AsyncClient, settings: Settings,
                    limiter: SourceLimiter | None) -> ImageExtractor:
    """The extractor for source ``name``, on that source's own HTTP client and rate limiter."""
    module_name, class_name = _CLASSES[name]
    cls = getattr(importlib.import_module(module_name), class_name)
    if name == "mls":
        from extractors.phoenix_mls import SHARED_TOKENS

        return cls(client, settings, SHARED_TOKENS, limiter=limiter)
    return cls(client, settings, limiter=limiter)


__all__ = ["ImageExtractor", "build_extractor"]
