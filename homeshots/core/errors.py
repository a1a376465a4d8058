"""Named failures, caught by meaning: ``RetryableError`` may succeed later, ``PermanentError`` will not.

```
HomeshotsError                      .kind names what went wrong; .retryable follows from the class
├── RetryableError                  a later attempt may succeed
│   ├── FetchUnavailableError       timeout, lost connection, 5xx, 429 (after the HTTP stack's retries)
│   ├── SourceUnavailableError      a source's API kept failing that way for one property
│   ├── StoreError                  the object store failed (after its own retries)
│   └── TokenWait                   a source's next token is not due soon: give the worker slot back
└── PermanentError                  retrying will not help
    ├── ConfigError                 settings that cannot work
    ├── InputError                  a row of the properties file (file, row, field)
    ├── ParseError                  a source answered in a shape we do not understand
    ├── ImageError                  bytes that are not a decodable image, or too large
    ├── FetchFailedError            404, 403, too large, too many redirects, a malformed URL
    │   └── UnsafeURLError          the URL points at a private, loopback or link-local address
    └── SourceFailedError           a source refused or broke for one property
        └── SourceBlockedError      its bot wall: loud in the run result, never "0 photos"
```
``FetchError`` and ``SourceError`` are the bases that carry the URL or the source and property, so a
caller can catch "any fetch failure" and still tell retryable from permanent by class.
"""

from __future__ import annotations

from homeshots.core.redact import redact_url


class HomeshotsError(Exception):
    """Base of every error homeshots raises on purpose."""

    kind = "error"

    def __init__(self, message: str = "", *, kind: str | None = None) -> None:
        super().__init__(message)
        if kind:
            self.kind = kind

    @property
    def retryable(self) -> bool:
        """Whether a later attempt may succeed (decided by the class, never by a flag)."""
        return isinstance(self, RetryableError)


class RetryableError(HomeshotsError):
    """A later attempt may succeed: timeouts, 5xx, 429, a lost connection, a store outage."""

    kind = "retryable"


class PermanentError(HomeshotsError):
    """Retrying will not help: bad data, 404, a refused address, a wrong setting."""

    kind = "permanent"


class ConfigError(PermanentError):
    """Settings that cannot work together."""

    kind = "config"


class InputError(PermanentError):
    """A row of the properties file is wrong; names file, row and field."""

    kind = "input"

    def __init__(self, file: str, row: int, field: str | None, message: str) -> None:
        where = f"{file}: row {row}" + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")
        self.file = file
        self.row = row
        self.field = field
        self.message = message


class ParseError(PermanentError):
    """A source answered, but not in the shape we expect."""

    kind = "parse"


class ImageError(PermanentError):
    """Bytes that are not a decodable image, or one that is too large."""

    kind = "bad_image"


class StoreError(RetryableError):
    """The object store failed to read or write (after its own retries)."""

    kind = "store"


class FetchError(HomeshotsError):
    """An HTTP fetch failed. ``url`` is kept for the caller; the message never shows its query."""

    def __init__(self, url: str, message: str, *, kind: str | None = None) -> None:
        # The URL may carry a signature or credentials: messages and failure records get it redacted.
        super().__init__(f"{redact_url(url)}: {message}", kind=kind)
        self.url = url


class FetchUnavailableError(FetchError, RetryableError):
    """Timeout, lost connection, 5xx or 429: the same request may work later."""

    kind = "unavailable"


class FetchFailedError(FetchError, PermanentError):
    """404, 403, a body over the cap, a redirect loop: the same request will fail again."""

    kind = "http_error"


class UnsafeURLError(FetchFailedError):
    """A source-supplied URL points at a private, loopback or link-local address."""

    kind = "unsafe_url"

    def __init__(self, message: str) -> None:
        HomeshotsError.__init__(self, message)
        self.url = ""


class SourceError(HomeshotsError):
    """A source failed for one property; carries the source and property for the message."""

    def __init__(self, source: str, property_id: str, message: str, *, kind: str | None = None) -> None:
        super().__init__(f"{source}: property {property_id}: {message}", kind=kind)
        self.source = source
        self.property_id = property_id
        self.detail = message


class SourceUnavailableError(SourceError, RetryableError):
    """The source kept timing out, failing or throttling: the property may work on a later attempt."""

    kind = "retryable"


class SourceFailedError(SourceError, PermanentError):
    """The source refused the request or answered something unusable."""

    kind = "permanent"


class SourceBlockedError(SourceFailedError):
    """The source refused us with its bot wall (PerimeterX page, 403 challenge)."""

    kind = "blocked"


class TokenWait(RetryableError):
    """The source's cluster-wide token bucket has no token for a while: the task gives its worker slot
    back and comes again after ``delay`` seconds (a Celery retry with a countdown), instead of sleeping."""

    kind = "token_wait"

    def __init__(self, source: str, delay: float) -> None:
        super().__init__(f"{source}: next token in {delay:.1f} s")
        self.source = source
        self.delay = delay
