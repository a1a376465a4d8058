"""Phoenix MLS photos through the RESO Web API (OData + OAuth2 client credentials).

The top half is pure: build the OData query, and turn a response page into ``ImageRef``s or a
``ParseError`` that names the offending field. The bottom half is a thin client that gets a token,
pages through ``@odata.nextLink`` and maps HTTP outcomes onto ``SourceError``. Keeping them apart
lets the parser be tested against recorded payloads without any server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urljoin, urlsplit, urlunsplit

import httpx

from homeshots.core.errors import ParseError, SourceFailedError, SourceUnavailableError
from homeshots.core.models import MAX_PHOTOS, ImageRef, ItemProblem, Parsed, Property, SourceListing, url_problem
from homeshots.core.redact import redact_url
from homeshots.core.settings import Settings
from homeshots.network.fetcher import Fetched, Sleep
from homeshots.network.limiter import RateLimiter
from homeshots.sources.base import HttpExtractor

log = logging.getLogger(__name__)

SOURCE = "mls"
PAGE_SIZE = 10
"""Listings asked per page; one address rarely has more than a couple (relistings)."""
PHOTO_CATEGORIES = frozenset({"photo", "photos"})
IMAGE_TYPES = frozenset({"jpeg", "jpg", "png", "gif", "webp", "heic", "heif", "tif", "tiff", "bmp"})
TOKEN_REFRESH_MARGIN = 60.0
"""Seconds before expiry at which a cached token counts as stale, so no request carries a dying one."""


# --- pure: query ---------------------------------------------------------------------------------


def _quote(value: str) -> str:
    """An OData string literal: single quotes are escaped by doubling them."""
    return "'" + value.replace("'", "''") + "'"


def build_property_query(prop: Property) -> dict[str, str]:
    """OData query parameters for the property's listings, Media expanded.

    A listing key is exact, so it wins. Otherwise match the street address, narrowed by zip (or by
    city when there is no zip) so '123 Main St' in two towns stays two properties.
    """
    if prop.mls_listing_key:
        flt = f"ListingKey eq {_quote(prop.mls_listing_key.strip())}"
    else:
        flt = f"UnparsedAddress eq {_quote(prop.address.strip())}"
        if prop.zip:
            flt += f" and PostalCode eq {_quote(prop.zip.strip())}"
        elif prop.city:
            flt += f" and City eq {_quote(prop.city.strip())}"
    return {"$filter": flt, "$expand": "Media", "$top": str(PAGE_SIZE)}


REPLICATION_PAGE = 200
"""Listings asked per replication page: few requests a night, pages of a few hundred kB."""
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?(Z|[+-]\d{2}:\d{2})")


def build_replication_query(since: str, page_size: int = REPLICATION_PAGE) -> dict[str, str]:
    """RESO replication: every listing modified after ``since``, oldest first, Media expanded.

    ``$orderby`` by timestamp then key makes the paging stable, and the last timestamp of a completed
    sync is the next one's ``since``.
    """
    if not _TIMESTAMP.fullmatch(since):
        raise ValueError(f"not an ISO 8601 timestamp with a zone: {since!r}")
    return {
        "$filter": f"ModificationTimestamp gt {since}",
        "$orderby": "ModificationTimestamp,ListingKey",
        "$expand": "Media",
        "$top": str(page_size),
    }


@dataclass(frozen=True, slots=True)
class ChangedListing:
    """One listing a replication page says changed: its key, its stamp, and its RESO JSON as sent."""

    listing_key: str
    modified: str
    document: dict[str, Any]


def read_replication_page(
    payload: object, *, base_url: str | None = None
) -> tuple[list[ChangedListing], str | None, str | None, list[ItemProblem]]:
    """``(listings, next link, next key, problems)`` of one replication page; a listing without a key or a
    timestamp is a problem, not the end of the sync."""
    if not isinstance(payload, dict):
        raise _fail("body", "is not a JSON object")
    listings = payload.get("value")
    if not isinstance(listings, list):
        raise _fail("value", "is missing or not a list")
    next_link, next_key = _next_link(payload, base_url)
    found: list[ChangedListing] = []
    problems: list[ItemProblem] = []
    for n, listing in enumerate(listings):
        key = listing.get("ListingKey") if isinstance(listing, dict) else None
        stamp = listing.get("ModificationTimestamp") if isinstance(listing, dict) else None
        if not isinstance(key, str) or not key.strip() or not isinstance(stamp, str) or not stamp.strip():
            problems.append(
                ItemProblem(f"value[{n}]", f"RESO response: value[{n}] has no ListingKey or ModificationTimestamp")
            )
            continue
        found.append(ChangedListing(key.strip()[:128], stamp.strip()[:40], listing))
    return found, next_link, next_key, problems


# --- pure: response parsing ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PropertyPage(Parsed[ImageRef]):
    """One OData page: its photos (``items``), the items left out (``problems``) and where the next page is.

    ``next_link`` is the link to fetch (resolved against ``base_url`` when given); ``next_key`` is its
    normalized form, so the client can stop when a server hands out a link it already followed.
    """

    next_link: str | None = None
    next_key: str | None = None
    listing_key: str | None = None
    modified: str | None = None
    """The latest ``ModificationTimestamp`` among the page's listings."""
    photos_modified: str | None = None
    """The latest ``PhotosChangeTimestamp`` among the page's listings."""


def _fail(path: str, problem: str) -> ParseError:
    return ParseError(f"RESO response: {path} {problem}")


_INT = re.compile(r"-?[0-9]{1,18}")
_INT_LIMIT = 2**63
"""Numbers outside int64 are junk; downstream stats store them as int64."""


def _number(item: dict[str, Any], field: str, path: str) -> int | None:
    """An integer field that feeds send as a number or, sometimes, a numeric string."""
    value = item.get(field)
    if value is None:
        return None
    if isinstance(value, bool):
        raise _fail(f"{path}.{field}", "is not a number")
    if isinstance(value, float) and value.is_integer() and abs(value) < _INT_LIMIT:
        value = int(value)
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):  # ASCII only: int() takes '١٢' too
        value = int(value.strip())
    if isinstance(value, int) and -_INT_LIMIT < value < _INT_LIMIT:
        return value
    raise _fail(f"{path}.{field}", "is not a number")


def _text(item: dict[str, Any], field: str, path: str) -> str | None:
    value = item.get(field)
    if value is None or isinstance(value, str):
        return value
    raise _fail(f"{path}.{field}", "is not a string")


def _is_photo(category: str | None, media_type: str | None) -> bool:
    """Photos only: floor plans, videos, documents and virtual tours are not pictures of rooms."""
    kind = (media_type or "").strip().lower()
    image_type = kind.startswith("image/") or kind in IMAGE_TYPES
    if category is None or not category.strip():
        return image_type
    return category.strip().lower() in PHOTO_CATEGORIES and (not kind or image_type)


def _media_item(item: object, where: str) -> tuple[int | None, ImageRef] | None:
    """``(Order, ref)`` of one Media entry; None for media that is not a photo or has no URL."""
    if not isinstance(item, dict):
        raise _fail(where, "is not an object")
    order = _number(item, "Order", where)
    url = _text(item, "MediaURL", where)
    category = _text(item, "MediaCategory", where)
    media_type = _text(item, "MediaType", where)
    key = item.get("MediaKey")
    if isinstance(key, bool) or not (key is None or isinstance(key, str | int)):
        raise _fail(f"{where}.MediaKey", "is not a string")
    width = _number(item, "ImageWidth", where)
    height = _number(item, "ImageHeight", where)
    modified = _text(item, "MediaModificationTimestamp", where)
    if not url or not url.strip() or not _is_photo(category, media_type):
        return None
    url = url.strip()
    if (problem := url_problem(url)) is not None:
        raise _fail(f"{where}.MediaURL", problem)
    ref = ImageRef(
        source=SOURCE,
        order=0,
        url=url,
        key=None if key is None else str(key),
        declared_width=width if width and width > 0 else None,
        declared_height=height if height and height > 0 else None,
        modified=modified.strip() if modified and modified.strip() else None,
    )
    return order, ref


def _listing_photos(listing: object, path: str, problems: list[ItemProblem]) -> list[ImageRef]:
    """The listing's photos in Order (no Order last, then as sent); a malformed entry is left out and named."""
    if not isinstance(listing, dict):
        raise _fail(path, "is not an object")
    media = listing.get("Media")
    if media is None:  # a listing without photos; some servers omit an empty expansion
        return []
    if not isinstance(media, list):
        raise _fail(f"{path}.Media", "is not a list")
    found: list[tuple[int | None, int, ImageRef]] = []
    for i, item in enumerate(media):
        where = f"{path}.Media[{i}]"
        try:
            photo = _media_item(item, where)
        except ParseError as exc:
            problems.append(ItemProblem(where, str(exc)))
            continue
        if photo is not None:
            found.append((photo[0], i, photo[1]))
    found.sort(key=lambda t: (t[0] is None, t[0] or 0, t[1]))
    return [ref for _, _, ref in found]


def _stamps(listing: dict[str, Any], into: dict[str, str]) -> None:
    """The listing's key (the first one seen) and change timestamps (the latest seen; ISO 8601 in UTC
    compares as text), which say whether anything about its photos changed since a night before."""
    key = listing.get("ListingKey")
    if isinstance(key, str | int) and not isinstance(key, bool) and str(key).strip() and "ListingKey" not in into:
        into["ListingKey"] = str(key).strip()[:128]
    for field in ("ModificationTimestamp", "PhotosChangeTimestamp"):
        value = listing.get(field)  # a stamp of the wrong type is no stamp: the photos are compared one by one
        if isinstance(value, str) and value.strip() and value.strip()[:40] > into.get(field, ""):
            into[field] = value.strip()[:40]


def link_key(url: str) -> str:
    """A link in one comparable form (scheme and host lowercased, default port, fragment and query order
    dropped), so a server that hands back a page it already sent, spelled differently, is caught."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)))
    return urlunsplit((scheme, host, unquote(parts.path) or "/", query, ""))


def _next_link(payload: dict[str, Any], base_url: str | None) -> tuple[str | None, str | None]:
    """``(link, key)`` of ``@odata.nextLink``; (None, None) on the last page."""
    link = payload.get("@odata.nextLink")
    if link is not None and not isinstance(link, str):
        raise _fail("@odata.nextLink", "is not a string")
    link = (link or "").strip()
    if not link:
        return None, None
    if (problem := url_problem(link)) is not None:
        raise _fail("@odata.nextLink", problem)
    try:
        absolute = urljoin(base_url, link) if base_url else link
        return absolute, link_key(absolute)
    except ValueError:
        raise _fail("@odata.nextLink", "is not a URL") from None


def read_property_page(
    payload: object, *, property_id: str, max_photos: int = MAX_PHOTOS, base_url: str | None = None
) -> PropertyPage:
    """Photos of every listing on one OData page (Order-sorted, deduped by URL, at most ``max_photos``),
    the Media entries and listings left out, and the next link.

    A malformed envelope (body, ``value``, ``@odata.nextLink``) is a ParseError naming the field; a
    malformed listing or Media entry is only a problem, so one bad photo does not cost the listing.
    ``order`` counts from 0 within the page; the client renumbers across pages.
    """
    if not isinstance(payload, dict):
        raise _fail("body", "is not a JSON object")
    if "value" not in payload:
        raise _fail("value", "is missing")
    listings = payload["value"]
    if not isinstance(listings, list):
        raise _fail("value", "is not a list")
    next_link, next_key = _next_link(payload, base_url)
    refs: list[ImageRef] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    stamps: dict[str, str] = {}
    for n, listing in enumerate(listings):
        try:
            photos = _listing_photos(listing, f"value[{n}]", problems)
            _stamps(listing, stamps)
        except ParseError as exc:
            problems.append(ItemProblem(f"value[{n}]", str(exc)))
            continue
        for ref in photos:
            if ref.url in seen:
                log.debug("mls: property %s: duplicate MediaURL skipped", property_id)
                continue
            seen.add(ref.url or "")
            refs.append(replace(ref, order=len(refs)))
    return PropertyPage.of(
        refs,
        problems,
        max_items=max_photos,
        path="value",
        next_link=next_link,
        next_key=next_key,
        listing_key=stamps.get("ListingKey"),
        modified=stamps.get("ModificationTimestamp"),
        photos_modified=stamps.get("PhotosChangeTimestamp"),
    )


def parse_property_page(payload: object, *, property_id: str) -> tuple[list[ImageRef], str | None]:
    """``(photos, next link)`` of one page: ``read_property_page`` for callers that take no problems.

    Problems are logged; a page whose every item is malformed is still a ParseError (never "0 photos").
    """
    page = read_property_page(payload, property_id=property_id)
    for problem in page.problems:
        log.warning("mls: property %s: %s", property_id, problem.message)
    return list(page.or_raise().items), page.next_link


def parse_token_response(payload: object) -> tuple[str, float]:
    """``(access_token, expires_in seconds)`` from an OAuth2 token response; expiry defaults to 1 h.

    The token goes into an Authorization header, so only visible ASCII is accepted (no header injection).
    """
    if not isinstance(payload, dict):
        raise ParseError("token response: body is not a JSON object")
    token = payload.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise ParseError("token response: access_token is missing or not a string")
    token = token.strip()
    if not _TOKEN.fullmatch(token):
        raise ParseError("token response: access_token has characters a bearer token cannot have")
    expires = payload.get("expires_in", 3600)
    if expires is None:
        expires = 3600
    if isinstance(expires, bool) or not isinstance(expires, int | float | str):
        raise ParseError("token response: expires_in is not a number")
    try:
        seconds = float(expires)
    except (ValueError, OverflowError):
        raise ParseError("token response: expires_in is not a number") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ParseError("token response: expires_in is not a positive number")
    return token, seconds


_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")
"""Visible ASCII, at most 8 KiB: what an HTTP header can carry."""


# --- client ------------------------------------------------------------------------------------------


class TokenCache:
    """OAuth2 tokens shared by every extraction in the process, keyed by (token URL, client id).

    One token serves thousands of properties; asking for one per property would be slow and rude.
    A lock per event loop makes concurrent tasks wait for one refresh instead of stampeding.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def get(self, key: tuple[str, str], issue: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """A token valid for at least the refresh margin, issuing a new one when needed."""
        async with self._lock():
            cached = self._tokens.get(key)
            if cached and self._clock() < cached[1]:
                return cached[0]
            token, expires_in = await issue()
            margin = min(TOKEN_REFRESH_MARGIN, expires_in / 2)
            self._tokens[key] = (token, self._clock() + expires_in - margin)
            return token

    def invalidate(self, key: tuple[str, str], token: str) -> None:
        """Forget ``token`` (the server refused it) unless another task already replaced it."""
        cached = self._tokens.get(key)
        if cached and cached[0] == token:
            del self._tokens[key]


SHARED_TOKENS = TokenCache()
"""The process's cache: pass it to every extractor so tasks in a worker reuse one token."""


def _keep_stamps(page: PropertyPage, into: dict[str, str]) -> None:
    """The first listing key and the latest change stamps over all pages."""
    if page.listing_key and "listing_key" not in into:
        into["listing_key"] = page.listing_key
    for name in ("modified", "photos_modified"):
        value = getattr(page, name)
        if value and value > into.get(name, ""):
            into[name] = value


class MlsExtractor(HttpExtractor):
    """Listing photos from the Phoenix MLS RESO Web API; [] when the MLS has no listing."""

    name = SOURCE

    def __init__(
        self,
        client: httpx.AsyncClient,
        settings: Settings,
        tokens: TokenCache = SHARED_TOKENS,
        *,
        sleep: Sleep = asyncio.sleep,
        limiter: RateLimiter | None = None,
    ) -> None:
        super().__init__(client, settings, limiter=limiter, sleep=sleep)
        self._tokens = tokens
        self._key = (settings.mls_token_url, settings.mls_client_id)

    async def _extract(self, prop: Property) -> SourceListing:
        url = self._s.mls_base_url.rstrip("/") + "/Property"
        params: dict[str, str] | None = build_property_query(prop)
        refs: list[ImageRef] = []
        problems: list[ItemProblem] = []
        seen_urls: set[str | None] = set()
        followed: set[str] = set()
        stamps: dict[str, str] = {}
        for page_number in range(self._s.mls_max_pages):
            response = await self._get(url, params, prop)
            if response.status_code == 404:
                if page_number == 0:
                    return SourceListing()  # the MLS has no such listing: not a failure
                vanished = f"next page vanished (HTTP 404 from {redact_url(url)})"
                raise SourceUnavailableError(SOURCE, prop.property_id, vanished)
            page = read_property_page(
                self._json(response, prop),
                property_id=prop.property_id,
                max_photos=self._max_photos,
                base_url=response.url,
            ).or_raise()
            problems += page.problems
            _keep_stamps(page, stamps)
            for ref in page.items:
                if ref.url not in seen_urls:
                    seen_urls.add(ref.url)
                    refs.append(replace(ref, order=len(refs)))
            if not page.next_link or not page.next_key:
                break
            followed.add(link_key(response.url))
            if page.next_key in followed:
                problems.append(
                    ItemProblem(
                        "@odata.nextLink",
                        f"paging loop: {redact_url(page.next_link)} was already followed; the listing ends here",
                        kind="paging_loop",
                    )
                )
                break
            url, params = page.next_link, None
            if urlsplit(url).netloc != urlsplit(self._s.mls_base_url).netloc:
                # The bearer token goes with every page: never to a host other than the MLS's.
                raise self._error(prop, f"@odata.nextLink points off the RESO host: {redact_url(url)}", kind="parse")
        else:
            problems.append(
                ItemProblem(
                    "@odata.nextLink",
                    f"stopped after {self._s.mls_max_pages} pages (HOMESHOTS_MLS_MAX_PAGES); later pages not read",
                    kind="too_many_pages",
                )
            )
        return SourceListing.of(
            refs,
            problems,
            max_items=self._max_photos,
            path="value",
            listing_key=stamps.get("listing_key"),
            modified=stamps.get("modified"),
            photos_modified=stamps.get("photos_modified"),
        )

    async def latest_change(self) -> str | None:
        """The latest ``ModificationTimestamp`` in the whole MLS (its own clock): where the first
        replication starts, so that nothing modified after tonight's visits can be missed."""
        task = Property(property_id="mls-replication", address="-")
        params = {"$orderby": "ModificationTimestamp desc", "$top": "1", "$select": "ListingKey,ModificationTimestamp"}
        response = await self._get(self._s.mls_base_url.rstrip("/") + "/Property", params, task)
        if response.status_code == 404:
            return None
        listings, _, _, _ = read_replication_page(self._json(response, task))
        return listings[0].modified if listings else None

    async def changed_since(self, since: str) -> AsyncIterator[list[ChangedListing]]:
        """RESO replication: every listing modified after ``since``, a page at a time, following
        ``@odata.nextLink`` on the MLS's own host; a paging loop ends it with a ``SourceFailedError``."""
        task = Property(property_id="mls-replication", address="-")
        url: str = self._s.mls_base_url.rstrip("/") + "/Property"
        params: dict[str, str] | None = build_replication_query(since)
        followed: set[str] = set()
        while True:
            response = await self._get(url, params, task)
            if response.status_code == 404:
                raise self._error(task, f"replication query not served ({response.where})")
            listings, next_link, next_key, problems = read_replication_page(
                self._json(response, task), base_url=response.url
            )
            for problem in problems:
                log.warning("mls: replication: %s", problem.message)
            yield listings
            if not next_link or not next_key:
                return
            followed.add(link_key(response.url))
            if next_key in followed:
                raise self._error(task, f"replication paging loop at {redact_url(next_link)}", kind="paging_loop")
            if urlsplit(next_link).netloc != urlsplit(self._s.mls_base_url).netloc:
                raise self._error(
                    task, f"@odata.nextLink points off the RESO host: {redact_url(next_link)}", kind="parse"
                )
            url, params = next_link, None

    def _error(self, prop: Property, message: str, kind: str | None = None) -> SourceFailedError:
        return SourceFailedError(SOURCE, prop.property_id, message, kind=kind)

    async def _get(self, url: str, params: dict[str, str] | None, prop: Property) -> Fetched:
        """GET with a bearer token; one refused token is dropped and replaced, a second refusal is final."""
        for attempt in range(2):
            token = await self._tokens.get(self._key, lambda: self._issue_token(prop))
            headers = {"Accept": "application/json", "Authorization": f"Bearer {token}"}
            response = await self._request(url, prop, headers=headers, params=params)
            if response.status_code != 401:
                break
            self._tokens.invalidate(self._key, token)
            if attempt:
                raise self._error(prop, f"unauthorized ({response.where} with a fresh token)", kind="unauthorized")
        status = response.status_code
        if status == 404 or 200 <= status < 300:
            return response
        raise self._error(prop, response.where)

    async def _issue_token(self, prop: Property) -> tuple[str, float]:
        """OAuth2 client-credentials grant against ``mls_token_url``."""
        s = self._s
        if not s.mls_client_id:
            raise self._error(prop, "HOMESHOTS_MLS_CLIENT_ID is not set")
        form = {
            "grant_type": "client_credentials",
            "client_id": s.mls_client_id,
            "client_secret": s.mls_client_secret.get_secret_value(),
        }
        if s.mls_scope:
            form["scope"] = s.mls_scope
        response = await self._request(
            s.mls_token_url, prop, method="POST", data=form, headers={"Accept": "application/json"}
        )
        status = response.status_code
        if not 200 <= status < 300:
            why = "refused the client credentials" if status in (400, 401, 403) else "failed"
            raise self._error(prop, f"token endpoint {why} (HTTP {status})")
        return parse_token_response(self._json(response, prop))

    def _json(self, response: Fetched, prop: Property) -> object:
        """The body as JSON; an HTML page (login wall, proxy error) or garbage is a permanent failure."""
        ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if "html" in ctype or response.content.lstrip()[:1] == b"<":
            raise self._error(prop, f"expected JSON, got HTML ({response.where})", kind="parse")
        try:
            return json.loads(response.content)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise self._error(
                prop, f"expected JSON, got {ctype or 'an untyped body'} ({response.where})", kind="parse"
            ) from None
