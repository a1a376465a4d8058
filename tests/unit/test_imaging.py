"""Standardizer and hash helpers, on pictures generated here (no files from disk)."""

from __future__ import annotations

import io
import os
import random
import struct
import zlib

import imagehash
import pytest
from PIL import Image, ImageCms, ImageDraw

from homeshots.core.errors import ImageError
from homeshots.imaging import (
    ImageStandardizer,
    StandardizedImage,
    hamming,
    hex_to_int,
    int_to_hex,
    phash_to_int,
    pixel_sha256,
)
from homeshots.imaging.standardizer import draft_size

RED = (255, 0, 0)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """A deterministic 'picture': random filled shapes on a random background."""
    rng = random.Random(seed)
    im = Image.new("RGB", (width, height), tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(12):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        x1, y1 = x0 + rng.randrange(width // 8, width // 2), y0 + rng.randrange(height // 8, height // 2)
        box = (x0, y0, x1, y1)
        shape = draw.ellipse if rng.random() < 0.5 else draw.rectangle
        shape(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    return im


def encode(im: Image.Image, fmt: str, **options: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def reopen(result: StandardizedImage) -> Image.Image:
    im = Image.open(io.BytesIO(result.data))
    im.load()
    return im


def assert_clean(im: Image.Image) -> None:
    """No EXIF, no ICC profile, no text chunks in the encoded output."""
    assert "exif" not in im.info
    assert "icc_profile" not in im.info
    assert not dict(im.getexif())
    assert not getattr(im, "text", {})


def close(a: tuple[int, ...], b: tuple[int, ...], tol: int = 12) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size but carries no pixels: a decompression-bomb stand-in."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def std() -> ImageStandardizer:
    return ImageStandardizer()


@pytest.fixture(scope="module")
def landscape() -> Image.Image:
    return photo(3000, 2000, seed=1)


# --- size, format, metadata ------------------------------------------------------------------


def test_landscape_jpeg_becomes_1024_png_without_metadata(std: ImageStandardizer, landscape: Image.Image):
    data = encode(landscape, "JPEG", quality=90, exif=Image.Exif().tobytes(), icc_profile=SRGB_ICC)
    result = std.standardize(data)
    assert (result.width, result.height) == (1024, 683)
    assert (result.source_width, result.source_height) == (3000, 2000)
    assert result.format == "PNG"
    out = reopen(result)
    assert (out.format, out.mode, out.size) == ("PNG", "RGB", (1024, 683))
    assert_clean(out)


def test_portrait(std: ImageStandardizer):
    result = std.standardize(encode(photo(2000, 3000), "JPEG", quality=90))
    assert (result.width, result.height) == (683, 1024)
    assert (result.source_width, result.source_height) == (2000, 3000)


def test_extreme_aspect_keeps_exact_longest_side(std: ImageStandardizer):
    result = std.standardize(encode(photo(5000, 1000), "JPEG", quality=90))
    assert (result.width, result.height) == (1024, 205)


@pytest.mark.parametrize(
    "size", [(3000, 2000), (2000, 3000), (4000, 3000), (8000, 1000), (1000, 8000), (2049, 2048), (1030, 1025)]
)
def test_draft_keeps_longest_side_at_least_max_dimension(size: tuple[int, int]):
    im = Image.open(io.BytesIO(encode(Image.new("RGB", size, RED), "JPEG")))
    box = draft_size(*size, 1024)
    assert box is not None
    im.draft("RGB", box)
    assert max(im.size) >= 1024
    if max(size) >= 2048:  # the draft actually reduced (by at least half) when it could
        assert max(im.size) <= -(-max(size) // 2)


def test_draft_not_needed_for_small_images():
    assert draft_size(1024, 700, 1024) is None


def test_small_image_is_not_upscaled(std: ImageStandardizer):
    result = std.standardize(encode(photo(200, 100), "PNG"))
    assert (result.width, result.height) == (200, 100)
    assert (result.source_width, result.source_height) == (200, 100)


@pytest.mark.parametrize(("orientation", "marker_corner"), [(6, "top_right"), (8, "bottom_left"), (3, None)])
def test_exif_orientation_is_applied(std: ImageStandardizer, orientation: int, marker_corner: str | None):
    stored = Image.new("RGB", (3000, 2000), (0, 0, 255))
    stored.paste(RED, (0, 0, 400, 400))  # marker in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = std.standardize(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    out = reopen(result)
    assert_clean(out)
    if orientation == 3:
        assert out.size == (1024, 683)
        assert close(out.getpixel((1024 - 20, 683 - 20)), RED)
        return
    assert out.size == (683, 1024)
    assert (result.source_width, result.source_height) == (2000, 3000)
    corners = {
        "top_left": (20, 20),
        "top_right": (683 - 20, 20),
        "bottom_left": (20, 1024 - 20),
        "bottom_right": (683 - 20, 1024 - 20),
    }
    for name, xy in corners.items():
        assert close(out.getpixel(xy), RED) == (name == marker_corner), name


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_jpeg_and_webp_output(landscape: Image.Image, fmt: str):
    result = ImageStandardizer(output_format=fmt, jpeg_quality=85).standardize(encode(landscape, "PNG"))
    out = reopen(result)
    assert (result.format, out.format, out.mode, out.size) == (fmt, fmt, "RGB", (1024, 683))
    assert_clean(out)


def test_unknown_output_format_is_refused():
    with pytest.raises(ValueError, match="output_format"):
        ImageStandardizer(output_format="GIF")


# --- colour modes -------------------------------------------------------------------------------


def test_rgba_is_composited_onto_white(std: ImageStandardizer):
    im = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    im.paste((255, 0, 0, 255), (0, 0, 50, 50))
    out = reopen(std.standardize(encode(im, "PNG")))
    assert out.mode == "RGB"
    assert out.getpixel((10, 10)) == RED
    assert out.getpixel((90, 90)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_with_transparency_becomes_rgb(std: ImageStandardizer, fmt: str):
    im = Image.new("P", (100, 100), 0)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    im.paste(1, (0, 0, 50, 50))
    out = reopen(std.standardize(encode(im, fmt, transparency=0)))
    assert out.mode == "RGB"
    assert out.getpixel((10, 10)) == RED
    assert out.getpixel((90, 90)) == (255, 255, 255)


def test_la_is_composited(std: ImageStandardizer):
    im = Image.new("LA", (40, 40), (0, 0))
    im.paste((100, 255), (0, 0, 20, 20))
    out = reopen(std.standardize(encode(im, "PNG")))
    assert out.getpixel((5, 5)) == (100, 100, 100)
    assert out.getpixel((35, 35)) == (255, 255, 255)


def test_cmyk_jpeg(std: ImageStandardizer):
    im = Image.new("CMYK", (1600, 1200), (0, 255, 255, 0))  # pure red in naive CMYK
    result = std.standardize(encode(im, "JPEG", quality=95))
    out = reopen(result)
    assert (out.mode, out.size) == ("RGB", (1024, 768))
    assert close(out.getpixel((500, 400)), RED, tol=20)


def test_sixteen_bit_grayscale_png_keeps_its_tones(std: ImageStandardizer):
    im = Image.new("I;16", (256, 16))
    im.putdata([x * 257 for x in range(256)] * 16)
    source = encode(im, "PNG")
    assert Image.open(io.BytesIO(source)).mode.startswith("I")
    out = reopen(std.standardize(source))
    assert out.mode == "RGB"
    for x in (0, 64, 128, 200, 255):
        r, g, b = out.getpixel((x, 8))
        assert r == g == b
        assert abs(r - x) <= 2


@pytest.mark.parametrize("mode", ["1", "L"])
def test_bilevel_and_grayscale(std: ImageStandardizer, mode: str):
    out = reopen(std.standardize(encode(Image.new(mode, (50, 50), 255), "PNG")))
    assert out.mode == "RGB"
    assert out.getpixel((25, 25)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_icc_profile_is_converted_and_dropped(std: ImageStandardizer, fmt: str):
    im = Image.new("RGB", (300, 200), (200, 120, 40))
    source = encode(im, fmt, icc_profile=SRGB_ICC)
    assert Image.open(io.BytesIO(source)).info.get("icc_profile")
    out = reopen(std.standardize(source))
    assert_clean(out)
    assert close(out.getpixel((150, 100)), (200, 120, 40), tol=4)


def test_broken_icc_profile_falls_back_to_plain_conversion(std: ImageStandardizer):
    im = Image.new("RGB", (300, 200), (10, 200, 30))
    out = reopen(std.standardize(encode(im, "PNG", icc_profile=b"not a profile")))
    assert_clean(out)
    assert out.getpixel((150, 100)) == (10, 200, 30)


# --- refusals ---------------------------------------------------------------------------------------


def test_truncated_jpeg_raises(std: ImageStandardizer, landscape: Image.Image):
    data = encode(landscape, "JPEG", quality=90)
    with pytest.raises(ImageError, match="not a decodable image"):
        std.standardize(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [os.urandom(4096), b"", b"<html>blocked</html>", b"\x89PNG\r\n\x1a\n"],
    ids=["random", "empty", "html", "png-signature-only"],
)
def test_not_an_image_raises(std: ImageStandardizer, data: bytes):
    with pytest.raises(ImageError, match="not a decodable image"):
        std.standardize(data)


def test_unidentified_message_is_clear(std: ImageStandardizer):
    with pytest.raises(ImageError) as info:
        std.standardize(b"definitely not an image")
    assert str(info.value) == "not a decodable image: cannot identify image file"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_bomb_over_max_pixels_is_refused_before_decoding(std: ImageStandardizer):
    with pytest.raises(ImageError, match="too large"):
        std.standardize(png_header_only(12_000, 10_000))  # 120 Mpx > 100 Mpx default


def test_max_pixels_is_configurable():
    with pytest.raises(ImageError, match="too large"):
        ImageStandardizer(max_pixels=10_000).standardize(encode(photo(200, 200), "PNG"))


def test_pillow_decompression_bomb_error_is_mapped():
    with pytest.raises(ImageError, match="too large"):
        ImageStandardizer(max_pixels=10**12).standardize(png_header_only(40_000, 40_000))


# --- identities ---------------------------------------------------------------------------------


def test_same_pixels_give_same_sha_whatever_the_encoding(std: ImageStandardizer, landscape: Image.Image):
    a = std.standardize(encode(landscape, "PNG", compress_level=0))
    b = std.standardize(encode(landscape, "PNG", compress_level=9))
    assert a.pixel_sha256 == b.pixel_sha256
    assert a.phash == b.phash
    assert a.data == b.data
    as_jpeg_output = ImageStandardizer(output_format="JPEG").standardize(encode(landscape, "PNG"))
    assert as_jpeg_output.pixel_sha256 == a.pixel_sha256


def test_jpeg_reencode_is_near_but_not_identical(std: ImageStandardizer, landscape: Image.Image):
    png = std.standardize(encode(landscape, "PNG"))
    jpeg = std.standardize(encode(landscape, "JPEG", quality=95))
    assert jpeg.pixel_sha256 != png.pixel_sha256
    assert hamming(jpeg.phash, png.phash) <= 8


def test_different_pictures_are_far_apart(std: ImageStandardizer):
    hashes = [std.standardize(encode(photo(1200, 800, seed=s), "JPEG", quality=90)).phash for s in range(6)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert hamming(a, b) > 8


def test_phash_matches_imagehash_of_output(std: ImageStandardizer, landscape: Image.Image):
    result = std.standardize(encode(landscape, "PNG"))
    expected = imagehash.phash(reopen(result), hash_size=8)
    assert result.phash == phash_to_int(expected) == int(str(expected), 16)
    assert 0 <= result.phash < 2**64
    assert len(result.pixel_sha256) == 64


# --- hashing helpers --------------------------------------------------------------------------------


def test_hex_round_trip_and_padding():
    assert int_to_hex(0) == "0" * 16
    assert int_to_hex(0xAB) == "00000000000000ab"
    assert int_to_hex(2**64 - 1) == "f" * 16
    for v in (0, 1, 0xDEADBEEF, 2**63, 2**64 - 1):
        assert hex_to_int(int_to_hex(v)) == v
    with pytest.raises(ValueError):
        int_to_hex(2**64)
    with pytest.raises(ValueError):
        int_to_hex(-1)
    with pytest.raises(ValueError):
        hex_to_int("1" + "0" * 16)


def test_hamming():
    assert hamming(0, 0) == 0
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(0, 2**64 - 1) == 64


def test_pixel_sha256_depends_on_pixels_and_size():
    a = Image.new("RGB", (4, 2), RED)
    assert pixel_sha256(a) == pixel_sha256(a.copy())
    assert pixel_sha256(a) != pixel_sha256(Image.new("RGB", (2, 4), RED))
    assert pixel_sha256(a) != pixel_sha256(Image.new("RGB", (4, 2), (254, 0, 0)))
    assert pixel_sha256(a.convert("RGBA")) == pixel_sha256(a)
