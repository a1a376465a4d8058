"""Corpus-wide hash index: exact copies by pixel sha256, near copies by pHash, verified in colour.

Near lookup is multi-index hashing (Norouzi et al.): the 64-bit pHash is cut into ``m`` bands and
every stored hash is filed under its value in each band. Two hashes within ``t`` bits agree within
``floor(t / m)`` bits on at least one band (pigeonhole), so probing each band's values within that
radius finds every stored hash within ``t`` exactly, never scanning the corpus.

A pHash candidate is merged only if ``MergeRule`` verifies it: close dHash (an independent gradient
hash), the same colours (pHash and dHash are grey: a recoloured copy has the same hashes), and both
images detailed enough (flat images have degenerate hashes). The rule is scoped by risk: corpus-wide
the thresholds are tight; among a property's own images (dozens of candidates, not millions) they are
loose enough to merge crops, letterboxes and small turns. Only kept images are indexed, so merges
never chain: a copy of a copy is compared with the kept original.

The claim stays atomic with the verification in Python: the script returns the candidates it has not
been told about, and registers the image only when every candidate it finds was already verified.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from math import ceil

import redis

from homeshots.imaging.hashing import hex_to_int
from homeshots.imaging.similarity import ImageTraits, MergeRule, Scope
from managers import keys

_CLAIM = """
-- KEYS[1]: the image record, KEYS[2] record prefix, KEYS[3] band prefix.
-- ARGV: member (phash hex .. sha), threshold, radius, nbands, nknown, then per band: value, width,
--       then the nknown members already verified, then the record's field/value pairs.
-- Returns {0, record} for an exact copy; {1, member, distance, dhash, colour, quality, version, ...} for
-- candidates within the threshold not among the known ones (nothing registered); {-1} once registered.
local existing = redis.call('HGETALL', KEYS[1])
if #existing > 0 then return {0, existing} end
local function popcount(x)
  local c = 0
  while x ~= 0 do x = bit.band(x, x - 1); c = c + 1 end
  return c
end
local function distance(a, b)
  return popcount(bit.bxor(tonumber(string.sub(a, 1, 8), 16), tonumber(string.sub(b, 1, 8), 16)))
       + popcount(bit.bxor(tonumber(string.sub(a, 9, 16), 16), tonumber(string.sub(b, 9, 16), 16)))
end
local member, threshold = ARGV[1], tonumber(ARGV[2])
local radius, nbands, nknown = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local img_prefix, band_prefix = KEYS[2], KEYS[3]
local known, seen, found, band_keys = {}, {}, {}, {}
local first_known = 6 + 2 * nbands
for i = first_known, first_known + nknown - 1 do known[ARGV[i]] = true end
local function probe(key)
  for _, m in ipairs(redis.call('SMEMBERS', key)) do
    if not seen[m] then
      seen[m] = true
      local d = distance(member, m)
      if d <= threshold and not known[m] then
        local f = redis.call('HMGET', img_prefix .. string.sub(m, 17), 'dhash', 'colour', 'quality', 'version')
        for _, v in ipairs({m, d, f[1] or '', f[2] or '', f[3] or '', f[4] or ''}) do found[#found + 1] = v end
      end
    end
  end
end
for b = 0, nbands - 1 do
  local value, width = tonumber(ARGV[6 + 2 * b]), tonumber(ARGV[7 + 2 * b])
  local prefix = band_prefix .. b .. ':'
  band_keys[#band_keys + 1] = prefix .. bit.tohex(value, 8)
  probe(prefix .. bit.tohex(value, 8))
  if radius >= 1 then
    for i = 0, width - 1 do
      local v1 = bit.bxor(value, bit.lshift(1, i))
      probe(prefix .. bit.tohex(v1, 8))
      if radius >= 2 then
        for j = i + 1, width - 1 do probe(prefix .. bit.tohex(bit.bxor(v1, bit.lshift(1, j)), 8)) end
      end
    end
  end
end
if #found > 0 then
  table.insert(found, 1, 1)
  return found
end
redis.call('HSET', KEYS[1], unpack(ARGV, first_known + nknown))
for _, key in ipairs(band_keys) do redis.call('SADD', key, member) end
return {-1}
"""

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
class BandPlan:
    """How the 64 bits are cut: ``widths`` per band and the per-band probe ``radius``."""

    widths: tuple[int, ...]
    radius: int

    @classmethod
    def for_threshold(cls, threshold: int) -> BandPlan:
        # At least 2 bands: Lua's bit library works on 32-bit values.
        bands = max(2, ceil((threshold + 1) / 3))
        widths = tuple(64 // bands + (1 if i < 64 % bands else 0) for i in range(bands))
        return cls(widths, threshold // bands)

    def values(self, phash: int) -> list[int]:
        """The band values of ``phash`` (low bits first)."""
        out, start = [], 0
        for width in self.widths:
            out.append((phash >> start) & ((1 << width) - 1))
            start += width
        return out


@dataclass(frozen=True, slots=True)
class Match:
    record: ImageRecord
    distance: int


class ImageDeduplicator:
    """Looks images up in, and adds them to, the corpus-wide index in Redis."""

    def __init__(
        self, client: redis.Redis, threshold: int, dhash_threshold: int = 12, rule: MergeRule | None = None
    ) -> None:
        base = rule or MergeRule.default()
        self.rule = MergeRule(replace(base.corpus, phash=threshold, dhash=dhash_threshold), base.property)
        self.client = client
        self.threshold = threshold
        self.plan = BandPlan.for_threshold(threshold)
        self._claim = client.register_script(_CLAIM)
        self._upgrade = client.register_script(_UPGRADE)

    def claim(self, record: ImageRecord, property_key: str | None = None) -> Match:
        """Register ``record`` unless an exact or near copy is already kept; return the kept one.

        With ``property_key`` the property's own kept images are tried first, under the looser property
        rule; then the corpus, under the tight one. ``Match.record is record`` when this image is kept.
        """
        if property_key is not None:
            local = self._property_match(record, property_key)
            if local is not None:
                return local
        match = self._corpus_claim(record)
        if property_key is not None:
            self.client.sadd(keys.property_images(property_key), _property_member(match.record))
        return match

    def _corpus_claim(self, record: ImageRecord) -> Match:
        """The atomic lookup-and-register; candidates the script reports are verified here and told back."""
        band_args: list[int] = []
        for value, width in zip(self.plan.values(hex_to_int(record.phash)), self.plan.widths, strict=True):
            band_args += [value, width]
        flat: list[str] = []
        for name, value in asdict(record).items():
            flat += [name, str(value)]
        known: list[str] = []
        mine = record.traits
        while True:
            reply = self._claim(
                keys=[keys.image(record.sha256), keys.IMAGE_PREFIX, keys.PHASH_BANDS],
                args=[
                    record.member,
                    self.threshold,
                    self.plan.radius,
                    len(self.plan.widths),
                    len(known),
                    *band_args,
                    *known,
                    *flat,
                ],
            )
            kind = int(reply[0])
            if kind == -1:
                return Match(record, 0)
            if kind == 0:
                return Match(ImageRecord.from_redis(_pairs(reply[1])), 0)
            best: tuple[int, str] | None = None
            for i in range(1, len(reply), 6):
                member, distance, dhash, colour, quality, _version = reply[i : i + 6]
                theirs = ImageTraits(hex_to_int(member[:16]), hex_to_int(dhash or "0" * 16), colour, int(quality or -1))
                if self._verified(mine, theirs, Scope.CORPUS):
                    best = min(best or (65, member), (int(distance), member))
                known.append(member)
            if best is not None:
                kept = self.client.hgetall(keys.image(best[1][16:]))
                if kept:
                    return Match(ImageRecord.from_redis(kept), best[0])

    def _property_match(self, record: ImageRecord, property_key: str) -> Match | None:
        """The best of the property's own kept images this one copies, under the property rule."""
        limit = self.rule.property.phash
        mine, best = record.traits, None
        for member in self.client.smembers(keys.property_images(property_key)):
            theirs, sha = _parse_property_member(member)
            distance = (mine.phash ^ theirs.phash).bit_count()
            if distance <= limit and self._verified(mine, theirs, Scope.PROPERTY):
                best = min(best or (65, sha), (distance, sha))
        if best is None:
            return None
        kept = self.client.hgetall(keys.image(best[1]))
        return Match(ImageRecord.from_redis(kept), best[0]) if kept else None

    def _verified(self, mine: ImageTraits, theirs: ImageTraits, scope: Scope) -> bool:
        """``MergeRule.verify`` when both images carry every trait (standardizer version 2); a record of
        version 1 has no colour signature or detail score, and is verified on what it has (its dHash)."""
        if mine.colour and theirs.colour and mine.quality >= 0 and theirs.quality >= 0:
            return self.rule.verify(mine, theirs, scope)
        return (mine.dhash ^ theirs.dhash).bit_count() <= self.rule.thresholds(scope).dhash

    def remember_raw(self, raw_sha256: str, kept_sha256: str) -> None:
        """Bytes with this digest became this kept image: next time they are recognised before decoding."""
        self.client.set(keys.raw_digest(raw_sha256), kept_sha256)

    def by_raw_digest(self, raw_sha256: str) -> ImageRecord | None:
        """The kept image bytes with this digest became, if they were seen (and it is still kept)."""
        kept = self.client.get(keys.raw_digest(raw_sha256))
        record = self.client.hgetall(keys.image(kept)) if kept else None
        return ImageRecord.from_redis(record) if record else None

    def bulk_load(self, records: Iterable[ImageRecord]) -> int:
        """Index records without lookups (restoring a snapshot, building a benchmark corpus)."""
        pipe, count = self.client.pipeline(transaction=False), 0
        for record in records:
            pipe.hset(keys.image(record.sha256), mapping={k: str(v) for k, v in asdict(record).items()})
            member = record.phash + record.sha256
            for band, value in enumerate(self.plan.values(hex_to_int(record.phash))):
                pipe.sadd(keys.phash_band(band, value), member)
            count += 1
            if count % 5000 == 0:
                pipe.execute()
        pipe.execute()
        return count

    def upgrade(self, kept: ImageRecord, larger: ImageRecord) -> tuple[bool, list[str]]:
        """Point the kept image at ``larger``'s (already written) files if it came from a bigger original.

        Returns (switched, garbage): the files now unused, listed in the garbage set until the caller
        deletes them. When another worker's copy is at least as large, ``larger``'s own files are
        the garbage, except those the kept image itself uses (the same copy written twice).
        """
        switched, drop = self._upgrade(
            keys=[keys.image(kept.sha256), keys.GARBAGE],
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

    def garbage(self, limit: int = 1000) -> list[str]:
        """Store keys no index record points at any more, waiting to be deleted."""
        return list(self.client.srandmember(keys.GARBAGE, limit) or [])

    def forget_garbage(self, store_keys: list[str]) -> None:
        if store_keys:
            self.client.srem(keys.GARBAGE, *store_keys)


def kept_files(client: redis.Redis, cluster_ids: list[str]) -> dict[str, tuple[str, str]]:
    """(raw_key, processed_key) of each kept image now (after any larger copy replaced them)."""
    pipe = client.pipeline(transaction=False)
    for sha in cluster_ids:
        pipe.hmget(keys.image(sha), "raw_key", "processed_key")
    return {sha: (r[0], r[1]) for sha, r in zip(cluster_ids, pipe.execute(), strict=True) if r[0] and r[1]}


def _pairs(flat: list[str]) -> dict[str, str]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _property_member(record: ImageRecord) -> str:
    """A kept image in a property's set: everything the property rule needs, without another read."""
    return json.dumps(
        [record.phash, record.dhash, record.colour, record.quality, record.version, record.sha256],
        separators=(",", ":"),
    )


def _parse_property_member(member: str) -> tuple[ImageTraits, str]:
    phash, dhash, colour, quality, _version, sha = json.loads(member)
    return ImageTraits(hex_to_int(phash), hex_to_int(dhash), colour, int(quality)), sha
