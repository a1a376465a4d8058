"""Maricopa County Assessor: a parcel's building sketches (the assessor keeps no listing photos).

What the real API does (mcassessor.maricopa.gov "API Documentation", 2024): a custom ``AUTHORIZATION``
header carrying the bare token; ``/search/property/?q=`` full-text search answering 25 rows a page
(``&page=N``), each real-property row with ``APN``, ``SitusAddress``, ``SitusCity``, ``SitusZip``;
``/parcel/{apn}`` parcel details, the APN given with or without dashes, dots or spaces. The sketch
endpoint ``/parcel/{apn}/sketches/`` is not in that PDF (public client code calls it); its pages carry
base64 images. Where unsure we chose: the rows' list may be ``Results`` or ``RealPropertyResults``;
only the first search page is read (an address query is specific); ``TotalPages`` counts sketch
pages, an answer may carry only some, and ``?page=N`` (1-based, as in the search) asks for the next.

As in ``phoenix_mls``: pure parsing on top (``ParseError`` naming the field), a thin client below.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from homeshots.core.addresses import normalize
from homeshots.core.errors import ParseError, SourceFailedError
from homeshots.core.models import MAX_PHOTOS, ImageRef, ItemProblem, Parsed, Property
from homeshots.core.redact import redact_url
from homeshots.network.fetcher import Fetched
from homeshots.sources.base import HttpExtractor

log = logging.getLogger(__name__)

SOURCE = "maricopa"
APN_SHAPE = re.compile(r"([0-9]{3})[-. ]?([0-9]{2})[-. ]?([0-9]{3,4}[A-Z]?)")
"""Book (3 digits), map (2), parcel (3-4) and an optional split letter: 173-10-005A."""
RESULT_KEYS = ("Results", "RealPropertyResults")
MAX_SKETCH_REQUESTS = 20
"""Sketch answers asked per parcel at most, so a server that never finishes cannot hold a worker."""
_DATA_URI = re.compile(r"^data:[\w/+.-]+;base64,", re.IGNORECASE)


# --- pure ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SketchPage(Parsed[ImageRef]):
    """One sketch answer: its images (``items``), the pages left out (``problems``) and ``TotalPages``."""

    total_pages: int = 0


def _shown(value: object, limit: int = 60) -> str:
    """``repr`` of a value from the answer, cut short: a megabyte of junk must not become the message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def normalize_apn(value: object) -> str:
    """The APN as the assessor files it (``17310005A``); dashes, dots or spaces between its parts are fine."""
    if not isinstance(value, str):
        raise ParseError(f"APN {_shown(value)} is not a string")
    m = APN_SHAPE.fullmatch(value.strip().upper()) if len(value) <= 100 else None
    if not m:
        raise ParseError(f"APN {_shown(value)} is not a Maricopa APN (like 123-45-678 or 12345678A)")
    return "".join(m.groups())


def _apn_at(value: object, path: str) -> str:
    try:
        return normalize_apn(value)
    except ParseError as exc:
        raise ParseError(f"{path}.APN: {exc}") from None


def load_json(body: bytes, content_type: str, *, where: str) -> object:
    """The body as JSON. The API may answer an HTML error page even with 200: that is named, not guessed at."""
    ctype = content_type.split(";")[0].strip().lower()
    if "html" in ctype or body.lstrip()[:1] == b"<":
        raise ParseError(f"expected JSON, got HTML ({where})")
    try:
        return json.loads(body)
    except RecursionError:  # the decoder's own limit on nesting
        raise ParseError(f"body is nested too deeply ({where})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ParseError(f"body is not valid JSON ({where}): {exc}") from None


def _text(item: dict[str, Any], field: str, path: str, *, numeric_ok: bool = False) -> str | None:
    value = item.get(field)
    if value is None or isinstance(value, str):
        return value.strip() if value else None
    if numeric_ok and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**10:
        return str(value)
    raise ParseError(f"{path}.{field} is not a string")


_WHOLE = re.compile(r"[0-9]{1,9}")
"""A count as a string: ASCII digits (``'²'.isdigit()`` is true, ``int('²')`` fails), at most 9 of them."""


def _count(item: dict[str, Any], field: str, path: str, *, minimum: int) -> int:
    """A required whole number (sent as a number or a numeric string) of at least ``minimum``."""
    if field not in item or item[field] is None:
        raise ParseError(f"{path}.{field} is missing")
    value = item[field]
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value >= 10**9:
        raise ParseError(f"{path}.{field} is not a whole number")
    if value < minimum:
        raise ParseError(f"{path}.{field} is {value}, below {minimum}")
    return value


def _search_row(row: object, path: str) -> dict[str, str | None]:
    if not isinstance(row, dict):
        raise ParseError(f"{path} is not an object")
    if row.get("APN") is None:
        raise ParseError(f"{path}.APN is missing")
    return {
        "APN": _apn_at(row["APN"], path),
        "SitusAddress": _text(row, "SitusAddress", path),
        "SitusCity": _text(row, "SitusCity", path),
        "SitusZip": _text(row, "SitusZip", path, numeric_ok=True),
    }


def read_search(payload: object, *, property_id: str) -> Parsed[dict[str, str | None]]:
    """Real-property rows of a search answer (``APN`` normalized, ``SitusAddress``, ``SitusCity``,
    ``SitusZip``) and the rows left out.

    A malformed body or rows list is a ParseError; a malformed row is only a problem, so one odd record
    among the hits does not cost the lookup.
    """
    if not isinstance(payload, dict):
        raise ParseError("search response: body is not a JSON object")
    key = next((k for k in RESULT_KEYS if k in payload), None)
    if key is None:
        raise ParseError("search response: Results is missing")
    rows = payload[key]
    if rows is None:  # no hits: some answers send null rather than []
        return Parsed()
    if not isinstance(rows, list):
        raise ParseError(f"search response: {key} is not a list")
    results: list[dict[str, str | None]] = []
    problems: list[ItemProblem] = []
    for i, row in enumerate(rows):
        path = f"search response: {key}[{i}]"
        try:
            results.append(_search_row(row, path))
        except ParseError as exc:
            problems.append(ItemProblem(f"{key}[{i}]", str(exc)))
    log.debug("maricopa: property %s: search found %d parcel(s)", property_id, len(results))
    return Parsed.of(results, problems, max_items=len(results), path=key)  # 25 rows a page: no cap


def parse_search(payload: object, *, property_id: str) -> list[dict[str, str | None]]:
    """Rows of a search answer: ``read_search`` for callers that take no problems.

    Problems are logged; an answer whose every row is malformed is still a ParseError.
    """
    parsed = read_search(payload, property_id=property_id)
    for problem in parsed.problems:
        log.warning("maricopa: property %s: %s", property_id, problem.message)
    return list(parsed.or_raise().items)


def _zip5(text: str | None) -> str | None:
    digits = re.sub(r"[^0-9]", "", text or "")
    return digits[:5] if len(digits) >= 5 else None


def pick_parcel(results: list[dict[str, str | None]], prop: Property) -> str | None:
    """The APN whose situs is the property's street address (and zip, else city, when known); None if none
    or several distinct parcels fit, since another parcel's sketches are worse than none."""
    street = normalize(prop.address)
    hits = [r for r in results if r.get("SitusAddress") and normalize(r["SitusAddress"]) == street]
    zip5 = _zip5(prop.zip)
    if zip5:
        exact = [r for r in hits if _zip5(r.get("SitusZip")) == zip5]
        hits = exact or [r for r in hits if _zip5(r.get("SitusZip")) is None]
    elif prop.city:
        city = normalize(prop.city)
        hits = [r for r in hits if not r.get("SitusCity") or normalize(r["SitusCity"]) == city]
    apns = list(dict.fromkeys(r["APN"] for r in hits if r.get("APN")))
    if len(apns) > 1:
        log.warning("maricopa: property %s: %d parcels match its address; none taken", prop.property_id, len(apns))
        return None
    return apns[0] if apns else None


def parse_parcel(payload: object, *, apn: str) -> dict[str, Any] | None:
    """Parcel details, checked to be about ``apn``; None when the answer carries no parcel at all."""
    if payload is None or payload == {}:
        return None
    if not isinstance(payload, dict):
        raise ParseError(f"parcel {apn}: body is not a JSON object")
    found = apn if payload.get("APN") is None else _apn_at(payload["APN"], f"parcel {apn}: body")
    if found != apn:
        raise ParseError(f"parcel {apn}: answer is about parcel {found}")
    return payload


def _decode(text: str, label: str) -> bytes:
    compact = "".join(_DATA_URI.sub("", text.strip()).split())
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise ParseError(f"{label}.Sketch is not valid base64") from None
    if not data:
        raise ParseError(f"{label}.Sketch is empty")
    return data


def _sketch(page: object, path: str, apn: str, total: int) -> tuple[int, bytes]:
    """``(PageNum, image bytes)`` of one sketch page, checked to belong to ``apn``."""
    if not isinstance(page, dict):
        raise ParseError(f"{path} is not an object")
    num = _count(page, "PageNum", path, minimum=1)
    label = f"{path} (PageNum {num})"
    if num > total:
        raise ParseError(f"{label}: PageNum is beyond TotalPages {total}")
    other = apn if page.get("APN") is None else _apn_at(page["APN"], label)
    if other != apn:
        raise ParseError(f"{label} belongs to parcel {other}")
    sketch = page.get("Sketch")
    if not isinstance(sketch, str):
        raise ParseError(f"{label}.Sketch is {'missing' if sketch is None else 'not a string'}")
    return num, _decode(sketch, label)


def read_sketches(payload: object, *, apn: str, max_photos: int = MAX_PHOTOS) -> SketchPage:
    """The inline sketch images of one answer in PageNum order (at most ``max_photos``), the pages left
    out, and ``TotalPages`` (all sketch pages).

    A malformed body, ``TotalPages`` or ``Pages`` list is a ParseError naming the field; a malformed
    page (bad PageNum, another parcel's, bad base64) is only a problem.
    """
    where = f"sketches of {apn}"
    if not isinstance(payload, dict):
        raise ParseError(f"{where}: body is not a JSON object")
    total = _count(payload, "TotalPages", f"{where}: body", minimum=0)
    if "Pages" not in payload:
        raise ParseError(f"{where}: Pages is missing")
    pages = [] if payload["Pages"] is None else payload["Pages"]
    if not isinstance(pages, list):
        raise ParseError(f"{where}: Pages is not a list")
    refs: dict[int, ImageRef] = {}
    problems: list[ItemProblem] = []
    for i, page in enumerate(pages):
        try:
            num, data = _sketch(page, f"{where}: Pages[{i}]", apn, total)
        except ParseError as exc:
            problems.append(ItemProblem(f"Pages[{i}]", str(exc)))
            continue
        refs.setdefault(num, ImageRef(source=SOURCE, order=num - 1, data=data, key=f"{apn}-sketch-{num}"))
    ordered = [refs[n] for n in sorted(refs)]
    return SketchPage.of(ordered, problems, max_items=max_photos, path="Pages", total_pages=total)


def parse_sketches(payload: object, *, apn: str) -> tuple[list[ImageRef], int]:
    """``(images, TotalPages)`` of one sketch answer: ``read_sketches`` for callers that take no problems.

    Problems are logged; an answer whose every page is malformed is still a ParseError.
    """
    page = read_sketches(payload, apn=apn)
    for problem in page.problems:
        log.warning("maricopa: parcel %s: %s", apn, problem.message)
    return list(page.or_raise().items), page.total_pages


# --- client ----------------------------------------------------------------------------------------


class MaricopaExtractor(HttpExtractor):
    """Sketch images of the property's parcel; [] when the assessor has no such parcel or no sketch."""

    name = SOURCE

    @property
    def _base(self) -> str:
        return self._s.maricopa_base_url.rstrip("/")

    async def _extract(self, prop: Property) -> Parsed[ImageRef]:
        token = self._s.maricopa_token.get_secret_value().strip()
        if not token:
            raise SourceFailedError(SOURCE, prop.property_id, "HOMESHOTS_MARICOPA_TOKEN is not set", kind="config")
        return await self._sketches_of(prop, token)

    async def _sketches_of(self, prop: Property, token: str) -> Parsed[ImageRef]:
        if prop.apn and prop.apn.strip():
            try:
                apn = normalize_apn(prop.apn)
            except ParseError as exc:  # the user's row is wrong, not the assessor's answer
                raise SourceFailedError(SOURCE, prop.property_id, f"apn: {exc}", kind="input") from None
        else:
            found = await self._find_apn(prop, token)
            if found is None:
                return Parsed()
            apn = found
        response = await self._get(f"{self._base}/parcel/{apn}", prop, token)
        if response is None or parse_parcel(self._json(response), apn=apn) is None:
            log.info("maricopa: property %s: assessor has no parcel %s", prop.property_id, apn)
            return Parsed()
        return await self._sketches(apn, prop, token)

    async def _find_apn(self, prop: Property, token: str) -> str | None:
        query = ", ".join(p.strip() for p in (prop.address, prop.city or "") if p.strip())
        response = await self._get(f"{self._base}/search/property/", prop, token, {"q": query})
        if response is None:
            return None
        rows = read_search(self._json(response), property_id=prop.property_id).or_raise()
        apn = pick_parcel(list(rows.items), prop)
        if apn is None and rows.problems:
            # A row we could not read may have been this home: say so rather than report "no parcel".
            raise ParseError(rows.problems[0].message)
        if apn is None:
            log.info("maricopa: property %s: no parcel matches its address", prop.property_id)
        return apn

    async def _sketches(self, apn: str, prop: Property, token: str) -> Parsed[ImageRef]:
        url = f"{self._base}/parcel/{apn}/sketches/"
        refs: dict[int, ImageRef] = {}
        problems: list[ItemProblem] = []
        total = 0
        for page in range(1, MAX_SKETCH_REQUESTS + 1):
            response = await self._get(url, prop, token, None if page == 1 else {"page": str(page)})
            if response is None:  # no sketches at all, or a later answer vanished: keep what we have
                break
            got = read_sketches(self._json(response), apn=apn, max_photos=self._max_photos).or_raise()
            problems += got.problems
            total = got.total_pages
            new = [ref for ref in got.items if ref.order not in refs]
            refs.update((ref.order, ref) for ref in new)
            if len(refs) >= total or not new:
                break
        if len(refs) < total:  # the assessor counts more pages than it hands out; what it sent is still good
            problems.append(
                ItemProblem(
                    "Pages",
                    f"parcel {apn} has {total} sketch pages; got {len(refs)}",
                    kind="missing_pages",
                    count=total - len(refs),
                )
            )
        return Parsed.of([refs[k] for k in sorted(refs)], problems, max_items=self._max_photos, path="Pages")

    async def _get(self, url: str, prop: Property, token: str, params: dict[str, str] | None = None) -> Fetched | None:
        """One GET with the token header; None for 404/204 (nothing there), SourceFailedError for refusals."""
        headers = {"AUTHORIZATION": token, "Accept": "application/json", "User-Agent": self._policy.user_agent}
        response = await self._request(url, prop, headers=headers, params=params)
        status = response.status_code
        if status in (401, 403):
            raise SourceFailedError(
                SOURCE,
                prop.property_id,
                f"token refused (HTTP {status} from {redact_url(url)}); check HOMESHOTS_MARICOPA_TOKEN",
                kind="unauthorized",
            )
        if status in (204, 404):
            return None
        if 200 <= status < 300:
            return response
        raise SourceFailedError(SOURCE, prop.property_id, f"HTTP {status} from {redact_url(url)}")

    @staticmethod
    def _json(response: Fetched) -> object:
        where = f"HTTP {response.status_code} from {redact_url(response.url)}"
        return load_json(response.content, response.headers.get("content-type", ""), where=where)
