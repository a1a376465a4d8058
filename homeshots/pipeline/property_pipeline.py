"""One property, start to end: extract -> download -> standardize -> dedup -> store -> record.

Failures of a source or an image are recorded, never raised: the task always returns its small
stats dict so the chord callback runs. Only infrastructure errors (Redis, store) escape, and the
task retries those.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass, field
from typing import Any

from homeshots.core.errors import FetchError, HomeshotsError, SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.imaging.hashing import int_to_hex
from homeshots.imaging.standardizer import StandardizedImage, thumbnail
from homeshots.pipeline.worker_context import WorkerContext
from homeshots.storage import image_key, sniff_format
from managers.deduplicator import ImageRecord
from managers.extraction_stats import StatsTracker
from managers.manifest_manager import ManifestEntry, ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager


@dataclass
class PropertyOutcome:
    """What a task returns to the chord: small, JSON, no image data."""

    property_id: str
    status: str
    counters: dict[str, int]
    reason: dict[str, Any] | None = None

    def to_result(self) -> dict[str, Any]:
        return {
            "property_id": self.property_id,
            "status": self.status,
            "counters": self.counters,
            "reason": self.reason,
        }


@dataclass
class _Collected:
    entries: list[ManifestEntry] = field(default_factory=list)
    image_failures: list[tuple[ImageRef, str, str, bool]] = field(default_factory=list)
    reason: dict[str, Any] | None = None


class PropertyPipeline:
    """Runs every enabled source for one property of one run."""

    def __init__(self, ctx: WorkerContext, run_id: str) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self._sem = asyncio.Semaphore(ctx.settings.download_concurrency)

    async def run(self, prop: Property, sources: list[str]) -> PropertyOutcome:
        tracker = StatsTracker()
        out = _Collected()
        for extractor in self.ctx.extractors(sources):
            try:
                refs = await extractor.extract(prop)
            except SourceError as exc:
                tracker.record_source_result(extractor.name, ok=False, failure_kind=exc.kind)
                out.reason = out.reason or {
                    "source": extractor.name,
                    "kind": exc.kind,
                    "message": str(exc),
                    "retryable": exc.retryable,
                }
                continue
            tracker.record_images_found(extractor.name, len(refs))
            retryable = await asyncio.gather(*(self._image(prop, ref, tracker, out) for ref in refs))
            tracker.record_source_result(extractor.name, ok=not any(retryable))
            if any(retryable) and out.reason is None:
                failed = next(f for f in out.image_failures if f[3])
                out.reason = {
                    "source": extractor.name,
                    "kind": failed[1],
                    "retryable": True,
                    "message": f"image download failed, will retry on resume: {failed[2]}",
                }
        outcome = PropertyOutcome(
            prop.property_id, "failed" if out.reason else "completed", tracker.to_counters(), out.reason
        )
        # Not in a thread: a cancelled (timed-out) property must not record "completed" afterwards.
        self._record(prop, out, outcome)
        return outcome

    async def _image(self, prop: Property, ref: ImageRef, tracker: StatsTracker, out: _Collected) -> bool:
        """Handle one image; returns True when it failed in a way a later attempt may fix."""
        try:
            if ref.data is not None:
                raw = ref.data
            else:
                async with self._sem:
                    raw = await self.ctx.downloader_for(ref.source).fetch(ref.url or "")
            # The process's image lane: downloads go on while earlier photos are standardized,
            # and memory stays bounded (a 100 MP photo is ~300 MB decoded).
            std = await self.ctx.standardize(raw)
        except FetchError as exc:  # its message already names the URL (without the query)
            return self._failed(ref, tracker, out, exc, str(exc))
        except HomeshotsError as exc:
            return self._failed(ref, tracker, out, exc, f"{ref.source_url}: {exc}")
        entry = await asyncio.to_thread(self._dedup_and_store, prop, ref, raw, std, tracker)
        out.entries.append(entry)
        return False

    def _failed(
        self, ref: ImageRef, tracker: StatsTracker, out: _Collected, error: HomeshotsError, message: str
    ) -> bool:
        tracker.record_image_failed(ref.source, error.kind)
        out.image_failures.append((ref, error.kind, message, error.retryable))
        return error.retryable

    def _dedup_and_store(
        self, prop: Property, ref: ImageRef, raw: bytes, std: StandardizedImage, tracker: StatsTracker
    ) -> ManifestEntry:
        """Exact or near copy -> a manifest row pointing at the kept copy; else store and index."""
        raw_key = image_key("raw", hashlib.sha256(raw).hexdigest(), sniff_format(raw))
        mine = ImageRecord(
            sha256=std.pixel_sha256,
            phash=int_to_hex(std.phash),
            raw_key=raw_key,
            processed_key=image_key("processed", std.pixel_sha256, std.format),
            width=std.width,
            height=std.height,
            property_id=prop.property_id,
            source=ref.source,
            source_url=ref.source_url,
            run_id=self.run_id,
            source_pixels=std.source_width * std.source_height,
            dhash=int_to_hex(std.dhash),
        )
        record = self.ctx.deduplicator.claim(mine).record
        is_mine = record.sha256 == mine.sha256 and (record.property_id, record.source, record.source_url) == (
            prop.property_id,
            ref.source,
            ref.source_url,
        )
        if is_mine:
            # Create-only puts: a redelivered task re-puts harmlessly and repairs a crash that
            # happened between the claim and the writes.
            if record.raw_key == mine.raw_key:
                self.ctx.store.put(record.raw_key, raw)
            if record.processed_key == mine.processed_key:
                self.ctx.store.put(record.processed_key, std.data)
            tracker.record_unique(ref.source, newly_stored=record.run_id == self.run_id)
        else:
            tracker.record_duplicate(ref.source)
            # A small thumbnail of the copy (not stored otherwise) lets the run report show it beside
            # the kept image, so a person can judge the merge.
            self.ctx.store.put(image_key("thumbs", mine.sha256, "JPEG"), thumbnail(std.data))
            if mine.source_pixels > record.source_pixels:
                self._upgrade(record, mine, raw, std.data, tracker)
        return ManifestEntry(
            property_id=prop.property_id,
            address=prop.full_address,
            source=ref.source,
            source_url=ref.source_url,
            sha256=std.pixel_sha256,
            phash=int_to_hex(std.phash),
            raw_key=record.raw_key,
            processed_key=record.processed_key,
            width=std.width,
            height=std.height,
            duplicate_of=None if is_mine else record.sha256,
        )

    def _upgrade(
        self, kept: ImageRecord, larger: ImageRecord, raw: bytes, processed: bytes, tracker: StatsTracker
    ) -> None:
        """A larger copy of a kept photo: its files replace the kept ones (write, switch, delete)."""
        store, dedup = self.ctx.store, self.ctx.deduplicator
        store.put(larger.raw_key, raw)
        store.put(larger.processed_key, processed)
        switched, garbage = dedup.upgrade(kept, larger)
        if switched:
            tracker.record_upgrade(larger.source)
        for key in garbage:
            store.delete(key)
        dedup.forget_garbage(garbage)

    def _record(self, prop: Property, out: _Collected, outcome: PropertyOutcome) -> None:
        """State, manifest and stats of the property in one transaction (one round trip)."""
        redis = self.ctx.redis
        failures = [
            {
                "property_id": prop.property_id,
                "source": ref.source,
                "source_url": ref.source_url,
                "kind": kind,
                "message": message,
                "retryable": retryable,
            }
            for ref, kind, message, retryable in out.image_failures
        ]
        pipe = redis.pipeline(transaction=True)
        ManifestManager(redis, self.run_id).set_property(pipe, prop.property_id, out.entries, failures)
        state = StateManager(redis, self.run_id)
        if out.reason:
            state.mark_failed(pipe, prop.property_id, out.reason)
        else:
            state.mark_completed(pipe, prop.property_id)
        RunManager(redis, self.run_id).record_property_stats(pipe, prop.property_id, outcome.counters)
        pipe.execute()
