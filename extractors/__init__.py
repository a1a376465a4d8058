"""Source extractors, one module per source; ``build_extractors`` makes the enabled ones."""

from __future__ import annotations

import httpx

from extractors.base import ImageExtractor
from homeshots.settings import Settings


def build_extractors(names: list[str], client: httpx.AsyncClient, settings: Settings) -> list[ImageExtractor]:
    """Extractor instances for ``names``, in that order, sharing one HTTP client."""
    from extractors.phoenix_mls import PhoenixMLSExtractor, TokenCache

    tokens = TokenCache()
    factories = {"mls": lambda: PhoenixMLSExtractor(client, settings, tokens)}
    return [factories[name]() for name in names]


__all__ = ["ImageExtractor", "build_extractors"]
