"""Hostile and odd bodies for the suite, made once per session: broken, flooding and degenerate images."""

from __future__ import annotations

import gzip
import io
import zlib
from functools import cache

from homeshots_sandbox import generate_photo
from PIL import Image, PngImagePlugin


def _save(im: Image.Image, fmt: str, **kw: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


@cache
def benign(n: int) -> bytes:
    """A normal listing photo (JPEG, 1200x900)."""
    return generate_photo(9000 + n, size=(1200, 900))


@cache
def pixel_flood_png() -> bytes:
    """40000 x 40000 one-bit pixels (1.6 gigapixels) in a ~200 kB file."""
    return _save(Image.new("1", (40000, 40000)), "PNG", optimize=True)


@cache
def big_rgb_png() -> bytes:
    """9000 x 9000 RGB of flat colour: 243 MB decoded, a small file."""
    return _save(Image.new("RGB", (9000, 9000), (30, 90, 150)), "PNG", compress_level=9)


@cache
def lying_jpeg_header() -> bytes:
    """A JPEG whose SOF marker claims 65000 x 65000 pixels, with almost no data behind it."""
    data = bytearray(benign(1))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = (65000).to_bytes(2, "big") + (65000).to_bytes(2, "big")
    return bytes(data[: sof + 400])


def truncated_jpeg() -> bytes:
    return benign(2)[: len(benign(2)) // 3]


@cache
def one_pixel_png() -> bytes:
    return _save(Image.new("RGB", (1, 1), (200, 30, 30)), "PNG")


@cache
def gradient_16bit_png() -> bytes:
    im = Image.new("I;16", (256, 256))
    im.putdata([x * 256 for _ in range(256) for x in range(256)])
    return _save(im, "PNG")


@cache
def strip_png() -> bytes:
    return _save(Image.new("RGB", (100000, 2), (20, 200, 20)), "PNG")


@cache
def animated_gif() -> bytes:
    frames = [Image.new("P", (300, 200), i) for i in range(60)]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)


@cache
def cmyk_jpeg() -> bytes:
    with Image.open(io.BytesIO(benign(3))) as im:
        return _save(im.convert("CMYK"), "JPEG", quality=85)


@cache
def broken_exif_jpeg() -> bytes:
    with Image.open(io.BytesIO(benign(4))) as im:
        return _save(im, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\xff\xff\xff")


@cache
def broken_icc_jpeg() -> bytes:
    with Image.open(io.BytesIO(benign(5))) as im:
        return _save(im, "JPEG", icc_profile=b"not a profile" * 10)


@cache
def text_bomb_png() -> bytes:
    """A small picture with a compressed text chunk that inflates to 200 MB."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "A" * (200 << 20), zip=True)
    return _save(Image.new("RGB", (64, 64), (9, 9, 9)), "PNG", pnginfo=info)


@cache
def webp_photo() -> bytes:
    with Image.open(io.BytesIO(benign(6))) as im:
        return _save(im, "WEBP", quality=80)


@cache
def big_tiff() -> bytes:
    return _save(Image.new("RGB", (12000, 12000)), "TIFF", compression="tiff_deflate")


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><rect width="100" height="100"/></svg>'
HTML = b"<!doctype html><html><body>Access denied</body></html>"


@cache
def gzip_bomb(layers: int, size: int = 512 << 20) -> bytes:
    """``size`` zero bytes gzipped ``layers`` times over: a few hundred bytes on the wire."""
    first = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip framing, fed in chunks: never 512 MB in memory here
    chunk = b"\0" * (1 << 20)
    data = b"".join(first.compress(chunk) for _ in range(size >> 20)) + first.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


def deflated(data: bytes, *, raw: bool) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15 if raw else 15)
    return compressor.compress(data) + compressor.flush()


def make_all() -> None:
    """Build every cached body now."""
    for make in (
        pixel_flood_png,
        big_rgb_png,
        lying_jpeg_header,
        one_pixel_png,
        gradient_16bit_png,
        strip_png,
        animated_gif,
        cmyk_jpeg,
        broken_exif_jpeg,
        broken_icc_jpeg,
        text_bomb_png,
        webp_photo,
        big_tiff,
    ):
        make()
    for n in range(8):
        benign(n)
    gzip_bomb(1)
    gzip_bomb(3)
