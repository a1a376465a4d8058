"""What a sandbox answers at one moment: listings, photo bytes and the metadata served beside them.

A static server keeps one snapshot for its whole life; a server backed by a ``World`` takes the
world's snapshot of the current night. Each request reads one snapshot from start to end, so a
night that turns mid-request cannot mix two nights in one answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from homeshots_sandbox.listing import STAMP, Listing
from homeshots_sandbox.photos import upright_width

STATIC_TIME = datetime.fromisoformat(STAMP)
"""Last-Modified of every photo of a static catalog."""


@dataclass
class Snapshot:
    """Listings and master photos (by file name), plus what a world knows about each photo."""

    listings: list[Listing]
    photos: Mapping[str, bytes]
    sizes: Mapping[str, tuple[int, int] | None]
    photo_times: Mapping[str, datetime] = field(default_factory=dict)
    """When each photo's bytes last changed (Last-Modified, MediaModificationTimestamp); STAMP if absent."""
    media_keys: Mapping[str, str] = field(default_factory=dict)
    """RESO MediaKey per photo name; absent: the static catalog's ``<ListingKey>-M<order>``."""
    upright_widths: Mapping[str, int] | None = None
    """Width as viewers show each photo, when known without decoding it (a world's photos)."""
    by_stem: Mapping[str, str] | None = None
    """Photo name per file stem for the ``/cdn/`` routes; None: scan ``photos`` (a static dict may change)."""
    night: int | None = None

    def photo_time(self, name: str) -> datetime:
        return self.photo_times.get(name, STATIC_TIME)

    def name_for_stem(self, stem: str) -> str | None:
        if self.by_stem is not None:
            return self.by_stem.get(stem)
        return next((n for n in self.photos if n.rsplit(".", 1)[0] == stem), None)

    def upright_width(self, name: str) -> int | None:
        if self.upright_widths is not None:
            return self.upright_widths.get(name)
        data = self.photos.get(name)
        return upright_width(data) if data else None


def odata_time(moment: datetime) -> str:
    """An OData DateTimeOffset as the RESO feed writes it: UTC, whole seconds, ``Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
