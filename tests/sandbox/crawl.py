"""Read a running sandbox the way a client does, over HTTP: RESO pages, Zillow pages, Redfin JSON, photos.

The tests compare what the server serves before and after a night with the world's ground truth, so
the crawl records everything a nightly run could notice: documents, URLs, bytes and validators.
"""

from __future__ import annotations

import hashlib
import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
from homeshots_sandbox import SandboxServer, photo_key

_NEXT_DATA = re.compile(r'<script id="__NEXT_DATA__" type="application/json">(.*?)</script>', re.DOTALL)


@dataclass(frozen=True)
class Fetched:
    """One photo answer: its validators and a digest of its bytes."""

    status: int
    etag: str | None
    last_modified: str | None
    sha256: str
    data: bytes


def token(client: httpx.Client, server: SandboxServer) -> str:
    form = {"grant_type": "client_credentials", "client_id": server.client_id, "client_secret": server.client_secret}
    response = client.post(server.token_url, data=form)
    response.raise_for_status()
    return response.json()["access_token"]


def reso_pages(client: httpx.Client, server: SandboxServer, params: dict[str, str]) -> list[dict[str, Any]]:
    """Every page of a Property query, following ``@odata.nextLink`` until the last page."""
    headers = {"Authorization": f"Bearer {token(client, server)}"}
    pages, url, query = [], server.mls_base_url + "/Property", params
    while url:
        response = client.get(url, params=query, headers=headers)
        assert response.status_code == 200, response.text
        pages.append(response.json())
        url, query = pages[-1].get("@odata.nextLink"), None
        assert len(pages) < 1000, "paging loop"
    return pages


def reso_listings(client: httpx.Client, server: SandboxServer, params: dict[str, str]) -> list[dict[str, Any]]:
    return [doc for page in reso_pages(client, server, params) for doc in page["value"]]


def zillow_photos(client: httpx.Client, server: SandboxServer, slug: str, zpid: str) -> tuple[str, list[str]]:
    """(page HTML, the widest JPEG URL of each photo in order) of a home-details page."""
    response = client.get(f"{server.base_url}/zillow/homedetails/{slug}/{zpid}_zpid/")
    assert response.status_code == 200, response.text
    data = json.loads(_NEXT_DATA.search(response.text).group(1))  # type: ignore[union-attr]
    cache = json.loads(data["props"]["pageProps"]["componentProps"]["gdpClientCache"])
    prop = next(v["property"] for k, v in cache.items() if k.startswith("ForSaleShopperPlatformFullRenderQuery"))
    return response.text, [
        max(p["mixedSources"]["jpeg"], key=lambda s: s["width"])["url"] for p in prop["responsivePhotos"]
    ]


def redfin_photos(client: httpx.Client, server: SandboxServer, redfin_id: str) -> tuple[str, list[str]]:
    """(JSON text, the full-screen WebP URL of each photo in order) of Redfin's aboveTheFold answer."""
    response = client.get(f"{server.base_url}/redfin/stingray/api/home/details/aboveTheFold?propertyId={redfin_id}")
    assert response.status_code == 200, response.text
    payload = json.loads(response.text.removeprefix("{}&&"))["payload"]
    return response.text, [p["photoUrls"]["fullScreenPhotoUrl"] for p in payload["mediaBrowserInfo"]["photos"]]


def fetch(client: httpx.Client, url: str, **headers: str) -> Fetched:
    response = client.get(url, headers={k.replace("_", "-"): v for k, v in headers.items()})
    return Fetched(
        response.status_code,
        response.headers.get("etag"),
        response.headers.get("last-modified"),
        hashlib.sha256(response.content).hexdigest(),
        response.content,
    )


@dataclass
class Crawl:
    """Everything served for every listing: documents per source, photo URLs per source, every photo's answer."""

    documents: dict[tuple[str, str], str]
    """(listing key, source) -> the RESO listing JSON, Zillow page or Redfin JSON."""
    urls: dict[tuple[str, str], list[str]]
    """(listing key, source) -> photo URLs in the order served."""
    photos: dict[str, Fetched]
    """URL -> its answer."""

    def identities(self, key: str, source: str) -> list[str]:
        return [photo_key(u) for u in self.urls[(key, source)]]

    def etags(self, key: str, source: str) -> dict[str, str | None]:
        return {photo_key(u): self.photos[u].etag for u in self.urls[(key, source)]}


def crawl(client: httpx.Client, server: SandboxServer) -> Crawl:
    """Read every listing from the MLS (all pages, Media expanded), Zillow and Redfin, then every photo."""
    documents: dict[tuple[str, str], str] = {}
    urls: dict[tuple[str, str], list[str]] = {}
    for doc in reso_listings(client, server, {"$expand": "Media", "$orderby": "ListingKey"}):
        documents[(doc["ListingKey"], "mls")] = json.dumps(doc, sort_keys=True)
        urls[(doc["ListingKey"], "mls")] = [m["MediaURL"] for m in sorted(doc["Media"], key=lambda m: m["Order"])]
    for listing in server.listings:
        if "zillow" in listing.sources:
            documents[(listing.listing_key, "zillow")], urls[(listing.listing_key, "zillow")] = zillow_photos(
                client, server, listing.slug, listing.zpid or ""
            )
        if "redfin" in listing.sources:
            documents[(listing.listing_key, "redfin")], urls[(listing.listing_key, "redfin")] = redfin_photos(
                client, server, listing.redfin_id or ""
            )
    every = [url for found in urls.values() for url in found]
    with ThreadPoolExecutor(4) as pool:  # the server is threaded; first reads of CDN copies cost a resize each
        photos = dict(zip(every, pool.map(lambda url: fetch(client, url), every), strict=True))
    return Crawl(documents, urls, photos)
