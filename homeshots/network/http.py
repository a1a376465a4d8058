"""One careful HTTP call for every source: a size cap, bounded retries, and honest errors.

Sources differ in what they ask and how they parse, not in how they survive a flaky network, so the
retry/backoff/size-cap policy lives here once. The caller gets a fully read ``httpx.Response`` for any
status it must judge itself (401, 403, 404 ...) and a ``SourceError`` when the network or the server
kept failing. Nothing here logs headers, bodies or query strings: they can carry tokens and secrets.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from homeshots.core.errors import SourceFailedError, SourceUnavailableError
from homeshots.network.limiter import RateLimiter

log = logging.getLogger(__name__)

BACKOFF_BASE = 0.5
"""First retry waits about this long (seconds); each later one doubles."""
BACKOFF_CAP = 30.0
"""No single backoff wait is longer than this."""
RETRY_AFTER_CAP = 120.0
"""A server's ``Retry-After`` is honoured up to this many seconds, so one 429 cannot park a worker."""

Sleep = Callable[[float], Awaitable[Any]]


def redact_url(url: str | httpx.URL) -> str:
    """The URL without query, fragment or userinfo: safe to put in a log line or an error."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def backoff_delay(attempt: int, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based).

    Half the delay is fixed and half is random, so a herd of workers spreads out while each still
    waits long enough to give the server a breather.
    """
    delay = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    return delay / 2 + rng() * delay / 2


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Parse ``Retry-After`` (delta-seconds or an HTTP date), capped; None when absent or unreadable."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, min(RETRY_AFTER_CAP, seconds))


async def _read_capped(response: httpx.Response, max_bytes: int, *, source: str, property_id: str) -> None:
    """Read the streamed body into the response, refusing to hold more than ``max_bytes``."""
    too_large = SourceFailedError(source, property_id, f"response larger than {max_bytes} bytes", kind="too_large")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    # What httpx's own ``aread()`` does; after this ``.content``/``.json()`` work on a closed stream.
    response._content = b"".join(chunks)


async def fetch(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    source: str,
    property_id: str,
    max_retries: int,
    timeout: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    data: dict[str, str] | None = None,
    auth: httpx.Auth | tuple[str, str] | None = None,
    sleep: Sleep = asyncio.sleep,
    limiter: RateLimiter | None = None,
) -> httpx.Response:
    """Send one request with retries; return the read response unless it is a 5xx/429/network failure.

    Timeouts, transport errors and 5xx back off exponentially; 429 waits ``Retry-After`` when given.
    After ``max_retries`` retries the last failure becomes a retryable ``SourceError`` (the task
    may try again later); a body over ``max_bytes`` is a permanent one. With a ``limiter`` every
    attempt takes a token from the source's cluster-wide bucket, and a 429 pauses the whole cluster.
    """
    safe_url = redact_url(url)
    last_problem, last_kind = "", "retryable"
    for attempt in range(max_retries + 1):
        wait: float | None = None
        if limiter is not None:
            await limiter.acquire()
        try:
            request = client.build_request(
                method, url, headers=headers, params=params, data=data, timeout=httpx.Timeout(timeout)
            )
            response = await client.send(request, auth=auth, stream=True)
            try:
                status = response.status_code
                if status == 429 or status >= 500:
                    last_problem = f"HTTP {status} from {method} {safe_url}"
                    last_kind = "throttled" if status == 429 else "server_error"
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                    if status == 429 and limiter is not None:
                        limiter.pause(wait if wait is not None else backoff_delay(attempt + 2))
                        wait = 0.0  # the next acquire() waits out the cluster-wide pause
                else:
                    await _read_capped(response, max_bytes, source=source, property_id=property_id)
                    return response
            finally:
                await response.aclose()
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise SourceFailedError(source, property_id, f"cannot fetch {safe_url}: {type(exc).__name__}") from exc
        except httpx.TransportError as exc:
            kind = "timeout" if isinstance(exc, httpx.TimeoutException) else type(exc).__name__
            last_problem = f"{kind} on {method} {safe_url}"
            last_kind = "timeout" if kind == "timeout" else "connection"
        except httpx.RequestError as exc:  # too many redirects, undecodable body: retrying won't help
            raise SourceFailedError(source, property_id, f"{type(exc).__name__} on {method} {safe_url}") from exc
        if attempt == max_retries:
            break
        if wait is None:
            wait = backoff_delay(attempt)
        log.warning(
            "%s: property %s: %s; retry %d/%d in %.1fs",
            source,
            property_id,
            last_problem,
            attempt + 1,
            max_retries,
            wait,
        )
        await sleep(wait)
    raise SourceUnavailableError(
        source, property_id, f"{last_problem} (gave up after {max_retries + 1} attempts)", kind=last_kind
    )
