"""The fast PNG writer: any decoder gets back exactly the pixels given, and the file carries nothing else."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from homeshots_sandbox import generate_photo, natural_photo
from PIL import Image

from homeshots.imaging.hashing import pixel_sha256
from homeshots.imaging.png import encode_rgb
from homeshots.imaging.standardizer import ImageStandardizer


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.mode) == ("PNG", "RGB")
        return np.asarray(im)


def chunk_types(data: bytes) -> list[bytes]:
    types, at = [], 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        assert struct.unpack(">I", data[at + 8 + length : at + 12 + length])[0] == zlib.crc32(kind + body)
        types.append(kind)
        at += 12 + length
    return types


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (3, 2), (37, 53), (480, 640)])
@pytest.mark.parametrize("level", [0, 1, 3])
def test_random_pixels_round_trip_exactly(shape: tuple[int, int], level: int) -> None:
    """Random bytes exercise every wrap-around of the Average filter's modulo-256 arithmetic."""
    pixels = np.random.default_rng(sum(shape) + level).integers(0, 256, (*shape, 3), dtype=np.uint8)
    assert np.array_equal(decoded(encode_rgb(pixels, level)), pixels)


def test_extreme_values_round_trip() -> None:
    """255 next to 255 is where a naive (a + b) // 2 in uint8 would overflow."""
    pixels = np.full((16, 16, 3), 255, np.uint8)
    pixels[::2, ::3] = 0
    assert np.array_equal(decoded(encode_rgb(pixels)), pixels)


def test_only_the_three_required_chunks_with_valid_crcs() -> None:
    pixels = np.asarray(natural_photo(3, (64, 48)).convert("RGB"))
    assert chunk_types(encode_rgb(pixels)) == [b"IHDR", b"IDAT", b"IEND"]


@pytest.mark.parametrize(
    ("pixels", "level"),
    [
        (np.zeros((4, 4), np.uint8), 1),
        (np.zeros((4, 4, 4), np.uint8), 1),
        (np.zeros((4, 4, 3), np.uint16), 1),
        (np.zeros((4, 4, 3), np.uint8), 4),
    ],
)
def test_refuses_what_it_cannot_write(pixels: np.ndarray, level: int) -> None:
    with pytest.raises(ValueError):
        encode_rgb(pixels, level)


@pytest.mark.parametrize("photo", [generate_photo(7, size=(1800, 1200)), generate_photo(8, size=(640, 480))])
def test_both_encoders_store_the_same_pixels_and_digest(photo: bytes) -> None:
    fast = ImageStandardizer(png_encoder="isal").standardize(photo)
    zlib_png = ImageStandardizer(png_encoder="pillow").standardize(photo)
    assert fast.data != zlib_png.data  # another writer ...
    assert np.array_equal(decoded(fast.data), decoded(zlib_png.data))  # ... of the same picture
    assert fast.pixel_sha256 == zlib_png.pixel_sha256
    with Image.open(io.BytesIO(fast.data)) as im:
        assert pixel_sha256(im) == fast.pixel_sha256
    assert (fast.phash, fast.dhash, fast.version) == (zlib_png.phash, zlib_png.dhash, zlib_png.version)


def test_unknown_encoder_is_refused() -> None:
    with pytest.raises(ValueError, match="png_encoder"):
        ImageStandardizer(png_encoder="libpng")
