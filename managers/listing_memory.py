"""Listing memory: per property and source, what was last seen there, outliving every run.

A nightly run compares what a source lists now with this memory: a listing whose photo stamp did not
move costs no download, a photo whose identity and timestamp are known costs no request, and a known
photo with validators is asked for conditionally (``If-None-Match`` / ``If-Modified-Since``). The
memory is also where "the current photos of a property" are answered from, without scanning runs.

One Redis hash per property (``{property}`` hash tag, so properties spread over a cluster), one field
per source holding compact JSON: a few hundred bytes for a listing of ten photos.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from managers import keys


@dataclass(frozen=True, slots=True)
class PhotoMemory:
    """One photo as last seen: its identity at the source, its validators, and the kept image it is."""

    identity: str
    sha256: str
    """The kept image (index record) this photo resolved to."""
    etag: str | None = None
    last_modified: str | None = None
    modified: str | None = None
    """The source's own change stamp for the photo (RESO ``MediaModificationTimestamp``)."""
    url: str | None = None
    """The (redacted) URL, kept only when the identity is a source key (otherwise it is the identity)."""

    def to_json(self) -> list[Any]:
        row: list[Any] = [self.identity, self.sha256, self.etag, self.last_modified, self.modified, self.url]
        while row and row[-1] is None:
            row.pop()
        return row

    @classmethod
    def from_json(cls, row: list[Any]) -> PhotoMemory:
        return cls(*row)


@dataclass(frozen=True, slots=True)
class ListingMemory:
    """One source's listing of one property as last seen."""

    visited: str
    """Day of the last visit (YYYY-MM-DD, UTC): how stale the memory is."""
    photos: tuple[PhotoMemory, ...] = ()
    listing_key: str | None = None
    modified: str | None = None
    photos_modified: str | None = None
    change_rate: float = 0.0
    """How often a visit found changes (an exponential moving average, 0..1): likely changes come first."""
    by_identity: dict[str, PhotoMemory] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self.by_identity.update((p.identity, p) for p in self.photos)

    def to_json(self) -> str:
        doc: dict[str, Any] = {"v": self.visited, "p": [p.to_json() for p in self.photos]}
        for short, value in (("k", self.listing_key), ("m", self.modified), ("pm", self.photos_modified)):
            if value:
                doc[short] = value
        if self.change_rate:
            doc["r"] = round(self.change_rate, 3)
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ListingMemory:
        doc = json.loads(text)
        return cls(
            visited=doc["v"],
            photos=tuple(PhotoMemory.from_json(p) for p in doc.get("p", [])),
            listing_key=doc.get("k"),
            modified=doc.get("m"),
            photos_modified=doc.get("pm"),
            change_rate=float(doc.get("r", 0.0)),
        )

    def revisited(self, day: str, *, changed: bool, **fields: Any) -> ListingMemory:
        """This memory after a visit on ``day`` (``changed`` feeds the change rate)."""
        rate = 0.7 * self.change_rate + (0.3 if changed else 0.0)
        return replace(self, visited=day, change_rate=rate, by_identity={}, **fields)


class ListingMemoryManager:
    """Reads and writes listing memory; writes go on the caller's pipeline, with the property's record."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def get(self, property_id: str, source: str) -> ListingMemory | None:
        raw = self.client.hget(keys.listing_memory(property_id), source)
        return ListingMemory.from_json(raw) if raw else None

    def get_all(self, property_id: str) -> dict[str, ListingMemory]:
        raw = self.client.hgetall(keys.listing_memory(property_id))
        return {source: ListingMemory.from_json(text) for source, text in raw.items()}

    def get_many(self, property_ids: Iterable[str]) -> dict[str, dict[str, ListingMemory]]:
        """Memory of many properties in one round trip (the nightly planner reads it in batches)."""
        ids = list(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for pid in ids:
            pipe.hgetall(keys.listing_memory(pid))
        return {
            pid: {source: ListingMemory.from_json(text) for source, text in raw.items()}
            for pid, raw in zip(ids, pipe.execute(), strict=True)
        }

    def put(self, pipe: redis.client.Pipeline, property_id: str, source: str, memory: ListingMemory) -> None:
        pipe.hset(keys.listing_memory(property_id), source, memory.to_json())

    def forget(self, pipe: redis.client.Pipeline, property_id: str, source: str) -> None:
        pipe.hdel(keys.listing_memory(property_id), source)
