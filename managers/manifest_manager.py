"""The run's manifest: one row per (property, source, image URL), and the manifest of failures."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import redis

from managers import keys
from managers.deduplicator import kept_files


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
    change: str | None = None
    """Against the listing memory: ``new``, ``changed``, ``unchanged`` or ``removed`` (a row of a photo no
    longer listed, pointing at the image it was)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_change(self, change: str) -> ManifestEntry:
        return replace(self, change=change)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ManifestEntry:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class ManifestManager:
    """Manifest rows of one run, one hash field per property (its rows as a JSON list).

    A property's rows are written together, so a redelivered task replaces them instead of adding
    more, and a window's rows can be read (for snapshots) by property id in one HMGET.
    """

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        run = keys.RunKeys(run_id)
        self.key = run.manifest
        self.failures_key = run.image_failures

    def set_property(
        self,
        pipe: redis.client.Pipeline,
        property_id: str,
        entries: list[ManifestEntry],
        failures: list[dict[str, Any]],
    ) -> None:
        """Replace the property's rows and its image failures (the manifest of failures)."""
        if entries:
            pipe.hset(self.key, property_id, json.dumps([e.to_dict() for e in entries], sort_keys=True))
        else:  # an unchanged property of a nightly run costs no manifest field
            pipe.hdel(self.key, property_id)
        if failures:
            pipe.hset(self.failures_key, property_id, json.dumps(failures, sort_keys=True))
        else:
            pipe.hdel(self.failures_key, property_id)

    def for_properties(self, property_ids: list[str]) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        """Rows and failures of some properties, as stored (for window snapshots)."""
        if not property_ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        pipe.hmget(self.key, property_ids)
        pipe.hmget(self.failures_key, property_ids)
        rows, failures = pipe.execute()
        return {
            pid: (json.loads(r) if r else [], json.loads(f) if f else [])
            for pid, r, f in zip(property_ids, rows, failures, strict=True)
        }

    def failures(self) -> Iterator[dict[str, Any]]:
        for _, raw in self.client.hscan_iter(self.failures_key, count=500):
            yield from json.loads(raw)

    def entries(self, *, resolve: bool = True) -> Iterator[ManifestEntry]:
        """All rows, streamed with HSCAN (a million rows never sit in memory at once).

        With ``resolve`` each row's file keys are read from the kept image's index record, so rows
        written before a larger copy replaced the files point at the files that exist now.
        """
        batch: list[ManifestEntry] = []
        for _, raw in self.client.hscan_iter(self.key, count=500):
            batch += [ManifestEntry.from_dict(row) for row in json.loads(raw)]
            if len(batch) >= 500:
                yield from self._resolved(batch) if resolve else batch
                batch = []
        yield from self._resolved(batch) if resolve else batch

    def _resolved(self, batch: list[ManifestEntry]) -> list[ManifestEntry]:
        files = kept_files(self.client, [e.duplicate_of or e.sha256 for e in batch])
        return [
            replace(e, raw_key=files[c][0], processed_key=files[c][1])
            if (c := e.duplicate_of or e.sha256) in files
            else e
            for e in batch
        ]

    def reset(self, pipe: redis.client.Pipeline) -> None:
        pipe.delete(self.key, self.failures_key)
