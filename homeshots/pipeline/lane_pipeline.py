"""One lane: one source of one property, start to end (``SourcePass``), then recorded in one step.

Each source of a property is its own lane task, on its source's queue, so a slow or rate-limited
source never holds a worker slot another source could use. Failures of a source or an image are
recorded, never raised: the task always returns its small stats dict so the chord callback runs. The
lane runs against its own deadline (below the task's time limit): images still pending then fail as
``deadline`` and everything already collected is recorded. Only infrastructure errors (Redis, store)
and ``TokenWait`` escape; the task retries those.

Recording is one atomic script on the property's shard (``lane_recording``): the lane's rows and
failures, its stats, and the source's listing memory (what the next night compares against); the last
lane to record makes the property completed or failed.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from homeshots.core.models import ImageRef, Property, SourceListing
from homeshots.network.fetcher import image_policy
from homeshots.pipeline.image_keeper import ImageKeeper
from homeshots.pipeline.lane_recording import LaneResult, record_lane
from homeshots.pipeline.source_pass import ImageFailure, SourcePass
from homeshots.pipeline.worker_context import WorkerContext
from homeshots.sources import ImageExtractor
from homeshots.sources.mls import read_property_page
from managers import keys
from managers.extraction_stats import StatsTracker
from managers.listing_memory import ListingMemory, ListingMemoryManager

__all__ = ["ImageFailure", "LanePipeline", "LaneResult", "Plan", "PropertyPipeline"]


@dataclass(frozen=True, slots=True)
class Plan:
    """How a run treats each property: incrementally (nightly) or in full (backfill)."""

    incremental: bool = False
    mls_replicated: bool = False
    """The run's submission completed an MLS replication: a tracked listing not found changed is unchanged."""
    day: str = field(default_factory=lambda: datetime.now(UTC).date().isoformat())

    def to_dict(self) -> dict[str, Any]:
        return {"incremental": self.incremental, "mls_replicated": self.mls_replicated, "day": self.day}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Plan:
        return cls(**data) if data else cls()


class LanePipeline:
    """Runs one source for the properties of one run (one instance per task)."""

    def __init__(self, ctx: WorkerContext, run_id: str, plan: Plan | None = None) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self.plan = plan or Plan()
        self._pass = SourcePass(
            ctx,
            ImageKeeper(ctx.deduplicator, ctx.store, run_id),
            image_policy(ctx.settings),
            asyncio.Semaphore(ctx.settings.download_concurrency),
            incremental=self.plan.incremental,
            day=self.plan.day,
        )
        self._memory = ListingMemoryManager(ctx.redis)

    async def run(self, prop: Property, source: str, lanes: list[str]) -> LaneResult:
        """Visit ``source`` for ``prop`` and record it; ``lanes`` are every source the property is visited with."""
        tracker = StatsTracker()
        deadline = asyncio.get_running_loop().time() + self.ctx.settings.property_deadline
        before = await asyncio.to_thread(self._memory.get, prop.property_id, source)
        (extractor,) = self.ctx.extractors([source])
        known = await self._known_listing(extractor, before)
        result = await self._pass.run(prop, extractor, before, tracker, deadline, known)
        # Not in a thread: a cancelled (timed-out) lane must not record "completed" afterwards.
        return record_lane(self.ctx.redis, self.run_id, prop, lanes, result, tracker.to_counters())

    async def _known_listing(self, extractor: ImageExtractor, before: ListingMemory | None) -> SourceListing | None:
        """The MLS listing without asking the MLS, when this run's replication already answered for it:
        its changed RESO JSON, or (not among the changed) the listing as remembered."""
        if not (self.plan.incremental and self.plan.mls_replicated and extractor.name == "mls"):
            return None
        if before is None or not before.listing_key:
            return None  # never seen, or found by address: ask the MLS (once; the key is remembered)
        raw = await asyncio.to_thread(self.ctx.redis.get, keys.mls_changed(before.listing_key))
        if raw is not None:
            page = read_property_page(
                json.loads(raw), property_id="", max_photos=self.ctx.settings.max_photos_per_listing
            )
            return SourceListing(
                page.items,
                page.problems,
                listing_key=before.listing_key,
                modified=page.modified,
                photos_modified=page.photos_modified,
            )
        refs = tuple(
            ImageRef(
                source="mls",
                order=i,
                url=p.url or p.identity,
                key=p.identity.removeprefix("key:") if p.identity.startswith("key:") else None,
                modified=p.modified,
            )
            for i, p in enumerate(before.photos)
        )
        return SourceListing(
            refs, (), listing_key=before.listing_key, modified=before.modified, photos_modified=before.photos_modified
        )


class PropertyPipeline:
    """Every lane of one property, one after another, in this process: what a test, a benchmark or the
    hostile-input kit runs to see one property end to end without a Celery cluster."""

    def __init__(self, ctx: WorkerContext, run_id: str, plan: Plan | None = None) -> None:
        self.lane = LanePipeline(ctx, run_id, plan)

    async def run(self, prop: Property, sources: list[str]) -> LaneResult:
        """The lanes' results merged: the property's status and reason, and its summed counters."""
        results = [await self.lane.run(prop, source, sources) for source in sources]
        counters: dict[str, int] = {}
        for result in results:
            for name, value in result.counters.items():
                counters[name] = counters.get(name, 0) + value
        reason = next((r.reason for r in results if r.reason), None)
        status = results[-1].property_status if results else "completed"
        return LaneResult(prop.property_id, "*", status or "completed", counters, reason, status)
