"""Zillow as the sandbox serves it: Next.js home-details pages, address search, and the PerimeterX wall.

The page carries what the real one does for photos: ``__NEXT_DATA__`` with a double-encoded
``gdpClientCache`` whose property lists ``responsivePhotos[].mixedSources.jpeg[]`` at three widths,
the widest 75% of the master photo (Zillow's 1536 px against the MLS's 2048 px).
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

from homeshots_sandbox.http import Handler, Request, Response, html_response
from homeshots_sandbox.listing import Listing

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

PREFIX = "/zillow"
SCALES = (0.1875, 0.375, 0.75)
"""Zillow's copies of a photo as fractions of the master width (384/768/1536 of a 2048 px master)."""
DEFAULT_WIDTH = 2048
"""Assumed master width of a photo the sandbox lists but does not have (its CDN copies 404)."""
BUILD_ID = "hdp-sandbox-2024.05.01"
_HOME = re.compile(r"/zillow/homedetails/(?:([^/]+)/)?(\d+)_zpid/?")
_SEARCH = re.compile(r"/zillow/homes/(.+)_rb/?", re.DOTALL)

PX_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Access to this page has been denied</title>
<script>window._pxAppId = 'PXsandbox1'; window._pxJsClientSrc = '/sandbox1/init.js';
window._pxFirstPartyEnabled = true; window._pxHostUrl = '/sandbox1/xhr';</script>
</head><body>
<section class="page-title"><h1>Please verify you're a human to continue.</h1></section>
<div class="px-captcha-error-container">
  <p>Press &amp; Hold to confirm you are a human (and not a bot).</p>
  <div id="px-captcha"></div>
  <p class="px-ref">Reference ID 5f2d8c1e-0000-11ef-sand-box000000</p>
</div>
<script src="/sandbox1/captcha/captcha.js?a=c&amp;m=0"></script>
</body></html>
"""


def _script_json(doc: Any) -> str:
    """JSON as Next.js puts it in a script tag: ``<``, ``>`` and ``&`` escaped so no tag can end early."""
    text = json.dumps(doc, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


class ZillowService:
    """``/zillow/homedetails/<slug>/<zpid>_zpid/`` pages and ``/zillow/homes/<address>_rb/`` search."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("GET", f"{PREFIX}/homedetails/", self._home), ("GET", f"{PREFIX}/homes/", self._search)]

    def env(self) -> dict[str, str]:
        return {"HOMESHOTS_ZILLOW_BASE_URL": self.server.base_url + PREFIX}

    def home_path(self, listing: Listing) -> str:
        return f"{PREFIX}/homedetails/{listing.slug}/{listing.zpid}_zpid/"

    def _listings(self) -> list[Listing]:
        return [x for x in self.server.listings_for("zillow") if x.zpid]

    # --- handlers ----------------------------------------------------------------------------------
    def _home(self, request: Request) -> Response:
        m = _HOME.fullmatch(request.path)
        listing = next((x for x in self._listings() if m and x.zpid == m.group(2)), None)
        if m is None or listing is None:
            return html_response(404, _shell("Page not found | Zillow", "<h1>This page could not be found.</h1>"))
        if "zillow" in listing.blocked:
            return html_response(200, PX_PAGE)
        if m.group(1) != listing.slug:  # a stale or missing slug: Zillow redirects to the canonical page
            return html_response(301, "", {"Location": self.server.base_url + self.home_path(listing)})
        return html_response(200, self._home_page(listing))

    def _search(self, request: Request) -> Response:
        m = _SEARCH.fullmatch(request.path)
        query = m.group(1) if m else ""
        listing = next((x for x in self._listings() if query and x.matches_address(query)), None)
        if listing is not None:
            return html_response(301, "", {"Location": self.server.base_url + self.home_path(listing)})
        data = {
            "props": {
                "pageProps": {
                    "searchPageState": {
                        "queryState": {"usersSearchTerm": query, "isMapVisible": True},
                        "cat1": {"searchResults": {"listResults": [], "mapResults": []}},
                    }
                },
                "__N_SSP": True,
            },
            "page": "/homes/[...searchQueryState]",
            "query": {},
            "buildId": BUILD_ID,
            "gssp": True,
        }
        title = f"{html.escape(query)} Real Estate &amp; Homes For Sale | Zillow"
        return html_response(200, _shell(title, "<h1>No matching results</h1>", data))

    # --- the home page ----------------------------------------------------------------------------------
    def _photo(self, name: str) -> dict[str, Any]:
        master = self.server.upright_width(name) or DEFAULT_WIDTH
        widths = [round(master * s) for s in SCALES]
        jpeg = [{"url": self.server.variant_url("zillow", name, w, "jpg"), "width": w} for w in widths]
        webp = [{"url": self.server.variant_url("zillow", name, w, "webp"), "width": w} for w in widths]
        return {"caption": "", "subjectType": None, "url": jpeg[1]["url"], "mixedSources": {"jpeg": jpeg, "webp": webp}}

    def _home_page(self, listing: Listing) -> str:
        zpid = int(listing.zpid or 0)
        street, city, zipcode = listing.address, listing.city, listing.postal_code
        photos = [self._photo(name) for name in listing.photos]
        prop = {
            "zpid": zpid,
            "streetAddress": street,
            "city": city,
            "state": "AZ",
            "zipcode": zipcode,
            "address": {"streetAddress": street, "city": city, "state": "AZ", "zipcode": zipcode},
            "homeStatus": "FOR_SALE",
            "price": listing.price,
            "currency": "USD",
            "bedrooms": 3,
            "bathrooms": 2,
            "livingArea": 1850,
            "homeType": "SINGLE_FAMILY",
            "hdpUrl": self.home_path(listing).removeprefix(PREFIX),
            "photoCount": len(photos),
            "responsivePhotos": photos,
            "attributionInfo": {"mlsId": listing.listing_key.removeprefix("PHX"), "mlsName": "ARMLS"},
        }
        variables = {
            "zpid": zpid,
            "contactFormRenderParameter": {"zpid": zpid, "platform": "desktop", "isDoubleScroll": True},
        }
        cache = {
            "ForSaleShopperPlatformFullRenderQuery" + json.dumps(variables, separators=(",", ":")): {"property": prop},
            f'VariantQuery{{"zpid":{zpid},"altId":null}}': {"property": {"zpid": zpid, "altId": None}},
        }
        data = {
            "props": {
                "pageProps": {
                    "componentProps": {
                        "gdpClientCache": json.dumps(cache, separators=(",", ":")),
                        "zpid": zpid,
                        "renderedPage": "fullPage",
                    }
                },
                "__N_SSP": True,
            },
            "page": "/homedetails/[...slug]",
            "query": {"slug": [listing.slug, f"{zpid}_zpid"]},
            "buildId": BUILD_ID,
            "isFallback": False,
            "gssp": True,
            "customServer": True,
        }
        full = f"{street}, {city}, AZ {zipcode}"
        body = (
            f'<div class="hdp-header"><h1>{html.escape(full)}</h1></div>'
            f'<div class="media-stream">{len(photos)} photos</div>'
        )
        return _shell(
            f"{html.escape(full)} | MLS #{html.escape(listing.listing_key)} | Zillow",
            body,
            data,
            canonical=self.server.base_url + self.home_path(listing),
        )


def _shell(title: str, body: str, data: dict[str, Any] | None = None, canonical: str | None = None) -> str:
    """A Next.js server-rendered document: head, the rendered ``#__next`` tree, then ``__NEXT_DATA__``."""
    link = f'<link rel="canonical" href="{html.escape(canonical)}"/>' if canonical else ""
    script = (
        f'<script id="__NEXT_DATA__" type="application/json">{_script_json(data)}</script>' if data is not None else ""
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charSet="utf-8"/><title>{title}</title>{link}'
        f'<meta name="viewport" content="width=device-width"/>'
        f'<script src="/_next/static/chunks/main-sandbox.js" defer=""></script></head>'
        f'<body><div id="__next"><main>{body}</main></div>{script}</body></html>'
    )
