"""One property, start to end: extract -> download -> standardize -> dedup -> store -> record.

Failures of a source or an image are recorded, never raised: the task always returns its small
stats dict so the chord callback runs. Each image fails alone: whatever goes wrong with one URL
becomes that image's failure with a named kind, and its siblings are kept. The property runs
against its own deadline (below the task's time limit): images still pending then fail as
``deadline`` and everything already collected is recorded. Only infrastructure errors (Redis,
store) escape, and the task retries those.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from homeshots.core.errors import FetchFailedError, FetchUnavailableError, HomeshotsError, SourceError
from homeshots.core.models import ImageRef, Property
from homeshots.core.redact import redact_text, redact_url
from homeshots.network.fetcher import image_policy
from homeshots.pipeline.byte_budget import Reservation
from homeshots.pipeline.image_keeper import ImageKeeper
from homeshots.pipeline.worker_context import WorkerContext
from homeshots.sources import ImageExtractor
from managers.extraction_stats import StatsTracker
from managers.manifest_manager import ManifestEntry, ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class ImageFailure:
    """One image that could not be collected, or items of an answer left out, as the manifest of
    failures records it: ``where`` is the (redacted) image URL or the path of the items in the answer."""

    source: str
    where: str
    kind: str
    message: str
    retryable: bool

    def to_dict(self, property_id: str) -> dict[str, Any]:
        return {
            "property_id": property_id,
            "source": self.source,
            "source_url": self.where,
            "kind": self.kind,
            "message": self.message,
            "retryable": self.retryable,
        }


@dataclass
class _Collected:
    entries: list[ManifestEntry] = field(default_factory=list)
    image_failures: list[ImageFailure] = field(default_factory=list)
    reason: dict[str, Any] | None = None


class PropertyPipeline:
    """Runs every enabled source for one property of one run."""

    def __init__(self, ctx: WorkerContext, run_id: str) -> None:
        self.ctx = ctx
        self.run_id = run_id
        self._sem = asyncio.Semaphore(ctx.settings.download_concurrency)
        self._policy = image_policy(ctx.settings)
        self._keeper = ImageKeeper(ctx.deduplicator, ctx.store, run_id)

    async def run(self, prop: Property, sources: list[str]) -> PropertyOutcome:
        tracker, out = StatsTracker(), _Collected()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.ctx.settings.property_deadline
        for extractor in self.ctx.extractors(sources):
            await self._source(prop, extractor, tracker, out, deadline)
        outcome = PropertyOutcome(
            prop.property_id, "failed" if out.reason else "completed", tracker.to_counters(), out.reason
        )
        # Not in a thread: a cancelled (timed-out) property must not record "completed" afterwards.
        self._record(prop, out, outcome)
        return outcome

    async def _source(
        self, prop: Property, extractor: ImageExtractor, tracker: StatsTracker, out: _Collected, deadline: float
    ) -> None:
        """One source's listing and its images, within what is left of the property's deadline."""
        loop = asyncio.get_running_loop()
        try:
            listing = await asyncio.wait_for(extractor.extract_listing(prop), max(0.0, deadline - loop.time()))
        except (SourceError, TimeoutError) as exc:
            kind = exc.kind if isinstance(exc, SourceError) else "deadline"
            retryable = exc.retryable if isinstance(exc, SourceError) else True
            message = str(exc) if isinstance(exc, SourceError) else f"{extractor.name}: the property ran out of time"
            tracker.record_source_result(extractor.name, ok=False, failure_kind=kind)
            out.reason = out.reason or {
                "source": extractor.name,
                "kind": kind,
                "message": message,
                "retryable": retryable,
            }
            return
        refs = listing.items
        for problem in listing.problems:  # named outcomes, recorded: a retry would not change them
            tracker.record_items_skipped(extractor.name, problem.kind, problem.count)
            out.image_failures.append(
                ImageFailure(extractor.name, problem.path, problem.kind, redact_text(problem.message), False)
            )
        tracker.record_images_found(extractor.name, len(refs))
        tasks = {asyncio.create_task(self._image(prop, extractor, ref, tracker, out)): ref for ref in refs}
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time())) if tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        retryable = [task.result() for task in done]
        for task in pending:
            late = FetchUnavailableError(tasks[task].source_url, "the property ran out of time", kind="deadline")
            retryable.append(self._failed(tasks[task], tracker, out, late, str(late)))
        tracker.record_source_result(extractor.name, ok=not any(retryable))
        if any(retryable) and out.reason is None:
            failed = next(f for f in out.image_failures if f.retryable)
            out.reason = {
                "source": extractor.name,
                "kind": failed.kind,
                "retryable": True,
                "message": f"image download failed, will retry on resume: {failed.message}",
            }

    async def _image(
        self, prop: Property, extractor: ImageExtractor, ref: ImageRef, tracker: StatsTracker, out: _Collected
    ) -> bool:
        """Handle one image; returns True when it failed in a way a later attempt may fix."""
        reservation: Reservation | None = None
        try:
            try:
                if ref.data is not None:
                    raw = ref.data
                else:
                    async with self._sem:
                        # Opened once downloading, so the oldest reservation is always one that can finish.
                        reservation = self.ctx.byte_budget.reservation()
                        raw = await self._download(extractor, ref, reservation)
                # The process's image lane: downloads go on while earlier photos are standardized.
                std = await self.ctx.standardize(raw)
            except HomeshotsError as exc:
                message = (
                    str(exc)
                    if isinstance(exc, FetchFailedError | FetchUnavailableError)
                    else (f"{redact_url(ref.source_url)}: {exc}")
                )
                return self._failed(ref, tracker, out, exc, message)
            except Exception as exc:  # an input nobody foresaw: this image's failure, never the property's
                unexpected = HomeshotsError(f"{type(exc).__name__}: {redact_text(str(exc))}", kind="error")
                log.error(
                    "image %s of property %s failed: %s", redact_url(ref.source_url), prop.property_id, unexpected
                )
                return self._failed(ref, tracker, out, unexpected, f"{redact_url(ref.source_url)}: {unexpected}")
            entry = await asyncio.to_thread(self._keeper.keep, prop, ref, raw, std, tracker)
            out.entries.append(entry)
            return False
        finally:
            if reservation is not None:
                reservation.release()

    async def _download(self, extractor: ImageExtractor, ref: ImageRef, reservation: Reservation) -> bytes:
        """The image's bytes through the source's own fetcher (its proxy, guard on every redirect hop);
        the body takes room from the process's byte budget as it arrives."""
        got = await extractor.fetcher.fetch(
            ref.url or "",
            self._policy,
            rate_limited=False,
            follow=_any_hop,
            on_bytes=reservation.take,
            source_supplied=True,
        )
        if got.status_code != 200:
            raise FetchFailedError(got.url, f"HTTP {got.status_code}", kind=_status_kind(got.status_code))
        return got.content

    def _failed(
        self, ref: ImageRef, tracker: StatsTracker, out: _Collected, error: HomeshotsError, message: str
    ) -> bool:
        tracker.record_image_failed(ref.source, error.kind)
        out.image_failures.append(
            ImageFailure(ref.source, redact_url(ref.source_url), error.kind, message, error.retryable)
        )
        return error.retryable

    def _record(self, prop: Property, out: _Collected, outcome: PropertyOutcome) -> None:
        """State, manifest and stats of the property in one transaction (one round trip)."""
        redis = self.ctx.redis
        failures = [f.to_dict(prop.property_id) for f in out.image_failures]
        pipe = redis.pipeline(transaction=True)
        ManifestManager(redis, self.run_id).set_property(pipe, prop.property_id, out.entries, failures)
        state = StateManager(redis, self.run_id)
        if out.reason:
            state.mark_failed(pipe, prop.property_id, out.reason)
        else:
            state.mark_completed(pipe, prop.property_id)
        RunManager(redis, self.run_id).record_property_stats(pipe, prop.property_id, outcome.counters)
        pipe.execute()


def _any_hop(_from: str, _to: str) -> None:
    """Image redirects may go anywhere the URL guard allows (it checks every hop)."""
    return None


def _status_kind(status: int) -> str:
    """A failure kind a person can act on: missing, refused, or another answer."""
    if status in (404, 410):
        return "not_found"
    if status in (401, 403):
        return "forbidden"
    return "http_error"
