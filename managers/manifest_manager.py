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
    """Manifest rows of one run: one hash field per property and lane (its rows as a JSON list).

    A lane's rows are written together (by the lane recorder), so a redelivered task replaces them instead
    of adding more; the rows of some properties are read (for snapshots) with one HMGET per shard.
    """

    def __init__(self, client: redis.Redis, run_id: str) -> None:
        self.client = client
        self.keys = keys.RunKeys(run_id)

    def for_properties(
        self, property_ids: list[str], lanes: list[str]
    ) -> dict[str, dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]]:
        """Rows and failures of some properties, per lane, as stored (for snapshots)."""
        groups = keys.by_shard(property_ids)
        pipe = self.client.pipeline(transaction=False)
        for shard, ids in groups.items():
            fields = [keys.lane_field(pid, lane) for pid in ids for lane in lanes]
            pipe.hmget(self.keys.shard(shard).manifest, fields)
            pipe.hmget(self.keys.shard(shard).image_failures, fields)
        replies = pipe.execute() if groups else []
        out: dict[str, dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]] = {}
        for i, ids in enumerate(groups.values()):
            rows, failures = iter(replies[2 * i]), iter(replies[2 * i + 1])
            for pid in ids:
                for lane in lanes:
                    r, f = next(rows), next(failures)
                    if r or f:
                        out.setdefault(pid, {})[lane] = (json.loads(r) if r else [], json.loads(f) if f else [])
        return out

    def failures(self) -> Iterator[dict[str, Any]]:
        for shard in self.keys.shards():
            for _, raw in self.client.hscan_iter(shard.image_failures, count=500):
                yield from json.loads(raw)

    def entries(self, *, resolve: bool = True) -> Iterator[ManifestEntry]:
        """All rows, a property's together, streamed shard by shard (a shard holds 1/256 of the run, so a
        million rows never sit in memory at once).

        With ``resolve`` each row's file keys are read from the kept image's index record, so rows
        written before a larger copy replaced the files point at the files that exist now.
        """
        for shard in self.keys.shards():
            grouped: dict[str, list[ManifestEntry]] = {}
            for field, raw in self.client.hscan_iter(shard.manifest, count=500):
                rows = [ManifestEntry.from_dict(row) for row in json.loads(raw)]
                grouped.setdefault(keys.split_lane_field(field)[0], []).extend(rows)
            batch: list[ManifestEntry] = []
            for rows in grouped.values():
                batch += rows
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
