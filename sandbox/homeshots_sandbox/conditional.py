"""HTTP validators for photos: strong ETags, Last-Modified and the conditional GET that answers 304.

Nightly runs re-check photos they already hold; a CDN answers ``304 Not Modified`` when the
validators match, and the sandbox must too, so the cost of an unchanged photo is measurable.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

_TAG = re.compile(r'\s*(?:W/)?"([^"]*)"\s*(?:,|$)')


def etag_of(data: bytes) -> str:
    """A strong ETag: a digest of exactly the bytes served, so new bytes always mean a new tag."""
    return '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def http_date(moment: datetime) -> str:
    """An IMF-fixdate (``Wed, 01 May 2024 12:00:00 GMT``), the only form Last-Modified may take."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0), usegmt=True)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively, from ``http.server``'s message or a plain dict."""
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), None)
    return value


def etag_matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison: ``*`` or any listed tag with the same opaque value, ``W/`` or not."""
    text = if_none_match.strip()
    if text == "*":
        return True
    opaque = etag.removeprefix("W/").strip('"')
    pos, tags = 0, []
    while pos < len(text):
        m = _TAG.match(text, pos)
        if m is None:  # a malformed list: no validator we can trust in it
            return False
        tags.append(m.group(1))
        pos = m.end()
    return opaque in tags


def not_modified(headers: Mapping[str, str], etag: str, last_modified: datetime) -> bool:
    """Whether a GET with these headers gets 304: If-None-Match decides when present, else If-Modified-Since."""
    inm = header(headers, "If-None-Match")
    if inm is not None:
        return etag_matches(inm, etag)
    ims = header(headers, "If-Modified-Since")
    if not ims:
        return False
    try:
        since = parsedate_to_datetime(ims)
    except (TypeError, ValueError):  # an unparsable date is ignored, as RFC 9110 says
        return False
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    return since >= last_modified.astimezone(UTC).replace(microsecond=0)
