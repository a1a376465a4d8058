"""What the sandbox knows about one property, across all the sources it imitates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALL_SOURCES = frozenset({"mls", "maricopa", "zillow", "redfin"})
STAMP = "2024-05-01T12:00:00Z"
"""The timestamp of a static catalog: it never changes, so every listing and photo carries it."""


@dataclass
class Listing:
    """One property of the fake catalog; ``photos`` are master photo names (served under ``/photos/``).

    Each source serves the same master photos its own way (size, encoding, URL shape), as the real
    services do; ``sources`` says which of them know the property at all.
    """

    listing_key: str
    address: str
    city: str
    postal_code: str
    photos: list[str]
    apn: str | None = None
    zpid: str | None = None
    redfin_id: str | None = None
    sketches: int = 1
    sources: frozenset[str] = field(default_factory=lambda: ALL_SOURCES)
    mls_scale: float = 1.0
    """Below 1 the MLS serves smaller copies than the portals (an old feed): a later source's larger
    copy must then replace the stored one."""
    blocked: frozenset[str] = frozenset()
    """Sources that answer this property with their bot wall (PerimeterX page, 403 challenge)."""
    price: int = 625000
    modification_timestamp: str = STAMP
    """RESO ``ModificationTimestamp``: moves whenever anything about the listing changes (photos too)."""
    photos_change_timestamp: str = STAMP
    """RESO ``PhotosChangeTimestamp``: moves only when the photo set or a photo's bytes change."""

    @property
    def slug(self) -> str:
        """Zillow's URL slug: '4732-E-Camelback-Rd-Phoenix-AZ-85018'."""
        text = f"{self.address} {self.city} AZ {self.postal_code}"
        return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")

    def matches_address(self, query: str) -> bool:
        """Loose address match: the street address, optionally followed by city/state/zip."""
        norm = _norm(query)
        street = _norm(self.address)
        return norm == street or norm.startswith(street + " ")


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())
