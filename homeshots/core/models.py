"""Domain types that flow down the pipeline: a Property in, ImageRefs out of an extractor."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Generic, Self, TypeVar
from urllib.parse import urlsplit

from homeshots.core.errors import ParseError

T = TypeVar("T")

MAX_PHOTOS = 500
"""Refs a parser takes from one answer by default: a listing with thousands is junk or an attack, not a gallery."""
MAX_PROBLEMS = 20
"""Item problems listed per answer; the rest are counted in one more, so a page of junk stays a short report."""
MAX_URL_LENGTH = 8192
"""Longer image URLs are junk: no CDN hands out such links, and every one is kept in the manifest."""
MALFORMED = "malformed"
TOO_MANY_PHOTOS = "too_many_photos"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Property:
    """One row of the user's properties file, validated."""

    property_id: str
    address: str
    city: str | None = None
    state: str | None = None
    zip: str | None = None
    apn: str | None = None
    mls_listing_key: str | None = None
    zpid: str | None = None
    redfin_url: str | None = None
    sources: tuple[str, ...] | None = None
    """The row's own choice of sources (its ``sources`` column): a run visits it with these of its sources."""

    @property
    def full_address(self) -> str:
        """Address as a person writes it: '123 Main St, Phoenix, AZ 85001'."""
        tail = " ".join(p for p in (self.state, self.zip) if p)
        return ", ".join(p for p in (self.address, self.city, tail) if p)

    def to_dict(self) -> dict[str, Any]:
        """Compact JSON form (None fields dropped) used in task arguments.

        Not ``dataclasses.asdict``: it deep-copies every field, 14x slower on a 100k-row submission.
        """
        out = {name: value for name in _PROPERTY_FIELDS if (value := getattr(self, name)) is not None}
        if self.sources is not None:
            out["sources"] = list(self.sources)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Property:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        if values.get("sources") is not None:
            values["sources"] = tuple(values["sources"])
        return cls(**values)


_PROPERTY_FIELDS = tuple(f.name for f in fields(Property))


@dataclass(frozen=True, slots=True)
class ImageRef:
    """One image a source knows for a property: a URL to fetch, or bytes it sent inline."""

    source: str
    order: int
    url: str | None = None
    data: bytes | None = None
    key: str | None = None
    """The source's own id for the image (RESO MediaKey, sketch page) when it has one."""
    declared_width: int | None = None
    declared_height: int | None = None
    modified: str | None = None
    """When the source says the image last changed (RESO ``MediaModificationTimestamp``)."""

    def __post_init__(self) -> None:
        if (self.url is None) == (self.data is None):
            raise ValueError("an ImageRef has exactly one of url or data")

    @property
    def source_url(self) -> str:
        """Where the image came from, as written in the manifest."""
        if self.url is not None:
            return self.url
        return f"{self.source}:inline:{self.key or self.order}"

    @property
    def identity(self) -> str:
        """What names this photo at its source from night to night: its key when the source gives one,
        else its URL (the caller redacts it, so a rotating signature does not make a new photo)."""
        return f"key:{self.key}" if self.key else self.source_url


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an image URL (too long, control characters, unparsable), or None.

    Checked by the parsers so a bad URL is one skipped item, not an unnamed ValueError in the fetcher.
    """
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    if _CONTROL.search(url):
        return "has a control character"
    try:
        urlsplit(url).port  # noqa: B018 - raises ValueError for a bad port or IPv6 literal
    except ValueError:
        return "is not a URL"
    return None


@dataclass(frozen=True, slots=True)
class ItemProblem:
    """One item of a source's answer that a parser left out, and why: one bad photo must not cost the listing.

    ``path`` names the item (``value[0].Media[2]``); ``message`` is the ParseError text naming the field;
    ``count`` is how many items the problem stands for (a summary or ``too_many_photos``).
    """

    path: str
    message: str
    kind: str = MALFORMED
    count: int = 1

    def to_dict(self) -> dict[str, object]:
        """JSON form for logs and the run report."""
        return {"path": self.path, "message": self.message, "kind": self.kind, "count": self.count}


@dataclass(frozen=True, slots=True)
class Parsed(Generic[T]):
    """What a parser made of one answer: the good items, in order, and every item it left out."""

    items: tuple[T, ...] = ()
    problems: tuple[ItemProblem, ...] = ()

    @classmethod
    def of(
        cls, items: Sequence[T], problems: Sequence[ItemProblem], *, max_items: int, path: str, **extra: Any
    ) -> Self:
        """Cap ``items`` at ``max_items`` (the rest become one ``too_many_photos`` problem) and the listed
        problems at ``MAX_PROBLEMS``, so neither a huge gallery nor a page of junk grows without bound."""
        if max_items < 0:
            raise ValueError(f"max_items must be >= 0, got {max_items}")
        listed = list(problems[: MAX_PROBLEMS - 1]) if len(problems) > MAX_PROBLEMS else list(problems)
        if len(problems) > len(listed):
            rest = sum(p.count for p in problems[len(listed) :])
            listed.append(ItemProblem(path, f"{rest} more malformed items not listed", MALFORMED, rest))
        if len(items) > max_items:
            extra_count = len(items) - max_items
            message = f"{extra_count} photos beyond max_photos={max_items} not taken ({len(items)} in the answer)"
            listed.append(ItemProblem(path, message, TOO_MANY_PHOTOS, extra_count))
        return cls(tuple(items[:max_items]), tuple(listed), **extra)

    @property
    def malformed(self) -> int:
        """How many items were left out because they were malformed (not because of the cap)."""
        return sum(p.count for p in self.problems if p.kind == MALFORMED)

    def or_raise(self) -> Self:
        """This result, unless items were offered and every one was malformed: then the first problem as a
        ParseError, since "no photos" would hide a changed schema."""
        if self.items or not self.malformed:
            return self
        first = self.problems[0].message
        more = self.malformed - 1
        raise ParseError(first + (f" (and {more} more malformed items)" if more else ""))


@dataclass(frozen=True, slots=True)
class SourceListing(Parsed[ImageRef]):
    """What one source says of one property: its photos, what was left out, and the listing's own change
    stamps (RESO ``ListingKey``, ``ModificationTimestamp``, ``PhotosChangeTimestamp``) when it has them."""

    listing_key: str | None = None
    modified: str | None = None
    photos_modified: str | None = None
