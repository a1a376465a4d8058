"""Content addresses of stored files: ``processed/ab/abcdef....png``, and the formats they name."""

from __future__ import annotations

EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "MPO": "jpg", "TIFF": "tif"}
CONTENT_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "tif": "image/tiff",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
}


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
