"""The one HTTP stack: every source request and every image download goes through ``Fetcher.fetch``.

One request, at most ``1 + retries`` attempts, each of them:
* takes a token from the source's cluster-wide rate limiter (API requests; a 429 pauses everyone);
* follows redirects by hand, running the URL guard on every hop and connecting to the exact address
  the guard checked (``Host`` header and TLS name kept), so DNS rebinding cannot move it inside;
* reads the body through ``BoundedDecoder``: a cap on *decoded* bytes, enforced while decoding, with
  unknown encodings refused;
* runs under a total deadline (connect, headers and body together) on top of httpx's per-read
  timeout, so a server dribbling one byte a second costs at most the deadline.

Retries live here and only here, for the failures a later attempt may fix (timeouts, lost
connections, 5xx, 429), with exponential backoff and jitter (``tenacity``) or the server's
``Retry-After``. A request that ran out its deadline is not retried: a slow sender stays slow.
Nothing here logs a URL unredacted, a header or a body.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin

import httpx
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from homeshots.core.errors import FetchError, FetchFailedError, FetchUnavailableError
from homeshots.core.redact import redact_url
from homeshots.core.settings import Settings
from homeshots.network.decoding import ACCEPT_ENCODING, BodyTooLarge, BoundedDecoder, EncodingError
from homeshots.network.limiter import RateLimiter
from homeshots.network.urlguard import Target, URLGuard

log = logging.getLogger(__name__)
for _chatty in ("httpx", "httpcore"):
    # httpx logs every request at INFO with its full URL (signatures included): only warnings pass.
    logging.getLogger(_chatty).setLevel(logging.WARNING)

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
BACKOFF_BASE = 0.5
"""First retry waits about this long (seconds); each later one doubles."""
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 120.0
"""A server's ``Retry-After`` is honoured up to this many seconds, so one 429 cannot park a worker."""

Sleep = Callable[[float], Awaitable[Any]]
OnBytes = Callable[[int], Awaitable[None]]
"""Told of every decoded piece of the body as it arrives (a memory budget may make it wait)."""
Observe = Callable[[float, int], None]
"""Told after every attempt's response (each hop): (seconds to its headers, status; 0 when none came). Never raises."""
RedirectRule = Callable[[str, str], str | None]
"""(from_url, to_url) -> None to follow, or why not (the refusal's message). Asked on every hop."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """The limits of one kind of request (a source's API call, an image download)."""

    timeout: float
    """Seconds per connect and per read (httpx's timeouts)."""
    deadline: float
    """Seconds for the whole request: connect, headers and body, redirects included."""
    max_bytes: int
    """Largest decoded body accepted."""
    retries: int
    max_redirects: int = 5

    @property
    def worst_case_seconds(self) -> float:
        """Every attempt running out its deadline, plus the longest backoffs between them."""
        return (self.retries + 1) * self.deadline + sum(_backoff_cap(a) for a in range(self.retries))


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fully read response: what callers judge (status, headers, body), never a live stream."""

    url: str
    status_code: int
    headers: httpx.Headers
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(_charset(self.headers.get("content-type", "")), errors="replace")

    @property
    def where(self) -> str:
        """'HTTP 404 from https://host/path' for messages (URL redacted)."""
        return f"HTTP {self.status_code} from {redact_url(self.url)}"


def api_policy(settings: Settings, source: str) -> FetchPolicy:
    """How a request to ``source``'s API is bounded: its timeout, size cap and retries."""
    policy = settings.policy(source)
    return FetchPolicy(
        timeout=policy.timeout,
        deadline=settings.request_deadline,
        max_bytes=policy.max_response_bytes,
        retries=policy.max_retries,
        max_redirects=settings.max_redirects,
    )


def image_policy(settings: Settings) -> FetchPolicy:
    """How one image download is bounded."""
    return FetchPolicy(
        timeout=settings.download_timeout,
        deadline=settings.download_deadline,
        max_bytes=settings.max_image_bytes,
        retries=settings.download_retries,
        max_redirects=settings.max_redirects,
    )


def source_guard(settings: Settings, source: str) -> URLGuard:
    """The URL guard of one source: the operator's allow-list, and its configured API origins trusted."""
    return URLGuard(settings.allow_private_hosts, trusted_origins=list(settings.policy(source).base_urls))


class _Retry(FetchUnavailableError):
    """A retryable status, carrying the wait the server asked for."""

    def __init__(self, url: str, status: int, retry_after: float | None) -> None:
        kind = "throttled" if status == 429 else "server_error"
        super().__init__(url, f"HTTP {status}", kind=kind)
        self.status = status
        self.retry_after = retry_after


class Fetcher:
    """Fetches over one source's HTTP client (its User-Agent and proxy) with its guard and limiter."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        guard: URLGuard,
        *,
        limiter: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        observe: Observe | None = None,
    ) -> None:
        self.client = client
        self.observe = observe
        self.guard = guard
        self.limiter = limiter
        self._sleep = sleep
        self._rng = rng

    async def fetch(
        self,
        url: str,
        policy: FetchPolicy,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        follow: RedirectRule | None = None,
        rate_limited: bool = True,
        on_bytes: OnBytes | None = None,
        source_supplied: bool = False,
    ) -> Fetched:
        """One request with retries; returns any status except 5xx/429, which are retried, then raised.

        ``follow`` decides which redirects are followed (None: none, the 3xx is returned); ``on_bytes``
        hears of the decoded body as it arrives; ``source_supplied`` (a photo URL from a listing) means
        even the source's own configured origin must pass the URL guard. Raises ``FetchUnavailableError`` (retryable) or
        ``FetchFailedError`` (not), both with a ``kind``.
        """
        if params:
            url = str(httpx.URL(url).copy_merge_params(params))
        limiter = self.limiter if rate_limited else None
        request = _Request(url, policy, method, headers or {}, data, follow, on_bytes, limiter, not source_supplied)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(policy.retries + 1),
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if limiter is not None:
                    await limiter.acquire()  # outside the deadline: waiting for a token is not the server's fault
                return await self._attempt(request)
        raise AssertionError("unreachable: tenacity reraises the last error")  # pragma: no cover

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        number = state.attempt_number - 1
        if isinstance(error, _Retry) and error.status == 429 and self.limiter is not None:
            self.limiter.pause(error.retry_after if error.retry_after is not None else backoff_delay(number + 2))
            return 0.0  # the next token waits out the cluster-wide pause
        if isinstance(error, _Retry) and error.retry_after is not None:
            return error.retry_after
        return backoff_delay(number, rng=self._rng)

    async def _attempt(self, request: _Request) -> Fetched:
        deadline = request.policy.deadline
        try:
            async with asyncio.timeout(deadline) as timeout:
                return await self._follow(request, timeout)
        except TimeoutError:
            raise FetchUnavailableError(
                request.url, f"no complete answer within the {deadline:g} s deadline", kind="deadline"
            ) from None

    async def _follow(self, request: _Request, timeout: asyncio.Timeout) -> Fetched:
        current, method, data = request.url, request.method, request.data
        for hop in range(request.policy.max_redirects + 1):
            if hop and request.limiter is not None:  # every hop to a source takes a token; the wait is not
                waited = await request.limiter.acquire()  # the server's time, so the deadline moves with it
                if (when := timeout.when()) is not None and waited:
                    timeout.reschedule(when + waited)
            target = await self.guard.resolve(current, trust_configured=request.trust_configured)
            response = await self._send(target, request.policy, method, request.headers, data)
            try:
                status = response.status_code
                location = response.headers.get("location")
                if status in REDIRECT_STATUS and request.follow is not None and location:
                    following = _join(current, location)
                    refusal = request.follow(current, following)
                    if refusal is not None:
                        raise FetchFailedError(request.url, refusal, kind="redirect")
                    current = following
                    if status == 303 or (status in (301, 302) and method == "POST"):
                        method, data = "GET", None
                    continue
                if status in RETRYABLE_STATUS:
                    raise _Retry(current, status, retry_after_seconds(response.headers.get("retry-after")))
                body = await _read(response, current, request.policy.max_bytes, request.on_bytes)
                return Fetched(current, status, response.headers, body)
            finally:
                await response.aclose()
        raise FetchFailedError(request.url, f"more than {request.policy.max_redirects} redirects", kind="redirect")

    async def _send(
        self, target: Target, policy: FetchPolicy, method: str, headers: dict[str, str], data: dict[str, str] | None
    ) -> httpx.Response:
        """Send to the address the guard checked; transport failures become named fetch errors."""
        started, status = time.monotonic(), 0
        try:
            request = self.client.build_request(
                method,
                _pinned_url(target),
                headers=_headers(target, headers),
                data=data,
                timeout=httpx.Timeout(policy.timeout),
                extensions=_tls_name(target),
            )
            response = await self.client.send(request, stream=True, follow_redirects=False)
            status = response.status_code
            return response
        except httpx.TimeoutException as exc:
            raise FetchUnavailableError(target.url, f"timed out ({type(exc).__name__})", kind="timeout") from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol, ValueError, UnicodeError) as exc:
            raise FetchFailedError(target.url, f"malformed URL: {exc}", kind="bad_url") from None
        except (httpx.TransportError, OSError) as exc:
            raise FetchUnavailableError(
                target.url, f"connection failed ({type(exc).__name__})", kind="connection"
            ) from None
        except ExceptionGroup as group:  # happy eyeballs may fail every address at once
            raise FetchUnavailableError(
                target.url, f"connection failed ({len(group.exceptions)} errors)", kind="connection"
            ) from None
        finally:
            if self.observe is not None:
                self.observe(time.monotonic() - started, status)


@dataclass(frozen=True, slots=True)
class _Request:
    """What one ``fetch`` call asked for, carried through its attempts and redirects."""

    url: str
    policy: FetchPolicy
    method: str
    headers: dict[str, str]
    data: dict[str, str] | None
    follow: RedirectRule | None
    on_bytes: OnBytes | None
    limiter: RateLimiter | None
    trust_configured: bool


def _retryable(error: BaseException) -> bool:
    """Retried: a failure a later attempt may fix, except a deadline overrun (a slow sender stays slow)."""
    return isinstance(error, FetchUnavailableError) and error.kind != "deadline"


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("%s; retry %d in %.1fs", error, state.attempt_number, wait)


async def _read(response: httpx.Response, url: str, max_bytes: int, on_bytes: OnBytes | None) -> bytes:
    """The decoded body, refused past ``max_bytes`` (declared, on the wire or decoded)."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchFailedError(url, f"response larger than {max_bytes} bytes ({declared} declared)", kind="too_large")
    try:
        decoder = BoundedDecoder(response.headers.get("content-encoding"), max_bytes)
        wire = 0
        async for raw in _raw(response):
            wire += len(raw)
            if wire > max_bytes:
                raise BodyTooLarge(f"body passed {max_bytes} bytes on the wire")
            before = decoder.size
            decoder.feed(raw)
            if on_bytes is not None and decoder.size > before:
                await on_bytes(decoder.size - before)
        before = decoder.size
        body = decoder.finish()
        if on_bytes is not None and decoder.size > before:
            await on_bytes(decoder.size - before)
        return body
    except BodyTooLarge as exc:
        raise FetchFailedError(url, f"response larger than {max_bytes} bytes ({exc})", kind="too_large") from None
    except EncodingError as exc:
        raise FetchFailedError(url, str(exc), kind="bad_encoding") from None
    except httpx.TimeoutException as exc:
        raise FetchUnavailableError(url, f"timed out reading the body ({type(exc).__name__})", kind="timeout") from None
    except (httpx.TransportError, OSError) as exc:
        raise FetchUnavailableError(
            url, f"connection lost reading the body ({type(exc).__name__})", kind="connection"
        ) from None


async def _raw(response: httpx.Response) -> AsyncIterator[bytes]:
    """The body as it came over the wire (still encoded); a response built in memory (a test's mock
    transport) has already been read, so its bytes come whole."""
    if response.is_stream_consumed:
        yield response.content
        return
    async for chunk in response.aiter_raw():
        yield chunk


def _join(base: str, location: str) -> str:
    try:
        return urljoin(base, location.strip())
    except ValueError as exc:
        raise FetchFailedError(base, f"malformed redirect: {exc}", kind="redirect") from None


def _pinned_url(target: Target) -> httpx.URL:
    url = httpx.URL(target.url)
    return url if target.ip is None else url.copy_with(host=str(target.ip))


def _headers(target: Target, headers: dict[str, str]) -> dict[str, str]:
    out = {"Accept-Encoding": ACCEPT_ENCODING, **headers}
    if target.ip is not None:
        default = 443 if target.scheme == "https" else 80
        out["Host"] = target.host if target.port == default else f"{target.host}:{target.port}"
    return out


def _tls_name(target: Target) -> dict[str, Any]:
    """Connecting to an IP over TLS still presents, and verifies, the host's name."""
    return {"sni_hostname": target.host} if target.ip is not None and target.scheme == "https" else {}


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset" and value.strip():
            try:
                return codecs.lookup(value.strip().strip('"')).name
            except LookupError:
                break
    return "utf-8"


def _backoff_cap(attempt: int) -> float:
    return min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))


def backoff_delay(attempt: int, *, rng: Callable[[], float] = random.random) -> float:
    """Exponential backoff with jitter for retry number ``attempt`` (0-based): half fixed, half random,
    so a herd of workers spreads out while each still gives the server a breather."""
    delay = _backoff_cap(attempt)
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


__all__ = [
    "FetchError",
    "FetchPolicy",
    "Fetched",
    "Fetcher",
    "RedirectRule",
    "api_policy",
    "backoff_delay",
    "image_policy",
    "retry_after_seconds",
    "source_guard",
]
