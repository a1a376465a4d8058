"""Phoenix MLS as the sandbox serves it: OAuth2 client credentials + RESO Web API (OData JSON)."""

from __future__ import annotations

import base64
import re
import secrets
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from homeshots_sandbox.http import Handler, Request, Response, json_response
from homeshots_sandbox.listing import Listing

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

STAMP = "2024-05-01T12:00:00Z"
_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_FILTER_FIELDS = {
    "listingkey": "listing_key",
    "unparsedaddress": "address",
    "postalcode": "postal_code",
    "city": "city",
}


class MlsService:
    """``POST /oauth2/token`` and ``GET /reso/odata/Property`` with ``$filter``/``$expand``/paging."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.issued_tokens: list[str] = []
        self._lock = threading.Lock()

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/oauth2/token", self._token), ("GET", "/reso/odata/Property", self._property)]

    def env(self) -> dict[str, str]:
        return {
            "HOMESHOTS_MLS_BASE_URL": self.server.mls_base_url,
            "HOMESHOTS_MLS_TOKEN_URL": self.server.token_url,
            "HOMESHOTS_MLS_CLIENT_ID": self.server.client_id,
            "HOMESHOTS_MLS_CLIENT_SECRET": self.server.client_secret,
        }

    def _token(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "client_credentials":
            return json_response(400, {"error": "unsupported_grant_type"})
        cid, secret = _basic(request) or (form.get("client_id", ""), form.get("client_secret", ""))
        if not (
            secrets.compare_digest(cid, self.server.client_id)
            and secrets.compare_digest(secret, self.server.client_secret)
        ):
            return json_response(401, {"error": "invalid_client", "error_description": "bad client credentials"})
        token = secrets.token_urlsafe(24)
        with self._lock:
            self.issued_tokens.append(token)
        return json_response(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})

    def _authorized(self, header: str) -> bool:
        scheme, _, token = header.partition(" ")
        with self._lock:
            return scheme.lower() == "bearer" and token.strip() in self.issued_tokens

    def _property(self, request: Request) -> Response:
        if not self._authorized(request.headers.get("Authorization", "")):
            return json_response(401, {"error": {"code": "401", "message": "missing or invalid bearer token"}})
        query = request.query
        flt = query.get("$filter", "")
        wanted: dict[str, str] = {}
        for clause in re.split(r"\s+and\s+", flt, flags=re.IGNORECASE) if flt.strip() else []:
            m = _CLAUSE.fullmatch(clause)
            if not m or m.group(1).lower() not in _FILTER_FIELDS:
                return json_response(400, {"error": {"code": "", "message": f"unsupported $filter clause: {clause!r}"}})
            wanted[_FILTER_FIELDS[m.group(1).lower()]] = m.group(2).replace("''", "'")
        try:
            top, skip = int(query.get("$top", self.server.page_size)), int(query.get("$skip", 0))
        except ValueError:
            return json_response(400, {"error": {"code": "", "message": "$top and $skip must be integers"}})
        hits = [
            x
            for x in self.server.listings_for("mls")
            if all(getattr(x, f).lower() == v.lower() for f, v in wanted.items())
        ]
        size = max(1, min(top, self.server.page_size))
        expand = "media" in query.get("$expand", "").lower()
        base = self.server.mls_base_url
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#Property",
            "value": [self._listing_json(x, expand) for x in hits[skip : skip + size]],
        }
        if skip + size < len(hits) and top > size:  # OData: $top caps the total, pages carry the rest
            nxt = query | {"$top": str(top - size), "$skip": str(skip + size)}
            body["@odata.nextLink"] = f"{base}/Property?{urlencode(nxt, quote_via=quote)}"
        return json_response(200, body)

    def _listing_json(self, listing: Listing, expand: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "ListingKey": listing.listing_key,
            "ListingId": listing.listing_key.removeprefix("PHX"),
            "UnparsedAddress": listing.address,
            "City": listing.city,
            "PostalCode": listing.postal_code,
            "StateOrProvince": "AZ",
            "StandardStatus": "Active",
            "ModificationTimestamp": STAMP,
        }
        if expand:
            doc["Media"] = [self._media(listing, i, name) for i, name in enumerate(listing.photos, start=1)]
        return doc

    def _media(self, listing: Listing, order: int, name: str) -> dict[str, Any]:
        width, height = self.server.photo_size(name) or (None, None)
        url = self.server.photo_url(name)
        if listing.mls_scale < 1 and width and height:
            width, height = round(width * listing.mls_scale), round(height * listing.mls_scale)
            url = self.server.variant_url("mls", name, width, "jpg")
        return {
            "MediaKey": f"{listing.listing_key}-M{order}",
            "MediaURL": url,
            "Order": order,
            "MediaCategory": "Photo",
            "MediaType": "image/jpeg",
            "ImageWidth": width,
            "ImageHeight": height,
            "MediaModificationTimestamp": STAMP,
            "ResourceRecordKey": listing.listing_key,
        }


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        cid, _, secret = base64.b64decode(value).decode().partition(":")
    except ValueError:
        return None
    return unquote(cid), unquote(secret)
