"""Keep one standardized image: claim it in the corpus-wide index, store it, or merge it into its copy.

Exact or near copy -> a manifest row pointing at the kept copy (and, when this copy is larger, its
files replace the kept ones); otherwise its raw and processed files are stored under their digests,
create-only, so a task that runs twice writes nothing twice.
"""

from __future__ import annotations

import hashlib

from homeshots.core.models import ImageRef, Property
from homeshots.core.redact import redact_url
from homeshots.imaging.hashing import int_to_hex
from homeshots.imaging.standardizer import StandardizedImage, thumbnail
from homeshots.storage import Store, image_key, sniff_format
from managers.deduplicator import ImageDeduplicator, ImageRecord
from managers.extraction_stats import StatsTracker
from managers.manifest_manager import ManifestEntry


class ImageKeeper:
    """Dedup and store for one run; runs in a thread (Redis and store calls block)."""

    def __init__(self, deduplicator: ImageDeduplicator, store: Store, run_id: str) -> None:
        self.dedup = deduplicator
        self.store = store
        self.run_id = run_id

    def keep(
        self,
        prop: Property,
        ref: ImageRef,
        raw: bytes,
        std: StandardizedImage,
        tracker: StatsTracker,
        raw_sha: str | None = None,
    ) -> ManifestEntry:
        """Exact or near copy -> a manifest row pointing at the kept copy; else store and index."""
        source_url = redact_url(ref.source_url)
        raw_sha = raw_sha or hashlib.sha256(raw).hexdigest()
        raw_key = image_key("raw", raw_sha, sniff_format(raw))
        mine = ImageRecord(
            sha256=std.pixel_sha256,
            phash=int_to_hex(std.phash),
            raw_key=raw_key,
            processed_key=image_key("processed", std.pixel_sha256, std.format),
            width=std.width,
            height=std.height,
            property_id=prop.property_id,
            source=ref.source,
            source_url=source_url,
            run_id=self.run_id,
            source_pixels=std.source_width * std.source_height,
            dhash=int_to_hex(std.dhash),
            colour=std.colour,
            quality=std.quality,
            version=std.version,
        )
        # The property's own photos first, under the looser rule (crops, letterboxes), then the corpus.
        record = self.dedup.claim(mine, property_key=prop.property_id, raw_sha256=raw_sha).record
        is_mine = _is_mine(record, prop, ref.source, source_url) and record.sha256 == mine.sha256
        if is_mine:
            # Create-only puts: a redelivered task re-puts harmlessly and repairs a crash that
            # happened between the claim and the writes.
            if record.raw_key == mine.raw_key:
                self.store.put(record.raw_key, raw)
            if record.processed_key == mine.processed_key:
                self.store.put(record.processed_key, std.data)
            tracker.record_unique(ref.source, newly_stored=record.run_id == self.run_id)
        else:
            tracker.record_duplicate(ref.source)
            # A small thumbnail of the copy (not stored otherwise) lets the run report show it beside
            # the kept image, so a person can judge the merge.
            self.store.put(image_key("thumbs", mine.sha256, "JPEG"), thumbnail(std.data))
            if mine.source_pixels > record.source_pixels:
                self._upgrade(record, mine, raw, std.data, tracker)
        return ManifestEntry(
            property_id=prop.property_id,
            address=prop.full_address,
            source=ref.source,
            source_url=source_url,
            sha256=std.pixel_sha256,
            phash=int_to_hex(std.phash),
            raw_key=record.raw_key,
            processed_key=record.processed_key,
            width=std.width,
            height=std.height,
            duplicate_of=None if is_mine else record.sha256,
        )

    def seen(self, raw_sha: str) -> ImageRecord | None:
        """The kept image that bytes with this digest became before, if any."""
        return self.dedup.by_raw_digest(raw_sha)

    def row_for(self, prop: Property, ref: ImageRef, record: ImageRecord, tracker: StatsTracker) -> ManifestEntry:
        """The manifest row of a photo whose bytes were kept before, without decoding them again."""
        source_url = redact_url(ref.source_url)
        mine = _is_mine(record, prop, ref.source, source_url)
        if mine:
            tracker.record_unique(ref.source, newly_stored=False)
        else:
            tracker.record_duplicate(ref.source)
        return ManifestEntry(
            property_id=prop.property_id,
            address=prop.full_address,
            source=ref.source,
            source_url=source_url,
            sha256=record.sha256,
            phash=record.phash,
            raw_key=record.raw_key,
            processed_key=record.processed_key,
            width=record.width,
            height=record.height,
            duplicate_of=None if mine else record.sha256,
        )

    def _upgrade(
        self, kept: ImageRecord, larger: ImageRecord, raw: bytes, processed: bytes, tracker: StatsTracker
    ) -> None:
        """A larger copy of a kept photo: its files replace the kept ones (write, switch, delete)."""
        self.store.put(larger.raw_key, raw)
        self.store.put(larger.processed_key, processed)
        switched, garbage = self.dedup.upgrade(kept, larger)
        if switched:
            tracker.record_upgrade(larger.source)
        for key in garbage:
            self.store.delete(key)
        self.dedup.forget_garbage(garbage, kept.sha256)


def _is_mine(record: ImageRecord, prop: Property, source: str, source_url: str) -> bool:
    """Whether the kept record was registered from this very photo (then it is not a duplicate of itself)."""
    return (record.property_id, record.source, record.source_url) == (prop.property_id, source, source_url)
