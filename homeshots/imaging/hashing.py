"""Image identities: an exact pixel digest and a 64-bit perceptual hash kept as a plain int.

Ints (not ``ImageHash`` objects) are what Redis stores and what ``hamming`` compares cheaply.
"""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
from PIL import Image

PHASH_BITS = 64
_PHASH_MAX = 1 << PHASH_BITS


def phash_to_int(h: imagehash.ImageHash) -> int:
    """Pack the hash bits, row-major, into an unsigned int (same order as ``str(h)``)."""
    value = 0
    for bit in h.hash.flatten():
        value = (value << 1) | bool(bit)
    return value


def int_to_hex(v: int) -> str:
    """16 zero-padded hex chars, so stored hashes sort and compare as fixed-width strings."""
    if not 0 <= v < _PHASH_MAX:
        raise ValueError(f"not a 64-bit unsigned hash: {v}")
    return f"{v:016x}"


def hex_to_int(s: str) -> int:
    """Inverse of ``int_to_hex``; rejects values that cannot be a 64-bit hash."""
    v = int(s, 16)
    if not 0 <= v < _PHASH_MAX:
        raise ValueError(f"not a 64-bit unsigned hash: {s!r}")
    return v


def hamming(a: int, b: int) -> int:
    """Number of differing bits: the distance the dedup threshold is measured in."""
    return (a ^ b).bit_count()


def pixel_sha256(im: Image.Image) -> str:
    """Digest of size plus RGB pixel bytes: identical pixels give one id whatever the encoder."""
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    return pixel_digest(rgb.width, rgb.height, rgb.tobytes())


def pixel_digest(width: int, height: int, rgb: bytes | np.ndarray) -> str:
    """``pixel_sha256`` of RGB pixel bytes already at hand (the standardizer's numpy copy): no second copy."""
    digest = hashlib.sha256(f"{width}x{height}:".encode())
    digest.update(rgb)
    return digest.hexdigest()
