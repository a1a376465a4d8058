"""Phoenix MLS as the sandbox serves it: OAuth2 client credentials + RESO Web API (OData JSON)."""

from __future__ import annotations

import base64
import operator
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from homeshots_sandbox.http import Handler, Request, Response, json_response
from homeshots_sandbox.listing import STAMP, Listing
from homeshots_sandbox.snapshot import odata_time

if TYPE_CHECKING:
    from homeshots_sandbox.server import SandboxServer

__all__ = ["STAMP", "MlsService"]

_CLAUSE = re.compile(r"\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*", re.IGNORECASE)
_TIME_CLAUSE = re.compile(
    r"\s*(\w+)\s+(eq|ne|gt|ge|lt|le)\s+(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?(?:Z|[+-]\d\d:\d\d))\s*",
    re.IGNORECASE,
)
"""A DateTimeOffset comparison, the literal unquoted as OData v4 writes it:
``ModificationTimestamp gt 2024-05-01T12:00:00Z`` (replication asks for what changed since)."""
_AND = re.compile(r"\s+and\s+(?=(?:[^']*'[^']*')*[^']*$)", re.IGNORECASE)
"""``and`` outside string literals (an address may contain the word)."""
_FILTER_FIELDS = {
    "listingkey": "listing_key",
    "unparsedaddress": "address",
    "postalcode": "postal_code",
    "city": "city",
}
_TIME_FIELDS = {
    "modificationtimestamp": "modification_timestamp",
    "photoschangetimestamp": "photos_change_timestamp",
}
_ORDER_FIELDS = _TIME_FIELDS | {"listingkey": "listing_key"}
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "ge": operator.ge,
    "lt": operator.lt,
    "le": operator.le,
}
Predicate = Callable[[Listing], bool]


class QueryError(ValueError):
    """A query option the sandbox cannot answer: a 400 as the RESO server gives."""


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _clause(text: str) -> Predicate:
    """One ``$filter`` clause: a string field ``eq 'x'`` (case-insensitive) or a timestamp comparison."""
    m = _CLAUSE.fullmatch(text)
    if m and m.group(1).lower() in _FILTER_FIELDS:
        attr, want = _FILTER_FIELDS[m.group(1).lower()], m.group(2).replace("''", "'").lower()
        return lambda x: str(getattr(x, attr)).lower() == want
    m = _TIME_CLAUSE.fullmatch(text)
    if m and m.group(1).lower() in _TIME_FIELDS:
        attr, compare = _TIME_FIELDS[m.group(1).lower()], _COMPARE[m.group(2).lower()]
        try:
            bound = _instant(m.group(3))
        except ValueError:
            raise QueryError(f"bad DateTimeOffset literal in $filter clause: {text!r}") from None
        return lambda x: compare(_instant(getattr(x, attr)), bound)
    raise QueryError(f"unsupported $filter clause: {text!r}")


def parse_filter(flt: str) -> list[Predicate]:
    """``$filter``: clauses joined by ``and``; each must hold."""
    return [_clause(c) for c in _AND.split(flt)] if flt.strip() else []


def parse_orderby(text: str) -> list[tuple[str, bool]]:
    """``$orderby``: ``Field [asc|desc]`` items, comma-separated, as (attribute, descending)."""
    keys = []
    for item in text.split(",") if text.strip() else []:
        words = item.split()
        if not 1 <= len(words) <= 2 or words[0].lower() not in _ORDER_FIELDS:
            raise QueryError(f"unsupported $orderby item: {item.strip()!r}")
        if len(words) == 2 and words[1].lower() not in ("asc", "desc"):
            raise QueryError(f"unsupported $orderby direction: {words[1]!r}")
        keys.append((_ORDER_FIELDS[words[0].lower()], len(words) == 2 and words[1].lower() == "desc"))
    return keys


def _sort_value(listing: Listing, attr: str) -> Any:
    value = getattr(listing, attr)
    return _instant(value) if attr in _TIME_FIELDS.values() else value


def ordered(listings: list[Listing], keys: list[tuple[str, bool]]) -> list[Listing]:
    """Listings sorted by the ``$orderby`` keys (stable, so the catalog order breaks remaining ties)."""
    result = list(listings)
    for attr, descending in reversed(keys):
        result.sort(key=lambda x, a=attr: _sort_value(x, a), reverse=descending)
    return result


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
        try:
            predicates = parse_filter(query.get("$filter", ""))
            order = parse_orderby(query.get("$orderby", ""))
            top = int(query["$top"]) if "$top" in query else None  # no $top: all of them, page by page
            skip = int(query.get("$skip", 0))
        except QueryError as exc:
            return json_response(400, {"error": {"code": "", "message": str(exc)}})
        except ValueError:
            return json_response(400, {"error": {"code": "", "message": "$top and $skip must be integers"}})
        hits = ordered([x for x in self.server.listings_for("mls") if all(p(x) for p in predicates)], order)
        size = max(1, min(top if top is not None else self.server.page_size, self.server.page_size))
        expand = "media" in query.get("$expand", "").lower()
        base = self.server.mls_base_url
        body: dict[str, Any] = {
            "@odata.context": f"{base}/$metadata#Property",
            "value": [self._listing_json(x, expand) for x in hits[skip : skip + size]],
        }
        if skip + size < len(hits) and (top is None or top > size):  # $top caps the total, pages carry the rest
            nxt = query | {"$skip": str(skip + size)} | ({} if top is None else {"$top": str(top - size)})
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
            "ListPrice": listing.price,
            "ModificationTimestamp": listing.modification_timestamp,
            "PhotosChangeTimestamp": listing.photos_change_timestamp,
            "PhotosCount": len(listing.photos),
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
            "MediaKey": self.server.media_key(name) or f"{listing.listing_key}-M{order}",
            "MediaURL": url,
            "Order": order,
            "MediaCategory": "Photo",
            "MediaType": "image/jpeg",
            "ImageWidth": width,
            "ImageHeight": height,
            "MediaModificationTimestamp": odata_time(self.server.photo_time(name)),
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
