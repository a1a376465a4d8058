"""What a store is: a place for files under '/'-separated keys, images written create-only.

Image writes are create-only and content-addressed, so a task that runs twice writes nothing
twice: a local file is linked into place atomically, an S3 object is put with ``If-None-Match: *``
(HTTP 412 means it is already there).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator


class Store(ABC):
    """Where files live. Keys are '/'-separated relative paths."""

    @abstractmethod
    def put(self, key: str, data: bytes, *, overwrite: bool = False) -> bool:
        """Write ``data``; returns False when ``overwrite`` is off and the key already exists."""

    @abstractmethod
    def get(self, key: str) -> bytes: ...

    @abstractmethod
    def put_file(self, key: str, path: str) -> None:
        """Upload a (possibly large) local file to ``key``, replacing it; streamed, not read into memory."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is fine (deletes are retried after crashes)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]: ...

    @abstractmethod
    def location(self, key: str = "") -> str:
        """Where a person finds ``key``: a path or an ``s3://`` URI."""
