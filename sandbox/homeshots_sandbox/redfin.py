"""Redfin as the sandbox serves it: the two "stingray" JSON endpoints and its CDN's photo variants.

Bodies carry Redfin's ``{}&&`` prefix and envelope (``version``, ``errorMessage``, ``resultCode``,
``payload``). Full-screen photos are WebP at 62.5% of the master width (~1280 px for a 2048 px MLS
master), so the pipeline must merge one picture served at different sizes and encodings. A listing
with "redfin" in ``blocked`` gets a 403 bot-wall page, as Redfin's WAF answers scrapers.
"""

from __future__ import annotations

import re
import zlib
from typing import TYPE_CHECKING, Any

from homeshots_sandbox.http import Handler, Request, Response, html_response, json_response
from homeshots_sandbox.listing import Listing

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

PREFIX = "{}&&"
VERSION = 586
FULL_SCREEN_SCALE = 0.625
"""Redfin's full-screen ('bigphoto') variant is at most ~1280 px wide: 62.5% of a 2048 px master."""
FALLBACK_WIDTH = 2048
CHALLENGE_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Access Denied</title></head>
<body><div id="challenge-container" class="captcha">
<h1>Access to this page has been denied</h1>
<p>We detected unusual traffic from your network. Please complete the captcha to verify you are human.</p>
<div id="captcha-box" data-sitekey="sandbox"></div>
</div></body></html>
"""


def envelope(payload: dict[str, Any] | None, *, code: int = 0, message: str = "Success") -> dict[str, Any]:
    """Redfin's stingray wrapper around every answer."""
    doc: dict[str, Any] = {"version": VERSION, "errorMessage": message, "resultCode": code}
    if payload is not None:
        doc["payload"] = payload
    return doc


class RedfinService:
    """``GET /redfin/stingray/do/location-autocomplete`` and ``.../api/home/details/aboveTheFold``."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/redfin/stingray/do/location-autocomplete", self._autocomplete),
            ("GET", "/redfin/stingray/api/home/details/aboveTheFold", self._above_the_fold),
        ]

    def env(self) -> dict[str, str]:
        return {"HOMESHOTS_REDFIN_BASE_URL": self.server.base_url + "/redfin"}

    # --- helpers ----------------------------------------------------------------------------------
    def _listings(self) -> list[Listing]:
        return [x for x in self.server.listings_for("redfin") if x.redfin_id]

    @staticmethod
    def _ok(payload: dict[str, Any]) -> Response:
        return json_response(200, envelope(payload), prefix=PREFIX)

    @staticmethod
    def _blocked() -> Response:
        return html_response(403, CHALLENGE_PAGE, {"Cache-Control": "no-store"})

    @staticmethod
    def _url(listing: Listing) -> str:
        street = re.sub(r"[^A-Za-z0-9]+", "-", listing.address).strip("-")
        city = re.sub(r"[^A-Za-z0-9]+", "-", listing.city).strip("-")
        return f"/AZ/{city}/{street}-{listing.postal_code}/home/{listing.redfin_id}"

    def _row(self, listing: Listing) -> dict[str, Any]:
        return {
            "id": f"1_{listing.redfin_id}",
            "type": "1",
            "name": listing.address,
            "subName": f"{listing.city}, AZ, USA",
            "url": self._url(listing),
            "active": True,
            "claimedHome": False,
            "invalidMRS": False,
            "businessMarketIds": [22],
            "countryCode": "US",
        }

    # --- endpoints --------------------------------------------------------------------------------
    def _autocomplete(self, request: Request) -> Response:
        """Address rows for the street address; exactMatch when one home matches, as redfin.com answers.

        Like the real service it also lists other homes with the same house number (a near miss the
        client must not take for the wanted one).
        """
        location = request.query.get("location", "").strip()
        if not location:
            return json_response(
                200, envelope(None, code=101, message="Missing required argument: location"), prefix=PREFIX
            )
        hits = [x for x in self._listings() if x.matches_address(location)]
        if any("redfin" in x.blocked for x in hits):
            return self._blocked()
        number = _house_number(location)
        near = [x for x in self._listings() if x not in hits and number and _house_number(x.address) == number]
        payload: dict[str, Any] = {"sections": [], "searchTerm": location}
        rows = [self._row(x) for x in near + hits]
        if rows:
            payload["sections"].append({"rows": rows, "name": "Addresses"})
        if len(hits) == 1:
            payload["exactMatch"] = self._row(hits[0])
        return self._ok(payload)

    def _above_the_fold(self, request: Request) -> Response:
        pid = request.query.get("propertyId", "").strip()
        if not pid.isdigit():
            return json_response(200, envelope(None, code=101, message="Invalid argument: propertyId"), prefix=PREFIX)
        listing = next((x for x in self._listings() if x.redfin_id == pid), None)
        if listing is None:
            return json_response(200, envelope(None, code=1, message="Home not found"), prefix=PREFIX)
        if "redfin" in listing.blocked:
            return self._blocked()
        photos = [self._photo(listing, i, name) for i, name in enumerate(listing.photos)]
        assembled = f"{listing.address}, {listing.city}, AZ {listing.postal_code}"
        payload = {
            "addressSectionInfo": {
                "streetAddress": {"assembledAddress": listing.address},
                "city": listing.city,
                "state": "AZ",
                "zip": listing.postal_code,
                "url": self._url(listing),
                "status": {"displayValue": "Active"},
            },
            "mediaBrowserInfo": {
                "photos": photos,
                "scans": [],
                "videos": [],
                "isHot": False,
                "assembledAddress": assembled,
                "altTextForImage": f"{assembled} - MLS# {listing.listing_key}",
                "previewImage": {"url": photos[0]["photoUrls"]["nonFullScreenPhotoUrl"]} if photos else None,
                "streetView": {"latLong": {"latitude": 33.5, "longitude": -112.0}, "streetViewAvailable": True},
            },
            "propertyId": int(pid),
        }
        return self._ok(payload)

    def _photo(self, listing: Listing, i: int, name: str) -> dict[str, Any]:
        """One media-browser photo: full screen WebP at 62.5% of the master, a smaller JPEG for lists."""
        master_w, master_h = self.server.photo_size(name) or (FALLBACK_WIDTH, round(FALLBACK_WIDTH * 2 / 3))
        full = min(4096, max(16, round(FULL_SCREEN_SCALE * master_w)))
        small = max(16, full // 2)
        variant = self.server.variant_url
        return {
            "photoId": zlib.crc32(f"{listing.redfin_id}/{name}".encode()),
            "photoType": 1,
            "displayLevel": 1,
            "width": master_w,
            "height": master_h,
            "fileName": f"{listing.listing_key}_{i}_0.jpg" if i else f"{listing.listing_key}_0.jpg",
            "photoUrls": {
                "fullScreenPhotoUrl": variant("redfin", name, full, "webp"),
                "nonFullScreenPhotoUrl": variant("redfin", name, small, "jpg"),
                "lightboxListUrl": variant("redfin", name, max(16, full // 4), "jpg"),
            },
            "thumbnailData": {"thumbnailUrl": variant("redfin", name, max(16, full // 8), "jpg")},
        }


def _house_number(address: str) -> str | None:
    m = re.match(r"\s*(\d+)\b", address)
    return m.group(1) if m else None
