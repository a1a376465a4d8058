"""The run's manifest: one row per (property, source, image URL), in a Redis hash.

Keyed rows make a redelivered task rewrite the same row instead of adding a second one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import redis

from managers import keys


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """Where one stored image came from and where it is. ``duplicate_of`` names the kept copy."""

    property_id: str
    address: str
    source: str
    source_url: str
    sha256: str
    phash: str
    raw_key: str
    processed_key: str
    width: int
    height: int
    duplicate_of: str | None = None

    @property
    def row_key(self) -> str:
        return f"{self.property_id}|{self.source}|{self.source_url}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestEntry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ManifestManager:
    """Manifest rows of one run."""

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.key = keys.run(run_id, "manifest")
        self.failures_key = keys.run(run_id, "image_failures")

    def add(self, pipe: redis.client.Pipeline, entry: ManifestEntry) -> None:
        pipe.hset(self.key, entry.row_key, json.dumps(entry.to_dict(), sort_keys=True))

    def add_failure(self, pipe: redis.client.Pipeline, property_id: str, source: str, source_url: str,
                    kind: str, message: str, retryable: bool) -> None:
        """An image that could not be stored, with why (the manifest of failures)."""
        row = {"property_id": property_id, "source": source, "source_url": source_url,
               "kind": kind, "message": message, "retryable": retryable}
        pipe.hset(self.failures_key, f"{property_id}|{source}|{source_url}", json.dumps(row, sort_keys=True))

    def failures(self) -> Iterator[dict[str, Any]]:
        for _, raw in self.client.hscan_iter(self.failures_key, count=1000):
            yield json.loads(raw)

    def entries(self, *, resolve: bool = True) -> Iterator[ManifestEntry]:
        """All rows, streamed with HSCAN (a million rows never sit in memory at once).

        With ``resolve`` each row's file keys are read from the kept image's index record, so rows
        written before a larger copy replaced the files point at the files that exist now.
        """
        batch: list[ManifestEntry] = []
        for _, raw in self.client.hscan_iter(self.key, count=1000):
            batch.append(ManifestEntry.from_dict(json.loads(raw)))
            if len(batch) >= 500:
                yield from self._resolved(batch) if resolve else batch
                batch = []
        yield from self._resolved(batch) if resolve else batch

    def _resolved(self, batch: list[ManifestEntry]) -> list[ManifestEntry]:
        pipe = self.client.pipeline(transaction=False)
        for entry in batch:
            pipe.hmget(keys.image(entry.duplicate_of or entry.sha256), "raw_key", "processed_key")
        out = []
        for entry, (raw_key, processed_key) in zip(batch, pipe.execute(), strict=True):
            if raw_key and processed_key:
                entry = replace(entry, raw_key=raw_key, processed_key=processed_key)
            out.append(entry)
        return out

    def count(self) -> int:
        return int(self.client.hlen(self.key))

    def reset(self, pipe: redis.client.Pipeline) -> None:
        pipe.delete(self.key, self.failures_key)
