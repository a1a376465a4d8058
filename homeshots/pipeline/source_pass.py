"""One source of one property: its listing -> what changed since last time -> fetch only that -> keep.

Every photo ends in one of four deltas against the listing memory: ``new`` (an identity not seen
before), ``changed`` (a known identity that now shows another image), ``unchanged`` and ``removed``
(remembered, no longer listed). In an incremental run (nightly) a photo is fetched only when it may
have changed: a listing whose photo stamp did not move, and a photo whose own stamp did not move,
cost no request; a known photo with validators is asked for conditionally and a ``304`` reuses the
stored image without decoding; a ``200`` whose bytes were seen before is recognised by their digest
before decoding. A full run (backfill) fetches and keeps every photo, as it always did.

Each image fails alone: whatever goes wrong with one URL becomes that image's failure with a named
kind. Images still pending at the property's deadline fail as ``deadline``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis

from homeshots.core.errors import FetchFailedError, FetchUnavailableError, HomeshotsError, SourceError
from homeshots.core.models import ImageRef, Property, SourceListing
from homeshots.core.redact import redact_text, redact_url
from homeshots.network.fetcher import Fetched, FetchPolicy
from homeshots.pipeline.byte_budget import Reservation
from homeshots.pipeline.image_keeper import ImageKeeper
from homeshots.pipeline.worker_context import WorkerContext
from homeshots.sources import ImageExtractor
from managers.extraction_stats import StatsTracker
from managers.listing_memory import ListingMemory, PhotoMemory
from managers.manifest_manager import ManifestEntry

log = logging.getLogger(__name__)
T = TypeVar("T")
TRUNCATIONS = frozenset({"too_many_photos", "too_many_pages", "paging_loop", "missing_pages"})


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
class SourceResult:
    """What one source pass collected: rows, failures, deltas, and the memory to remember."""

    source: str
    entries: list[ManifestEntry] = field(default_factory=list)
    failures: list[ImageFailure] = field(default_factory=list)
    photos: dict[str, PhotoMemory] = field(default_factory=dict)
    """Identity -> memory of every photo this pass resolved (or kept from before, when it failed)."""
    deltas: Counter[str] = field(default_factory=Counter)
    reason: dict[str, Any] | None = None
    """Set when the source itself failed (or a retryable image failure makes the property worth a retry)."""
    memory: ListingMemory | None = None


class SourcePass:
    """Runs one source for one property of one run."""

    def __init__(
        self,
        ctx: WorkerContext,
        keeper: ImageKeeper,
        policy: FetchPolicy,
        sem: asyncio.Semaphore,
        *,
        incremental: bool,
        day: str,
    ) -> None:
        self.ctx = ctx
        self.keeper = keeper
        self.policy = policy
        self.sem = sem
        self.incremental = incremental
        self.day = day

    async def run(
        self,
        prop: Property,
        extractor: ImageExtractor,
        remembered: ListingMemory | None,
        tracker: StatsTracker,
        deadline: float,
        listing: SourceListing | None = None,
    ) -> SourceResult:
        """``listing`` is given when it is already known (an MLS replication, or memory itself)."""
        out = SourceResult(extractor.name)
        loop = asyncio.get_running_loop()
        if listing is None:
            try:
                listing = await asyncio.wait_for(extractor.extract_listing(prop), max(0.0, deadline - loop.time()))
            except (SourceError, TimeoutError) as exc:
                self._source_failed(extractor.name, exc, tracker, out)
                return out
        for problem in listing.problems:  # named outcomes, recorded: a retry would not change them
            tracker.record_items_skipped(extractor.name, problem.kind, problem.count)
            out.failures.append(
                ImageFailure(extractor.name, problem.path, problem.kind, redact_text(problem.message), False)
            )
        tracker.record_images_found(extractor.name, len(listing.items))
        listing_unchanged = bool(
            self.incremental
            and remembered
            and listing.photos_modified
            and listing.photos_modified == remembered.photos_modified
        )
        known = remembered.by_identity if remembered else {}
        tasks = {
            asyncio.create_task(
                self._photo(prop, extractor, ref, known.get(_identity(ref)), listing_unchanged, tracker, out)
            ): ref
            for ref in listing.items
        }
        done, pending = await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time())) if tasks else ((), ())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        retryable = [task.result() for task in done]
        for task in pending:
            if not task.cancelled() and task.exception() is None:  # it was being kept: it finished, it has its row
                retryable.append(task.result())
                continue
            ref = tasks[task]
            late = FetchUnavailableError(ref.source_url, "the property ran out of time", kind="deadline")
            retryable.append(self._failed(ref, known.get(_identity(ref)), tracker, out, late, str(late)))
        listed = {_identity(ref) for ref in listing.items}
        if remembered and not listing.problems:  # a listing cut short says nothing of what is gone
            for gone in (p for p in remembered.photos if p.identity not in listed):
                out.deltas["removed"] += 1
                tracker.record_delta(extractor.name, "removed")
                out.entries.append(_removed_row(prop, extractor.name, gone))
        elif remembered:
            out.photos.update({p.identity: p for p in remembered.photos if p.identity not in listed})
        tracker.record_source_result(extractor.name, ok=not any(retryable))
        if any(retryable):
            failed = next(f for f in out.failures if f.retryable)
            out.reason = {
                "source": extractor.name,
                "kind": failed.kind,
                "retryable": True,
                "message": f"image download failed, will retry on resume: {failed.message}",
            }
        order = [_identity(ref) for ref in listing.items if _identity(ref) in out.photos]
        order += [i for i in out.photos if i not in listed]
        changed = any(out.deltas[k] for k in ("new", "changed", "removed"))
        base = remembered or ListingMemory(visited=self.day)
        out.memory = base.revisited(
            self.day,
            changed=changed,
            photos=tuple(out.photos[i] for i in order),
            listing_key=listing.listing_key or base.listing_key,
            modified=listing.modified or base.modified,
            photos_modified=listing.photos_modified if not any(retryable) else base.photos_modified,
        )
        return out

    def _source_failed(self, source: str, exc: BaseException, tracker: StatsTracker, out: SourceResult) -> None:
        kind = exc.kind if isinstance(exc, SourceError) else "deadline"
        retryable = exc.retryable if isinstance(exc, SourceError) else True
        message = str(exc) if isinstance(exc, SourceError) else f"{source}: the property ran out of time"
        tracker.record_source_result(source, ok=False, failure_kind=kind)
        out.reason = {"source": source, "kind": kind, "message": message, "retryable": retryable}

    async def _photo(
        self,
        prop: Property,
        extractor: ImageExtractor,
        ref: ImageRef,
        before: PhotoMemory | None,
        listing_unchanged: bool,
        tracker: StatsTracker,
        out: SourceResult,
    ) -> bool:
        """One photo, start to end; returns True when it failed in a way a later attempt may fix."""
        identity = _identity(ref)
        if self.incremental and before and (listing_unchanged or (ref.modified and ref.modified == before.modified)):
            self._resolved(ref, before, "unchanged", tracker, out)  # nothing asked of anyone
            return False
        reservation: Reservation | None = None
        try:
            try:
                got: Fetched | None = None
                if ref.data is not None:
                    raw = ref.data
                else:
                    async with self.sem:
                        # Opened once downloading, so the oldest reservation is always one that can finish.
                        reservation = self.ctx.byte_budget.reservation()
                        got = await self._download(extractor, ref, before, reservation)
                    if got.status_code == 304 and before:
                        self._resolved(ref, _validated(before, got, ref), "unchanged", tracker, out)
                        return False
                    raw = got.content
                raw_sha = hashlib.sha256(raw).hexdigest()
                if self.incremental and (seen := await asyncio.to_thread(self._seen, prop, ref, raw_sha, tracker)):
                    entry, cluster = seen  # these exact bytes were kept before: no decoding
                else:
                    # The process's image lane: downloads go on while earlier photos are standardized.
                    std = await self.ctx.standardize(raw)
                    entry = await _unless_started(
                        asyncio.to_thread(self.keeper.keep, prop, ref, raw, std, tracker, raw_sha)
                    )
                    cluster = entry.duplicate_of or entry.sha256
            except HomeshotsError as exc:
                message = (
                    str(exc)
                    if isinstance(exc, FetchFailedError | FetchUnavailableError)
                    else (f"{redact_url(ref.source_url)}: {exc}")
                )
                return self._failed(ref, before, tracker, out, exc, message)
            except redis.RedisError:
                raise  # the state store, not the photo: the lane is retried later (``tasks.lane``)
            except Exception as exc:  # an input nobody foresaw: this image's failure, never the property's
                unexpected = HomeshotsError(f"{type(exc).__name__}: {redact_text(str(exc))}", kind="error")
                log.error(
                    "image %s of property %s failed: %s", redact_url(ref.source_url), prop.property_id, unexpected
                )
                return self._failed(
                    ref, before, tracker, out, unexpected, f"{redact_url(ref.source_url)}: {unexpected}"
                )
        finally:
            if reservation is not None:
                reservation.release()
        change = "new" if before is None else ("unchanged" if before.sha256 == cluster else "changed")
        memory = PhotoMemory(
            identity,
            cluster,
            *(_validators(got) if got else (None, None)),
            ref.modified,
            redact_url(ref.source_url) if ref.key else None,
        )
        self._resolved(ref, memory, change, tracker, out, entry)
        return False

    def _resolved(
        self,
        ref: ImageRef,
        memory: PhotoMemory,
        change: str,
        tracker: StatsTracker,
        out: SourceResult,
        entry: ManifestEntry | None = None,
    ) -> None:
        out.photos[memory.identity] = memory
        out.deltas[change] += 1
        tracker.record_delta(ref.source, change)
        if entry is not None and (not self.incremental or change != "unchanged"):
            out.entries.append(entry.with_change(change))

    def _seen(
        self, prop: Property, ref: ImageRef, raw_sha: str, tracker: StatsTracker
    ) -> tuple[ManifestEntry, str] | None:
        """A row for bytes that were kept before (by their digest), or None when they are new."""
        record = self.keeper.seen(raw_sha)
        if record is None:
            return None
        return self.keeper.row_for(prop, ref, record, tracker), record.sha256

    async def _download(
        self, extractor: ImageExtractor, ref: ImageRef, before: PhotoMemory | None, reservation: Reservation
    ) -> Fetched:
        """The image through the source's own fetcher (its proxy, guard on every hop), conditionally when
        it is known; the body takes room from the process's byte budget as it arrives."""
        headers = {}
        if self.incremental and before is not None:
            if before.etag:
                headers["If-None-Match"] = before.etag
            if before.last_modified:
                headers["If-Modified-Since"] = before.last_modified
        got = await extractor.fetcher.fetch(
            ref.url or "",
            self.policy,
            rate_limited=False,
            follow=_any_hop,
            on_bytes=reservation.take,
            source_supplied=True,
            headers=headers,
        )
        if got.status_code not in (200, 304) or (got.status_code == 304 and not headers):
            raise FetchFailedError(got.url, f"HTTP {got.status_code}", kind=_status_kind(got.status_code))
        return got

    def _failed(
        self,
        ref: ImageRef,
        before: PhotoMemory | None,
        tracker: StatsTracker,
        out: SourceResult,
        error: HomeshotsError,
        message: str,
    ) -> bool:
        tracker.record_image_failed(ref.source, error.kind)
        out.failures.append(ImageFailure(ref.source, redact_url(ref.source_url), error.kind, message, error.retryable))
        if before is not None:  # still listed, not seen this time: remember it as it was
            out.photos[before.identity] = before
        return error.retryable


async def _unless_started(step: Coroutine[Any, Any, T]) -> T:
    """Run ``step`` to its end even if the lane's deadline cancels us meanwhile: keeping an image claims it in
    the index and stores its files, so once begun its manifest row must be recorded too (a file without a
    row would be an orphan). The lane waits for it; cancelled before it began, nothing was done."""
    future = asyncio.ensure_future(step)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        return await future


def _identity(ref: ImageRef) -> str:
    return redact_url(ref.identity) if not ref.key else ref.identity


def _validators(got: Fetched) -> tuple[str | None, str | None]:
    etag = got.headers.get("etag")
    last_modified = got.headers.get("last-modified")
    return (etag[:200] if etag else None, last_modified[:64] if last_modified else None)


def _validated(before: PhotoMemory, got: Fetched, ref: ImageRef) -> PhotoMemory:
    """The remembered photo, with the validators a 304 may have refreshed."""
    etag, last_modified = _validators(got)
    return PhotoMemory(
        before.identity,
        before.sha256,
        etag or before.etag,
        last_modified or before.last_modified,
        ref.modified or before.modified,
        before.url,
    )


def _removed_row(prop: Property, source: str, gone: PhotoMemory) -> ManifestEntry:
    return ManifestEntry(
        property_id=prop.property_id,
        address=prop.full_address,
        source=source,
        source_url=gone.url or gone.identity,
        sha256=gone.sha256,
        phash="",
        raw_key="",
        processed_key="",
        width=0,
        height=0,
        duplicate_of=None,
        change="removed",
    )


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
