"""The pure parts of the dedup benchmarks: copy transforms, pair counting, probe keys, naive scan."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from homeshots_sandbox import generate_photo
from PIL import Image, ImageOps, ImageStat

from benchmarks.dedup_index import flip_bits, naive_find, percentile, probe_keys
from benchmarks.dedup_quality import (
    ORIENTATION_TAG,
    TRANSFORMS,
    PairDistance,
    PhotoHashes,
    brighten,
    copy_merge_share,
    count_pairs,
    crop_edges,
    exif_rotate,
    load_photos,
    pair_distances,
    resize_half,
    room_of,
    same_picture,
    webp_q75,
)
from homeshots.imaging.hashing import hamming
from managers import keys
from managers.deduplicator import BandPlan


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


def test_every_transform_decodes_to_the_expected_upright_size(photo: Image.Image) -> None:
    expected = {"resize 50%": (100, 50), "crop 3%": (188, 94)}
    for name, transform in TRANSFORMS.items():
        upright = ImageOps.exif_transpose(_open(transform(photo)))
        assert upright.size == expected.get(name, (200, 100)), name


def test_exif_rotate_stores_turned_pixels_that_display_like_the_original(photo: Image.Image) -> None:
    stored = _open(exif_rotate(photo))
    assert stored.size == (100, 200)
    assert stored.getexif()[ORIENTATION_TAG] == 6
    assert ImageOps.exif_transpose(stored).size == (200, 100)
    assert same_picture(exif_rotate(photo), generate_photo(7, (200, 100)))
    assert not same_picture(_jpeg_bytes(photo.transpose(Image.Transpose.ROTATE_90)), generate_photo(7, (200, 100)))


def test_resize_crop_webp_and_brightness(photo: Image.Image) -> None:
    assert _open(resize_half(photo)).size == (100, 50)
    assert _open(crop_edges(photo, 0.1)).size == (160, 80)
    assert _open(webp_q75(photo)).format == "WEBP"
    before = ImageStat.Stat(photo.convert("L")).mean[0]
    after = ImageStat.Stat(_open(brighten(photo)).convert("L")).mean[0]
    assert after > before * 1.05


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


def test_pair_counting_separates_rule_phash_alone_rooms_and_duplicates() -> None:
    originals = [(0b0000, 0), (0b0011, 0b1111_1111), (0b0001, 1), (0xFFFF, 0), (0, 0)]
    rooms = ["kitchen", "kitchen", "bath", "kitchen", None]
    pairs = pair_distances(originals, rooms, lambda i, j: (i, j) == (0, 4))
    assert len(pairs) == 10
    dup = next(p for p in pairs if (p.i, p.j) == (0, 4))
    assert dup.same_picture and dup.phash == 0
    counts = count_pairs(pairs, threshold=2, dhash_threshold=4)
    # pHash <= 2 among different pictures: (0,1) d2, (0,2) d1, (1,2) d1, (1,4) d2, (2,4) d1.
    assert counts.total == 9 and counts.duplicates == 1 and counts.duplicates_merged == 1
    assert counts.phash_only == 5
    # dHash guard: pair (0,1)/(1,2)/(1,4) have dHash distance >= 7 and are rejected.
    assert counts.merged == 2
    assert counts.same_room_total == 3  # (0,1), (0,3), (1,3); None rooms never match
    assert counts.same_room_phash_only == 1 and counts.same_room_merged == 0


def test_pair_counting_only_checks_pixels_for_close_pairs() -> None:
    asked: list[tuple[int, int]] = []
    pair_distances(
        [(0, 0), (1, 0), (0xFFFF_FFFF, 0)], [None] * 3, lambda i, j: asked.append((i, j)) is not None, check_below=4
    )
    assert asked == [(0, 1)]


def test_copy_merge_share() -> None:
    results = [PhotoHashes((0, 0), {"t": (0b111, 0)}), PhotoHashes((0, 0), {"t": (0, 0xFF)})]
    assert copy_merge_share(results, "t", 3, 8) == 1.0
    assert copy_merge_share(results, "t", 2, 8) == 0.5
    assert copy_merge_share(results, "t", 3, 7) == 0.5


def test_pair_distance_defaults_to_different_pictures() -> None:
    assert not PairDistance(0, 1, 3, 4, True).same_picture


def test_flip_bits_flips_exactly_that_many() -> None:
    rng = random.Random(1)
    for count in range(9):
        h = rng.getrandbits(64)
        assert hamming(h, flip_bits(h, count, rng)) == count


def test_probe_keys_mirror_the_script_and_cover_near_copies() -> None:
    plan = BandPlan.for_threshold(8)
    assert plan.widths == (22, 21, 21) and plan.radius == 2
    probes = probe_keys(plan, 0)
    assert len(probes) == len(set(probes)) == sum(1 + w + w * (w - 1) // 2 for w in plan.widths)
    assert probes[0] == f"{keys.PHASH_BANDS}0:00000000"
    rng = random.Random(2)
    for _ in range(200):
        stored = rng.getrandbits(64)
        query = flip_bits(stored, rng.randint(0, 8), rng)
        stored_keys = {f"{keys.PHASH_BANDS}{b}:{v:08x}" for b, v in enumerate(plan.values(stored))}
        assert stored_keys & set(probe_keys(plan, query))


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
