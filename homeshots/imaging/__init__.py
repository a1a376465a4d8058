"""Pure image code (bytes in, bytes out): standardize photos and compute their identities."""

from homeshots.imaging.hashing import hamming, hex_to_int, int_to_hex, phash_to_int, pixel_sha256
from homeshots.imaging.similarity import ImageTraits, MergeRule, Scope, colour_distance, image_traits
from homeshots.imaging.standardizer import ImageStandardizer, StandardizedImage

__all__ = [
    "ImageStandardizer",
    "ImageTraits",
    "MergeRule",
    "Scope",
    "StandardizedImage",
    "colour_distance",
    "hamming",
    "hex_to_int",
    "image_traits",
    "int_to_hex",
    "phash_to_int",
    "pixel_sha256",
]
