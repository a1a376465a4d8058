"""How well the near-copy merge rules separate copies from different photos, recolours and flat images.

Run from the repo root: ``python -m benchmarks.dedup_quality [--photos DIR] [--limit N] [--workers N]``.

Photos are read from ``../shared/datasets/houses`` (beside the checkout) when that folder exists,
else generated with ``homeshots_sandbox.generate_photo`` (no room labels then, so no same-room
hard negatives). Each original gets copies that must merge (re-encode, resize, WebP, EXIF rotation,
brightness, crops, bars, a small turn) and recoloured copies that must not (hue, channels, sepia,
saturation, grey). Everything is standardized like the pipeline does (``ImageStandardizer``), then
judged three ways: the rule in production today (pHash <= 8 and dHash <= 12, imagehash on the full
image), and ``homeshots.imaging.similarity.MergeRule.default()`` in its corpus and property scopes.

Real listings re-use photos, and so does the data set (houses relisted under another number, some
photo files repeated). A pair of "distinct" originals whose 32x32 grey thumbnails are practically
equal (``same_picture``, a pixel check independent of all hashes) is a true duplicate: it is
counted apart, as a correct merge, and not as a false merge.

Output is markdown (tables and the method of the 1M-image estimate), for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist

import imagehash
import numpy as np
from homeshots_sandbox import generate_photo
from PIL import Image, ImageChops, ImageCms, ImageEnhance, ImageOps, ImageStat

from homeshots.core.settings import Settings
from homeshots.imaging.hashing import hamming, phash_to_int
from homeshots.imaging.similarity import (
    ImageTraits,
    MergeRule,
    Scope,
    ScopeThresholds,
    decode_signature,
    grid_distances,
    image_traits,
    stack_grids,
)
from homeshots.imaging.standardizer import ImageStandardizer

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "houses"
DEFAULT_THRESHOLD = int(Settings.model_fields["dedup_threshold"].default)
DEFAULT_DHASH_THRESHOLD = int(Settings.model_fields["dedup_dhash_threshold"].default)
RULE = MergeRule.default()
ORIENTATION_TAG = 0x0112
CROP_FRACTION = 0.03
SAME_PICTURE_DIFF = 4.0
"""Mean grey-level difference (0-255) of 32x32 thumbnails below which two files show one picture."""
VISIBLE_RECOLOUR = 5.0
"""Mean CIELAB chroma difference (Delta a*b*, lightness ignored) from which a recolour counts as visible.

About twice the just-noticeable difference (2.3) for every pixel on average; below it a recolour of a
nearly grey photo changes little, and merging it is harmless."""
Hashes = tuple[int, int]
"""(pHash, dHash) of one standardized image, as the pipeline computes them today."""
_SRGB = ImageCms.createProfile("sRGB")


def _jpeg(im: Image.Image, quality: int = 95, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def reencode_jpeg_q60(im: Image.Image) -> bytes:
    """The same pixels re-encoded as JPEG quality 60."""
    return _jpeg(im, quality=60)


def resize_half(im: Image.Image) -> bytes:
    """Half width and height (Lanczos), JPEG q95."""
    return _jpeg(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS))


def webp_q75(im: Image.Image) -> bytes:
    """The same pixels as WebP quality 75."""
    out = io.BytesIO()
    im.save(out, "WEBP", quality=75)
    return out.getvalue()


def exif_rotate(im: Image.Image) -> bytes:
    """Pixels stored turned 90 degrees counter-clockwise, tagged Orientation 6 so viewers show them upright."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    return _jpeg(im.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def crop_edges(im: Image.Image, fraction: float = CROP_FRACTION) -> bytes:
    """``fraction`` of the width/height cut from each side (a centre crop), JPEG q95."""
    dx, dy = round(im.width * fraction), round(im.height * fraction)
    return _jpeg(im.crop((dx, dy, im.width - dx, im.height - dy)))


def brighten(im: Image.Image, factor: float = 1.15) -> bytes:
    """Brightness +15 % (``ImageEnhance.Brightness``), JPEG q95."""
    return _jpeg(ImageEnhance.Brightness(im).enhance(factor))


def letterbox(im: Image.Image, fraction: float = 0.05, colour: tuple[int, int, int] = (0, 0, 0)) -> bytes:
    """Bars of ``fraction`` of the height added above and below; the picture keeps its pixels (taller canvas)."""
    bar = round(im.height * fraction)
    out = Image.new("RGB", (im.width, im.height + 2 * bar), colour)
    out.paste(im, (0, bar))
    return _jpeg(out)


def pillarbox(im: Image.Image, fraction: float = 0.05, colour: tuple[int, int, int] = (255, 255, 255)) -> bytes:
    """Bars of ``fraction`` of the width added left and right; the picture keeps its pixels (wider canvas)."""
    bar = round(im.width * fraction)
    out = Image.new("RGB", (im.width + 2 * bar, im.height), colour)
    out.paste(im, (bar, 0))
    return _jpeg(out)


def letterbox_fit(im: Image.Image, fraction: float = 0.05) -> bytes:
    """Same canvas size, picture shrunk to leave black bars of ``fraction`` of the height above and below."""
    bar = round(im.height * fraction)
    inner = im.resize((max(1, round(im.width * (im.height - 2 * bar) / im.height)), im.height - 2 * bar))
    out = Image.new("RGB", im.size, (0, 0, 0))
    out.paste(inner, ((im.width - inner.width) // 2, bar))
    return _jpeg(out)


def rotate_small(im: Image.Image, degrees: float = 2.0) -> bytes:
    """Turned ``degrees`` about the centre and cut to the largest centred same-aspect box without corners."""
    t = math.radians(abs(degrees))
    w, h = im.size
    scale = min(w / (w * math.cos(t) + h * math.sin(t)), h / (w * math.sin(t) + h * math.cos(t)))
    box = (
        round(w * (1 - scale) / 2),
        round(h * (1 - scale) / 2),
        round(w * (1 + scale) / 2),
        round(h * (1 + scale) / 2),
    )
    return _jpeg(im.rotate(degrees, resample=Image.Resampling.BICUBIC).crop(box))


def hue_shift(im: Image.Image, degrees: float) -> bytes:
    """Every hue turned by ``degrees`` (HSV), saturation and value kept."""
    hsv = np.asarray(im.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + round(degrees * 256 / 360)) % 256
    return _jpeg(Image.fromarray(hsv, "HSV").convert("RGB"))


def channel_swap(im: Image.Image) -> bytes:
    """(R, G, B) shown as (B, R, G)."""
    r, g, b = im.split()
    return _jpeg(Image.merge("RGB", (b, r, g)))


def sepia(im: Image.Image) -> bytes:
    """The classic sepia matrix."""
    matrix = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    pixels = np.asarray(im, dtype=np.float32) @ matrix.T
    return _jpeg(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))


def saturate(im: Image.Image, factor: float) -> bytes:
    """Saturation times ``factor`` (``ImageEnhance.Color``; 0 is grey)."""
    return _jpeg(ImageEnhance.Color(im).enhance(factor))


TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q60": reencode_jpeg_q60,
    "resize 50%": resize_half,
    "webp q75": webp_q75,
    "exif rotate": exif_rotate,
    "brightness +15%": brighten,
    "crop 3%": crop_edges,
    "crop 5%": lambda im: crop_edges(im, 0.05),
    "letterbox 5%": letterbox,
    "pillarbox 5%": pillarbox,
    "letterbox 5% fit": letterbox_fit,
    "rotate 2°": rotate_small,
}
"""Copies that must merge with their original."""
CORPUS_MUST = ("jpeg q60", "resize 50%", "webp q75", "exif rotate", "brightness +15%")
"""Copies the corpus rule must merge (100%); the property rule must merge every copy in TRANSFORMS."""
TRANSFORM_NOTES = {
    "jpeg q60": "JPEG quality 60",
    "resize 50%": "half width and height (Lanczos), JPEG q95",
    "webp q75": "WebP quality 75",
    "exif rotate": "pixels stored turned 90°, EXIF Orientation 6",
    "brightness +15%": "RGB x1.15 (ImageEnhance.Brightness), highlights clip",
    "crop 3%": "3% cut from each side (centre crop)",
    "crop 5%": "5% cut from each side (centre crop)",
    "letterbox 5%": "black bars, 5% of the height each, added: canvas 10% taller",
    "pillarbox 5%": "white bars, 5% of the width each, added: canvas 10% wider",
    "letterbox 5% fit": "same canvas, picture shrunk by 10% between black bars",
    "rotate 2°": "turned 2°, cut to the largest box without corners (~2.5% per side)",
}
RECOLOURS: dict[str, Callable[[Image.Image], bytes]] = {
    "hue +30°": lambda im: hue_shift(im, 30),
    "hue +90°": lambda im: hue_shift(im, 90),
    "channel swap": channel_swap,
    "sepia": sepia,
    "saturation x0.5": lambda im: saturate(im, 0.5),
    "saturation x1.5": lambda im: saturate(im, 1.5),
    "greyscale": lambda im: saturate(im, 0.0),
}
"""Recoloured copies: the same picture in other colours, which must not merge when the change is visible."""


def flat_images() -> dict[str, bytes]:
    """Low-detail images with degenerate hashes: none may merge with anything (exact copies aside)."""

    def png(im: Image.Image) -> bytes:
        out = io.BytesIO()
        im.save(out, "PNG")
        return out.getvalue()

    def ramp(low: float, high: float, shape: tuple[int, int]) -> np.ndarray:
        return np.repeat(np.linspace(low, high, shape[1])[None, :], shape[0], axis=0)

    images = {}
    for name, colour in (("red", (200, 30, 30)), ("white", (255, 255, 255)), ("grey", (128, 128, 128))):
        images[f"1x1 {name} pixel"] = png(Image.new("RGB", (1, 1), colour))
        images[f"1x1 {name} pixel scaled to 640x480"] = png(Image.new("RGB", (1, 1), colour).resize((640, 480)))
    for name, colour in (("black", (0, 0, 0)), ("beige", (230, 220, 200)), ("blue", (40, 60, 170))):
        images[f"flat {name} 800x600"] = png(Image.new("RGB", (800, 600), colour))
    full = Image.fromarray(ramp(0, 65535, (384, 512)).astype(np.uint16))
    images["16-bit gradient, full range"] = png(full)
    images["16-bit gradient, full range, vertical"] = png(full.transpose(Image.Transpose.ROTATE_90))
    images["16-bit gradient, 20000-30000"] = png(Image.fromarray(ramp(20000, 30000, (384, 512)).astype(np.uint16)))
    images["radial gradient"] = png(Image.radial_gradient("L").resize((640, 480)))
    images["100000x2 strip, gradient"] = png(Image.fromarray(ramp(0, 255, (2, 100_000)).astype(np.uint8)))
    noise = np.random.default_rng(1).integers(0, 256, (2, 100_000, 3), dtype=np.uint8)
    images["100000x2 strip, noise"] = png(Image.fromarray(noise))
    return images


@dataclass(frozen=True, slots=True)
class Photo:
    """An original: its file bytes, a display name, and the room kind when the data set says it."""

    name: str
    room: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class Seen:
    """One standardized image as both rules see it: today's hashes and the new traits."""

    old: Hashes
    traits: ImageTraits


@dataclass(frozen=True, slots=True)
class PhotoResult:
    """An original, its copies and recolours, and how visible each recolour is (mean Delta a*b*)."""

    original: Seen
    copies: dict[str, Seen]
    visibility: dict[str, float]


@dataclass(frozen=True, slots=True)
class Timing:
    """Milliseconds per standardized image: the new traits against today's imagehash pHash + dHash."""

    traits_ms: float
    imagehash_ms: float


def room_of(path: Path) -> str | None:
    """``12_kitchen.jpg`` -> ``kitchen``; None when the name has no room part."""
    _, sep, room = path.stem.partition("_")
    return room if sep and room else None


def load_photos(directory: Path | None, limit: int | None) -> tuple[list[Photo], str]:
    """Originals from ``directory`` if it has JPEGs, else generated ones; and where they came from."""
    if directory is not None and directory.is_dir():
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if files:
            files = files[:limit] if limit else files
            return [Photo(p.name, room_of(p), p.read_bytes()) for p in files], f"{len(files)} photos from {directory}"
    count = limit or 120
    photos = [Photo(f"generated-{seed}", None, generate_photo(seed, (1024, 683))) for seed in range(count)]
    return photos, (
        f"{directory} not found: {count} photos generated with homeshots_sandbox.generate_photo "
        "(no room labels, so no same-room hard negatives)"
    )


def see(im: Image.Image) -> Seen:
    """Today's hashes (imagehash on the full standardized image) and the new traits (one thumbnail)."""
    old = (phash_to_int(imagehash.phash(im, hash_size=8)), phash_to_int(imagehash.dhash(im, hash_size=8)))
    return Seen(old, image_traits(im))


def upright_srgb(data: bytes) -> Image.Image:
    """The photo as a viewer shows it (EXIF orientation and ICC profile applied): what copies are made from."""
    with Image.open(io.BytesIO(data)) as opened:
        icc = opened.info.get("icc_profile")
        im = ImageOps.exif_transpose(opened).convert("RGB")
    if icc:
        with contextlib.suppress(ImageCms.PyCMSError, OSError, ValueError):
            im = ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), _SRGB, outputMode="RGB")
    return im


def _lab_ab(im: Image.Image) -> np.ndarray:
    """CIELAB (a*, b*) of an sRGB image (D65)."""
    c = np.asarray(im.convert("RGB"), dtype=np.float64) / 255
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def chroma_difference(a: Image.Image, b: Image.Image, side: int = 256) -> float:
    """Mean per-pixel CIELAB chroma difference (Delta a*b*) of two same-geometry pictures, on pixels only."""
    size = (side, max(1, round(side * a.height / a.width)))
    da, db = (_lab_ab(im.resize(size, Image.Resampling.BOX)) for im in (a, b))
    return float(np.hypot(*(da - db).transpose(2, 0, 1)).mean())


def analyse_photo(data: bytes) -> tuple[PhotoResult, Timing]:
    """Standardize an original, its copies and recolours; hash each both ways."""
    standardizer = ImageStandardizer()
    upright = upright_srgb(data)
    original, _ = standardizer.canonical(data)
    copies, visibility = {}, {}
    traits_s = imagehash_s = 0.0
    for name, fn in {**TRANSFORMS, **RECOLOURS}.items():
        im, _ = standardizer.canonical(fn(upright))
        t0 = time.perf_counter()
        traits = image_traits(im)
        t1 = time.perf_counter()
        old = (phash_to_int(imagehash.phash(im, hash_size=8)), phash_to_int(imagehash.dhash(im, hash_size=8)))
        traits_s, imagehash_s = traits_s + t1 - t0, imagehash_s + time.perf_counter() - t1
        copies[name] = Seen(old, traits)
        if name in RECOLOURS:
            visibility[name] = chroma_difference(original, im)
    n = len(copies)
    return PhotoResult(see(original), copies, visibility), Timing(1000 * traits_s / n, 1000 * imagehash_s / n)


def analyse_flat(data: bytes) -> tuple[Seen, tuple[int, int]]:
    """A flat image standardized and hashed both ways, and its standardized size."""
    im, _ = ImageStandardizer().canonical(data)
    return see(im), im.size


def merges(a: Seen, b: Seen, scope: Scope | None, rule: MergeRule = RULE) -> bool:
    """The new rule in ``scope``, or today's rule (pHash 8, dHash 12 on today's hashes) for None."""
    if scope is None:
        return _old_rule(*a.old, *b.old)
    return rule.decide(a.traits, b.traits, scope)


def merge_share(results: Sequence[PhotoResult], name: str, scope: Scope | None, rule: MergeRule = RULE) -> float:
    """Share of ``name`` copies merged with their original."""
    return sum(merges(r.original, r.copies[name], scope, rule) for r in results) / len(results)


def thumbnail(data: bytes, size: int = 32) -> Image.Image:
    """The upright image as a ``size`` x ``size`` grey thumbnail (box-averaged)."""
    with Image.open(io.BytesIO(data)) as opened:
        return ImageOps.exif_transpose(opened).convert("L").resize((size, size), Image.Resampling.BOX)


def thumbnail_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute grey-level difference (0-255) of two equally sized thumbnails."""
    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


def same_picture(a: bytes, b: bytes) -> bool:
    """Whether two files show one picture (any size or encoding), judged on pixels, not hashes."""
    return thumbnail_difference(thumbnail(a), thumbnail(b)) < SAME_PICTURE_DIFF


@dataclass(frozen=True, slots=True)
class Pairs:
    """Every unordered pair of originals, one numpy array per measurement (index k is one pair)."""

    i: np.ndarray
    j: np.ndarray
    old_phash: np.ndarray
    old_dhash: np.ndarray
    phash: np.ndarray
    dhash: np.ndarray
    colour: np.ndarray
    quality: np.ndarray
    """The lower of the two detail scores."""
    same_room: np.ndarray
    duplicate: np.ndarray
    """The two files show one picture (a duplicate in the data set), checked on pixels."""

    def passing(self, t: ScopeThresholds) -> np.ndarray:
        """Pairs the new rule merges at ``t``."""
        return _passes(self, t)

    def passing_old(
        self, threshold: int = DEFAULT_THRESHOLD, dhash_threshold: int = DEFAULT_DHASH_THRESHOLD
    ) -> np.ndarray:
        """Pairs today's rule merges."""
        return (self.old_phash <= threshold) & (self.old_dhash <= dhash_threshold)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x).astype(np.int64)


def _colour_distances(signatures: Sequence[str], i: np.ndarray, j: np.ndarray, chunk: int = 20_000) -> np.ndarray:
    """``colour_distance`` for the pairs (i[k], j[k]), decoded once and computed in vectorized chunks."""
    grids = stack_grids([decode_signature(s) for s in signatures]) if signatures else None
    out = np.zeros(len(i))
    for start in range(0, len(i), chunk):
        a, b = i[start : start + chunk], j[start : start + chunk]
        out[start : start + chunk] = grid_distances(grids.take(a), grids.take(b))  # type: ignore[union-attr]
    return out


def pair_table(
    seen: Sequence[Seen],
    rooms: Sequence[str | None],
    is_same_picture: Callable[[int, int], bool] | None = None,
    check_below: int = 16,
) -> Pairs:
    """Measurements for every unordered pair of originals.

    ``is_same_picture(i, j)`` is asked only for pairs within ``check_below`` bits of either pHash (it is slow).
    """
    i, j = (np.array(x, dtype=np.int64) for x in np.triu_indices(len(seen), 1))
    old_p, old_d = (np.array([s.old[k] for s in seen], dtype=np.uint64) for k in (0, 1))
    new_p = np.array([s.traits.phash for s in seen], dtype=np.uint64)
    new_d = np.array([s.traits.dhash for s in seen], dtype=np.uint64)
    quality = np.array([s.traits.quality for s in seen], dtype=np.int64)
    room = np.array([r or "" for r in rooms])
    pairs = Pairs(
        i=i,
        j=j,
        old_phash=_popcount(old_p[i] ^ old_p[j]),
        old_dhash=_popcount(old_d[i] ^ old_d[j]),
        phash=_popcount(new_p[i] ^ new_p[j]),
        dhash=_popcount(new_d[i] ^ new_d[j]),
        colour=_colour_distances([s.traits.colour for s in seen], i, j),
        quality=np.minimum(quality[i], quality[j]),
        same_room=(room[i] == room[j]) & (room[i] != ""),
        duplicate=np.zeros(len(i), dtype=bool),
    )
    if is_same_picture is not None:
        for k in np.nonzero((pairs.old_phash <= check_below) | (pairs.phash <= check_below))[0]:
            pairs.duplicate[k] = is_same_picture(int(i[k]), int(j[k]))
    return pairs


def count_merges(item: Seen, pool: Sequence[Seen], scope: Scope | None, rule: MergeRule = RULE) -> int:
    """How many images of ``pool`` ``item`` would merge with (pHash first, the rest only for candidates)."""
    if scope is None:
        return sum(merges(item, other, None) for other in pool)
    radius = rule.thresholds(scope).phash
    return sum(
        rule.verify(item.traits, other.traits, scope)
        for other in pool
        if hamming(item.traits.phash, other.traits.phash) <= radius
    )


def expected_hash_tail(phash: np.ndarray, dhash: np.ndarray, t: int, d: int, scales: Sequence[float]) -> TailFit:
    """Extrapolate P(pHash <= t and dHash <= d) for different photos from looser thresholds.

    At ``s * t`` / ``s * d`` for each scale ``s`` the share of pairs passing is measured; the probit
    (normal quantile) of that share is close to a straight line in ``s`` (it is for these data),
    so a least-squares line through the points with at least 10 pairs is read at ``s = 1``.
    """
    n = len(phash)
    points = []
    for scale in scales:
        count = int(((phash <= math.floor(scale * t)) & (dhash <= math.floor(scale * d))).sum())
        points.append((scale, count))
    usable = [(scale, NormalDist().inv_cdf(count / n)) for scale, count in points if count >= 10 and count < n]
    if len(usable) < 2:
        return TailFit(points, n, None)
    xs, zs = zip(*usable, strict=True)
    line = statistics.linear_regression(xs, zs)
    return TailFit(points, n, NormalDist().cdf(line.intercept + line.slope), (line.intercept, line.slope))


@dataclass(frozen=True, slots=True)
class TailFit:
    """Measured (scale, pairs passing) points and the extrapolated share of pairs passing at scale 1."""

    points: list[tuple[float, int]]
    pairs: int
    share: float | None
    line: tuple[float, float] | None = None
    """(intercept, slope) of the probit line."""

    def predicted(self, scale: float) -> float | None:
        """Pairs the fitted line expects at ``scale`` (to compare with the sparse points it did not use)."""
        if self.line is None:
            return None
        return self.pairs * NormalDist().cdf(self.line[0] + self.line[1] * scale)


def poisson_upper(k: int, confidence: float = 0.95) -> float:
    """One-sided upper bound of a Poisson mean after observing ``k`` events."""
    low, high = 0.0, 10.0 + 3 * k
    for _ in range(100):
        mid = (low + high) / 2
        cdf = sum(math.exp(-mid + x * math.log(mid) - math.lgamma(x + 1)) for x in range(k + 1)) if mid else 1.0
        low, high = (mid, high) if cdf > 1 - confidence else (low, mid)
    return high


def comparisons(n_images: int) -> float:
    """Pairs compared when ``n_images`` are added one by one, each against every image kept before it."""
    return n_images * (n_images - 1) / 2


TAIL_SCALES = (1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0)
COLOUR_SWEEP = (1.5, 1.75, 2.0, 2.25, 2.5, 3.0)


def _md(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _spread(values: Sequence[float], digits: int = 0) -> str:
    ordered = sorted(values)
    pick = [statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))], ordered[-1]]
    return "/".join(f"{v:.{digits}f}" for v in pick)


def copies_table(results: Sequence[PhotoResult]) -> str:
    """(a) copies that must merge: share merged per scope, today's rule, and the distances."""
    rows = []
    for name in TRANSFORMS:
        dp = [hamming(r.original.traits.phash, r.copies[name].traits.phash) for r in results]
        dd = [hamming(r.original.traits.dhash, r.copies[name].traits.dhash) for r in results]
        dc = [_colour(r.original, r.copies[name]) for r in results]
        rows.append(
            [
                name,
                TRANSFORM_NOTES.get(name, ""),
                _pct(merge_share(results, name, Scope.CORPUS)),
                _pct(merge_share(results, name, Scope.PROPERTY)),
                _pct(merge_share(results, name, None)),
                _spread(dp),
                _spread(dd),
                _spread(dc, 2),
            ]
        )
    return _md(["copy", "how", "corpus rule", "property rule", "today's rule", "pHash d", "dHash d", "colour d"], rows)


def _colour(a: Seen, b: Seen) -> float:
    return float(grid_distances(decode_signature(a.traits.colour), decode_signature(b.traits.colour)))


def recolours_table(results: Sequence[PhotoResult]) -> str:
    """(b) recoloured copies: none that is visible may merge."""
    rows = []
    totals = np.zeros(6, dtype=np.int64)
    for name in RECOLOURS:
        vis = [r for r in results if r.visibility[name] >= VISIBLE_RECOLOUR]
        faint = [r for r in results if r.visibility[name] < VISIBLE_RECOLOUR]
        counts = [
            len(vis),
            sum(merges(r.original, r.copies[name], Scope.CORPUS) for r in vis),
            sum(merges(r.original, r.copies[name], Scope.PROPERTY) for r in vis),
            sum(merges(r.original, r.copies[name], None) for r in vis),
            len(faint),
            sum(merges(r.original, r.copies[name], Scope.PROPERTY) for r in faint),
        ]
        totals += counts
        median_vis = statistics.median(r.visibility[name] for r in results)
        rows.append([name, f"{median_vis:.1f}", *(str(c) for c in counts)])
    rows.append(["all", "", *(f"**{c}**" for c in totals)])
    return _md(
        [
            "recolour",
            "Δa*b* median",
            f"visible (Δa*b* ≥ {VISIBLE_RECOLOUR:g})",
            "visible merged, corpus",
            "visible merged, property",
            "visible merged, today's rule",
            "not visible",
            "not visible merged, property",
        ],
        rows,
    )


def flats_table(flats: dict[str, tuple[Seen, tuple[int, int]]], results: Sequence[PhotoResult]) -> str:
    """(c) low-detail images: merges with each other and with every photo and copy, per rule."""
    photos = [r.original for r in results] + [c for r in results for c in r.copies.values()]
    rows = []
    for name, (item, size) in flats.items():
        others = [s for n, (s, _) in flats.items() if n != name]
        cells = [name, f"{size[0]}x{size[1]}", str(item.traits.quality)]
        for scope in (None, Scope.CORPUS, Scope.PROPERTY):
            cells.append(f"{count_merges(item, others, scope)} / {count_merges(item, photos, scope)}")
        rows.append(cells)
    return _md(
        [
            "low-detail image",
            "standardized",
            "quality",
            "today's rule: flats / photos",
            "corpus rule: flats / photos",
            "property rule: flats / photos",
        ],
        rows,
    )


def false_merges_table(photos: Sequence[Photo], pairs: Pairs) -> str:
    """(d) pairs of different originals merged by each rule (data-set duplicates apart)."""
    corpus, prop, old = pairs.passing(RULE.corpus), pairs.passing(RULE.property), pairs.passing_old()
    distinct = ~pairs.duplicate
    groups = [("all different pictures", distinct), ("same room (hard negatives)", distinct & pairs.same_room)]
    groups += [
        (f"same room: {room}", distinct & pairs.same_room & (np.array([photos[k].room for k in pairs.i]) == room))
        for room in sorted({p.room for p in photos if p.room})
    ]
    rows = [
        [
            label,
            f"{int(mask.sum()):,}",
            str(int((mask & corpus).sum())),
            str(int((mask & prop).sum())),
            str(int((mask & old).sum())),
            str(int((mask & (pairs.phash <= RULE.property.phash)).sum())),
        ]
        for label, mask in groups
    ]
    dup = pairs.duplicate
    rows.append(
        [
            "data-set duplicates (same picture)",
            str(int(dup.sum())),
            f"{int((dup & corpus).sum())} (correct)",
            f"{int((dup & prop).sum())} (correct)",
            f"{int((dup & old).sum())} (correct)",
            "",
        ]
    )
    return _md(
        [
            "pairs of originals",
            "pairs",
            "corpus rule",
            "property rule",
            "today's rule",
            f"pHash ≤ {RULE.property.phash} alone",
        ],
        rows,
    )


def _with(t: ScopeThresholds, **changes: float) -> ScopeThresholds:
    values = {"phash": t.phash, "dhash": t.dhash, "colour": t.colour, "min_quality": t.min_quality, **changes}
    return ScopeThresholds(
        int(values["phash"]), int(values["dhash"]), float(values["colour"]), int(values["min_quality"])
    )


def _passes(m: Pairs | CopyMeasures, t: ScopeThresholds) -> np.ndarray:
    """Which of ``m``'s measured pairs the new rule merges at ``t`` (``MergeRule`` on arrays)."""
    return (m.phash <= t.phash) & (m.dhash <= t.dhash) & (m.colour <= t.colour) & (m.quality >= t.min_quality)


@dataclass(frozen=True, slots=True)
class CopyMeasures:
    """Distances of one kind of copy from each original (index k is original k), for threshold sweeps."""

    phash: np.ndarray
    dhash: np.ndarray
    colour: np.ndarray
    quality: np.ndarray
    visibility: np.ndarray

    def passing(self, t: ScopeThresholds) -> np.ndarray:
        """Which copies the new rule merges at ``t`` (what ``MergeRule.decide`` says, computed once)."""
        return _passes(self, t)


def copy_measures(results: Sequence[PhotoResult]) -> dict[str, CopyMeasures]:
    """``CopyMeasures`` of every copy and recolour, the colour distances decoded and computed once."""
    out = {}
    for name in {**TRANSFORMS, **RECOLOURS}:
        originals = [r.original.traits for r in results]
        copies = [r.copies[name].traits for r in results]
        grids = [stack_grids([decode_signature(t.colour) for t in side]) for side in (originals, copies)]
        out[name] = CopyMeasures(
            phash=np.array([hamming(a.phash, b.phash) for a, b in zip(originals, copies, strict=True)]),
            dhash=np.array([hamming(a.dhash, b.dhash) for a, b in zip(originals, copies, strict=True)]),
            colour=np.asarray(grid_distances(*grids)),
            quality=np.array([min(a.quality, b.quality) for a, b in zip(originals, copies, strict=True)]),
            visibility=np.array([r.visibility.get(name, 0.0) for r in results]),
        )
    return out


def grid_table(
    measures: dict[str, CopyMeasures], pairs: Pairs, thresholds: Sequence[int], dhash_thresholds: Sequence[int]
) -> str:
    """(e) pHash/dHash thresholds with the colour and detail checks: copies kept, false merges."""
    distinct = ~pairs.duplicate
    rows = []
    for t in thresholds:
        for d in dhash_thresholds:
            limits = _with(RULE.property, phash=t, dhash=d)
            shares = {n: float(measures[n].passing(limits).mean()) for n in TRANSFORMS}
            hashes_only = (pairs.phash <= t) & (pairs.dhash <= d)
            rows.append(
                [
                    str(t),
                    str(d),
                    _pct(shares["crop 3%"]),
                    _pct(shares["crop 5%"]),
                    _pct(shares["rotate 2°"]),
                    _pct(min(shares["letterbox 5%"], shares["pillarbox 5%"], shares["letterbox 5% fit"])),
                    _pct(min(shares[n] for n in CORPUS_MUST)),
                    str(int((distinct & pairs.passing(limits)).sum())),
                    str(int((distinct & hashes_only).sum())),
                ]
            )
    return _md(
        [
            "pHash t",
            "dHash t",
            "crop 3%",
            "crop 5%",
            "rotate 2°",
            "bars (worst)",
            "re-encode..brightness (worst)",
            f"false merges (colour ≤ {RULE.property.colour:g}, quality ≥ {RULE.property.min_quality})",
            "false merges, hashes alone",
        ],
        rows,
    )


def colour_sweep_table(measures: dict[str, CopyMeasures], pairs: Pairs) -> str:
    """(f) the colour threshold: copies kept against visible recolours let through."""
    distinct = ~pairs.duplicate
    rows = []
    for c in COLOUR_SWEEP:
        corpus, prop = _with(RULE.corpus, colour=c), _with(RULE.property, colour=c)
        must = min(float(measures[n].passing(corpus).mean()) for n in CORPUS_MUST)
        bars = min(float(measures[n].passing(corpus).mean()) for n in ("letterbox 5%", "pillarbox 5%"))
        crop = float(measures["crop 5%"].passing(prop).mean())
        recoloured = sum(
            int((measures[n].passing(prop) & (measures[n].visibility >= VISIBLE_RECOLOUR)).sum()) for n in RECOLOURS
        )
        rows.append(
            [
                f"{c:g}" + (" (chosen)" if c == RULE.corpus.colour else ""),
                _pct(must),
                _pct(bars),
                _pct(crop),
                str(recoloured),
                str(int((distinct & pairs.passing(prop)).sum())),
            ]
        )
    return _md(
        [
            "colour ≤",
            "re-encode..brightness, corpus (worst)",
            "bars, corpus (worst)",
            "crop 5%, property",
            "visible recolours merged, property",
            "false merges, property",
        ],
        rows,
    )


def estimate_section(pairs: Pairs, n_images: int = 1_000_000, per_property: int = 40) -> str:
    """(g) expected false merges at ``n_images`` kept images, with the method."""
    distinct = ~pairs.duplicate
    n = int(distinct.sum())
    phash, dhash, colour, quality = (x[distinct] for x in (pairs.phash, pairs.dhash, pairs.colour, pairs.quality))
    c, q = RULE.corpus, RULE.corpus.min_quality
    fit = expected_hash_tail(phash, dhash, c.phash, c.dhash, TAIL_SCALES)
    old = expected_hash_tail(pairs.old_phash[distinct], pairs.old_dhash[distinct], c.phash, c.dhash, TAIL_SCALES)
    agree = (colour <= c.colour) & (quality >= q)
    k = int(agree.sum())
    near = phash <= 3 * c.phash
    k_near, n_near = int((agree & near).sum()), int(near.sum())
    p_colour, p_colour_hi = k / n, poisson_upper(k) / n
    correlation = float(np.corrcoef(phash, colour)[0, 1]) if n > 2 else float("nan")
    pairs_at_n = comparisons(n_images)
    lines = [
        f"What is counted: {n_images:,} images added one by one, each compared with every image kept before it "
        f"(as if none merged), so {pairs_at_n:.3g} comparisons of different photos; expected false merges = "
        "comparisons x P(a pair of different photos passes the corpus rule).",
        "",
        f"1. Hashes. P(pHash ≤ {c.phash} and dHash ≤ {c.dhash}) is too small to see among {n:,} pairs, so it is "
        "measured at looser thresholds (both scaled by s) and extrapolated: the probit of the share passing is "
        "close to a straight line in s; a least-squares line through the points with ≥ 10 pairs is read at s = 1.",
        "",
        _md(
            ["s", "pHash ≤", "dHash ≤", "pairs passing (new hashes)", "pairs passing (today's hashes)"],
            [
                [f"{s:g}", str(math.floor(s * c.phash)), str(math.floor(s * c.dhash)), str(a), str(b)]
                for (s, a), (_, b) in zip(fit.points, old.points, strict=True)
            ],
        ),
        "",
        f"   Extrapolated P(hashes pass) at s = 1: new hashes {_sci(fit.share)}, today's hashes {_sci(old.share)}."
        + "".join(
            f" At s = {s:g} the line expects {fit.predicted(s):.2g} pairs, {count} seen."
            for s, count in fit.points
            if count < 10 and fit.predicted(s) is not None
        ),
        f"2. Colour (and detail). P(colour ≤ {c.colour:g} and quality ≥ {q}) among all {n:,} pairs of different "
        f"photos: {k} pairs = {_sci(p_colour)} (95% upper bound {_sci(p_colour_hi)}). Independence check: "
        f"correlation(pHash d, colour d) = {correlation:.3f}; among the {n_near:,} pairs with pHash ≤ {3 * c.phash} "
        f"the colour agrees for {k_near} ({_sci(k_near / n_near if n_near else float('nan'))}). Taking colour as "
        "independent of structure for different photos, P(pass) = P(hashes) x P(colour).",
    ]
    if fit.share is not None and old.share is not None:
        expected = pairs_at_n * fit.share * p_colour
        expected_hi = pairs_at_n * fit.share * p_colour_hi
        lines += [
            f"3. Expected false merges at {n_images:,} images: corpus rule **{expected:.2g}** "
            f"(with the colour bound: {expected_hi:.2g}); today's rule (hashes alone): {pairs_at_n * old.share:.3g}.",
        ]
    prop = RULE.property
    k_prop = int(((phash <= prop.phash) & (dhash <= prop.dhash)).sum())
    per_pair = k_prop / n * p_colour
    props = n_images / per_property
    lines += [
        f"4. Property rule (pHash ≤ {prop.phash}, dHash ≤ {prop.dhash}), only among one property's images: "
        f"{k_prop} of {n:,} pairs pass the hashes ({_sci(k_prop / n)}), x P(colour) = {_sci(per_pair)} per pair; "
        f"{n_images:,} images in properties of {per_property} photos are {props:,.0f} properties x "
        f"{comparisons(per_property):.0f} pairs: {props * comparisons(per_property) * per_pair:.2g} expected false "
        "merges. Caveat: photos of one property are more alike than these pairs from different houses (several "
        "shots of one room); the data set has one photo per room and house, so it cannot measure that.",
    ]
    return "\n".join(lines)


def _sci(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.2g}"


def report(
    photos: Sequence[Photo],
    results: Sequence[PhotoResult],
    flats: dict[str, tuple[Seen, tuple[int, int]]],
    thresholds: Sequence[int],
    dhash_thresholds: Sequence[int],
    timing: Timing | None = None,
) -> str:
    """All printed sections, markdown."""
    c, p = RULE.corpus, RULE.property
    rooms = [ph.room for ph in photos]
    thumbs: dict[int, Image.Image] = {}

    def is_same_picture(i: int, j: int) -> bool:
        for k in (i, j):
            if k not in thumbs:
                thumbs[k] = thumbnail(photos[k].data)
        return thumbnail_difference(thumbs[i], thumbs[j]) < SAME_PICTURE_DIFF

    pairs = pair_table([r.original for r in results], rooms, is_same_picture)
    measures = copy_measures(results)
    out = [
        f"Rules: **corpus** pHash ≤ {c.phash}, dHash ≤ {c.dhash}, colour ≤ {c.colour:g}, quality ≥ {c.min_quality}; "
        f"**property** pHash ≤ {p.phash}, dHash ≤ {p.dhash}, colour ≤ {p.colour:g}, quality ≥ {p.min_quality}; "
        f"**today's rule** pHash ≤ {DEFAULT_THRESHOLD}, dHash ≤ {DEFAULT_DHASH_THRESHOLD} (imagehash on the full "
        "image, no bar trimming, no colour, no detail check).",
    ]
    if timing:
        out.append(
            f"Traits from one 64x64 thumbnail: {timing.traits_ms:.2f} ms per standardized image (pHash, dHash, "
            f"colour, quality); imagehash pHash + dHash on the full image: {timing.imagehash_ms:.2f} ms."
        )
    out += [
        "",
        f"**(a) Copies merged with their original** ({len(results)} originals; distances as median/p95/max)",
        "",
        copies_table(results),
        "",
        "**(b) Recoloured copies** (counts of originals; visible = mean CIELAB chroma difference Δa*b* "
        f"≥ {VISIBLE_RECOLOUR:g}, measured on pixels)",
        "",
        recolours_table(results),
        "",
        "**(c) Low-detail images** (merges with the other low-detail images / with all originals, copies and "
        "recolours)",
        "",
        flats_table(flats, results),
        "",
        "**(d) False merges among different originals**",
        "",
        false_merges_table(photos, pairs),
        "",
    ]
    dups = np.nonzero(pairs.duplicate)[0]
    if len(dups):
        out.append(
            "Data-set duplicates: "
            + ", ".join(f"{photos[pairs.i[k]].name} = {photos[pairs.j[k]].name}" for k in dups[:12])
            + "."
        )
    distinct = np.nonzero(~pairs.duplicate)[0]
    if len(distinct):
        k = min(distinct, key=lambda x: (pairs.phash[x], pairs.dhash[x]))
        kc = min(distinct, key=lambda x: pairs.colour[x])
        out.append(
            f"Nearest different pictures: {photos[pairs.i[k]].name} ~ {photos[pairs.j[k]].name} "
            f"(pHash {pairs.phash[k]}, dHash {pairs.dhash[k]}, colour {pairs.colour[k]:.2f}); "
            f"closest in colour: {photos[pairs.i[kc]].name} ~ {photos[pairs.j[kc]].name} "
            f"(colour {pairs.colour[kc]:.2f}, pHash {pairs.phash[kc]})."
        )
    out += [
        "",
        "**(e) Threshold grid** (colour and quality checks on; copies judged with these hash thresholds)",
        "",
        grid_table(measures, pairs, thresholds, dhash_thresholds),
        "",
        "**(f) Colour threshold** (corpus hashes for the corpus columns, property hashes for the rest)",
        "",
        colour_sweep_table(measures, pairs),
        "",
        "**(g) Expected false merges at 1M images**",
        "",
        estimate_section(pairs),
    ]
    return "\n".join(out)


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DATASET, help=f"folder of originals (default {DATASET})")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--thresholds", default="8,12,16,20,24", help="pHash thresholds for the grid")
    parser.add_argument("--dhash-thresholds", default="12,20,24", help="dHash thresholds for the grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    photos, origin = load_photos(args.photos, args.limit)
    print(f"originals: {origin}", flush=True)
    if len(photos) < 2:
        parser.error("need at least two photos")
    flat_data = flat_images()
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        analysed = list(pool.map(analyse_photo, [p.data for p in photos], chunksize=4))
        flats = dict(zip(flat_data, pool.map(analyse_flat, flat_data.values()), strict=True))
    results = [r for r, _ in analysed]
    timing = Timing(
        statistics.fmean(t.traits_ms for _, t in analysed), statistics.fmean(t.imagehash_ms for _, t in analysed)
    )
    print(report(photos, results, flats, _ints(args.thresholds), _ints(args.dhash_thresholds), timing))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def _old_rule(phash_a: int, dhash_a: int, phash_b: int, dhash_b: int) -> bool:
    """The rule before colour verification (standardizer version 1): pHash and dHash only."""
    return (phash_a ^ phash_b).bit_count() <= DEFAULT_THRESHOLD and (
        dhash_a ^ dhash_b
    ).bit_count() <= DEFAULT_DHASH_THRESHOLD
