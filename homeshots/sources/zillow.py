"""Zillow listing photos, read from the home-details page that a browser renders.

Zillow has no public photo API. Its home page is a Next.js page whose ``__NEXT_DATA__`` script holds
``props.pageProps.componentProps.gdpClientCache``: a JSON *string* (a GraphQL cache keyed like
``ForSaleShopperPlatformFullRenderQuery{"zpid":...}``) whose entries carry ``property.responsivePhotos[]``,
each photo at several widths under ``mixedSources.jpeg[]``. The top half is pure parsing; the bottom
half a thin client that follows Zillow's own redirects (address search -> home page) and turns the
PerimeterX bot wall into a loud ``blocked`` failure, never "0 photos".
"""

from __future__ import annotations

import html as htmllib
import json
import logging
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

from homeshots.core.errors import ParseError, SourceBlockedError, SourceFailedError
from homeshots.core.models import MAX_PHOTOS, ImageRef, ItemProblem, Parsed, Property, url_problem
from homeshots.core.redact import redact_url
from homeshots.network.fetcher import Fetched
from homeshots.sources.base import HttpExtractor

log = logging.getLogger(__name__)

SOURCE = "zillow"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
PHOTO_LISTS = ("responsivePhotos", "photos", "originalPhotos")
"""Where page versions keep the gallery, newest first."""
CACHE_PATH = ("props", "pageProps", "componentProps", "gdpClientCache")

_TAG_END = re.compile(r"[^>]*>")
_NEXT_DATA_ID = re.compile(r"\bid\s*=\s*[\"']?__NEXT_DATA__", re.IGNORECASE)
_SCRIPT_END = re.compile(r"</script\s*>", re.IGNORECASE)
_TITLE_END = re.compile(r"</title\s*>", re.IGNORECASE)
_PX_CAPTCHA_ID = re.compile(r"\sid\s*=\s*(?:\"px-captcha\"|'px-captcha'|px-captcha(?=[\s/>]|$))", re.IGNORECASE)
PX_TITLE = "access to this page has been denied"


# --- pure: URLs and pages ------------------------------------------------------------------------


def home_url(base: str, prop: Property) -> str:
    """The home-details page when the row has a zpid, else Zillow's address search (``_rb``).

    Zillow ignores the slug (a stale one is redirected to the canonical), so it is built from the address.
    """
    base = base.rstrip("/")
    if prop.zpid and prop.zpid.strip():
        slug = re.sub(r"[^A-Za-z0-9]+", "-", prop.full_address).strip("-") or "home"
        return f"{base}/homedetails/{slug}/{quote(prop.zpid.strip(), safe='')}_zpid/"
    return f"{base}/homes/{quote(prop.full_address, safe='')}_rb/"


def _open_tags(html: str, name: str) -> Iterator[tuple[int, str, bool]]:
    """``(end, text, closed)`` of each ``<name ...>`` opening tag, in one pass.

    Not one regex like ``<script[^>]*id=...[^>]*>``: on a page of unclosed tags that backtracks from
    every ``<script`` to the end of the page, quadratic time on a hostile page (40 KB took 1.6 s).
    A tag that never closes runs to the end of the page, as the old regexes read it.
    """
    start = re.compile(rf"<{name}\b", re.IGNORECASE)
    pos = 0
    while (m := start.search(html, pos)) is not None:
        close = _TAG_END.match(html, m.end())
        if close is None:  # no '>' anywhere after: the last tag runs to the end, and no later tag can close
            yield len(html), html[m.end() :], False
            return
        yield close.end(), html[m.end() : close.end()], True
        pos = close.end()  # the next tag starts after this one: text inside a tag is not a tag


def is_block_page(html: str) -> bool:
    """PerimeterX's "Press & Hold" wall, which Zillow serves with status 200 as often as with 403."""
    title = next(_open_tags(html, "title"), None)
    if title is not None and title[2]:
        end = _TITLE_END.search(html, title[0])
        if end is not None:
            text = htmllib.unescape(html[title[0] : end.start()])
            if PX_TITLE in " ".join(text.split()).lower():
                return True
    return any(_PX_CAPTCHA_ID.search(text) for _, text, _ in _open_tags(html, "div"))


def _fail(problem: str) -> ParseError:
    return ParseError(f"Zillow home page: {problem}")


def _loads(text: str, what: str) -> object:
    """JSON, or a ParseError naming ``what``; nesting too deep for the decoder is not valid JSON either."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise _fail(f"{what} is not valid JSON") from None


def _next_data(html: str) -> dict[str, Any] | None:
    """The decoded ``__NEXT_DATA__`` object; None when the page has no such script at all."""
    tags = _open_tags(html, "script")
    start = next((end for end, text, closed in tags if closed and _NEXT_DATA_ID.search(text)), None)
    if start is None:
        return None
    end = _SCRIPT_END.search(html, start)
    if end is None:
        raise _fail("__NEXT_DATA__ script is not closed (truncated page?)")
    data = _loads(html[start : end.start()], "__NEXT_DATA__")
    if not isinstance(data, dict):
        raise _fail("__NEXT_DATA__ is not a JSON object")
    return data


def _client_cache(data: dict[str, Any]) -> tuple[object, str | None]:
    """``(gdpClientCache, None)``, or ``(None, path)`` naming the first missing step of the chain."""
    node: object = data
    for depth, name in enumerate(CACHE_PATH):
        if not isinstance(node, dict):
            raise _fail(f"{'.'.join(CACHE_PATH[:depth])} is not an object")
        if node.get(name) is None:
            return None, ".".join(CACHE_PATH[: depth + 1])
        node = node[name]
    return node, None


def has_home(html: str) -> bool:
    """Whether a page carries a home at all: an address search without a match answers a results page."""
    data = _next_data(html)
    return data is not None and _client_cache(data)[0] is not None


def _property(cache: dict[str, Any]) -> dict[str, Any]:
    """The first cached property that has a gallery (a ``VariantQuery`` entry may hold only ids)."""
    found: list[dict[str, Any]] = []
    for key, entry in cache.items():
        if not isinstance(entry, dict) or entry.get("property") is None:
            continue
        prop = entry["property"]
        if not isinstance(prop, dict):
            name = key.split("{", 1)[0][:100]  # the query name, without its variables
            raise _fail(f"gdpClientCache[{name}].property is not an object")
        if any(prop.get(name) is not None for name in PHOTO_LISTS):
            return prop
        found.append(prop)
    if not found:
        raise _fail("gdpClientCache has no entry with a property")
    return found[0]


def _galleries(prop: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """The photo lists present, newest name first; a home without photos has an empty one."""
    present = [name for name in PHOTO_LISTS if prop.get(name) is not None]
    if not present:
        raise _fail("property has no " + ", ".join(PHOTO_LISTS))
    for name in present:
        if not isinstance(prop[name], list):
            raise _fail(f"property.{name} is not a list")
    return [(name, prop[name]) for name in present]


_DIGITS = re.compile(r"[0-9]{1,9}")
"""A width as a string: ASCII digits (``'²'.isdigit()`` is true, ``int('²')`` fails), at most 9 of them."""


def _width(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _fail(f"{where} is not a number")
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**31:
        value = int(value)
    elif isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int) or value >= 2**31:
        raise _fail(f"{where} is not a number")
    return value if value > 0 else None


def _url(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(f"{where} is not a string")
    value = value.strip()
    value = "https:" + value if value.startswith("//") else value
    if value and (problem := url_problem(value)) is not None:
        raise _fail(f"{where} {problem}")
    return value or None


def _widest(variants: object, where: str) -> tuple[str, int | None] | None:
    """The widest copy in a ``mixedSources`` list; a copy without a width ranks last."""
    if variants is None:
        return None
    if not isinstance(variants, list):
        raise _fail(f"{where} is not a list")
    best: tuple[str, int | None] | None = None
    for i, variant in enumerate(variants):
        if not isinstance(variant, dict):
            raise _fail(f"{where}[{i}] is not an object")
        url = _url(variant.get("url"), f"{where}[{i}].url")
        width = _width(variant.get("width"), f"{where}[{i}].width")
        if url and (best is None or (width or 0) > (best[1] or 0)):
            best = (url, width)
    return best


def _photo(item: object, where: str) -> tuple[str, int | None, str | None] | None:
    """``(url, width, key)`` of one gallery photo: widest jpeg, else widest webp, else its plain url."""
    if not isinstance(item, dict):
        raise _fail(f"{where} is not an object")
    sources = item.get("mixedSources")
    if sources is not None and not isinstance(sources, dict):
        raise _fail(f"{where}.mixedSources is not an object")
    best = None
    for fmt in ("jpeg", "webp"):
        best = best or _widest((sources or {}).get(fmt), f"{where}.mixedSources.{fmt}")
    if best is None:
        url = _url(item.get("url"), f"{where}.url")
        if url is None:
            return None
        best = (url, None)
    ids = [
        str(v).strip()
        for v in (item.get("id"), item.get("caption"))
        if isinstance(v, str | int) and not isinstance(v, bool)
    ]
    return best[0], best[1], next((v for v in ids if v), None)


def _read_gallery(name: str, items: list[Any], property_id: str, max_photos: int) -> Parsed[ImageRef]:
    refs: list[ImageRef] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"property.{name}[{i}]"
        try:
            photo = _photo(item, where)
        except ParseError as exc:
            problems.append(ItemProblem(where, str(exc)))
            continue
        if photo is None or photo[0] in seen:
            log.debug("zillow: property %s: %s skipped (no URL or a repeat)", property_id, where)
            continue
        seen.add(photo[0])
        refs.append(ImageRef(source=SOURCE, order=len(refs), url=photo[0], key=photo[2], declared_width=photo[1]))
    return Parsed.of(refs, problems, max_items=max_photos, path=f"property.{name}")


def read_home_page(html: str, *, property_id: str, max_photos: int = MAX_PHOTOS) -> Parsed[ImageRef]:
    """The home's photos in Zillow's gallery order, each at its widest copy (at most ``max_photos``), and
    the gallery entries left out.

    A malformed page (no ``__NEXT_DATA__``, no cache, no gallery list) is a ParseError naming what is
    wrong; a malformed photo is only a problem. The first gallery list that gives a photo wins, so a
    newer list of junk falls back to an older one that still works.
    """
    data = _next_data(html)
    if data is None:
        raise _fail("no __NEXT_DATA__ script (not a home-details page?)")
    value, missing = _client_cache(data)
    if missing:
        raise _fail(f"{missing} is missing")
    if isinstance(value, str):
        cache = _loads(value, "gdpClientCache")
    elif isinstance(value, dict):  # some page versions embed the cache already decoded
        cache = value
    else:
        raise _fail("gdpClientCache is not a JSON string")
    if not isinstance(cache, dict):
        raise _fail("gdpClientCache is not a JSON object")
    galleries = _galleries(_property(cache))
    first: Parsed[ImageRef] | None = None
    for name, items in galleries:
        if not items:
            continue
        parsed = _read_gallery(name, items, property_id, max_photos)
        if parsed.items:
            return parsed
        first = first or parsed
    return first or Parsed.of([], [], max_items=max_photos, path=f"property.{galleries[0][0]}")


def parse_home_page(html: str, *, property_id: str) -> list[ImageRef]:
    """The home's photos: ``read_home_page`` for callers that take no problems.

    Problems are logged; a gallery whose every photo is malformed is still a ParseError (never "0 photos").
    """
    parsed = read_home_page(html, property_id=property_id)
    for problem in parsed.problems:
        log.warning("zillow: property %s: %s", property_id, problem.message)
    return list(parsed.or_raise().items)


# --- client --------------------------------------------------------------------------------------------


def _origin(url: str) -> tuple[str, int | None]:
    """(host, port) with the scheme's default port; no port at all for a scheme other than http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "", None
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return (parts.hostname or "").lower(), default and (port or default)


class ZillowExtractor(HttpExtractor):
    """Photos from Zillow's home-details page; [] when Zillow has no such home."""

    name = SOURCE

    async def _extract(self, prop: Property) -> Parsed[ImageRef]:
        url = home_url(self._s.zillow_base_url, prop)
        page = await self._request(url, prop, headers={"Accept": "text/html"}, follow=self._stays_on_zillow)
        if page.status_code in REDIRECT_STATUSES:
            raise self._error(
                prop, f"HTTP {page.status_code} without Location from {redact_url(page.url)}", kind="redirect"
            )
        return self._page(prop, page)

    def _stays_on_zillow(self, _from: str, target: str) -> str | None:
        """Zillow redirects an address search to the home, a stale slug to the canonical one: only ever
        back onto Zillow's own host (http -> https on the same host is fine)."""
        (host, port), (home, home_port) = _origin(target), _origin(self._s.zillow_base_url)
        upgrade = target.startswith("https:") and port == 443
        if host != home or (port != home_port and not upgrade):
            return f"redirected off Zillow to {redact_url(target)}"
        return None

    def _page(self, prop: Property, page: Fetched) -> Parsed[ImageRef]:
        status, where = page.status_code, page.where
        if status in (404, 410):
            return Parsed()
        text = page.text
        wall = is_block_page(text)
        if status == 403 or wall:
            raise SourceBlockedError(
                SOURCE,
                prop.property_id,
                f"blocked by Zillow's bot wall ({'PerimeterX page, ' if wall else ''}{where}); "
                "lower HOMESHOTS_ZILLOW_RATE or use HOMESHOTS_ZILLOW_PROXY_URL",
            )
        if not 200 <= status < 300:
            raise self._error(prop, where)
        try:
            if urlsplit(page.url).path.endswith("_rb/") and not has_home(text):
                return Parsed()  # an address search that matched no home: a results page, no listing
            return read_home_page(text, property_id=prop.property_id, max_photos=self._max_photos).or_raise()
        except ParseError as exc:
            raise self._error(prop, f"{exc} ({where})", kind="parse") from exc

    def _error(self, prop: Property, message: str, kind: str | None = None) -> SourceFailedError:
        return SourceFailedError(SOURCE, prop.property_id, message, kind=kind)
