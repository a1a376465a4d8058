"""The Maricopa County Assessor as the sandbox serves it: token header, property search, parcels, sketches.

Paths follow the real API (``/search/property/?q=``, ``/parcel/{apn}``, ``/parcel/{apn}/sketches/``) under
``/maricopa``. The assessor has no listing photos; its pictures are building sketches sent inline as
base64 PNGs, drawn here as floor plans that differ per parcel and page so dedup keeps them apart.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import re
import secrets
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageDraw, ImageFont

from homeshots_sandbox.http import Handler, Request, Response, html_response, json_response
from homeshots_sandbox.listing import Listing

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

SOURCE = "maricopa"
PREFIX = "/maricopa"
TOKEN = "sandbox-maricopa-token"
SEARCH_PAGE_SIZE = 25
"""The real search answers 25 results a page (``&page=N``)."""
SKETCHES_PER_PAGE = 2
"""Sketch pages per answer, so a parcel with three sketches needs ``?page=2`` (paging is exercised)."""
SKETCH_SIZE = (800, 600)
ROOM_NAMES = ("BR", "BR", "BA", "KIT", "LIV", "DIN", "FAM", "UTIL", "DEN", "CL", "ENT", "MSTR")
ERROR_PAGE = (
    "<!DOCTYPE html><html><head><title>Runtime Error</title></head><body><h1>Server Error in '/' "
    "Application.</h1><p>An application error occurred on the server.</p></body></html>"
)


def _apn_key(text: str) -> str:
    """An APN as the assessor files it: separators (dashes, dots, spaces) dropped, upper-case."""
    return re.sub(r"[-. ]", "", text).upper()


def _rng(*parts: object) -> random.Random:
    """A RNG seeded stably (``hash()`` of a str changes per process)."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _split(rng: random.Random, box: tuple[int, int, int, int], depth: int) -> list[tuple[int, int, int, int]]:
    """Rooms of one wing: the wing cut recursively, across its longer side, at a random point."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if depth <= 0 or max(w, h) < 150 or rng.random() < 0.15:
        return [box]
    cut = rng.uniform(0.3, 0.7)
    if w >= h:
        x = x0 + int(w * cut)
        halves = [(x0, y0, x, y1), (x, y0, x1, y1)]
    else:
        y = y0 + int(h * cut)
        halves = [(x0, y0, x1, y), (x0, y, x1, y1)]
    return [room for half in halves for room in _split(rng, half, depth - 1)]


def _wings(rng: random.Random, w: int, h: int) -> list[tuple[int, int, int, int]]:
    """The footprint: a main block plus zero to two wings (L, T or U shapes), inside the margins."""
    mx0, my0 = rng.randint(40, 200), rng.randint(70, 170)
    mx1, my1 = rng.randint(mx0 + 260, w - 40), rng.randint(my0 + 180, h - 40)
    wings = [(mx0, my0, mx1, my1)]
    for _ in range(rng.choice((0, 1, 1, 2))):
        side = rng.choice("lrtb")
        if side in "lr" and (mx0 > 120 or w - mx1 > 120):
            span = rng.randint(80, max(81, (my1 - my0) // 2))
            top = rng.randint(my0, my1 - span)
            if side == "l" and mx0 > 120:
                wings.append((rng.randint(40, mx0 - 80), top, mx0, top + span))
            elif w - mx1 > 120:
                wings.append((mx1, top, rng.randint(mx1 + 80, w - 40), top + span))
        elif side in "tb" and (my0 > 140 or h - my1 > 120):
            span = rng.randint(100, max(101, (mx1 - mx0) // 2))
            left = rng.randint(mx0, mx1 - span)
            if side == "t" and my0 > 140:
                wings.append((left, rng.randint(60, my0 - 80), left + span, my0))
            elif h - my1 > 120:
                wings.append((left, my1, left + span, rng.randint(my1 + 80, h - 40)))
    return wings


def _hatch(img: Image.Image, box: tuple[int, int, int, int], step: int, slope: int) -> None:
    """Diagonal hatching clipped to ``box``: drawn on a tile of the room's size, then pasted."""
    x0, y0, x1, y1 = box
    tile = Image.new("RGB", (x1 - x0, y1 - y0), "white")
    draw = ImageDraw.Draw(tile)
    for k in range(-tile.height, tile.width + tile.height, step):
        draw.line([(k, 0), (k + slope * tile.height, tile.height)], fill=(70, 70, 70), width=1)
    img.paste(tile, (x0, y0))


@lru_cache(maxsize=256)
def render_sketch(apn: str, page: int) -> bytes:
    """A deterministic floor-plan PNG for one parcel's sketch page; layouts vary heavily with (apn, page)."""
    rng = _rng("sketch", _apn_key(apn), page)
    w, h = SKETCH_SIZE
    img = Image.new("RGB", SKETCH_SIZE, "white")
    draw = ImageDraw.Draw(img)
    wings = _wings(rng, w, h)
    rooms = [room for wing in wings for room in _split(rng, wing, rng.randint(2, 4))]
    shaded = rng.sample(range(len(rooms)), k=min(len(rooms), rng.randint(1, 3)))
    for i in shaded:  # garages, patios and carports are drawn hatched or toned on real sketches
        x0, y0, x1, y1 = rooms[i]
        if rng.random() < 0.5:
            tone = rng.randint(120, 215)
            draw.rectangle(rooms[i], fill=(tone, tone, tone))
        else:
            _hatch(img, rooms[i], rng.randint(8, 18), rng.choice((-1, 1)))
    for room in rooms:
        draw.rectangle(room, outline="black", width=3)
    for wing in wings:
        draw.rectangle(wing, outline="black", width=6)
    for x0, y0, x1, y1 in rooms:  # door swings: a gap in one wall and a quarter arc
        if min(x1 - x0, y1 - y0) > 70:
            dx, dy = x0 + rng.randint(12, x1 - x0 - 50), y1
            draw.line([(dx, dy), (dx + 32, dy)], fill="white", width=5)
            draw.arc((dx - 32, dy - 32, dx + 32, dy + 32), 270, 360, fill="black", width=1)
    font = ImageFont.load_default(size=14)
    names = rng.sample(ROOM_NAMES, len(ROOM_NAMES))
    for n, (x0, y0, x1, y1) in enumerate(rooms):
        if x1 - x0 > 60 and y1 - y0 > 40:
            label = f"{names[n % len(names)]} {(x1 - x0) // 10}x{(y1 - y0) // 10}"
            draw.text(((x0 + x1) // 2, (y0 + y1) // 2), label, fill="black", font=font, anchor="mm")
    title = ImageFont.load_default(size=20)
    draw.text((16, 14), f"APN {apn}   SKETCH {page}", fill="black", font=title)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()


class MaricopaService:
    """``/maricopa/search/property/``, ``/maricopa/parcel/{apn}`` and ``/maricopa/parcel/{apn}/sketches/``."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.token = TOKEN

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", PREFIX + "/", self._dispatch)]

    def env(self) -> dict[str, str]:
        return {"HOMESHOTS_MARICOPA_BASE_URL": self.server.base_url + PREFIX, "HOMESHOTS_MARICOPA_TOKEN": self.token}

    def _parcels(self) -> list[Listing]:
        """What the assessor knows: listings on this source that have an APN."""
        return [x for x in self.server.listings_for(SOURCE) if x.apn]

    def _dispatch(self, request: Request) -> Response:
        if not secrets.compare_digest(request.headers.get("AUTHORIZATION", "") or "", self.token):
            return json_response(401, {"Message": "Authorization has been denied for this request."})
        path = request.path.removeprefix(PREFIX).rstrip("/")
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            return json_response(400, {"Message": "page must be an integer"})
        if page < 1:
            return json_response(400, {"Message": "page must be 1 or more"})
        if path == "/search/property":
            return self._search(request.query.get("q", ""), page)
        m = re.fullmatch(r"/parcel/([^/]+)(/sketches)?", path)
        if not m:
            return json_response(404, {"Message": f"No HTTP resource was found for {request.path}"})
        parcel = next((x for x in self._parcels() if _apn_key(x.apn or "") == _apn_key(m.group(1))), None)
        if parcel is None:
            return json_response(404, {"Message": "Parcel not found"})
        if SOURCE in parcel.blocked:
            return html_response(200, ERROR_PAGE)
        return self._sketches(parcel, page) if m.group(2) else json_response(200, self._facts(parcel))

    def _search(self, query: str, page: int) -> Response:
        hits = [x for x in self._parcels() if query.strip() and x.matches_address(query)]
        if any(SOURCE in x.blocked for x in hits):
            return html_response(200, ERROR_PAGE)
        rows = hits[(page - 1) * SEARCH_PAGE_SIZE : page * SEARCH_PAGE_SIZE]
        return json_response(
            200,
            {
                "TOTAL": len(hits),
                "Results": [self._row(x) for x in rows],
                "BppResults": [],
                "MobileHomeResults": [],
                "RentalResults": [],
            },
        )

    @staticmethod
    def _row(x: Listing) -> dict[str, Any]:
        return {
            "APN": _apn_key(x.apn or ""),
            "Ownership": _owner(x),
            "SitusAddress": x.address.upper(),
            "SitusCity": x.city.upper(),
            "SitusZip": x.postal_code,
            "PropertyType": "Residential",
            "MCR": _mcr(x),
        }

    @staticmethod
    def _facts(x: Listing) -> dict[str, Any]:
        rng = _rng("facts", x.apn)
        situs = f"{x.address.upper()} {x.city.upper()} AZ {x.postal_code}"
        return {
            "APN": _apn_key(x.apn or ""),
            "Owner": {"Ownership": _owner(x), "MailingAddress": situs},
            "PropertyAddress": situs,
            "SitusAddress": x.address.upper(),
            "SitusCity": x.city.upper(),
            "SitusZip": x.postal_code,
            "MCR": _mcr(x),
            "LotSize": rng.randint(5200, 14000),
            "PropertyUseDescription": "Single Family Parcel",
            "IsResidential": True,
            "YearBuilt": rng.randint(1948, 2015),
            "SketchCount": x.sketches,
        }

    def _sketches(self, x: Listing, page: int) -> Response:
        total = max(0, x.sketches)
        nums = range((page - 1) * SKETCHES_PER_PAGE + 1, min(total, page * SKETCHES_PER_PAGE) + 1)
        apn = _apn_key(x.apn or "")
        pages = [{"Sketch": base64.b64encode(render_sketch(apn, n)).decode(), "PageNum": n, "APN": apn} for n in nums]
        return json_response(200, {"TotalPages": total, "Pages": pages})


def _owner(x: Listing) -> str:
    return f"SANDBOX OWNER {x.listing_key} TR"


def _mcr(x: Listing) -> str:
    rng = _rng("mcr", x.apn)
    return f"{rng.randint(100, 999)}-{rng.randint(10, 99)}"
