"""Named failures. ``RetryableError`` may succeed later; ``PermanentError`` will not."""

from __future__ import annotations


class HomeshotsError(Exception):
    """Base of every error homeshots raises on purpose."""

    kind = "error"


class RetryableError(HomeshotsError):
    """A later attempt may succeed: timeouts, 5xx, 429, a lost connection."""

    kind = "retryable"


class PermanentError(HomeshotsError):
    """Retrying will not help: bad data, 404, a refused address."""

    kind = "permanent"


class SourceError(HomeshotsError):
    """A source failed for one property; carries the source and property for the message."""

    def __init__(self, source: str, property_id: str, message: str, *, retryable: bool,
                 kind: str | None = None) -> None:
        super().__init__(f"{source}: property {property_id}: {message}")
        self.source = source
        self.property_id = property_id
        self.detail = message
        self.retryable = retryable
        self.kind = kind or ("retryable" if retryable else "permanent")
        """What went wrong, for the failure counts: timeout, server_error, throttled, blocked, parse, ..."""


class ParseError(PermanentError):
    """A source answered, but not in the shape we expect."""

    kind = "parse"


class BlockedError(PermanentError):
    """The source refused us (bot wall, 403): loud in the run result, never '0 photos'."""

    kind = "blocked"


class UnsafeURLError(PermanentError):
    """A source-supplied URL points at a private, loopback or link-local address."""

    kind = "unsafe_url"


class ImageError(PermanentError):
    """Bytes that are not a decodable image, or one that is too large."""

    kind = "bad_image"


class DownloadError(HomeshotsError):
    """An image download failed; ``retryable`` tells timeouts/5xx from 404s; ``kind`` names it."""

    def __init__(self, url: str, message: str, *, retryable: bool, kind: str | None = None) -> None:
        # The query may hold a signed-URL token: keep it out of messages and failure records.
        super().__init__(f"{url.split('?', 1)[0]}: {message}")
        self.url = url
        self.retryable = retryable
        self.kind = kind or ("retryable" if retryable else "permanent")


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


class StoreError(RetryableError):
    """The object store failed to read or write (after its own retries)."""

    kind = "store"


class ConfigError(PermanentError):
    """Settings that cannot work together."""

    kind = "config"
