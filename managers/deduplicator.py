"""Corpus-wide hash index: exact copies by pixel sha256, near copies by pHash, verified in colour.

Each kept image has a record (``keys.image``, sharded by sha256). Whether an image is new is decided by
the claim log (``managers.claim_log``): the process searches its replica of the kept pHashes
(``managers.index_replica``, multi-index hashing in memory) and appends to the log only if it has seen
every entry before its own; otherwise it checks the entries it missed and tries again. So two near
copies claimed at once on two machines keep exactly one, and Redis does O(1) work per image whatever
the corpus size: no band probes, no scans.

A pHash candidate is merged only if ``MergeRule`` verifies it: close dHash (an independent gradient
hash), the same colours (pHash and dHash are grey: a recoloured copy has the same hashes), and both
images detailed enough (flat images have degenerate hashes). The rule is scoped by risk: corpus-wide
the thresholds are tight; among a property's own images (dozens of candidates, not millions) they are
loose enough to merge crops, letterboxes and small turns. Only kept images are indexed, so merges
never chain: a copy of a copy is compared with the kept original.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace

import redis

from homeshots.imaging.hashing import hex_to_int, int_to_hex
from homeshots.imaging.near_index import BandPlan
from homeshots.imaging.similarity import ImageTraits, MergeRule, Scope
from managers import keys
from managers.claim_log import Appended, Behind, ClaimLog, LogReset, SegmentFull
from managers.index_replica import IndexReplica, shared_replica

__all__ = ["BandPlan", "ImageDeduplicator", "ImageRecord", "Match", "kept_files"]

_PENDING_WAIT = 2.0
"""Seconds to wait for the record of a log entry just appended by another worker (it writes it next);
an entry whose record never comes is a worker that died in between: its image was never kept."""

_UPGRADE = """
-- Point the kept image at a larger copy's files if it is still the larger one. KEYS[1] record,
-- KEYS[2] garbage set; ARGV: source_pixels, raw_key, processed_key, width, height, then the larger copy's
-- provenance (JSON). The files it replaces keep theirs: their entry goes on the record's 'replaced' list.
-- Returns {1, replaced keys} after switching, or {0, the candidate's keys the record does not use}.
-- Either way the returned keys are in the garbage set until the caller has deleted them.
local current = tonumber(redis.call('HGET', KEYS[1], 'source_pixels') or '0')
local in_use = redis.call('HMGET', KEYS[1], 'raw_key', 'processed_key')
local switched = tonumber(ARGV[1]) > current
local drop = {}
if switched then
  local before = redis.call('HMGET', KEYS[1], 'source_pixels', 'width', 'height', 'files_from', 'source',
                            'source_url', 'property_id', 'replaced')
  local history = cjson.decode(before[8] ~= false and before[8] ~= '' and before[8] or '[]')
  local from = (before[4] ~= false and before[4] ~= '') and before[4]
               or cjson.encode({source = before[5], source_url = before[6], property_id = before[7]})
  table.insert(history, {raw_key = in_use[1], processed_key = in_use[2], source_pixels = before[1],
                         width = before[2], height = before[3], from = cjson.decode(from)})
  while #history > 10 do table.remove(history, 1) end
  redis.call('HSET', KEYS[1], 'source_pixels', ARGV[1], 'raw_key', ARGV[2], 'processed_key', ARGV[3],
             'width', ARGV[4], 'height', ARGV[5], 'files_from', ARGV[6], 'replaced', cjson.encode(history))
  for _, key in ipairs(in_use) do
    if key and key ~= ARGV[2] and key ~= ARGV[3] then drop[#drop + 1] = key end
  end
else
  for _, key in ipairs({ARGV[2], ARGV[3]}) do
    if key ~= in_use[1] and key ~= in_use[2] then drop[#drop + 1] = key end
  end
end
for _, key in ipairs(drop) do redis.call('SADD', KEYS[2], key) end
return {switched and 1 or 0, drop}
"""


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """The kept copy of an image: its identity, files, and the copy it was first registered from."""

    sha256: str
    phash: str
    raw_key: str
    processed_key: str
    width: int
    height: int
    property_id: str
    source: str
    source_url: str
    run_id: str = ""
    source_pixels: int = 0
    """Pixels of the original the processed image was made from: a larger copy replaces it."""
    dhash: str = "0" * 16
    colour: str = ""
    """Chroma signature of the standardized image (empty for records of standardizer version 1)."""
    quality: int = -1
    """Detail score 0..100 (-1: not measured, version 1)."""
    version: int = 1
    """The standardizer version the hashes were made with."""
    replaced: str = ""
    """JSON list of the files a larger copy replaced, each with its provenance: nothing of it is lost."""
    files_from: str = ""
    """JSON provenance of the copy whose files the record now uses (empty: the first copy's, above)."""

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> ImageRecord:
        names = {f.name for f in fields(cls)}
        values: dict[str, object] = {k: v for k, v in data.items() if k in names}
        for name in ("width", "height", "source_pixels"):
            values[name] = int(values.get(name) or 0)  # type: ignore[call-overload]
        values["quality"] = int(values.get("quality") or -1)  # type: ignore[call-overload]
        values["version"] = int(values.get("version") or 1)  # type: ignore[call-overload]
        return cls(**values)  # type: ignore[arg-type]

    @property
    def traits(self) -> ImageTraits:
        return ImageTraits(hex_to_int(self.phash), hex_to_int(self.dhash), self.colour, self.quality)

    @property
    def member(self) -> str:
        """How the image is filed in the index and in a property's set: its pHash, then its sha256."""
        return self.phash + self.sha256


@dataclass(frozen=True, slots=True)
class Match:
    record: ImageRecord
    distance: int


class _StaleReplica(Exception):
    """The log at a replica's candidate holds another image: the index was flushed since the replica loaded."""


class ImageDeduplicator:
    """Looks images up in, and adds them to, the corpus-wide index."""

    def __init__(
        self,
        client: redis.Redis,
        threshold: int,
        dhash_threshold: int = 12,
        rule: MergeRule | None = None,
        replica: IndexReplica | None = None,
        log: ClaimLog | None = None,
    ) -> None:
        base = rule or MergeRule.default()
        self.rule = MergeRule(replace(base.corpus, phash=threshold, dhash=dhash_threshold), base.property)
        self.client = client
        self.threshold = threshold
        self.log = log or ClaimLog(client)
        self.replica = replica if replica is not None else shared_replica(self.log, threshold)
        self._upgrade = client.register_script(_UPGRADE)
        self._ghosts: set[int] = set()

    def claim(self, record: ImageRecord, property_key: str | None = None, raw_sha256: str | None = None) -> Match:
        """Register ``record`` unless an exact or near copy is already kept; return the kept one.

        With ``property_key`` the property's own kept images are tried first, under the looser property
        rule; then the corpus, under the tight one. ``Match.record is record`` when this image is kept.
        With ``raw_sha256`` the downloaded bytes are remembered as having become the kept image (see
        ``by_raw_digest``). Round trips: one to read, one to append when nothing matches, one to write.
        """
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.image(record.sha256))
        if property_key is not None:
            pipe.smembers(keys.property_images(property_key))
        existing, *own = pipe.execute()
        match: Match | None = None
        if property_key is not None:
            match = self._property_match(record, own[0], existing)
        in_property = match is not None
        if match is None and existing:
            match = Match(ImageRecord.from_redis(existing), 0)
        new = match is None
        if match is None:
            match = self._corpus_claim(record)
            new = match.record is record
        pipe = self.client.pipeline(transaction=False)
        if new:
            pipe.hset(keys.image(record.sha256), mapping={k: str(v) for k, v in asdict(record).items()})
        if property_key is not None and not in_property:
            pipe.sadd(keys.property_images(property_key), _property_member(match.record))
        if raw_sha256 is not None:
            pipe.set(keys.raw_digest(raw_sha256), match.record.sha256)
        pipe.execute()
        return match

    def _corpus_claim(self, record: ImageRecord) -> Match:
        """Near copies in the replica; else an append to the claim log (the caller writes the record)."""
        replica, phash = self.replica, hex_to_int(record.phash)
        position, found = self._search(record)
        while found is None:
            last = int_to_hex(replica.hash_at(position - 1)) if position % self.log.size else ""
            reply = self.log.append(position, record.member, self.threshold, last)
            if isinstance(reply, Appended):
                replica.absorb(position, reply.missed)
                replica.absorb(reply.position, record.phash)
                return Match(record, 0)
            if isinstance(reply, Behind):
                replica.absorb(position, reply.missed)
                close = [
                    (position + i // 16, d)
                    for i in range(0, len(reply.missed), 16)
                    if (d := (int(reply.missed[i : i + 16], 16) ^ phash).bit_count()) <= self.threshold
                ]
                position += len(reply.missed) // 16
                try:
                    found = self._verified_best(record, sorted(close, key=lambda c: c[1]))
                except _StaleReplica:
                    self._reset()
                    position, found = self._search(record)
            elif isinstance(reply, SegmentFull):
                position = (position // self.log.size + 1) * self.log.size
            elif isinstance(reply, LogReset):
                self._reset()
                position, found = self._search(record)
        return found

    def _search(self, record: ImageRecord) -> tuple[int, Match | None]:
        """(how much of the log was searched, the best verified copy in it): the replica's answer, or if
        the replica turns out to be of a flushed index, the answer of a replica synced anew."""
        for _ in range(2):
            if not self.replica.synced:
                self.replica.sync(self.log)
            position = len(self.replica)
            try:
                return position, self._verified_best(record, self.replica.within(hex_to_int(record.phash)))
            except _StaleReplica:
                self._reset()
        raise RuntimeError("the claim log changes under the replica: is the index being flushed in a loop?")

    def _reset(self) -> None:
        """Forget a replica of a flushed index (it loads again on the next search)."""
        self.replica.reset()
        self._ghosts.clear()

    def _verified_best(self, record: ImageRecord, candidates: list[tuple[int, int]]) -> Match | None:
        """The nearest kept image among log ``candidates`` (position, distance) that the rule verifies."""
        candidates = [(p, d) for p, d in candidates if p not in self._ghosts]
        if not candidates:
            return None
        members = self.log.members_at([p for p, _ in candidates])
        for (position, _), member in zip(candidates, members, strict=True):
            if member is None or (
                position < len(self.replica) and int(member[:16], 16) != self.replica.hash_at(position)
            ):
                raise _StaleReplica
        shas = [m[16:] if m else "" for m in members]
        records = self._records(shas)
        mine = record.traits
        for (position, distance), sha in zip(candidates, shas, strict=True):
            data = records.get(sha) or self._await_record(sha, position)
            if data is None:
                continue
            kept = ImageRecord.from_redis(data)
            if kept.sha256 == record.sha256 or self._verified(mine, kept.traits, Scope.CORPUS):
                return Match(kept, distance)
        return None

    def _records(self, shas: list[str]) -> dict[str, dict[str, str]]:
        pipe = self.client.pipeline(transaction=False)
        unique = sorted({sha for sha in shas if sha})
        for sha in unique:
            pipe.hgetall(keys.image(sha))
        return {sha: data for sha, data in zip(unique, pipe.execute(), strict=True) if data}

    def _await_record(self, sha: str, position: int) -> dict[str, str] | None:
        """The record of a log entry whose appender has not written it yet; None if it never comes."""
        deadline, pause = time.monotonic() + _PENDING_WAIT, 0.002
        while sha and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.1)
            data = self.client.hgetall(keys.image(sha))
            if data:
                return data
        self._ghosts.add(position)
        return None

    def _property_match(self, record: ImageRecord, members: set[str], exact: dict[str, str]) -> Match | None:
        """The best of the property's own kept images (``members`` of its set) this one copies, under the
        property rule; ``exact`` is this image's own record if it is kept (no second read for it)."""
        limit = self.rule.property.phash
        mine, best = record.traits, None
        for member in members:
            theirs, sha = _parse_property_member(member)
            distance = (mine.phash ^ theirs.phash).bit_count()
            if distance <= limit and self._verified(mine, theirs, Scope.PROPERTY):
                best = min(best or (65, sha), (distance, sha))
        if best is None:
            return None
        kept = exact if best[1] == record.sha256 and exact else self.client.hgetall(keys.image(best[1]))
        return Match(ImageRecord.from_redis(kept), best[0]) if kept else None

    def _verified(self, mine: ImageTraits, theirs: ImageTraits, scope: Scope) -> bool:
        """``MergeRule.verify`` when both images carry every trait (standardizer version 2); a record of
        version 1 has no colour signature or detail score, and is verified on what it has (its dHash)."""
        if mine.colour and theirs.colour and mine.quality >= 0 and theirs.quality >= 0:
            return self.rule.verify(mine, theirs, scope)
        return (mine.dhash ^ theirs.dhash).bit_count() <= self.rule.thresholds(scope).dhash

    def by_raw_digest(self, raw_sha256: str) -> ImageRecord | None:
        """The kept image bytes with this digest became, if they were seen (and it is still kept)."""
        kept = self.client.get(keys.raw_digest(raw_sha256))
        record = self.client.hgetall(keys.image(kept)) if kept else None
        return ImageRecord.from_redis(record) if record else None

    def bulk_load(self, records: Iterable[ImageRecord]) -> int:
        """Index records without lookups (restoring a snapshot, building a benchmark corpus)."""
        self.replica.sync(self.log)
        position, count, batch = len(self.replica), 0, []
        for record in records:
            batch.append(record)
            if len(batch) == 2000:
                position = self._load_batch(position, batch)
                count += len(batch)
                batch = []
        if batch:
            position = self._load_batch(position, batch)
            count += len(batch)
        return count

    def _load_batch(self, position: int, batch: list[ImageRecord]) -> int:
        pipe = self.client.pipeline(transaction=False)
        for record in batch:
            pipe.hset(keys.image(record.sha256), mapping={k: str(v) for k, v in asdict(record).items()})
        pipe.execute()
        return self.log.append_many(position, [record.member for record in batch])

    def upgrade(self, kept: ImageRecord, larger: ImageRecord) -> tuple[bool, list[str]]:
        """Point the kept image at ``larger``'s (already written) files if it came from a bigger original.

        Returns (switched, garbage): the files now unused, listed in the garbage set until the caller
        deletes them. When another worker's copy is at least as large, ``larger``'s own files are
        the garbage, except those the kept image itself uses (the same copy written twice).
        """
        switched, drop = self._upgrade(
            keys=[keys.image(kept.sha256), keys.garbage_of(kept.sha256)],
            args=[
                larger.source_pixels,
                larger.raw_key,
                larger.processed_key,
                larger.width,
                larger.height,
                json.dumps(
                    {"source": larger.source, "source_url": larger.source_url, "property_id": larger.property_id},
                    sort_keys=True,
                ),
            ],
        )
        return bool(int(switched)), list(drop)

    def garbage(self, limit: int = 1000, shards: Iterable[int] | None = None) -> list[str]:
        """Store keys no index record points at any more, waiting to be deleted (of ``shards``, else all)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(keys.IMAGE_SHARDS) if shards is None else shards:
            pipe.srandmember(keys.garbage(shard), limit)
        found = [key for reply in pipe.execute() for key in (reply or [])]
        return found[:limit]

    def forget_garbage(self, store_keys: list[str], kept_sha256: str | None = None) -> None:
        """Store keys deleted: out of the garbage set of ``kept_sha256``'s shard (of every shard if unknown)."""
        if not store_keys:
            return
        if kept_sha256 is not None:
            self.client.srem(keys.garbage_of(kept_sha256), *store_keys)
            return
        pipe = self.client.pipeline(transaction=False)
        for shard in range(keys.IMAGE_SHARDS):
            pipe.srem(keys.garbage(shard), *store_keys)
        pipe.execute()


def kept_files(client: redis.Redis, cluster_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(raw_key, processed_key) of each kept image now (after any larger copy replaced them)."""
    pipe = client.pipeline(transaction=False)
    for sha in cluster_ids:
        pipe.hmget(keys.image(sha), "raw_key", "processed_key")
    return {sha: (r[0], r[1]) for sha, r in zip(cluster_ids, pipe.execute(), strict=True) if r[0] and r[1]}


def _property_member(record: ImageRecord) -> str:
    """A kept image in a property's set: everything the property rule needs, without another read."""
    return json.dumps(
        [record.phash, record.dhash, record.colour, record.quality, record.version, record.sha256],
        separators=(",", ":"),
    )


def _parse_property_member(member: str) -> tuple[ImageTraits, str]:
    phash, dhash, colour, quality, _version, sha = json.loads(member)
    return ImageTraits(hex_to_int(phash), hex_to_int(dhash), colour, int(quality)), sha
