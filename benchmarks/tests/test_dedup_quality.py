"""The pure parts of the dedup benchmarks: copy transforms, pair counting, the tail estimate."""

from __future__ import annotations

import io
import math
import random
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pytest
from homeshots_sandbox import generate_photo
from PIL import Image, ImageOps, ImageStat

from benchmarks.dedup_index import flip_bits, naive_find, percentile
from benchmarks.dedup_quality import (
    ORIENTATION_TAG,
    RECOLOURS,
    RULE,
    TRANSFORMS,
    VISIBLE_RECOLOUR,
    PhotoResult,
    Seen,
    analyse_flat,
    brighten,
    chroma_difference,
    comparisons,
    copy_measures,
    count_merges,
    crop_edges,
    exif_rotate,
    expected_hash_tail,
    flat_images,
    letterbox,
    load_photos,
    merge_share,
    pair_table,
    pillarbox,
    poisson_upper,
    resize_half,
    room_of,
    same_picture,
    upright_srgb,
    webp_q75,
)
from homeshots.imaging.hashing import hamming
from homeshots.imaging.similarity import MIN_QUALITY, ImageTraits, Scope, colour_distance, image_traits


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    with Image.open(io.BytesIO(generate_photo(7, (200, 100)))) as opened:
        return opened.convert("RGB")


def _open(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def _jpeg_bytes(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95)
    return out.getvalue()


def test_every_copy_decodes_to_the_expected_upright_size(photo: Image.Image) -> None:
    expected = {
        "resize 50%": (100, 50),
        "crop 3%": (188, 94),
        "crop 5%": (180, 90),
        "letterbox 5%": (200, 110),
        "pillarbox 5%": (220, 100),
        "rotate 2°": (188, 94),
    }
    for name, transform in {**TRANSFORMS, **RECOLOURS}.items():
        upright = ImageOps.exif_transpose(_open(transform(photo)))
        assert upright.size == expected.get(name, (200, 100)), name


def test_exif_rotate_stores_turned_pixels_that_display_like_the_original(photo: Image.Image) -> None:
    stored = _open(exif_rotate(photo))
    assert stored.size == (100, 200)
    assert stored.getexif()[ORIENTATION_TAG] == 6
    assert ImageOps.exif_transpose(stored).size == (200, 100)
    assert upright_srgb(exif_rotate(photo)).size == (200, 100)
    assert same_picture(exif_rotate(photo), generate_photo(7, (200, 100)))
    assert not same_picture(_jpeg_bytes(photo.transpose(Image.Transpose.ROTATE_90)), generate_photo(7, (200, 100)))


def test_resize_crop_webp_and_brightness(photo: Image.Image) -> None:
    assert _open(resize_half(photo)).size == (100, 50)
    assert _open(crop_edges(photo, 0.1)).size == (160, 80)
    assert _open(webp_q75(photo)).format == "WEBP"
    before = ImageStat.Stat(photo.convert("L")).mean[0]
    after = ImageStat.Stat(_open(brighten(photo)).convert("L")).mean[0]
    assert after > before * 1.05


def test_bars_are_added_in_the_named_colour(photo: Image.Image) -> None:
    boxed = _open(letterbox(photo)).convert("RGB")
    assert max(boxed.getpixel((100, 1))) < 20 and min(_open(pillarbox(photo)).convert("RGB").getpixel((2, 50))) > 235


def test_chroma_difference_sees_recolours_not_re_encoding(photo: Image.Image) -> None:
    assert chroma_difference(photo, _open(_jpeg_bytes(photo))) < 2
    for name in ("hue +90°", "channel swap", "sepia", "greyscale"):
        assert chroma_difference(photo, _open(RECOLOURS[name](photo))) > VISIBLE_RECOLOUR, name


def test_flat_images_all_have_too_little_detail() -> None:
    flats = flat_images()
    assert {"1x1 red pixel", "16-bit gradient, full range", "100000x2 strip, noise"} <= set(flats)
    for name, data in flats.items():
        seen, size = analyse_flat(data)
        assert seen.traits.quality < MIN_QUALITY, name
        assert size[0] >= 1 and size[1] >= 1


def test_same_picture_tells_copies_from_other_photos() -> None:
    original = generate_photo(3, (300, 200))
    with Image.open(io.BytesIO(original)) as im:
        smaller = io.BytesIO()
        im.resize((150, 100)).save(smaller, "PNG")
    assert same_picture(original, smaller.getvalue())
    assert not same_picture(original, generate_photo(4, (300, 200)))


def test_room_of_reads_the_data_set_names(tmp_path: Path) -> None:
    assert room_of(tmp_path / "12_kitchen.jpg") == "kitchen"
    assert room_of(tmp_path / "photo.jpg") is None


def test_missing_folder_falls_back_to_generated_photos(tmp_path: Path) -> None:
    photos, origin = load_photos(tmp_path / "absent", 3)
    assert len(photos) == 3 and "generated" in origin
    assert all(p.room is None for p in photos)


@pytest.fixture(scope="module")
def colours() -> list[str]:
    return [image_traits(_open(generate_photo(seed, (160, 120)))).colour for seed in range(3)]


def _seen(old: tuple[int, int], new: tuple[int, int], colour: str, quality: int = 50) -> Seen:
    return Seen(old, ImageTraits(new[0], new[1], colour, quality))


def test_pair_table_measures_every_pair_and_checks_pixels_only_when_close(colours: list[str]) -> None:
    seen = [
        _seen((0, 0), (0, 0), colours[0]),
        _seen((0b11, 0xFF), (0xFFFF, 0b1), colours[1], quality=5),
        _seen((0xFFFF_FFFF, 0), (0b111, 0), colours[2]),
    ]
    asked: list[tuple[int, int]] = []
    pairs = pair_table(seen, ["kitchen", "kitchen", None], lambda i, j: asked.append((i, j)) is None, check_below=4)
    assert list(zip(pairs.i, pairs.j, strict=True)) == [(0, 1), (0, 2), (1, 2)]
    assert pairs.old_phash.tolist() == [2, 32, 30] and pairs.old_dhash.tolist() == [8, 0, 8]
    assert pairs.phash.tolist() == [16, 3, 13] and pairs.dhash.tolist() == [1, 0, 1]
    expected = [colour_distance(colours[a], colours[b]) for a, b in ((0, 1), (0, 2), (1, 2))]
    assert pairs.colour.tolist() == pytest.approx(expected)
    assert pairs.quality.tolist() == [5, 50, 5]
    assert pairs.same_room.tolist() == [True, False, False]
    assert asked == [(0, 1), (0, 2)]  # (1, 2) is over 4 bits apart by both hashes
    assert pairs.duplicate.tolist() == [True, True, False]


def test_passing_applies_every_threshold(colours: list[str]) -> None:
    seen = [
        _seen((0, 0), (0, 0), colours[0]),
        _seen((0, 0), (0b1111, 0), colours[0]),
        _seen((0, 0), (0, 0), colours[1]),
    ]
    pairs = pair_table(seen, [None] * 3)
    assert pairs.passing(RULE.corpus).tolist() == [True, False, False]  # (0,2): other colours
    assert pairs.passing_old().tolist() == [True, True, True]


def test_merge_share_and_count_merges_judge_each_scope(colours: list[str]) -> None:
    original = _seen((0, 0), (0, 0), colours[0])
    close = _seen((0, 0), ((1 << 10) - 1, 0), colours[0])  # pHash 10 bits away: property only
    recoloured = _seen((0, 0), (0, 0), colours[1])
    results = [PhotoResult(original, {"t": close, "r": recoloured}, {})]
    assert merge_share(results, "t", Scope.CORPUS) == 0 and merge_share(results, "t", Scope.PROPERTY) == 1
    assert merge_share(results, "r", Scope.PROPERTY) == 0 and merge_share(results, "r", None) == 1
    assert count_merges(original, [close, recoloured], Scope.PROPERTY) == 1
    assert count_merges(original, [close, recoloured], None) == 2


def test_copy_measures_agree_with_the_rule(colours: list[str]) -> None:
    rng = random.Random(5)
    names = [*TRANSFORMS, *RECOLOURS]
    results = []
    for k in range(6):
        original = _seen((0, 0), (0, 0), colours[k % 2])
        copies = {
            n: _seen((0, 0), ((1 << rng.randrange(0, 24)) - 1, (1 << rng.randrange(0, 24)) - 1), rng.choice(colours))
            for n in names
        }
        results.append(PhotoResult(original, copies, {n: 10.0 for n in RECOLOURS}))
    measures = copy_measures(results)
    for name in names:
        for scope in (Scope.CORPUS, Scope.PROPERTY):
            assert measures[name].passing(RULE.thresholds(scope)).mean() == merge_share(results, name, scope)


def test_hash_tail_extrapolates_a_normal_distribution() -> None:
    rng = np.random.default_rng(3)
    phash = rng.normal(32, 6, 400_000)
    fit = expected_hash_tail(phash, phash * 1.5, 12, 18, (1.5, 1.75, 2.0, 2.25, 2.5))
    truth = NormalDist(32, 6).cdf(12)
    assert fit.share is not None and truth / 2 < fit.share < truth * 2
    assert [s for s, _ in fit.points] == [1.5, 1.75, 2.0, 2.25, 2.5]
    assert expected_hash_tail(phash[:5], phash[:5], 12, 18, (1.5, 2.0)).share is None


def test_poisson_upper_bound_and_comparisons() -> None:
    assert poisson_upper(0) == pytest.approx(-math.log(0.05), rel=1e-3)
    assert poisson_upper(4) == pytest.approx(9.154, rel=1e-3)
    assert comparisons(1_000_000) == 499_999_500_000


def test_flip_bits_flips_exactly_that_many() -> None:
    rng = random.Random(1)
    for count in range(9):
        h = rng.getrandbits(64)
        assert hamming(h, flip_bits(h, count, rng)) == count


def test_naive_find_applies_both_thresholds_and_picks_the_nearest() -> None:
    phashes = [0b1111, 0b0001, 0b0011]
    dhashes = [0, 0xFF, 0]
    assert naive_find(phashes, dhashes, 0, 0, threshold=4, dhash_threshold=2) == (2, 2)
    assert naive_find(phashes, dhashes, 0, 0, threshold=1, dhash_threshold=2) is None
    assert naive_find(phashes, dhashes, 0, 0xFF, threshold=1, dhash_threshold=2) == (1, 1)


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 95) == 95.0
    assert percentile(values, 100) == 100.0
    assert percentile([5.0], 50) == 5.0
