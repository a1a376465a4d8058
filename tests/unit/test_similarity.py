"""Colour signature, detail score and the scoped merge rule, on pictures generated here (no files from disk)."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import imagehash
import numpy as np
import pytest
from homeshots_sandbox import generate_photo
from PIL import Image, ImageEnhance

from homeshots.imaging.hashing import phash_to_int
from homeshots.imaging.similarity import (
    MIN_QUALITY,
    SIGNATURE_CHARS,
    ImageTraits,
    MergeRule,
    Scope,
    bar_box,
    colour_distance,
    colour_grid,
    colour_signature,
    decode_signature,
    dhash,
    grid_distances,
    hash_thumbnail,
    image_traits,
    phash,
    stack_grids,
)

RULE = MergeRule.default()


def photo_like(seed: int, size: tuple[int, int] = (640, 427)) -> Image.Image:
    """Soft, moderately coloured areas with fine grey detail: closer to a real photo than flat shapes."""
    rng = random.Random(seed)
    colours = np.array([[rng.randrange(40, 220) for _ in range(3)] for _ in range(12)], np.float32).reshape(3, 4, 3)
    grey = colours.mean(axis=2, keepdims=True)
    colours = grey + 0.4 * (colours - grey)  # real photos are far less saturated than random RGB
    base = Image.fromarray(colours.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    w, h = size[0] // 8, size[1] // 8
    noise = Image.fromarray(np.array([rng.randrange(256) for _ in range(w * h)], np.uint8).reshape(h, w))
    detail = np.asarray(noise.resize(size, Image.Resampling.BICUBIC), np.float32)[..., None] - 128
    return Image.fromarray(np.clip(np.asarray(base, np.float32) + 0.5 * detail, 0, 255).astype(np.uint8))


def opened(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def hue_shift(im: Image.Image, degrees: int) -> Image.Image:
    hsv = np.asarray(im.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + degrees * 256 // 360) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def crop(im: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(im.width * fraction), round(im.height * fraction)
    return im.crop((dx, dy, im.width - dx, im.height - dy))


def bars(im: Image.Image, fraction: float, colour: tuple[int, int, int]) -> Image.Image:
    bar = round(im.height * fraction)
    out = Image.new("RGB", (im.width, im.height + 2 * bar), colour)
    out.paste(im, (0, bar))
    return out


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return opened(generate_photo(5, (800, 533)))


@pytest.fixture(scope="module")
def traits(photo: Image.Image) -> ImageTraits:
    return image_traits(photo)


@pytest.mark.parametrize(
    "recolour",
    [
        lambda im: hue_shift(im, 90),
        lambda im: Image.merge("RGB", im.split()[::-1]),
        lambda im: ImageEnhance.Color(im).enhance(0.0),
        lambda im: ImageEnhance.Color(im).enhance(0.4),
    ],
    ids=["hue +90", "channel swap", "greyscale", "saturation x0.4"],
)
def test_a_recoloured_copy_is_not_a_colour_match(recolour: Callable[[Image.Image], Image.Image]) -> None:
    im = photo_like(2)
    original, copy = image_traits(im), image_traits(recolour(im))
    assert (copy.phash ^ original.phash).bit_count() <= RULE.property.phash  # the grey hashes let it through
    assert colour_distance(original.colour, copy.colour) > RULE.property.colour
    assert not RULE.decide(original, copy, Scope.CORPUS)
    assert not RULE.decide(original, copy, Scope.PROPERTY)


@pytest.mark.parametrize("factor", [1.15, 0.85])
def test_a_brightness_change_is_a_colour_match(photo: Image.Image, traits: ImageTraits, factor: float) -> None:
    copy = image_traits(ImageEnhance.Brightness(photo).enhance(factor))
    assert colour_distance(traits.colour, copy.colour) <= RULE.corpus.colour
    assert RULE.decide(traits, copy, Scope.CORPUS)


def test_clipping_a_bright_sky_to_white_is_still_a_brightness_change() -> None:
    sky = np.zeros((400, 600, 3), np.uint8)
    sky[:200] = (110, 170, 250)  # blue sky, its blue channel near the ceiling
    ground = opened(generate_photo(9, (600, 200)))
    sky[200:] = np.asarray(ground)
    im = Image.fromarray(sky)
    original, brighter = image_traits(im), image_traits(ImageEnhance.Brightness(im).enhance(1.15))
    assert colour_distance(original.colour, brighter.colour) <= RULE.corpus.colour


@pytest.mark.parametrize(
    "flat",
    [
        Image.new("RGB", (1, 1), (200, 30, 30)),
        Image.new("RGB", (1, 1), (200, 30, 30)).resize((640, 480)),
        Image.new("RGB", (800, 600), (230, 220, 200)),
        Image.fromarray(np.repeat(np.linspace(0, 255, 512)[None, :], 384, axis=0).astype(np.uint8)),
        Image.radial_gradient("L").resize((640, 480)),
        Image.fromarray(np.random.default_rng(1).integers(0, 256, (2, 4000, 3), dtype=np.uint8)),
    ],
    ids=["1x1 pixel", "1x1 scaled", "flat colour", "gradient", "radial gradient", "noise strip"],
)
def test_a_flat_image_has_low_quality_and_never_merges(flat: Image.Image) -> None:
    t = image_traits(flat)
    assert t.quality < MIN_QUALITY
    assert not RULE.decide(t, t, Scope.CORPUS)  # not even with itself: only a sha256 match merges it
    assert not RULE.decide(t, t, Scope.PROPERTY)


def test_photos_have_enough_detail(traits: ImageTraits) -> None:
    assert traits.quality >= MIN_QUALITY
    assert image_traits(photo_like(3)).quality >= MIN_QUALITY


def test_the_property_rule_merges_a_5_percent_crop_the_corpus_rule_does_not() -> None:
    im = photo_like(3)
    original, cropped = image_traits(im), image_traits(crop(im, 0.05))
    assert (original.phash ^ cropped.phash).bit_count() > RULE.corpus.phash
    assert not RULE.decide(original, cropped, Scope.CORPUS)
    assert RULE.decide(original, cropped, Scope.PROPERTY)


@pytest.mark.parametrize("colour", [(0, 0, 0), (255, 255, 255)])
def test_letterbox_bars_are_cut_before_hashing(photo: Image.Image, traits: ImageTraits, colour: tuple) -> None:
    barred = image_traits(bars(photo, 0.05, colour))
    assert (barred.phash ^ traits.phash).bit_count() <= 4
    assert RULE.decide(traits, barred, Scope.CORPUS)


def test_a_uniform_edge_on_one_side_only_is_not_a_bar() -> None:
    rgb = np.asarray(opened(generate_photo(2, (300, 200)))).copy()
    rgb[:40] = (120, 170, 230)  # a clear sky at the top, nothing like it at the bottom
    assert bar_box(rgb) == (0, 0, 300, 200)
    rgb[-40:] = (120, 170, 230)
    assert bar_box(rgb) == (0, 40, 300, 160)


def test_signatures_round_trip(photo: Image.Image) -> None:
    thumb = hash_thumbnail(photo)
    signature = colour_signature(thumb)
    assert len(signature) == SIGNATURE_CHARS <= 256 and signature.isascii()
    decoded, exact = decode_signature(signature), colour_grid(thumb)
    assert np.abs(decoded.chroma - exact.chroma).max() <= 0.5
    assert np.abs(decoded.luma - exact.luma).max() <= 2
    assert (decoded.clipped == exact.clipped).all()
    assert colour_signature(thumb) == signature
    with pytest.raises(ValueError):
        decode_signature(signature[:-1])


def test_colour_distance_is_symmetric_and_zero_for_one_picture(traits: ImageTraits) -> None:
    other = image_traits(photo_like(1))
    assert colour_distance(traits.colour, traits.colour) == 0
    assert colour_distance(traits.colour, other.colour) == pytest.approx(colour_distance(other.colour, traits.colour))


def test_grid_distances_over_many_pairs_match_one_by_one(traits: ImageTraits) -> None:
    signatures = [traits.colour, *(image_traits(photo_like(s)).colour for s in range(3))]
    left, right = signatures[:2] * 2, signatures[2:] + signatures[:2][::-1]
    batch = grid_distances(
        stack_grids([decode_signature(s) for s in left]), stack_grids([decode_signature(s) for s in right])
    )
    assert batch.tolist() == pytest.approx([colour_distance(a, b) for a, b in zip(left, right, strict=True)])


def test_hashes_keep_imagehash_definitions_on_the_thumbnail(photo: Image.Image) -> None:
    grey = hash_thumbnail(photo).convert("L")
    assert phash(grey) == phash_to_int(imagehash.phash(grey))
    assert dhash(grey) == phash_to_int(imagehash.dhash(grey))


def test_traits_hash_close_to_imagehash_on_the_full_image(photo: Image.Image, traits: ImageTraits) -> None:
    assert (traits.phash ^ phash_to_int(imagehash.phash(photo))).bit_count() <= 6
    assert (traits.dhash ^ phash_to_int(imagehash.dhash(photo))).bit_count() <= 6


def test_the_rule_exposes_the_index_radius_and_verifies_the_rest() -> None:
    assert RULE.thresholds(Scope.CORPUS).phash == 8 and RULE.thresholds("property").phash == 20
    sig = image_traits(photo_like(4)).colour
    a = ImageTraits(phash=0, dhash=0, colour=sig, quality=50)
    far = ImageTraits(phash=(1 << 12) - 1, dhash=0, colour=sig, quality=50)  # pHash 12 bits away
    assert RULE.verify(a, far, Scope.CORPUS)  # verify trusts the index search for the pHash
    assert not RULE.decide(a, far, Scope.CORPUS) and RULE.decide(a, far, Scope.PROPERTY)
    assert not RULE.verify(a, ImageTraits(0, (1 << 13) - 1, sig, 50), Scope.CORPUS)  # dHash 13 > 12
    assert not RULE.verify(a, ImageTraits(0, 0, sig, MIN_QUALITY - 1), Scope.PROPERTY)
    with pytest.raises(ValueError):
        RULE.thresholds("planet")
