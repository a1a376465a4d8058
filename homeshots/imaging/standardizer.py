"""Turn downloaded bytes into one canonical picture: upright, sRGB, RGB, bounded size, no metadata.

Canonical output is what makes the pixel digest and perceptual hash comparable across sources.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from homeshots.core.errors import ImageError
from homeshots.imaging.hashing import pixel_digest
from homeshots.imaging.png import ISAL_LEVELS, encode_rgb
from homeshots.imaging.similarity import ImageTraits, image_traits

OUTPUT_FORMATS = ("PNG", "JPEG", "WEBP")
STANDARDIZER_VERSION = 2
"""Bumped whenever the pixels or hashes of a standardized image change. 1: imagehash pHash/dHash on the
1024 px image; 2: hashes, colour signature and detail score from one bar-free 64x64 thumbnail."""
PNG_STRATEGIES = {"default": -1, "rle": 3}
"""zlib strategies for Pillow's PNG encoder (``Z_DEFAULT_STRATEGY``, ``Z_RLE``): same pixels, other bytes."""
PNG_ENCODERS = ("isal", "pillow")
"""``isal``: ``imaging.png`` (Average filter, ISA-L deflate, ~5x faster); ``pillow``: Pillow's zlib encoder.
Both write the same pixels, so neither the pixel sha256 nor the version depends on the choice."""
_WHITE = (255, 255, 255)
_SRGB = ImageCms.createProfile("sRGB")


@dataclass(frozen=True, slots=True)
class StandardizedImage:
    """Encoded output plus the identities computed from its pixels (not from its file bytes)."""

    data: bytes
    width: int
    height: int
    format: str
    pixel_sha256: str
    phash: int
    dhash: int
    """64-bit difference hash: an independent second opinion before two photos are merged."""
    source_width: int
    source_height: int
    colour: str = ""
    """Chroma signature (``similarity.colour_signature``): a recoloured copy is not the same picture."""
    quality: int = 0
    """Detail score 0..100 (``similarity.quality_score``): a flat image is never a near copy."""
    version: int = 0
    """``STANDARDIZER_VERSION`` of the pixels and hashes: images of different versions compare by pHash only."""

    @property
    def traits(self) -> ImageTraits:
        return ImageTraits(self.phash, self.dhash, self.colour, self.quality)


def draft_size(width: int, height: int, max_dimension: int) -> tuple[int, int] | None:
    """Size to ask ``Image.draft`` for so the decoded longest side stays >= ``max_dimension``.

    Draft picks the largest DCT scale whose result is >= the request in both dimensions, so
    asking for the aspect-preserving target keeps the longest side large enough. EXIF rotation
    (orientations 5-8) swaps width and height later but never changes the longest side.
    """
    longest = max(width, height)
    if longest <= max_dimension:
        return None
    # Integer ceil avoids float error producing a request below the target.
    return (-(-width * max_dimension // longest), -(-height * max_dimension // longest))


def target_size(width: int, height: int, max_dimension: int) -> tuple[int, int]:
    """Longest side scaled down to ``max_dimension``, aspect kept; never upscales."""
    longest = max(width, height)
    if longest <= max_dimension:
        return (width, height)
    return (max(1, round(width * max_dimension / longest)), max(1, round(height * max_dimension / longest)))


@contextmanager
def _decode_errors() -> Iterator[None]:
    """Map whatever Pillow raises on hostile or broken input to one named, permanent error."""
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise ImageError(f"image too large: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not a decodable image: cannot identify image file") from exc
    except Exception as exc:  # plugins raise OSError, SyntaxError, ValueError, struct.error, ...
        raise ImageError(f"not a decodable image: {str(exc) or type(exc).__name__}") from exc


def _working_mode(im: Image.Image) -> Image.Image:
    """Reduce any Pillow mode to L, RGB, RGBA or CMYK: the modes the later steps handle."""
    mode = im.mode
    if mode in ("L", "RGB") and "transparency" in im.info:
        return im.convert("RGBA")
    if mode in ("L", "RGB", "RGBA", "CMYK"):
        return im
    if mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    if mode in ("LA", "PA", "RGBa"):
        return im.convert("RGBA")
    if mode == "La":
        return im.convert("LA").convert("RGBA")
    if mode.startswith("I"):
        # Plain convert clips 16-bit values at 255 (a white image); scale the range instead.
        wide = im.convert("I")
        if mode.startswith("I;16") or wide.getextrema()[1] > 255:
            wide = wide.point(lambda v: v * (1 / 256))
        return wide.convert("L")
    if mode in ("1", "F"):
        return im.convert("L")
    return im.convert("RGB")


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    """Apply the embedded profile so wide-gamut/CMYK pictures look right; skip a broken one."""
    out_mode = "RGBA" if im.mode == "RGBA" else "RGB"
    if icc:
        try:
            profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(im, profile, _SRGB, outputMode=out_mode)
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None
        if converted is not None:
            return converted
    return im if im.mode == out_mode else im.convert(out_mode)


def _flatten(im: Image.Image) -> Image.Image:
    """Composite transparency onto white: listing sites show transparent areas as white."""
    if im.mode != "RGBA":
        return im
    background = Image.new("RGBA", im.size, (*_WHITE, 255))
    return Image.alpha_composite(background, im).convert("RGB")


class ImageStandardizer:
    """Stateless and reusable; one instance per worker process is enough."""

    def __init__(
        self,
        max_dimension: int = 1024,
        output_format: str = "PNG",
        png_compress_level: int = 1,
        jpeg_quality: int = 90,
        max_pixels: int = 100_000_000,
        max_decoded_bytes: int = 96 << 20,
        png_strategy: str = "rle",
        png_encoder: str = "isal",
    ) -> None:
        fmt = output_format.upper()
        if fmt not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, not {output_format!r}")
        if max_dimension < 1 or max_pixels < 1:
            raise ValueError("max_dimension and max_pixels must be positive")
        if png_strategy not in PNG_STRATEGIES:
            raise ValueError(f"png_strategy must be one of {sorted(PNG_STRATEGIES)}, not {png_strategy!r}")
        if png_encoder not in PNG_ENCODERS:
            raise ValueError(f"png_encoder must be one of {PNG_ENCODERS}, not {png_encoder!r}")
        self.max_dimension = max_dimension
        self.output_format = fmt
        self.png_compress_level = png_compress_level
        self.png_strategy = png_strategy
        self.png_encoder = png_encoder
        self.jpeg_quality = jpeg_quality
        self.max_pixels = max_pixels
        self.max_decoded_bytes = max_decoded_bytes

    def standardize(self, data: bytes) -> StandardizedImage:
        """Decode once, orient, convert to sRGB RGB, downscale, encode without metadata."""
        im, source_size = self.canonical(data)
        traits = image_traits(im)  # every hash from one small thumbnail: one pass over the image, not three
        pixels = np.asarray(im)  # one copy of the pixels for the digest and the PNG writer
        return StandardizedImage(
            data=self._encode(im, pixels),
            width=im.width,
            height=im.height,
            format=self.output_format,
            pixel_sha256=pixel_digest(im.width, im.height, pixels),
            phash=traits.phash,
            dhash=traits.dhash,
            source_width=source_size[0],
            source_height=source_size[1],
            colour=traits.colour,
            quality=traits.quality,
            version=STANDARDIZER_VERSION,
        )

    def canonical(self, data: bytes) -> tuple[Image.Image, tuple[int, int]]:
        """The picture ``standardize`` encodes (upright, sRGB RGB, bounded size, no info), and the source size.

        Separate so that benchmarks can hash the standardized pixels without paying for the encoder.
        """
        im, source_size = self._decode(data)
        icc = im.info.get("icc_profile")
        size = target_size(*source_size, self.max_dimension)
        with _decode_errors():  # exotic modes (LAB, HSV, ...) may not convert
            im = _working_mode(im)
            if im.size != size:
                im = im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            # Colour-convert after the downscale: same look, a fraction of the pixels to transform.
            im = _flatten(_to_srgb(im, icc))
        im.info = {}  # encoders copy some info keys (icc_profile, exif) into the file
        return im, source_size

    def _decode(self, data: bytes) -> tuple[Image.Image, tuple[int, int]]:
        """Open, refuse bombs before pixels are decoded, draft-decode JPEGs, apply EXIF orientation."""
        if not data:
            raise ImageError("not a decodable image: empty body")
        with _decode_errors():
            im = Image.open(io.BytesIO(data))
            width, height = im.size
        if width * height > self.max_pixels:
            raise ImageError(f"image too large: {width}x{height} is {width * height} pixels, limit {self.max_pixels}")
        with _decode_errors():
            box = draft_size(width, height, self.max_dimension)
            if box is not None and im.format in ("JPEG", "MPO"):
                im.draft("RGB", box)
        # What decoding will hold: JPEGs at their draft scale, anything else at full size, 4 bytes a pixel
        # once in RGB(A) - a 30 kB PNG can ask for gigabytes.
        decoded = im.size[0] * im.size[1] * 4
        if decoded > self.max_decoded_bytes:
            raise ImageError(
                f"image too large: {im.size[0]}x{im.size[1]} would take {decoded >> 20} MiB to decode, "
                f"limit {self.max_decoded_bytes >> 20} MiB"
            )
        with _decode_errors():
            im.load()
        decoded_size = im.size
        # Orientation is metadata: a broken EXIF block must not lose the photo.
        with suppress(Exception):
            ImageOps.exif_transpose(im, in_place=True)
        if im.size != decoded_size:
            width, height = height, width
        return im, (width, height)

    def _encode(self, im: Image.Image, pixels: np.ndarray) -> bytes:
        """Encode with explicit options only, so no metadata reaches the file."""
        if self.output_format == "PNG" and self.png_encoder == "isal":
            return encode_rgb(pixels, min(self.png_compress_level, ISAL_LEVELS[-1]))
        buf = io.BytesIO()
        if self.output_format == "PNG":
            im.save(buf, "PNG", compress_level=self.png_compress_level, compress_type=PNG_STRATEGIES[self.png_strategy])
        elif self.output_format == "JPEG":
            im.save(buf, "JPEG", quality=self.jpeg_quality, optimize=False)
        else:
            im.save(buf, "WEBP", quality=self.jpeg_quality)
        return buf.getvalue()


def thumbnail(data: bytes, size: int = 256) -> bytes:
    """A small JPEG of an (already standardized) image, for reports."""
    with Image.open(io.BytesIO(data)) as im:
        im = im.convert("RGB")
        im.thumbnail((size, size))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
        return out.getvalue()
