"""Corpus-wide hash index: exact copies by pixel sha256, near copies by pHash, confirmed by dHash.

Near lookup is multi-index hashing (Norouzi et al.): the 64-bit pHash is cut into ``m`` bands and
every stored hash is filed under its value in each band. Two hashes within ``t`` bits agree within
``floor(t / m)`` bits on at least one band (pigeonhole), so probing each band's values within that
radius finds every stored hash within ``t`` exactly, never scanning the corpus. With ``m`` chosen so
the radius is at most 2 (3 bands of 21-22 bits for the default ``t = 8``), a lookup costs a fixed
~700 set probes whose buckets stay nearly empty up to millions of images.

Perceptual hashes of different rooms collide more than random bits would, so a pHash match is
merged only if the images' dHash (an independent gradient hash) is close too. Only kept images are
indexed, so merges never chain: a copy of a copy is compared with the kept original.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from math import ceil

import redis

from homeshots.imaging.hashing import hamming, hex_to_int
from managers import keys

_CLAIM = """
-- Atomic lookup and register. KEYS[1]: the image record, KEYS[2] record prefix, KEYS[3] band prefix.
-- ARGV: member (phash hex .. sha), threshold, dhash hex, dhash threshold, radius, nbands,
--       then per band: value, width; then the record's field/value pairs.
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
local dhash, dthreshold = ARGV[3], tonumber(ARGV[4])
local radius, nbands = tonumber(ARGV[5]), tonumber(ARGV[6])
local img_prefix, band_prefix = KEYS[2], KEYS[3]
local best, best_d, seen, band_keys = nil, 65, {}, {}
local function probe(key)
  for _, m in ipairs(redis.call('SMEMBERS', key)) do
    if not seen[m] then
      seen[m] = true
      local d = distance(member, m)
      if d <= threshold and (d < best_d or (d == best_d and m < best)) then
        local other = redis.call('HGET', img_prefix .. string.sub(m, 17), 'dhash')
        if other and distance(dhash, other) <= dthreshold then best, best_d = m, d end
      end
    end
  end
end
for b = 0, nbands - 1 do
  local value, width = tonumber(ARGV[7 + 2 * b]), tonumber(ARGV[8 + 2 * b])
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
if best then return {best_d, redis.call('HGETALL', img_prefix .. string.sub(best, 17))} end
redis.call('HSET', KEYS[1], unpack(ARGV, 7 + 2 * nbands))
for _, key in ipairs(band_keys) do redis.call('SADD', key, member) end
return {-1}
"""

_UPGRADE = """
-- Point the kept image at a larger copy's files if it is still the larger one. KEYS[1] record,
-- KEYS[2] garbage set; ARGV: source_pixels, raw_key, processed_key, width, height.
-- Returns {1, replaced keys} after switching, or {0, the candidate's keys the record does not use}.
-- Either way the returned keys are in the garbage set until the caller has deleted them.
local current = tonumber(redis.call('HGET', KEYS[1], 'source_pixels') or '0')
local in_use = redis.call('HMGET', KEYS[1], 'raw_key', 'processed_key')
local switched = tonumber(ARGV[1]) > current
local drop = {}
if switched then
  redis.call('HSET', KEYS[1], 'source_pixels', ARGV[1], 'raw_key', ARGV[2], 'processed_key', ARGV[3],
             'width', ARGV[4], 'height', ARGV[5])
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

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> ImageRecord:
        names = {f.name for f in fields(cls)}
        values: dict[str, object] = {k: v for k, v in data.items() if k in names}
        for name in ("width", "height", "source_pixels"):
            values[name] = int(values.get(name) or 0)  # type: ignore[call-overload]
        return cls(**values)  # type: ignore[arg-type]


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


def is_near_copy(phash_a: int, dhash_a: int, phash_b: int, dhash_b: int, threshold: int, dhash_threshold: int) -> bool:
    """The merge rule the index applies: close in pHash and, independently, in dHash."""
    return hamming(phash_a, phash_b) <= threshold and hamming(dhash_a, dhash_b) <= dhash_threshold


@dataclass(frozen=True, slots=True)
class Match:
    record: ImageRecord
    distance: int


class ImageDeduplicator:
    """Looks images up in, and adds them to, the corpus-wide index in Redis."""

    def __init__(self, client: redis.Redis, threshold: int, dhash_threshold: int = 12) -> None:
        self.client = client
        self.threshold = threshold
        self.dhash_threshold = dhash_threshold
        self.plan = BandPlan.for_threshold(threshold)
        self._claim = client.register_script(_CLAIM)
        self._upgrade = client.register_script(_UPGRADE)

    def claim(self, record: ImageRecord) -> Match:
        """Register ``record`` unless an exact or near copy is already kept; return the kept one.

        Lookup and insert run as one Lua script, so concurrent copies cannot both be kept.
        ``Match.record is record`` when this image is the one kept.
        """
        band_args: list[int] = []
        for value, width in zip(self.plan.values(hex_to_int(record.phash)), self.plan.widths, strict=True):
            band_args += [value, width]
        flat: list[str] = []
        for name, value in asdict(record).items():
            flat += [name, str(value)]
        reply = self._claim(
            keys=[keys.image(record.sha256), keys.IMAGE_PREFIX, keys.PHASH_BANDS],
            args=[
                record.phash + record.sha256,
                self.threshold,
                record.dhash,
                self.dhash_threshold,
                self.plan.radius,
                len(self.plan.widths),
                *band_args,
                *flat,
            ],
        )
        if int(reply[0]) < 0:
            return Match(record, 0)
        return Match(ImageRecord.from_redis(_pairs(reply[1])), int(reply[0]))

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
            args=[larger.source_pixels, larger.raw_key, larger.processed_key, larger.width, larger.height],
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
