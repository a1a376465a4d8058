"""One redaction for URLs, used by every record, message, report and log line.

Listing sources hand out signed media URLs (``X-Amz-Signature=...``, ``token=...``) and some put
credentials in the user-info part. Those must never reach a failure record, the manifest, the
report or a worker's log. What stays is what a person needs to find the photo again: scheme, host,
path and the harmless query parameters.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

REDACTED = "REDACTED"
_SECRET_NAME = re.compile(
    r"(sig|signature|token|key|secret|password|passwd|pwd|auth|credential|session|sas|policy|expires_sig"
    r"|x-amz-|x-goog-|awsaccesskeyid|client_secret|code|jwt|bearer)",
    re.IGNORECASE,
)
"""A query parameter whose name contains one of these is treated as a secret."""
_USERINFO = re.compile(r"//[^/?#]*@")
_MAX_LENGTH = 2048


def is_secret_param(name: str) -> bool:
    """Whether a query parameter name looks like it carries a credential or a signature."""
    return bool(_SECRET_NAME.search(name))


def redact_url(url: object) -> str:
    """``url`` without user-info and with secret-looking query values replaced by ``REDACTED``.

    Never raises: a URL too broken to parse is cut at its query, so nothing after ``?`` survives.
    """
    text = str(url)
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{host}:{parts.port}" if parts.port is not None else host
        query = parse_qsl(parts.query, keep_blank_values=True)
        safe = [(k, REDACTED if is_secret_param(k) else v) for k, v in query]
        out = urlunsplit((parts.scheme, netloc, parts.path, urlencode(safe, safe="/:,"), ""))
    except ValueError:  # a port out of range, a malformed IPv6 literal: keep only what precedes the query
        out = _USERINFO.sub("//", text.split("?", 1)[0].split("#", 1)[0], count=1)
    return out if len(out) <= _MAX_LENGTH else out[:_MAX_LENGTH] + "..."


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def redact_text(text: str) -> str:
    """Free text (an exception's message) with every URL in it redacted."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
