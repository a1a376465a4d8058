"""Object store for raw, processed and metadata files: a local folder or S3 (boto3).

Image writes are create-only and content-addressed, so a task that runs twice writes nothing
twice: a local file is linked into place atomically, an S3 object is put with ``If-None-Match: *``
(HTTP 412 means it is already there).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from homeshots.errors import ConfigError, StoreError
from homeshots.settings import Settings

EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "MPO": "jpg", "TIFF": "tif"}
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "gif": "image/gif",
                 "tif": "image/tiff", "json": "application/json", "jsonl": "application/x-ndjson"}


def image_key(kind: str, sha256: str, fmt: str) -> str:
    """Content-addressed key: ``processed/ab/abcdef....png`` (two-level fan-out keeps folders small)."""
    ext = EXTENSIONS.get(fmt.upper(), "bin")
    return f"{kind}/{sha256[:2]}/{sha256}.{ext}"


def sniff_format(data: bytes) -> str:
    """The image format from its first bytes (names the raw file's extension)."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    return "BIN"


def content_type_for(key: str) -> str:
    return CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")


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
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def keys(self, prefix: str = "") -> Iterator[str]: ...

    @abstractmethod
    def location(self, key: str = "") -> str:
        """Where a person finds ``key``: a path or an ``s3://`` URI."""


class LocalStore(Store):
    """A folder. Files appear complete or not at all (temp file + link/rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise StoreError(f"key escapes the store: {key!r}")
        return path

    def put(self, key: str, data: bytes, *, overwrite: bool = False) -> bool:
        path = self._path(key)
        if not overwrite and path.exists():
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if overwrite:
                os.replace(tmp, path)
                return True
            try:
                os.link(tmp, path)
            except FileExistsError:
                return False
            return True
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {key}: {exc}") from exc

    def put_file(self, key: str, path: str) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            os.replace(tmp, target)
        except OSError as exc:
            raise StoreError(f"cannot write {target}: {exc}") from exc
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot delete {key}: {exc}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def keys(self, prefix: str = "") -> Iterator[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith(".tmp-"):
                yield path.relative_to(self.root).as_posix()

    def location(self, key: str = "") -> str:
        return str(self._path(key)) if key else str(self.root)


class S3Store(Store):
    """A bucket and prefix. boto3's standard retry mode rides out 5xx and throttling."""

    def __init__(self, bucket: str, prefix: str, settings: Settings) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        config = Config(
            retries={"mode": "standard", "max_attempts": 8},
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.download_timeout,
            max_pool_connections=max(10, settings.download_concurrency),
        )
        self.client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url,
                                   region_name=settings.s3_region, config=config)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def put(self, key: str, data: bytes, *, overwrite: bool = False) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        extra = {} if overwrite else {"IfNoneMatch": "*"}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data,
                                   ContentType=content_type_for(key), **extra)
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status == 412 or code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {code or status}") from exc
        except BotoCoreError as exc:
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def get(self, key: str) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot read s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def put_file(self, key: str, path: str) -> None:
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.upload_file(path, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type_for(key)})
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise StoreError(f"cannot write s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def delete(self, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"cannot delete s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise StoreError(f"s3://{self.bucket}/{self._key(key)}: {exc}") from exc

    def keys(self, prefix: str = "") -> Iterator[str]:
        full = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=full):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:]

    def location(self, key: str = "") -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


def open_store(settings: Settings) -> Store:
    """The store named by ``HOMESHOTS_STORE_URL``: ``file:///abs``, ``file://./rel`` or ``s3://bucket/prefix``."""
    url = settings.store_url
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"HOMESHOTS_STORE_URL {url!r} names no bucket")
        return S3Store(parsed.netloc, parsed.path, settings)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path))
    if parsed.scheme == "":
        return LocalStore(Path(url))
    raise ConfigError(f"HOMESHOTS_STORE_URL {url!r}: use file://PATH or s3://BUCKET/PREFIX")
