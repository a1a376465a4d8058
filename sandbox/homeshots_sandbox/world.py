"""An evolving sandbox world: the same properties night after night, a seeded fraction of them changed.

Nightly runs must cost only what changed, so their tests and benchmark need sources that change
deterministically and a record of exactly what changed. A ``World`` is built from a seed; night 0
lists every property; ``advance()`` moves to the next night, changing ``change_fraction`` of the
listings: photos added, replaced (new URL, new picture), changed in place (same URL, new bytes),
removed or re-encoded (new URL, the same picture re-compressed and resized: a near duplicate), or
only the price. ``truth(night)`` says exactly what changed, per listing and per source.

Every photo has an identity (``<ListingKey>-P0001``): the RESO ``MediaKey`` and the file stem of its
URL on every source (MLS ``/photos/<id>.jpg`` or ``/cdn/mls/<w>/<id>.jpg``, Zillow and Redfin
``/cdn/<source>/<w>/<id>.<fmt>``), so ``photo_key(url)`` names the photo behind any served URL.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import threading
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import imagehash
from PIL import Image

from homeshots_sandbox.listing import ALL_SOURCES, Listing
from homeshots_sandbox.photos import generate_photo
from homeshots_sandbox.snapshot import Snapshot, odata_time

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

BASE = datetime(2024, 5, 1, tzinfo=UTC)
"""Night 0 starts here; night N starts N days later."""
LISTING_SOURCES = ("mls", "zillow", "redfin")
"""The sources that list a property's photos (the assessor has sketches, which never change here)."""
ADD, REPLACE, CHANGE, REMOVE, REENCODE, PRICE = "add", "replace", "change", "remove", "reencode", "price"
PHOTO_CHANGES = (ADD, REPLACE, CHANGE, REMOVE, REENCODE)
CHANGES = (*PHOTO_CHANGES, PRICE)
ENCODINGS = ((1.0, 90), (0.9, 80), (0.8, 72), (0.85, 86), (0.75, 78))
"""(scale, JPEG quality) of a picture's files: the original, then re-encodes cycling through the rest."""
DISTINCT = 14
"""Every two pictures of a world differ by more than this in both pHash and dHash (homeshots merges at 8/12)."""
MAX_PHOTOS = 30
PRICE_STEPS = (-25_000, -15_000, -10_000, -5_000, 5_000, 10_000)
STREETS = (
    "E Camelback Rd", "W Palm Ln", "N 44th St", "E Osborn Rd", "E Highland Ave", "N 12th Pl", "W Encanto Blvd",
    "E Windsor Ave", "N Central Ave", "N 40th St", "W Roosevelt St", "E Indian School Rd", "N 7th Ave",
)  # fmt: skip
ZIPS = ("85003", "85004", "85006", "85007", "85008", "85012", "85013", "85014", "85016", "85018", "85020")


def _rng(*parts: object) -> random.Random:
    """A RNG seeded stably from its parts (``hash()`` of a str changes per process)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def encoding_size(size: tuple[int, int], encoding: int) -> tuple[int, int]:
    scale, _ = _encoding(encoding)
    return round(size[0] * scale), round(size[1] * scale)


def _encoding(encoding: int) -> tuple[float, int]:
    return ENCODINGS[0] if encoding == 0 else ENCODINGS[1 + (encoding - 1) % (len(ENCODINGS) - 1)]


@lru_cache(maxsize=2048)
def photo_bytes(picture: int, encoding: int, size: tuple[int, int]) -> bytes:
    """The JPEG of ``picture`` (a ``generate_photo`` seed): the original, or its ``encoding``-th re-encode.

    Re-encodes are made from the original, so each is one resize and one compression away from it.
    """
    if encoding == 0:
        return generate_photo.__wrapped__(picture, size=size)
    _, quality = _encoding(encoding)
    with Image.open(io.BytesIO(photo_bytes(picture, 0, size))) as img:
        smaller = img.convert("RGB").resize(encoding_size(size, encoding), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    smaller.save(out, "JPEG", quality=quality)
    return out.getvalue()


def perceptual_hashes(data: bytes) -> tuple[int, int]:
    """(pHash, dHash) of an image as 64-bit ints, as homeshots' dedup computes them."""
    with Image.open(io.BytesIO(data)) as img:
        gray = img.convert("L")
    return int(str(imagehash.phash(gray)), 16), int(str(imagehash.dhash(gray)), 16)


def photo_key(url: str) -> str:
    """The photo identity behind a served photo URL: its file stem (``.../W00003-P0002.webp`` -> ``W00003-P0002``)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1]).rsplit(".", 1)[0]


# --- the state of one night --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorldPhoto:
    """One photo of a listing: its identity, the picture it shows and which file of that picture."""

    key: str
    picture: int
    encoding: int
    modified: datetime
    """When its bytes last changed: Last-Modified and MediaModificationTimestamp."""


@dataclass(frozen=True)
class WorldProperty:
    """One property on one night, as every source that lists it knows it."""

    listing_key: str
    address: str
    postal_code: str
    apn: str
    zpid: str
    redfin_id: str
    sources: frozenset[str]
    sketches: int
    mls_scale: float
    price: int
    photos: tuple[WorldPhoto, ...]
    modified: datetime
    photos_modified: datetime
    next_photo: int
    """The number of the next photo identity: identities are never reused."""

    def sketch_keys(self) -> tuple[str, ...]:
        return tuple(f"{self.apn}/sketch/{n}" for n in range(1, self.sketches + 1))


# --- ground truth ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PhotoDelta:
    """What one night did to one listing's photos on one source, by photo identity.

    The lists are disjoint: ``new`` are pure additions, ``removed`` pure removals; ``replaced`` and
    ``reencoded`` pair the identity that left with the one that took its place (a different picture,
    or the same picture re-encoded); ``changed`` kept identity and URL but got new bytes.
    """

    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[tuple[str, str], ...] = ()
    reencoded: tuple[tuple[str, str], ...] = ()

    @property
    def appeared(self) -> frozenset[str]:
        """Identities (URLs) not served the night before."""
        return frozenset(self.new) | {b for _, b in self.replaced} | {b for _, b in self.reencoded}

    @property
    def disappeared(self) -> frozenset[str]:
        """Identities (URLs) no longer served."""
        return frozenset(self.removed) | {a for a, _ in self.replaced} | {a for a, _ in self.reencoded}

    @property
    def is_empty(self) -> bool:
        return not (self.new or self.changed or self.removed or self.replaced or self.reencoded)

    def as_dict(self) -> dict[str, list[Any]]:
        return {
            "new": list(self.new),
            "changed": list(self.changed),
            "unchanged": list(self.unchanged),
            "removed": list(self.removed),
            "replaced": [list(p) for p in self.replaced],
            "reencoded": [list(p) for p in self.reencoded],
        }


@dataclass(frozen=True)
class ListingTruth:
    """One listing after one night: whether and when it changed, its photos, and the delta per source."""

    listing_key: str
    sources: tuple[str, ...]
    modified: bool
    """ModificationTimestamp moved tonight (anything changed, price or photos)."""
    photos_modified: bool
    """PhotosChangeTimestamp moved tonight (the photo set or a photo's bytes changed)."""
    modification_timestamp: str
    photos_change_timestamp: str
    price: int
    photos: tuple[str, ...]
    """Photo identities in Order tonight."""
    photo_timestamps: dict[str, str]
    """MediaModificationTimestamp per photo identity tonight."""
    delta: PhotoDelta
    by_source: dict[str, PhotoDelta]
    """The delta per source listing the property (the same photos on each); ``maricopa``: sketch pages."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "listing_key": self.listing_key,
            "sources": list(self.sources),
            "modified": self.modified,
            "photos_modified": self.photos_modified,
            "modification_timestamp": self.modification_timestamp,
            "photos_change_timestamp": self.photos_change_timestamp,
            "price": self.price,
            "photos": list(self.photos),
            "photo_timestamps": dict(self.photo_timestamps),
            "by_source": {s: d.as_dict() for s, d in self.by_source.items()},
        }


@dataclass(frozen=True)
class NightTruth:
    """Exactly what night ``night`` changed (night 0: everything is new), per listing and source."""

    night: int
    clock: str
    """When the night started (OData form): every change tonight is stamped after it."""
    change_fraction: float
    listings: dict[str, ListingTruth]

    def changed_keys(self) -> list[str]:
        """Listings modified tonight, in replication order (ModificationTimestamp, then ListingKey)."""
        hits = [t for t in self.listings.values() if t.modified]
        return [t.listing_key for t in sorted(hits, key=lambda t: (t.modification_timestamp, t.listing_key))]

    def delta(self, listing_key: str, source: str) -> PhotoDelta:
        return self.listings[listing_key].by_source[source]

    def totals(self) -> dict[str, int]:
        """Counts over all listings (each photo once, not once per source)."""
        deltas = [t.delta for t in self.listings.values()]
        return {
            "listings": len(self.listings),
            "modified": sum(t.modified for t in self.listings.values()),
            "photos_modified": sum(t.photos_modified for t in self.listings.values()),
            **{k: sum(len(getattr(d, k)) for d in deltas) for k in PhotoDelta.__dataclass_fields__},
        }

    def summary(self) -> dict[str, Any]:
        return {
            "night": self.night,
            "clock": self.clock,
            "change_fraction": self.change_fraction,
            "changed": self.changed_keys(),
            "totals": self.totals(),
        }

    def as_dict(self) -> dict[str, Any]:
        return self.summary() | {"listings": {k: t.as_dict() for k, t in self.listings.items()}}


# --- the world ---------------------------------------------------------------------------------------------------
class _Photos(Mapping[str, bytes]):
    """A night's photo files by name, made on first read (a world's pictures are cached, not held)."""

    def __init__(self, files: dict[str, tuple[int, int]], size: tuple[int, int]) -> None:
        self._files, self._size = files, size

    def __getitem__(self, name: str) -> bytes:
        picture, encoding = self._files[name]
        return photo_bytes(picture, encoding, self._size)

    def __iter__(self) -> Iterator[str]:
        return iter(self._files)

    def __len__(self) -> int:
        return len(self._files)


@dataclass
class _Plan:
    """A night's changes to one listing, resolved against its photos before any picture is drawn."""

    at: datetime
    steps: list[tuple[str, Any]] = field(default_factory=list)

    @property
    def pictures_needed(self) -> int:
        return sum(op in (ADD, REPLACE, CHANGE) for op, _ in self.steps)


class World:
    """Properties known to the MLS, Zillow, Redfin and the assessor, changing night after night.

    Everything follows from ``seed``, ``properties`` and the change fractions of the nights so far:
    the same calls give the same URLs, bytes, timestamps and truth, in any process.
    """

    def __init__(
        self,
        properties: int = 20,
        seed: int = 0,
        *,
        change_fraction: float = 0.1,
        photos_per_listing: tuple[int, int] = (4, 10),
        size: tuple[int, int] = (800, 600),
        base: datetime = BASE,
        absent_fraction: float = 0.05,
        old_feed_fraction: float = 0.1,
        workers: int | None = None,
    ) -> None:
        if properties < 1 or not 1 <= photos_per_listing[0] <= photos_per_listing[1] <= MAX_PHOTOS:
            raise ValueError("need at least one property and 1 <= min photos <= max photos <= 30")
        self.seed, self.size, self.base = seed, size, base.astimezone(UTC)
        self.change_fraction = _fraction(change_fraction)
        self.photos_per_listing = photos_per_listing
        self.absent_fraction, self.old_feed_fraction = absent_fraction, old_feed_fraction
        self._workers = workers or min(4, os.cpu_count() or 1)
        self._lock = threading.RLock()
        self._hashes: list[tuple[int, int]] = []
        self._candidates = 0
        self._states: list[tuple[WorldProperty, ...]] = []
        self._truths: list[NightTruth] = []
        self._snapshot: Snapshot | None = None
        self._create(properties)

    # --- reading ----------------------------------------------------------------------------------------------
    @property
    def night(self) -> int:
        """The current night (0 when built)."""
        with self._lock:
            return len(self._states) - 1

    @property
    def clock(self) -> datetime:
        """When the current night started."""
        return self.night_start(self.night)

    def night_start(self, night: int) -> datetime:
        return self.base + timedelta(days=night)

    def properties(self, night: int | None = None) -> tuple[WorldProperty, ...]:
        with self._lock:
            return self._states[self.night if night is None else night]

    def truth(self, night: int | None = None) -> NightTruth:
        """What ``night`` (default: the current one) changed; IndexError for a night not reached yet."""
        with self._lock:
            night = self.night if night is None else night
            if not 0 <= night < len(self._truths):
                raise IndexError(f"night {night} not reached (the world is at night {self.night})")
            return self._truths[night]

    def listings(self, night: int | None = None) -> list[Listing]:
        """The properties as ``Listing``s (e.g. for a properties CSV), tonight's unless ``night`` says."""
        return [replace(x, photos=list(x.photos)) for x in self.snapshot(night).listings]

    def photo(self, key: str, night: int | None = None) -> WorldPhoto | None:
        """The photo with identity ``key`` on ``night``, or None when no listing has it then."""
        for prop in self.properties(night):
            if key.startswith(prop.listing_key + "-"):
                return next((p for p in prop.photos if p.key == key), None)
        return None

    def photo_data(self, key: str, night: int | None = None) -> bytes:
        """The master bytes of photo ``key`` (as ``/photos/<key>.jpg`` serves them)."""
        photo = self.photo(key, night)
        if photo is None:
            raise KeyError(key)
        return photo_bytes(photo.picture, photo.encoding, self.size)

    def snapshot(self, night: int | None = None) -> Snapshot:
        """What a server answers on ``night`` (default: now); the current night's is built once."""
        with self._lock:
            night = self.night if night is None else night
            if self._snapshot is not None and self._snapshot.night == night:
                return self._snapshot
            snapshot = self._build_snapshot(night)
            if night == self.night:
                self._snapshot = snapshot
            return snapshot

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {
                "seed": self.seed,
                "properties": len(self._states[-1]),
                "night": self.night,
                "clock": odata_time(self.clock),
                "change_fraction": self.change_fraction,
                "photo_size": list(self.size),
            }

    def server(self, **kwargs: Any) -> SandboxServer:
        """A ``SandboxServer`` answering from this world (``services=[...]``, ``page_size=`` as usual)."""
        from homeshots_sandbox.server import SandboxServer

        return SandboxServer.from_world(self, **kwargs)

    # --- moving on -----------------------------------------------------------------------------------------------
    def advance(self, change_fraction: float | None = None) -> NightTruth:
        """Move to the next night, changing ``change_fraction`` (default: the world's) of the listings.

        ``change_fraction=0`` changes nothing at all: same URLs, bytes, ETags and timestamps.
        """
        fraction = self.change_fraction if change_fraction is None else _fraction(change_fraction)
        with self._lock:
            night = len(self._states)
            before = self._states[-1]
            rng = _rng(self.seed, "night", night)
            chosen = sorted(rng.sample(range(len(before)), round(fraction * len(before))))
            kinds = list(CHANGES)
            rng.shuffle(kinds)  # every kind of change happens on a night that changes six listings or more
            primary = {i: kinds[n % len(kinds)] for n, i in enumerate(rng.sample(chosen, len(chosen)))}
            spread = max(1, min(1400, (len(chosen) + 1) // 2))  # few slots: some listings share a timestamp
            start = self.night_start(night)
            plans = {
                i: self._plan(night, before[i], primary[i], start + timedelta(minutes=rng.randint(1, spread)))
                for i in chosen
            }
            pictures = iter(self._allocate(sum(p.pictures_needed for p in plans.values())))
            after, truths = [], {}
            for i, prop in enumerate(before):
                if i in plans:
                    prop, delta = _apply(prop, plans[i], pictures)
                else:
                    delta = PhotoDelta(unchanged=tuple(p.key for p in prop.photos))
                after.append(prop)
                truths[prop.listing_key] = _listing_truth(prop, delta, i in plans, start, new_sketches=False)
            self._states.append(tuple(after))
            truth = NightTruth(night, odata_time(start), fraction, truths)
            self._truths.append(truth)
            self._snapshot = None
            return truth

    def goto(self, night: int) -> NightTruth:
        """Advance (at the world's change fraction) until ``night``; its truth."""
        with self._lock:
            if night < self.night:
                raise ValueError(f"the world is at night {self.night} already; it cannot go back to {night}")
            while self.night < night:
                self.advance()
            return self.truth(night)

    # --- building ---------------------------------------------------------------------------------------------------
    def _create(self, count: int) -> None:
        """Night 0: every property with its photos, all new, stamped at spread-out minutes (some shared)."""
        rng = _rng(self.seed, "world")
        drafts = []
        for i in range(count):
            prng = _rng(self.seed, "property", i)
            sources = set(ALL_SOURCES)
            for source in LISTING_SOURCES:
                if prng.random() < self.absent_fraction:
                    sources.discard(source)
            if not sources & set(LISTING_SOURCES):
                sources.add("mls")
            n_photos = prng.randint(*self.photos_per_listing)
            at = self.base + timedelta(minutes=rng.randint(1, max(1, min(1400, count // 2))))
            drafts.append((i, prng, frozenset(sources), n_photos, at))
        pictures = iter(self._allocate(sum(d[3] for d in drafts)))
        state, truths = [], {}
        for i, prng, sources, n_photos, at in drafts:
            key = f"W{i + 1:05d}"
            photos = tuple(WorldPhoto(f"{key}-P{j:04d}", next(pictures), 0, at) for j in range(1, n_photos + 1))
            prop = WorldProperty(
                listing_key=key,
                address=f"{1001 + 7 * i} {STREETS[i % len(STREETS)]}",
                postal_code=ZIPS[prng.randrange(len(ZIPS))],
                apn=f"5{i + 1:07d}",
                zpid=str(8_000_000 + i + 1),
                redfin_id=str(28_000_000 + i + 1),
                sources=sources,
                sketches=prng.randint(1, 3),
                mls_scale=0.5 if prng.random() < self.old_feed_fraction else 1.0,
                price=prng.randrange(350_000, 1_200_000, 5_000),
                photos=photos,
                modified=at,
                photos_modified=at,
                next_photo=n_photos + 1,
            )
            state.append(prop)
            truths[key] = _listing_truth(prop, PhotoDelta(new=tuple(p.key for p in photos)), True, self.base, True)
        self._states.append(tuple(state))
        self._truths.append(NightTruth(0, odata_time(self.base), 1.0, truths))

    def _plan(self, night: int, prop: WorldProperty, primary: str, at: datetime) -> _Plan:
        """The listing's changes tonight: ``primary`` plus maybe more, each photo touched at most once."""
        prng = _rng(self.seed, "night", night, prop.listing_key)
        kinds = [primary]
        if primary != PRICE:
            kinds += prng.choices(PHOTO_CHANGES, k=prng.choice((0, 0, 0, 1, 1, 2)))
            if prng.random() < 0.25:
                kinds.append(PRICE)
        plan = _Plan(at)
        count, free = len(prop.photos), [p.key for p in prop.photos]
        for kind in kinds:
            if kind == PRICE:
                plan.steps.append((PRICE, prng.choice(PRICE_STEPS)))
                continue
            if (kind == REMOVE and count <= 1) or (kind != ADD and not free):
                kind = ADD
            if kind == ADD and count >= MAX_PHOTOS:
                if not free:
                    continue
                kind = CHANGE
            if kind == ADD:
                plan.steps.append((ADD, prng.randint(0, count)))
                count += 1
                continue
            target = free.pop(prng.randrange(len(free)))
            plan.steps.append((kind, target))
            if kind == REMOVE:
                count -= 1
        return plan

    def _allocate(self, count: int) -> list[int]:
        """``count`` new pictures (``generate_photo`` seeds), each far from every picture this world drew.

        Candidates come from one seeded sequence and are drawn (in threads: PIL releases the GIL)
        in batches of a size that depends only on ``count``, so the outcome is deterministic.
        """
        accepted: list[int] = []
        with ThreadPoolExecutor(self._workers) as pool:
            while len(accepted) < count:
                seeds = [self._candidate(self._candidates + j) for j in range(count - len(accepted) + 2)]
                self._candidates += len(seeds)
                for seed, (ph, dh) in zip(seeds, pool.map(self._hash_picture, seeds), strict=True):
                    if len(accepted) == count:
                        break
                    if all(
                        (ph ^ p).bit_count() > DISTINCT and (dh ^ d).bit_count() > DISTINCT for p, d in self._hashes
                    ):
                        accepted.append(seed)
                        self._hashes.append((ph, dh))
        return accepted

    def _far_from_all(self, ph: int, dh: int) -> bool:
        return all((ph ^ p).bit_count() > DISTINCT and (dh ^ d).bit_count() > DISTINCT for p, d in self._hashes)

    def _candidate(self, n: int) -> int:
        return int.from_bytes(hashlib.sha256(f"{self.seed}|picture|{n}".encode()).digest()[:6], "big")

    def _hash_picture(self, picture: int) -> tuple[int, int]:
        return perceptual_hashes(photo_bytes(picture, 0, self.size))

    def _build_snapshot(self, night: int) -> Snapshot:
        props = self._states[night]
        files, sizes, times, keys = {}, {}, {}, {}
        listings = []
        for prop in props:
            names = []
            for photo in prop.photos:
                name = f"{photo.key}.jpg"
                files[name] = (photo.picture, photo.encoding)
                sizes[name] = encoding_size(self.size, photo.encoding)
                times[name], keys[name] = photo.modified, photo.key
                names.append(name)
            listings.append(
                Listing(
                    prop.listing_key,
                    prop.address,
                    "Phoenix",
                    prop.postal_code,
                    names,
                    apn=prop.apn,
                    zpid=prop.zpid,
                    redfin_id=prop.redfin_id,
                    sketches=prop.sketches,
                    sources=prop.sources,
                    mls_scale=prop.mls_scale,
                    price=prop.price,
                    modification_timestamp=odata_time(prop.modified),
                    photos_change_timestamp=odata_time(prop.photos_modified),
                )
            )
        return Snapshot(
            listings=listings,
            photos=_Photos(files, self.size),
            sizes=sizes,
            photo_times=times,
            media_keys=keys,
            upright_widths={name: size[0] for name, size in sizes.items()},
            by_stem={key: name for name, key in keys.items()},
            night=night,
        )

    def __repr__(self) -> str:
        return f"World(properties={len(self._states[-1])}, seed={self.seed}, night={self.night})"


def _fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"change_fraction must be within 0..1, not {value}")
    return float(value)


def _apply(prop: WorldProperty, plan: _Plan, pictures: Iterator[int]) -> tuple[WorldProperty, PhotoDelta]:
    """Carry out a plan: the listing after it and what happened to each photo identity."""
    photos, number, price = list(prop.photos), prop.next_photo, prop.price
    new: list[str] = []
    changed: list[str] = []
    removed: list[str] = []
    replaced: list[tuple[str, str]] = []
    reencoded: list[tuple[str, str]] = []

    def fresh() -> str:
        nonlocal number
        number += 1
        return f"{prop.listing_key}-P{number - 1:04d}"

    for kind, arg in plan.steps:
        if kind == PRICE:
            price += arg
            continue
        if kind == ADD:
            key = fresh()
            photos.insert(arg, WorldPhoto(key, next(pictures), 0, plan.at))
            new.append(key)
            continue
        i = next(n for n, p in enumerate(photos) if p.key == arg)
        if kind == REMOVE:
            del photos[i]
            removed.append(arg)
        elif kind == CHANGE:
            photos[i] = replace(photos[i], picture=next(pictures), encoding=0, modified=plan.at)
            changed.append(arg)
        elif kind == REPLACE:
            photos[i] = WorldPhoto(fresh(), next(pictures), 0, plan.at)
            replaced.append((arg, photos[i].key))
        else:  # REENCODE: the same picture, another file of it
            photos[i] = WorldPhoto(fresh(), photos[i].picture, photos[i].encoding + 1, plan.at)
            reencoded.append((arg, photos[i].key))
    touched = set(changed) | set(removed) | {a for a, _ in replaced} | {a for a, _ in reencoded}
    before = {p.key for p in prop.photos}
    unchanged = tuple(p.key for p in photos if p.key in before and p.key not in touched)
    photo_change = bool(new or changed or removed or replaced or reencoded)
    after = replace(
        prop,
        photos=tuple(photos),
        price=price,
        modified=plan.at,
        photos_modified=plan.at if photo_change else prop.photos_modified,
        next_photo=number,
    )
    delta = PhotoDelta(tuple(new), tuple(changed), unchanged, tuple(removed), tuple(replaced), tuple(reencoded))
    return after, delta


def _listing_truth(
    prop: WorldProperty, delta: PhotoDelta, modified: bool, night_start: datetime, new_sketches: bool
) -> ListingTruth:
    by_source = {s: delta for s in LISTING_SOURCES if s in prop.sources}
    if "maricopa" in prop.sources:
        sketches = prop.sketch_keys()
        by_source["maricopa"] = PhotoDelta(new=sketches) if new_sketches else PhotoDelta(unchanged=sketches)
    return ListingTruth(
        listing_key=prop.listing_key,
        sources=tuple(sorted(prop.sources)),
        modified=modified,
        photos_modified=prop.photos_modified >= night_start,
        modification_timestamp=odata_time(prop.modified),
        photos_change_timestamp=odata_time(prop.photos_modified),
        price=prop.price,
        photos=tuple(p.key for p in prop.photos),
        photo_timestamps={p.key: odata_time(p.modified) for p in prop.photos},
        delta=delta,
        by_source=by_source,
    )
