"""Near-copy evidence beyond the grey hashes: a colour signature, a detail score and a merge rule scoped by risk.

pHash and dHash see only grey levels, so a recoloured copy hashes like its original, and pictures
with no detail (flat colours, gradients, 1-pixel strips) get degenerate hashes that collide. Both
hashes, an 8x8 colour grid and a detail score are computed here from ONE 64x64 thumbnail, made
after cutting uniform letterbox/pillarbox bars so that a barred copy hashes like its original.

A merge needs four agreements: pHash within ``t`` (the only test an index search has to do),
dHash within ``d``, colours within ``c`` (``colour_distance``) and enough detail on both sides.
Thresholds depend on how many candidates a new image meets (``Scope``): millions across the
corpus call for tight hash thresholds, the few dozen images of one property allow loose ones
that also catch crops and small rotations. ``benchmarks/dedup_quality.py`` measures the numbers.
"""

from __future__ import annotations

import base64
import warnings
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import numpy as np
from PIL import Image

THUMB_SIDE = 64
"""The one thumbnail every trait comes from: 64x64 RGB (PDQ's size for its quality score)."""
WORK_SIDE = 256
"""Bars are looked for on an integer reduction whose longest side is about this (cheap, 0.4% steps)."""
GRID = 8
"""The colour signature is a GRID x GRID grid of cells (8x8 pixels of the thumbnail each)."""
MIN_SIDE = 32
"""A picture narrower than the 32x32 pHash grid has nothing to hash: its detail is 0."""

_BAR_STD = 4.0
"""A bar line is this uniform (std of grey levels) ..."""
_BAR_DRIFT = 6.0
"""... and stays within this many grey levels of the outermost line."""
_BAR_MAX_FRACTION = 0.25
"""No more than this share of a side is cut: beyond it the "bar" is part of the picture."""
_BAR_COLOUR_MATCH = 12.0
"""Opposite bars must have about one colour and one size: a lone uniform edge is sky or wall, not a bar."""

_Y_BITS = 6
_CELL_BITS = _Y_BITS + 1 + 8 + 8
"""Per cell: luma (6 bits), clipped flag (1), Cb and Cr (8 bits each, signed, 1 level steps)."""
SIGNATURE_BYTES = GRID * GRID * _CELL_BITS // 8
"""184 bytes, stored as 246 characters of unpadded URL-safe base64 (``SIGNATURE_CHARS``)."""
SIGNATURE_CHARS = -(-SIGNATURE_BYTES * 4 // 3)
_CLIP_LEVEL = 250
"""A thumbnail pixel with a channel at or above this has lost its hue to clipping."""
_CLIP_SHARE = 0.25
"""A cell with at least this share of clipped pixels is flagged as clipped."""
_MAX_GAIN = 1.18
"""Brightness/exposure edits scale chroma with luma (YCbCr is linear in RGB): at most this much."""
_MIN_LUMA = 16.0
"""Luma ratios of near-black cells are noise: luma is floored here before dividing."""
_BRIGHTER = 3.0
_DESATURATION_SLACK = 2.0
"""A clipped cell is excused if it is this much brighter (luma levels) and at most this much more saturated."""
_SHIFT = 0.5
"""Cells may be misaligned by half a cell (a 5% crop or a 2 degree turn moves borders that much)."""

QUALITY_FULL = 33.0
"""Mean |Laplacian| (grey levels) of the 64x64 thumbnail that scores 100; house photos score 47-100."""
MIN_QUALITY = 10
"""Below this detail score an image is never a near copy (pixel-identical copies still merge by sha256).

Flat colours, gradients and 1-pixel strips score 0-4, the 480 photos of the houses data set 47-100."""


@dataclass(frozen=True, slots=True)
class ImageTraits:
    """What the merge rule compares: both grey hashes, the colour signature and the detail score.

    The hashes come from the bar-free 64x64 thumbnail, so they differ a little from
    ``StandardizedImage.phash``/``dhash`` (imagehash on the full image): never mix the two in one index.
    """

    phash: int
    dhash: int
    colour: str
    """``colour_signature``: ``SIGNATURE_CHARS`` ASCII characters."""
    quality: int
    """``quality_score``, 0..100."""


class Scope(StrEnum):
    """How many candidates a new image meets: the more there are, the tighter the hashes must agree."""

    CORPUS = "corpus"
    PROPERTY = "property"


@dataclass(frozen=True, slots=True)
class ScopeThresholds:
    """One scope's limits; ``phash`` is the radius of the candidate search, the rest verifies candidates."""

    phash: int
    dhash: int
    colour: float
    min_quality: int


@dataclass(frozen=True, slots=True)
class MergeRule:
    """When two standardized images are one picture, per scope (see the module docstring)."""

    corpus: ScopeThresholds
    property: ScopeThresholds

    @classmethod
    def default(cls) -> MergeRule:
        """The thresholds measured in benchmarks/RESULTS.md ("Dedup rule: colour-verified, scoped by risk")."""
        return cls(
            corpus=ScopeThresholds(phash=8, dhash=12, colour=2.0, min_quality=MIN_QUALITY),
            property=ScopeThresholds(phash=20, dhash=20, colour=2.0, min_quality=MIN_QUALITY),
        )

    def thresholds(self, scope: Scope | str) -> ScopeThresholds:
        """The limits of ``scope`` (a ``Scope`` or its string value)."""
        return self.corpus if Scope(scope) is Scope.CORPUS else self.property

    def verify(self, a: ImageTraits, b: ImageTraits, scope: Scope | str) -> bool:
        """Everything but the pHash test: for candidates an index search found within ``thresholds().phash``."""
        t = self.thresholds(scope)
        return (
            min(a.quality, b.quality) >= t.min_quality
            and (a.dhash ^ b.dhash).bit_count() <= t.dhash
            and colour_distance(a.colour, b.colour) <= t.colour
        )

    def decide(self, a: ImageTraits, b: ImageTraits, scope: Scope | str) -> bool:
        """Whether ``a`` and ``b`` are one picture under ``scope``'s limits."""
        return (a.phash ^ b.phash).bit_count() <= self.thresholds(scope).phash and self.verify(a, b, scope)


def image_traits(im: Image.Image) -> ImageTraits:
    """All traits of a (standardized) image from one 64x64 thumbnail: one pass over the full image."""
    thumb = hash_thumbnail(im)
    grey = thumb.convert("L")
    quality = quality_score(grey) if min(im.size) >= MIN_SIDE else 0
    return ImageTraits(phash(grey), dhash(grey), colour_signature(thumb), quality)


def hash_thumbnail(im: Image.Image) -> Image.Image:
    """The picture without letterbox/pillarbox bars as a 64x64 RGB thumbnail."""
    rgb = im if im.mode == "RGB" else im.convert("RGB")
    factor = max(1, max(rgb.size) // WORK_SIDE)
    small = rgb.reduce(factor) if factor > 1 else rgb
    box = bar_box(np.asarray(small))
    return small.resize((THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS, box=box)


def bar_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) inside uniform bars found on both opposite sides; the whole image if none."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    height, width = grey.shape
    top, bottom = _bars(grey)
    left, right = _bars(grey.T)
    return (left, top, width - right, height - bottom)


def _bars(lines: np.ndarray) -> tuple[int, int]:
    """Bar sizes at the start and end of ``lines`` (rows), or (0, 0) unless both sides have a matching bar."""
    n = lines.shape[0]
    (first, first_colour), (last, last_colour) = _bar(lines, n), _bar(lines[::-1], n)
    least = max(1, round(n * 0.01))
    matching = abs(first_colour - last_colour) <= _BAR_COLOUR_MATCH and abs(first - last) <= max(
        2, 0.34 * max(first, last)
    )
    return (first, last) if first >= least and last >= least and matching else (0, 0)


def _bar(lines: np.ndarray, n: int) -> tuple[int, float]:
    """How many leading lines are uniform and of the outermost line's colour, and that colour."""
    means, stds = lines.mean(axis=1), lines.std(axis=1)
    colour = float(means[0])
    limit = int(n * _BAR_MAX_FRACTION)
    count = 0
    while count < limit and stds[count] <= _BAR_STD and abs(means[count] - colour) <= _BAR_DRIFT:
        count += 1
    return count, colour


@cache
def _dct_rows() -> np.ndarray:
    """The first 8 rows of the (unnormalized) 32-point DCT-II: what imagehash's pHash keeps."""
    k = np.arange(8)[:, None]
    x = np.arange(32)[None, :]
    return np.cos(np.pi * k * (2 * x + 1) / 64)


def phash(grey: Image.Image) -> int:
    """imagehash's pHash (8x8 low frequencies of a 32x32 DCT, above their median), row-major bits."""
    pixels = np.asarray(grey.resize((32, 32), Image.Resampling.LANCZOS), dtype=np.float64)
    rows = _dct_rows()
    low = rows @ pixels @ rows.T
    return _bits(low > np.median(low))


def dhash(grey: Image.Image) -> int:
    """imagehash's dHash (9x8 grey, each pixel brighter than its left neighbour), row-major bits."""
    pixels = np.asarray(grey.resize((9, 8), Image.Resampling.LANCZOS), dtype=np.int16)
    return _bits(pixels[:, 1:] > pixels[:, :-1])


def _bits(flags: np.ndarray) -> int:
    return int.from_bytes(np.packbits(flags.ravel()).tobytes(), "big")


def quality_score(grey: Image.Image) -> int:
    """Detail 0..100: mean |Laplacian| of the 64x64 grey thumbnail (flat colours and gradients give ~0).

    PDQ scores gradient energy; a smooth gradient has plenty of that but its hash is as degenerate
    as a flat colour's, so the second difference is measured instead.
    """
    g = np.asarray(grey, dtype=np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return min(100, int(float(np.abs(lap).mean()) * 100 / QUALITY_FULL))


@dataclass(frozen=True, slots=True)
class ColourGrid:
    """A decoded signature: per cell mean luma, mean (Cb, Cr) around 0, and whether the cell is clipped."""

    luma: np.ndarray
    chroma: np.ndarray
    clipped: np.ndarray

    def take(self, index: np.ndarray) -> ColourGrid:
        """The grids at ``index`` of a stacked grid (see ``stack_grids``)."""
        return ColourGrid(self.luma[index], self.chroma[index], self.clipped[index])


def colour_grid(thumb: Image.Image) -> ColourGrid:
    """Cell means of the thumbnail in YCbCr, and which cells are mostly clipped (a channel at the ceiling)."""
    rgb = np.asarray(thumb.convert("RGB"), dtype=np.float32)
    ycc = np.asarray(thumb.convert("YCbCr"), dtype=np.float32)
    k = THUMB_SIDE // GRID

    def cells(x: np.ndarray) -> np.ndarray:
        return x.reshape(GRID, k, GRID, k).mean(axis=(1, 3))

    chroma = np.stack([cells(ycc[..., 1]) - 128, cells(ycc[..., 2]) - 128])
    clipped = cells((rgb.max(axis=2) >= _CLIP_LEVEL).astype(np.float32)) >= _CLIP_SHARE
    return ColourGrid(cells(ycc[..., 0]), chroma, clipped)


def colour_signature(thumb: Image.Image) -> str:
    """``colour_grid`` packed into ``SIGNATURE_CHARS`` ASCII characters (what Redis stores per kept image)."""
    grid = colour_grid(thumb)
    luma = np.clip(grid.luma // (256 >> _Y_BITS), 0, (1 << _Y_BITS) - 1).astype(np.uint8)
    chroma = (np.clip(np.round(grid.chroma), -128, 127).astype(np.int16) & 0xFF).astype(np.uint8)
    fields = [(luma.ravel(), _Y_BITS), (grid.clipped.ravel().astype(np.uint8), 1)]
    fields += [(chroma[0].ravel(), 8), (chroma[1].ravel(), 8)]
    bits = np.concatenate([np.unpackbits(v[:, None], axis=1)[:, 8 - width :] for v, width in fields], axis=1)
    return base64.urlsafe_b64encode(np.packbits(bits.ravel()).tobytes()).decode().rstrip("=")


def decode_signature(signature: str) -> ColourGrid:
    """Inverse of ``colour_signature`` (luma back as the centre of its 4-level step)."""
    if len(signature) != SIGNATURE_CHARS:
        raise ValueError(f"a colour signature has {SIGNATURE_CHARS} characters, not {len(signature)}")
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    bits = np.unpackbits(np.frombuffer(raw, np.uint8))[: GRID * GRID * _CELL_BITS].reshape(GRID * GRID, _CELL_BITS)
    weights = 1 << np.arange(7, -1, -1)

    def field(start: int, width: int) -> np.ndarray:
        return (bits[:, start : start + width] * weights[8 - width :]).sum(axis=1).reshape(GRID, GRID)

    step = 256 >> _Y_BITS
    luma = field(0, _Y_BITS).astype(np.float32) * step + step / 2
    clipped = field(_Y_BITS, 1).astype(bool)
    cb, cr = (field(start, 8).astype(np.uint8).view(np.int8).astype(np.float32) for start in (_Y_BITS + 1, _Y_BITS + 9))
    return ColourGrid(luma, np.stack([cb, cr]), clipped)


def colour_distance(a: str, b: str) -> float:
    """Mean chroma difference per cell (Cb/Cr levels) after allowing what a brightness edit and a crop do.

    A brightness change scales chroma with luma (one gain for the picture) and may clip bright cells
    to white, which only desaturates them; a crop or small turn moves content by up to half a cell.
    Whatever difference remains is a change of colour. Symmetric; 0 for identical signatures.
    """
    return float(grid_distances(decode_signature(a), decode_signature(b)))


def stack_grids(grids: list[ColourGrid]) -> ColourGrid:
    """Many grids as one with a leading axis, for ``grid_distances`` over many pairs at once."""
    return ColourGrid(
        np.stack([g.luma for g in grids]), np.stack([g.chroma for g in grids]), np.stack([g.clipped for g in grids])
    )


def grid_distances(a: ColourGrid, b: ColourGrid) -> np.ndarray:
    """``colour_distance`` of decoded grids, element-wise over any leading axes (one pair: a 0-d array)."""
    return np.maximum(_one_way(a, b), _one_way(b, a))


def _one_way(a: ColourGrid, b: ColourGrid) -> np.ndarray:
    """Mean distance from each cell of ``b`` to ``a``'s colour at that cell or up to half a cell away."""
    cell_gain = np.clip(
        np.sqrt(np.maximum(b.luma, _MIN_LUMA) / np.maximum(a.luma, _MIN_LUMA)), 1 / _MAX_GAIN, _MAX_GAIN
    )
    size_a, size_b = _norm(a.chroma), _norm(b.chroma)
    # Clipping explains a lost colour only where the clipped side got brighter and no more saturated.
    excused = (b.clipped & (b.luma >= a.luma + _BRIGHTER) & (size_b <= size_a * cell_gain**2 + _DESATURATION_SLACK)) | (
        a.clipped & (a.luma >= b.luma + _BRIGHTER) & (size_a <= size_b / cell_gain**2 + _DESATURATION_SLACK)
    )
    compared = ~excused
    # One gain for the picture: the median luma ratio of lit cells (a crop moves the rest, not the median).
    lit = compared & (a.luma > 24) & (b.luma > 24)
    ratios = np.where(lit, b.luma / np.maximum(a.luma, 1), np.nan).reshape(*lit.shape[:-2], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair with no lit cell: no gain (1.0) below
        ratio = np.nanmedian(ratios, axis=-1)
    ratio = np.where(np.isnan(ratio), 1.0, ratio)
    gain = np.clip(np.sqrt(ratio), 1 / _MAX_GAIN, _MAX_GAIN)[..., None, None, None]
    ca, cb = a.chroma * gain, b.chroma / gain
    best = _norm(ca - cb)
    pad = [(0, 0)] * (ca.ndim - 2) + [(1, 1), (1, 1)]
    padded = np.pad(ca, pad, mode="edge")
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                step = (padded[..., 1 + dy : 1 + dy + GRID, 1 + dx : 1 + dx + GRID] - ca) * _SHIFT
                along = (step * (cb - ca)).sum(axis=-3) / np.maximum((step * step).sum(axis=-3), 1e-9)
                best = np.minimum(best, _norm(ca + step * np.clip(along, 0, 1)[..., None, :, :] - cb))
    count = compared.sum(axis=(-2, -1))
    return np.where(count > 0, (best * compared).sum(axis=(-2, -1)) / np.maximum(count, 1), 0.0)


def _norm(chroma: np.ndarray) -> np.ndarray:
    """Length of (Cb, Cr) vectors held on the third-last axis."""
    return np.hypot(chroma[..., 0, :, :], chroma[..., 1, :, :])
