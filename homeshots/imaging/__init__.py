"""Pure image code (bytes in, bytes out): standardize photos and compute their identities."""

from homeshots.imaging.hashing import hamming, hex_to_int, int_to_hex, phash_to_int, pixel_sha256
from homeshots.imaging.standardizer import ImageStandardizer, StandardizedImage

__all__ = [
    "ImageStandardizer",
    "StandardizedImage",
    "hamming",
    "hex_to_int",
    "int_to_hex",
    "phash_to_int",
    "pixel_sha256",
]
