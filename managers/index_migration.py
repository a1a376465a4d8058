"""Moving a hash index of the one-slot layout (``hs:{idx}:...``, before the claim log) into today's.

The old layout kept every record, band bucket and raw digest under one hash tag, so one node held the
whole index and a claim probed hundreds of band sets. ``homeshots migrate-index`` reads its records
into the sharded records and the claim log (``ImageDeduplicator.bulk_load``), moves the raw digests and
the files waiting for deletion, then drops the old keys. It can be run again after an interruption:
records already moved are skipped, and the old keys go only once everything is across.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from managers import keys
from managers.connection import primaries
from managers.deduplicator import ImageDeduplicator, ImageRecord

_LEGACY = keys.LEGACY_INDEX
_LEGACY_GARBAGE = keys.LEGACY_GARBAGE
_BATCH = 1000


@dataclass
class Migrated:
    records: int = 0
    raw_digests: int = 0
    garbage: int = 0
    dropped_keys: int = 0


def legacy_index_present(client: redis.Redis) -> bool:
    return any(next(iter(node.scan_iter(_LEGACY + "img:*", count=1000)), None) for node in primaries(client))


def migrate_legacy_index(client: redis.Redis, dedup: ImageDeduplicator) -> Migrated:
    """Move every record, raw digest and garbage entry of the old layout; then drop its keys."""
    out = Migrated()
    old_keys = [k for node in primaries(client) for k in node.scan_iter(_LEGACY + "*", count=1000)]
    records = [k for k in old_keys if k.startswith(_LEGACY + "img:")]
    for start in range(0, len(records), _BATCH):
        batch = records[start : start + _BATCH]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.hgetall(key)
            pipe.exists(keys.image(key.rpartition(":")[2]))
        replies = pipe.execute()
        moving = [
            ImageRecord.from_redis(data)
            for data, moved in zip(replies[::2], replies[1::2], strict=True)
            if data and not moved
        ]
        out.records += dedup.bulk_load(moving)
    raws = [k for k in old_keys if k.startswith(_LEGACY + "raw:")]
    for start in range(0, len(raws), _BATCH):
        batch = raws[start : start + _BATCH]
        values = client.mget(batch) if len(batch) else []
        pipe = client.pipeline(transaction=False)
        for key, kept in zip(batch, values, strict=True):
            if kept:
                pipe.set(keys.raw_digest(key.rpartition(":")[2]), kept)
                out.raw_digests += 1
        pipe.execute()
    garbage = list(client.smembers(_LEGACY_GARBAGE)) if client.exists(_LEGACY_GARBAGE) else []
    if garbage:
        client.sadd(keys.garbage(0), *garbage)
        out.garbage = len(garbage)
    for start in range(0, len(old_keys), _BATCH):
        pipe = client.pipeline(transaction=False)
        for key in old_keys[start : start + _BATCH]:
            pipe.unlink(key)
        pipe.execute()
    client.unlink(_LEGACY_GARBAGE)
    out.dropped_keys = len(old_keys)
    return out
