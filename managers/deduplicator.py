"""Corpus-wide hash index: exact copies by pixel sha256, near copies by pHash within a threshold.

Near lookup splits the 64-bit pHash into ``threshold + 1`` bands: two hashes within the
threshold agree exactly on at least one band (pigeonhole), so probing one Redis set per band
finds every candidate without scanning the corpus. Band members carry their pHash, so the
distance check needs no second round trip.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import redis

from imaging.hashing import hamming, hex_to_int, int_to_hex
from managers import keys

_CLAIM = """
-- Atomic lookup-or-register, so two workers with copies of one photo never both keep theirs.
-- KEYS[1] image record, KEYS[2..] band sets; ARGV: member, threshold, image key prefix, fields...
local existing = redis.call('HGETALL', KEYS[1])
if #existing > 0 then return {0, existing} end
local function popcount(x)
  local c = 0
  while x ~= 0 do x = bit.band(x, x - 1); c = c + 1 end
  return c
end
local hi = tonumber(string.sub(ARGV[1], 1, 8), 16)
local lo = tonumber(string.sub(ARGV[1], 9, 16), 16)
local threshold = tonumber(ARGV[2])
local best, best_d = nil, 65
for i = 2, #KEYS do
  for _, m in ipairs(redis.call('SMEMBERS', KEYS[i])) do
    local d = popcount(bit.bxor(hi, tonumber(string.sub(m, 1, 8), 16)))
            + popcount(bit.bxor(lo, tonumber(string.sub(m, 9, 16), 16)))
    if d <= threshold and (d < best_d or (d == best_d and m < best)) then best, best_d = m, d end
  end
end
if best then return {best_d, redis.call('HGETALL', ARGV[3] .. string.sub(best, 17))} end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
for i = 2, #KEYS do redis.call('SADD', KEYS[i], ARGV[1]) end
return {-1}
"""


@dataclass(frozen=True, slots=True)
class ImageRecord:
    """The first stored copy of an image and where it came from."""

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

    @classmethod
    def from_redis(cls, data: dict[str, str]) -> ImageRecord:
        names = {f.name for f in fields(cls)}
        values: dict[str, object] = {k: v for k, v in data.items() if k in names}
        for name in ("width", "height", "source_pixels"):
            values[name] = int(values.get(name) or 0)  # type: ignore[call-overload]
        return cls(**values)  # type: ignore[arg-type]


def band_values(phash: int, bands: int) -> list[int]:
    """Split 64 bits into ``bands`` contiguous slices (sizes differ by at most one bit)."""
    bands = max(1, min(bands, 64))
    out, start = [], 0
    for i in range(bands):
        width = 64 // bands + (1 if i < 64 % bands else 0)
        out.append((phash >> start) & ((1 << width) - 1))
        start += width
    return out


_UPGRADE = """
-- Replace the kept copy's files by a larger copy's, if it is still the larger one. KEYS[1] record,
-- KEYS[2] garbage set; ARGV: source_pixels, raw_key, processed_key, width, height. Returns old keys.
local current = tonumber(redis.call('HGET', KEYS[1], 'source_pixels') or '0')
if tonumber(ARGV[1]) <= current then return false end
local old = redis.call('HMGET', KEYS[1], 'raw_key', 'processed_key')
redis.call('HSET', KEYS[1], 'source_pixels', ARGV[1], 'raw_key', ARGV[2], 'processed_key', ARGV[3],
           'width', ARGV[4], 'height', ARGV[5])
for _, key in ipairs(old) do
  if key and key ~= ARGV[2] and key ~= ARGV[3] then redis.call('SADD', KEYS[2], key) end
end
return old
"""


@dataclass(frozen=True, slots=True)
class Match:
    record: ImageRecord
    distance: int


class ImageDeduplicator:
    """Looks images up in, and adds them to, the corpus-wide index in Redis."""

    def __init__(self, client: redis.Redis, threshold: int) -> None:
        self.client = client
        self.threshold = threshold
        self.bands = threshold + 1
        self._claim = client.register_script(_CLAIM)
        self._upgrade = client.register_script(_UPGRADE)

    def _band_keys(self, phash: int) -> list[str]:
        return [keys.phash_band(i, v) for i, v in enumerate(band_values(phash, self.bands))]

    def find(self, sha256: str, phash: int) -> Match | None:
        """The stored image this one copies (exact first, then the nearest within the threshold)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(keys.image(sha256))
        for key in self._band_keys(phash):
            pipe.smembers(key)
        exact, *buckets = pipe.execute()
        if exact:
            return Match(ImageRecord.from_redis(exact), 0)
        best: tuple[int, str] | None = None
        for member in set().union(*buckets) if buckets else ():
            distance = hamming(phash, hex_to_int(member[:16]))
            if distance <= self.threshold and (best is None or (distance, member) < best):
                best = (distance, member)
        if best is None:
            return None
        record = self.client.hgetall(keys.image(best[1][16:]))
        return Match(ImageRecord.from_redis(record), best[0]) if record else None

    def claim(self, record: ImageRecord) -> Match:
        """Register ``record`` unless an exact or near copy is already indexed; return the kept one.

        Lookup and insert run as one Lua script, so concurrent copies cannot both be kept.
        ``Match.record is record`` when this image is the one kept.
        """
        flat: list[str] = []
        for name, value in asdict(record).items():
            flat += [name, str(value)]
        member = record.phash + record.sha256
        band_keys = self._band_keys(hex_to_int(record.phash))
        reply = self._claim(keys=[keys.image(record.sha256), *band_keys],
                            args=[member, self.threshold, keys.image(""), *flat])
        if int(reply[0]) < 0:
            return Match(record, 0)
        pairs = dict(zip(reply[1][::2], reply[1][1::2], strict=True))
        return Match(ImageRecord.from_redis(pairs), int(reply[0]))

    def upgrade(self, kept: ImageRecord, larger: ImageRecord) -> list[str] | None:
        """Point the kept image at ``larger``'s files if it came from a bigger original.

        Returns the replaced keys (now garbage, also listed in the garbage set until deleted), or
        None when the kept copy is already at least as large (another worker may have won).
        """
        reply = self._upgrade(keys=[keys.image(kept.sha256), keys.GARBAGE],
                              args=[larger.source_pixels, larger.raw_key, larger.processed_key,
                                    larger.width, larger.height])
        if not reply:
            return None
        return [k for k in reply if k and k not in (larger.raw_key, larger.processed_key)]

    def add_garbage(self, store_keys: list[str]) -> None:
        if store_keys:
            self.client.sadd(keys.GARBAGE, *store_keys)

    def garbage(self, limit: int = 1000) -> list[str]:
        """Store keys no index record points at any more, waiting to be deleted."""
        return list(self.client.srandmember(keys.GARBAGE, limit) or [])

    def forget_garbage(self, store_keys: list[str]) -> None:
        if store_keys:
            self.client.srem(keys.GARBAGE, *store_keys)

    def current(self, cluster_ids: list[str]) -> dict[str, tuple[str, str]]:
        """(raw_key, processed_key) of each kept image now: manifest rows resolve through this."""
        pipe = self.client.pipeline(transaction=False)
        for sha in cluster_ids:
            pipe.hmget(keys.image(sha), "raw_key", "processed_key")
        return {sha: (r[0], r[1]) for sha, r in zip(cluster_ids, pipe.execute(), strict=True) if r[0]}


__all__ = ["ImageDeduplicator", "ImageRecord", "Match", "band_values", "int_to_hex"]
