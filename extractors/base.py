"""What every source extractor is: given a Property, say which images the source has for it."""

from __future__ import annotations

from abc import ABC, abstractmethod

from homeshots.models import ImageRef, Property


class ImageExtractor(ABC):
    """A source. ``extract`` returns the images in the source's order, [] when it has no listing,
    and raises ``homeshots.errors.SourceError`` (retryable or not) when the source fails."""

    name: str

    @abstractmethod
    async def extract(self, prop: Property) -> list[ImageRef]:
        """Image references for one property."""
