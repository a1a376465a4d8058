"""Redfin photos through the "stingray" JSON endpoints the redfin.com pages themselves call.

The top half is pure: strip the ``{}&&`` anti-hijacking prefix, find the property id (in the row's
Redfin URL, else through ``location-autocomplete``), and turn ``aboveTheFold`` into ``ImageRef``s or
a ``ParseError`` naming what was wrong. The bottom half is a thin client that maps HTTP outcomes onto
``SourceError``; a bot wall (403, captcha page) is *blocked*, never "0 photos".
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from homeshots.core.addresses import street_key
from homeshots.core.errors import ParseError, SourceBlockedError, SourceFailedError
from homeshots.core.models import MAX_PHOTOS, ImageRef, ItemProblem, Parsed, Property, url_problem
from homeshots.core.redact import redact_url
from homeshots.sources.base import HttpExtractor

log = logging.getLogger(__name__)

SOURCE = "redfin"
PREFIX = "{}&&"
AUTOCOMPLETE_PATH = "/stingray/do/location-autocomplete"
ABOVE_THE_FOLD_PATH = "/stingray/api/home/details/aboveTheFold"
ADDRESS_ROW_TYPE = "1"
"""Autocomplete row ``type`` of a single home (``id`` "1_<propertyId>"); regions, schools, ... differ."""
_HOME_ID = re.compile(r"/home/([0-9]{1,19})(?=[/?#]|$)")
"""ASCII digits: ``\\d`` also takes '١٢٣', which would go into the request as the property id."""
_PROPERTY_ID = re.compile(r"[0-9]{1,19}")
_ZIP_IN_URL = re.compile(r"-([0-9]{5})/home/[0-9]")
_NOT_FOUND = re.compile(r"not found|no such|does not exist|unknown (?:home|property)", re.IGNORECASE)
_CHALLENGE_MARKERS = (
    "captcha", "access denied", "access to this page has been denied", "request blocked", "attention required",
    "just a moment...", "cf-chl", "challenge-platform", "cf-browser-verification", "awswafintegration",
    "gokuprops", "verify you are human", "are you a robot", "unusual traffic",
)  # fmt: skip


# --- pure ---------------------------------------------------------------------------------------------


def strip_prefix(body: bytes | str) -> object:
    """The JSON after Redfin's ``{}&&`` prefix; a body without the prefix is accepted when it is JSON."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise ParseError("Redfin response: body is not UTF-8") from None
    text = text.lstrip("\ufeff \t\r\n").removeprefix(PREFIX)
    try:
        return json.loads(text)
    except RecursionError:  # the decoder's own limit on nesting: not JSON we can use either
        raise ParseError("Redfin response: body is nested too deeply") from None
    except ValueError:
        shown = "empty" if not text.strip() else "HTML" if text.lstrip()[:1] == "<" else "truncated or not JSON"
        raise ParseError(f"Redfin response: body is {shown}") from None


def property_id_from_url(url: str | None) -> str | None:
    """Redfin's property id in a home URL (``/AZ/Phoenix/4732-E-Camelback-Rd-85018/home/27000001``)."""
    if not url:
        return None
    m = _HOME_ID.search(url.split("?", 1)[0].split("#", 1)[0].rstrip("/"))
    return m.group(1) if m else None


def is_challenge_page(text: str) -> bool:
    """A bot wall (captcha, "Access Denied", Cloudflare / AWS WAF challenge) instead of an answer."""
    head = text[:200_000].lstrip()[:1]
    if head in ("{", "["):  # JSON, even with a listing remark that mentions 'captcha'
        return False
    low = text[:200_000].lower()
    return any(marker in low for marker in _CHALLENGE_MARKERS)


def _fail(what: str, path: str, problem: str) -> ParseError:
    return ParseError(f"Redfin {what}: {path} {problem}")


def _shown(value: str, limit: int = 100) -> str:
    """``repr`` of a value from the answer, cut short: a megabyte of junk must not become the message."""
    return repr(value) if len(value) <= limit else repr(value[:limit]) + f"... ({len(value)} characters)"


def _payload(doc: object, what: str) -> dict[str, Any] | None:
    """The ``payload`` of a stingray envelope; None when Redfin says the home does not exist."""
    if not isinstance(doc, dict):
        raise _fail(what, "body", "is not a JSON object")
    code = doc.get("resultCode", 0)
    if isinstance(code, bool) or not isinstance(code, int):
        raise _fail(what, "resultCode", "is not a number")
    if code != 0:
        message = doc.get("errorMessage")
        message = message if isinstance(message, str) and message.strip() else "no errorMessage"
        if _NOT_FOUND.search(message):
            return None
        raise _fail(what, "resultCode", f"is {code if abs(code) < 10**9 else 'out of range'} ({_shown(message)})")
    if "payload" not in doc:
        raise _fail(what, "payload", "is missing")
    payload = doc["payload"]
    if not isinstance(payload, dict):
        raise _fail(what, "payload", "is not an object")
    return payload


def _row_id(row: dict[str, Any], path: str) -> str:
    value = row.get("id")
    if not isinstance(value, str):
        raise _fail("autocomplete", f"{path}.id", "is missing or not a string")
    _, sep, pid = value.partition("_")
    if not sep or not _PROPERTY_ID.fullmatch(pid):  # ASCII: '²'.isdigit() is true
        raise _fail("autocomplete", f"{path}.id", f"is not '<type>_<propertyId>' ({_shown(value)})")
    return pid


def _row_fits(row: dict[str, Any], prop: Property, path: str, *, need_name: bool) -> bool:
    """An address row for this house: type 1, same street address (unless exact), same zip or city."""
    if not isinstance(row, dict):
        raise _fail("autocomplete", path, "is not an object")
    if str(row.get("type")) != ADDRESS_ROW_TYPE:
        return False
    name, url, sub = row.get("name"), row.get("url"), row.get("subName")
    for field, value in (("name", name), ("url", url), ("subName", sub)):
        if value is not None and not isinstance(value, str):
            raise _fail("autocomplete", f"{path}.{field}", "is not a string")
    if need_name and (not name or street_key(name, drop_units=True) != street_key(prop.address, drop_units=True)):
        return False
    zip_match = _ZIP_IN_URL.search(url or "")
    if prop.zip and zip_match:
        return zip_match.group(1) == prop.zip.strip()[:5]
    if prop.city and sub:
        return street_key(sub) == street_key(prop.city)
    return True


def _section_rows(section: object, path: str) -> list[Any]:
    if not isinstance(section, dict):
        raise _fail("autocomplete", path, "is not an object")
    rows = section.get("rows") or []
    if not isinstance(rows, list):
        raise _fail("autocomplete", f"{path}.rows", "is not a list")
    return rows


def parse_autocomplete(payload: object, *, prop: Property) -> str | None:
    """Property id for ``prop`` from a decoded ``location-autocomplete`` body; None when Redfin has none.

    ``exactMatch`` is Redfin's own pick; otherwise the first address row (in ``sections[].rows[]``)
    whose name is the street address. A nearby house ('4239 46th St' for '4239 60th St') never counts.
    A malformed section or row is passed over, so junk beside the home does not hide it; but when no
    row fits and one was malformed, that is a ParseError, since the bad row may have been the home.
    """
    body = _payload(payload, "autocomplete")
    if body is None:
        return None
    exact = body.get("exactMatch")
    if exact is not None:
        if not isinstance(exact, dict):
            raise _fail("autocomplete", "payload.exactMatch", "is not an object")
        if _row_fits(exact, prop, "payload.exactMatch", need_name=False):
            return _row_id(exact, "payload.exactMatch")
    sections = body.get("sections")
    if sections is None:
        return None
    if not isinstance(sections, list):
        raise _fail("autocomplete", "payload.sections", "is not a list")
    problems: list[ParseError] = []
    for s, section in enumerate(sections):
        try:
            rows = _section_rows(section, f"payload.sections[{s}]")
        except ParseError as exc:
            problems.append(exc)
            continue
        for r, row in enumerate(rows):
            where = f"payload.sections[{s}].rows[{r}]"
            try:
                if _row_fits(row, prop, where, need_name=True):
                    return _row_id(row, where)
            except ParseError as exc:
                problems.append(exc)
    if problems:
        more = f" (and {len(problems) - 1} more malformed rows)" if len(problems) > 1 else ""
        raise ParseError(f"{problems[0]}{more}")
    return None


def _photo(photo: object, where: str) -> tuple[str | None, str | None]:
    """``(url, key)`` of one photo: the full-screen URL, else the smaller one; no URL is (None, key)."""
    if not isinstance(photo, dict):
        raise _fail("aboveTheFold", where, "is not an object")
    urls = photo.get("photoUrls")
    if not isinstance(urls, dict):
        raise _fail("aboveTheFold", f"{where}.photoUrls", "is missing" if urls is None else "is not an object")
    chosen = None
    for field in ("fullScreenPhotoUrl", "nonFullScreenPhotoUrl"):
        value = urls.get(field)
        if value is not None and not isinstance(value, str):
            raise _fail("aboveTheFold", f"{where}.photoUrls.{field}", "is not a string")
        if not chosen and value and value.strip():
            chosen = value.strip()
            if (problem := url_problem(chosen)) is not None:
                raise _fail("aboveTheFold", f"{where}.photoUrls.{field}", problem)
    key = photo.get("photoId")
    if isinstance(key, bool) or not (key is None or isinstance(key, str | int)):
        raise _fail("aboveTheFold", f"{where}.photoId", "is not a string or number")
    return chosen, None if key is None else str(key)


def read_above_the_fold(payload: object, *, property_id: str, max_photos: int = MAX_PHOTOS) -> Parsed[ImageRef]:
    """Photos of a decoded ``aboveTheFold`` body in Redfin's order (at most ``max_photos``), and the
    photos left out.

    Empty when Redfin says the home does not exist or it has no photos. A malformed envelope (body,
    ``resultCode``, ``payload``, ``mediaBrowserInfo``, ``photos``) is a ParseError naming the field; a
    malformed photo is only a problem. Each photo's ``width``/``height`` describe the uploaded original,
    not the served variant, so they are not declared on the refs.
    """
    path = "payload.mediaBrowserInfo.photos"
    body = _payload(payload, "aboveTheFold")
    if body is None:
        return Parsed()
    media = body.get("mediaBrowserInfo")
    if not isinstance(media, dict):
        raise _fail("aboveTheFold", "payload.mediaBrowserInfo", "is missing" if media is None else "is not an object")
    photos = media.get("photos")
    if photos is None:
        return Parsed()
    if not isinstance(photos, list):
        raise _fail("aboveTheFold", path, "is not a list")
    refs: list[ImageRef] = []
    problems: list[ItemProblem] = []
    seen: set[str] = set()
    for i, photo in enumerate(photos):
        where = f"{path}[{i}]"
        try:
            chosen, key = _photo(photo, where)
        except ParseError as exc:
            problems.append(ItemProblem(where, str(exc)))
            continue
        if not chosen or chosen in seen:
            log.debug("redfin: home %s: photo %d skipped (no URL or a repeat)", property_id, i)
            continue
        seen.add(chosen)
        refs.append(ImageRef(source=SOURCE, order=len(refs), url=chosen, key=key))
    return Parsed.of(refs, problems, max_items=max_photos, path=path)


def parse_above_the_fold(payload: object, *, property_id: str) -> list[ImageRef]:
    """Photos of an ``aboveTheFold`` body: ``read_above_the_fold`` for callers that take no problems.

    Problems are logged; a body whose every photo is malformed is still a ParseError (never "0 photos").
    """
    parsed = read_above_the_fold(payload, property_id=property_id)
    for problem in parsed.problems:
        log.warning("redfin: home %s: %s", property_id, problem.message)
    return list(parsed.or_raise().items)


# --- client -------------------------------------------------------------------------------------------


class RedfinExtractor(HttpExtractor):
    """Listing photos from Redfin; [] when Redfin has no such home, ``SourceError`` when it fails or blocks."""

    name = SOURCE

    @property
    def _base(self) -> str:
        return self._s.redfin_base_url.rstrip("/")

    async def _extract(self, prop: Property) -> Parsed[ImageRef]:
        pid = property_id_from_url(prop.redfin_url)
        if pid is None:
            if prop.redfin_url:
                log.warning(
                    "redfin: property %s: no /home/<id> in redfin_url; looking up the address", prop.property_id
                )
            doc = await self._get(AUTOCOMPLETE_PATH, {"location": prop.full_address, "v": "2"}, prop)
            pid = None if doc is None else parse_autocomplete(doc, prop=prop)
            if pid is None:
                return Parsed()  # Redfin does not know the address: no listing, not a failure
        doc = await self._get(ABOVE_THE_FOLD_PATH, {"propertyId": pid, "accessLevel": "1"}, prop)
        if doc is None:
            return Parsed()
        return read_above_the_fold(doc, property_id=pid, max_photos=self._max_photos).or_raise()

    async def _get(self, path: str, params: dict[str, str], prop: Property) -> object | None:
        """One stingray GET, decoded; None on 404. Bot walls are blocked, other statuses permanent."""
        url = self._base + path
        response = await self._request(
            url, prop, params=params, headers={"Accept": "application/json, text/plain, */*"}
        )
        status, where = response.status_code, f"HTTP {response.status_code} from {redact_url(url)}"
        waf = response.headers.get("x-amzn-waf-action", "") or response.headers.get("cf-mitigated", "")
        if status == 403 or waf or is_challenge_page(response.content[:200_000].decode("utf-8", "replace")):
            raise SourceBlockedError(SOURCE, prop.property_id, f"blocked by a bot wall ({where})")
        if status == 404:
            return None
        if not 200 <= status < 300:
            raise SourceFailedError(SOURCE, prop.property_id, where)
        try:
            return strip_prefix(response.content)
        except ParseError as exc:
            raise ParseError(f"{exc} ({where})") from None
