"""Pictures for the sandbox: generated ones (no data set needed) and per-source copies of them."""

from __future__ import annotations

import io
import random
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageOps

_T = Image.Transpose
_UNDO_ORIENTATION = {
    2: _T.FLIP_LEFT_RIGHT,
    3: _T.ROTATE_180,
    4: _T.FLIP_TOP_BOTTOM,
    5: _T.TRANSPOSE,
    6: _T.ROTATE_90,
    7: _T.TRANSVERSE,
    8: _T.ROTATE_270,
}
"""How to store upright pixels so that a viewer applying EXIF ``Orientation`` shows them upright."""


@lru_cache(maxsize=256)
def generate_photo(seed: int, size: tuple[int, int] = (1600, 1200), orientation: int | None = None) -> bytes:
    """A deterministic JPEG (q90) that looks clearly different for every seed.

    Random shapes on a gradient give perceptual hashes far apart; with ``orientation`` the pixels
    are stored rotated and tagged so that EXIF-aware code must turn them upright again.
    """
    rng = random.Random(seed)
    w, h = size
    top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    mask = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", size, bottom), Image.new("RGB", size, top), mask)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(6, 14)):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randint(w // 10, w // 2), y0 + rng.randint(h // 10, h // 2))
        color = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    out = io.BytesIO()
    if orientation is None:
        img.save(out, "JPEG", quality=90)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        if orientation in _UNDO_ORIENTATION:
            img = img.transpose(_UNDO_ORIENTATION[orientation])
        img.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def downscaled_copy(data: bytes, scale: float = 0.6, quality: int = 80) -> bytes:
    """A smaller re-encoded copy of a photo: a near duplicate, as listings re-upload them."""
    with Image.open(io.BytesIO(data)) as img:
        exif = img.info.get("exif")
        small = img.convert("RGB").resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


@lru_cache(maxsize=2048)
def resized_copy(data: bytes, width: int, fmt: str = "JPEG", quality: int = 85) -> bytes:
    """The photo upright at ``width`` px wide in ``fmt``: how Zillow, Redfin and MLS CDNs serve it.

    Sources serve one picture at different sizes and encodings; the pipeline must merge them. The
    cache holds a night of a world's CDN copies, so re-reading a night does not re-encode it.
    """
    with Image.open(io.BytesIO(data)) as opened:
        img = ImageOps.exif_transpose(opened).convert("RGB")
    height = max(1, round(img.height * width / img.width))
    out = io.BytesIO()
    img.resize((width, height), Image.LANCZOS).save(out, fmt, quality=quality)
    return out.getvalue()


@lru_cache(maxsize=1024)
def upright_width(data: bytes) -> int | None:
    """Width as a viewer shows the photo: CDNs serve it turned upright by its EXIF Orientation."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            turned = img.getexif().get(0x0112) in (5, 6, 7, 8)
            return img.height if turned else img.width
    except Exception:  # a deliberately broken master: no size
        return None


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) as stored, or None for bytes that are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except Exception:  # the sandbox serves broken bytes on purpose, too
        return None


def natural_photo(seed: int, size: tuple[int, int] = (1200, 900)) -> Image.Image:
    """A photo-like picture: low-frequency colour (walls, sky, floors) under high-frequency grey detail.

    Real photos carry their detail in brightness and change colour slowly; the dedup rule's colour check
    is calibrated on that, so tests of it use these rather than flat shapes.
    """
    rng = np.random.default_rng(seed)
    w, h = size
    colour = Image.fromarray(rng.integers(30, 226, (3, 4, 3), dtype=np.uint8), "RGB").resize(
        (w, h), Image.Resampling.BICUBIC
    )
    detail = Image.fromarray(rng.integers(0, 256, (60, 80), dtype=np.uint8), "L").resize(
        (w, h), Image.Resampling.BICUBIC
    )
    luma = (np.asarray(detail).astype(np.float32) - 128) * 0.5 + rng.normal(0, 8, (h, w))
    pixels = np.asarray(colour).astype(np.float32) + luma[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
