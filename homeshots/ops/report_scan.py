"""One streaming pass over a run's records for the report: aggregates and bounded samples, never all rows.

A run can have a million manifest rows; the report keeps only counters, a histogram, a deterministic
sample of properties (the smallest hashes of their ids: uniform, stable from one report to the next,
independent of scan order), the merged pairs closest to the merge threshold (a bounded heap) and a
few examples per failure kind. Memory stays flat whatever the size of the run.

Rows come from Redis (HSCAN, one field per property) or, once the run's records left Redis, from its
gzip JSON-lines archive in the store, read as a stream (not decompressed whole).
"""

from __future__ import annotations

import bisect
import gzip
import hashlib
import heapq
import io
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import redis

from homeshots.core.errors import StoreError
from homeshots.imaging.hashing import hex_to_int
from homeshots.storage import LocalStore, Store
from managers import keys
from managers.manifest_manager import ManifestManager
from managers.run_archive import archive_key
from managers.state_manager import StateManager

ROWS_PER_SAMPLE = 24
"""Distinct photos kept of a sampled property (its contact sheet shows at most these)."""
EXAMPLES = 3
"""Examples kept per failure group."""
MAX_FAILURE_GROUPS = 500
"""(scope, source, kind) groups with their own row; kinds come from code, so this only guards odd data."""
LOOKUP_BATCH = 1000
"""Copies whose kept image is in another property, looked up in the hash index together."""


def sample_rank(property_id: str) -> int:
    """The property's place in the sample: the smallest ranks are shown (deterministic and uniform)."""
    return int.from_bytes(hashlib.blake2b(property_id.encode(), digest_size=8).digest(), "big")


def manifest_groups(client: redis.Redis, store: Store, run_id: str, archived: bool) -> Iterator[tuple[str, list[dict]]]:
    """(property id, its rows) for every property with manifest rows, streamed."""
    if not archived:
        for shard in keys.RunKeys(run_id).shards():  # a shard holds a few hundred properties of a 100k run
            grouped: dict[str, list[dict]] = {}
            for field, raw in client.hscan_iter(shard.manifest, count=500):
                grouped.setdefault(keys.split_lane_field(field)[0], []).extend(json.loads(raw))
            yield from grouped.items()
        return
    pid, rows = None, []  # the archive writes a property's rows together
    for row in archive_rows(store, run_id, "manifest"):
        if row.get("property_id") != pid and rows:
            yield str(pid), rows
            rows = []
        pid = row.get("property_id")
        rows.append(row)
    if rows:
        yield str(pid), rows


def failure_rows(client: redis.Redis, store: Store, run_id: str, archived: bool) -> Iterator[dict[str, Any]]:
    """Every failed property and image, each with its ``scope`` (as ``homeshots manifest --failures``)."""
    if archived:
        yield from archive_rows(store, run_id, "failures")
        return
    for pid, reason in StateManager(client, run_id).failures():
        yield {"property_id": pid, "scope": "property"} | reason
    for row in ManifestManager(client, run_id).failures():
        yield {"scope": "image"} | row


def archive_rows(store: Store, run_id: str, name: str) -> Iterator[dict[str, Any]]:
    """The archived records, line by line: a local archive is read from its file, an S3 one from its
    compressed bytes (a tenth of the rows' size), never decompressed whole."""
    key = archive_key(run_id, name)
    try:
        if isinstance(store, LocalStore):
            raw: IO[bytes] = open(store.location(key), "rb")  # noqa: SIM115 (closed by the with below)
        else:
            raw = io.BytesIO(store.get(key))
    except (OSError, StoreError) as exc:
        raise StoreError(f"the run's {name} archive is not readable: {key} ({exc})") from exc
    with raw, gzip.GzipFile(fileobj=raw) as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


@dataclass
class Photo:
    """One distinct image of a sampled property: the sources and URLs that listed it."""

    cluster: str
    """The kept image's sha256 (the row's own, or the one it was merged into)."""
    processed_key: str
    width: int
    height: int
    sources: list[str]
    merged: bool
    """Every row of it is a copy of an image kept elsewhere (another property or an earlier run)."""


@dataclass
class SampledProperty:
    property_id: str
    address: str
    rank: int
    photos: list[Photo]
    photo_count: int
    rows: int
    copies: int
    removed: int


@dataclass(order=True)
class MergedPair:
    """A copy beside the kept image it was merged into; ``margin`` is how far below the threshold it was."""

    margin: int
    tiebreak: int
    copy: dict[str, Any] = field(compare=False)
    kept: dict[str, Any] | None = field(compare=False)
    distance: int = field(compare=False)
    threshold: int = field(compare=False)
    scope: str = field(compare=False)


@dataclass
class FailureGroup:
    """One (scope, source, kind): how many, how many may succeed on a retry, and a few examples."""

    count: int = 0
    retryable: int = 0
    ranked: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """The examples with the smallest hashes, so the same ones show whatever the order rows come in."""

    @property
    def examples(self) -> list[dict[str, str]]:
        return [example for _, example in self.ranked]


class ManifestDigest:
    """Counts, the photos-per-property histogram, a sample of properties and the closest merges."""

    def __init__(
        self, client: redis.Redis, *, sample_size: int, pair_count: int, corpus_threshold: int, property_threshold: int
    ) -> None:
        self.client = client
        self.sample_size, self.pair_count = sample_size, pair_count
        self.thresholds = {"corpus": corpus_threshold, "property": property_threshold}
        self.properties = self.rows = self.copies = self.unmatched = 0
        self.photos_per_property: Counter[int] = Counter()
        self.changes: Counter[str] = Counter()
        self._sample: list[tuple[int, str, SampledProperty]] = []  # max-heap by rank (negated)
        self._pairs: list[tuple[int, int, MergedPair]] = []  # max-heap by margin (negated)
        self._pending: list[dict[str, Any]] = []

    def add(self, property_id: str, rows: list[dict[str, Any]]) -> None:
        """Fold one property's rows in; only what the sample or the pair heap keeps outlives the call."""
        self.properties += 1
        self.rows += len(rows)
        kept_here: dict[str, dict[str, Any]] = {}
        clusters: set[str] = set()
        for row in rows:
            self.changes[row.get("change") or "none"] += 1
            if not row.get("duplicate_of"):
                kept_here[row["sha256"]] = row
            if row.get("change") != "removed":
                clusters.add(row.get("duplicate_of") or row["sha256"])
        self.photos_per_property[len(clusters)] += 1
        for row in rows:
            if not row.get("duplicate_of"):
                continue
            self.copies += 1
            kept = kept_here.get(row["duplicate_of"])
            if kept is not None:
                self._offer(row, kept, "property")
            else:
                self._pending.append(row)
        if len(self._pending) >= LOOKUP_BATCH:
            self._lookup()
        rank = sample_rank(property_id)
        if len(self._sample) < self.sample_size or rank < -self._sample[0][0]:
            entry = (-rank, self.properties, self._sampled(property_id, rank, rows))
            if len(self._sample) < self.sample_size:
                heapq.heappush(self._sample, entry)
            else:
                heapq.heapreplace(self._sample, entry)

    def finish(self) -> tuple[list[SampledProperty], list[MergedPair]]:
        """The sample (by rank) and the pairs (smallest margin first)."""
        self._lookup()
        sample = sorted((entry[2] for entry in self._sample), key=lambda p: p.rank)
        pairs = sorted(entry[2] for entry in self._pairs)
        return sample, pairs

    def _offer(self, copy: dict[str, Any], kept: dict[str, Any], scope: str) -> None:
        distance = (hex_to_int(copy["phash"]) ^ hex_to_int(kept["phash"])).bit_count()
        threshold = self.thresholds[scope]
        margin = threshold - distance
        if len(self._pairs) >= self.pair_count and margin > -self._pairs[0][0]:
            return
        tiebreak = sample_rank(copy["property_id"] + copy["sha256"] + copy.get("source_url", ""))
        if len(self._pairs) >= self.pair_count and (margin, tiebreak) >= (-self._pairs[0][0], -self._pairs[0][1]):
            return
        pair = MergedPair(margin, tiebreak, _slim(copy), _slim(kept), distance, threshold, scope)
        entry = (-margin, -tiebreak, pair)
        if len(self._pairs) < self.pair_count:
            heapq.heappush(self._pairs, entry)
        else:
            heapq.heapreplace(self._pairs, entry)

    def _lookup(self) -> None:
        """Kept images of other properties (or earlier runs) come from the corpus-wide hash index."""
        if not self._pending:
            return
        shas = sorted({row["duplicate_of"] for row in self._pending})
        pipe = self.client.pipeline(transaction=False)
        for sha in shas:
            pipe.hmget(keys.image(sha), "phash", "property_id", "source", "source_url", "processed_key")
        found = {
            sha: {"sha256": sha, "phash": r[0], "property_id": r[1], "source": r[2], "source_url": r[3],
                  "processed_key": r[4]}
            for sha, r in zip(shas, pipe.execute(), strict=True)
            if r[0]
        }  # fmt: skip
        for row in self._pending:
            kept = found.get(row["duplicate_of"])
            if kept is None:
                self.unmatched += 1
            else:
                self._offer(row, kept, "property" if kept["property_id"] == row["property_id"] else "corpus")
        self._pending = []

    def _sampled(self, property_id: str, rank: int, rows: list[dict[str, Any]]) -> SampledProperty:
        photos: dict[str, Photo] = {}
        for row in sorted(rows, key=lambda r: (r.get("duplicate_of") is not None, r["source"], r["source_url"])):
            if row.get("change") == "removed":
                continue
            cluster = row.get("duplicate_of") or row["sha256"]
            photo = photos.get(cluster)
            if photo is None:
                if len(photos) >= ROWS_PER_SAMPLE:
                    continue
                photo = photos[cluster] = Photo(
                    cluster, row["processed_key"], int(row["width"]), int(row["height"]), [], True
                )
            if row["source"] not in photo.sources:
                photo.sources.append(row["source"])
            photo.merged = photo.merged and bool(row.get("duplicate_of"))
        clusters = {r.get("duplicate_of") or r["sha256"] for r in rows if r.get("change") != "removed"}
        return SampledProperty(
            property_id=property_id,
            address=str(rows[0].get("address", "")),
            rank=rank,
            photos=list(photos.values()),
            photo_count=len(clusters),
            rows=len(rows),
            copies=sum(1 for r in rows if r.get("duplicate_of")),
            removed=sum(1 for r in rows if r.get("change") == "removed"),
        )


_SLIM = ("property_id", "address", "source", "source_url", "sha256", "phash", "processed_key", "width", "height")


def _slim(row: dict[str, Any]) -> dict[str, Any]:
    """What the page shows of a row: the pair heap holds these, not whole rows."""
    return {k: row[k] for k in _SLIM if k in row}


class FailureDigest:
    """Failures by (scope, source, kind): counts, how many may succeed on a retry, a few examples."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], FailureGroup] = {}
        self.by_source: Counter[str] = Counter()
        self.by_scope: Counter[str] = Counter()

    def add(self, row: dict[str, Any]) -> None:
        scope, source, kind = str(row.get("scope", "?")), str(row.get("source") or "-"), str(row.get("kind", "?"))
        key = (scope, source, kind)
        if key not in self.groups and len(self.groups) >= MAX_FAILURE_GROUPS:
            key = (scope, source, "(other kinds)")
        group = self.groups.setdefault(key, FailureGroup())
        group.count += 1
        group.retryable += bool(row.get("retryable"))
        example = {k: str(row.get(k) or "") for k in ("property_id", "source_url", "message")}
        rank = sample_rank("\0".join(example.values()))
        if len(group.ranked) < EXAMPLES or rank < group.ranked[-1][0]:
            bisect.insort(group.ranked, (rank, example), key=lambda item: item[0])
            del group.ranked[EXAMPLES:]
        self.by_source[source] += 1
        self.by_scope[scope] += 1

    def table(self) -> list[tuple[tuple[str, str, str], FailureGroup]]:
        """Groups by scope, then most frequent first."""
        return sorted(self.groups.items(), key=lambda item: (item[0][0] != "property", -item[1].count, item[0]))
