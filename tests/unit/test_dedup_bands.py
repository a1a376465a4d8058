"""pHash bands: every near copy shares at least one band, so the band lookup cannot miss it."""

from __future__ import annotations

import random

import pytest

from homeshots.imaging.hashing import hamming, hex_to_int, int_to_hex
from managers.deduplicator import BandPlan

ALL_ONES = (1 << 64) - 1


def band_values(phash: int, bands: int) -> list[int]:
    """Split 64 bits into ``bands`` contiguous slices (sizes differ by at most one bit), as the index does."""
    widths = tuple(64 // bands + (1 if i < 64 % bands else 0) for i in range(bands))
    return BandPlan(widths, 0).values(phash)


@pytest.mark.parametrize("threshold", [0, 4, 8, 12, 20])
def test_the_index_plan_covers_every_bit_and_its_radius_finds_every_near_copy(threshold: int) -> None:
    plan = BandPlan.for_threshold(threshold)
    assert sum(plan.widths) == 64 and max(plan.widths) - min(plan.widths) <= 1
    assert plan.radius * len(plan.widths) <= threshold < (plan.radius + 1) * len(plan.widths)


@pytest.mark.parametrize("bands", [1, 2, 5, 9, 13, 64])
def test_bands_cover_every_bit_once(bands: int) -> None:
    widths = [v.bit_length() for v in band_values(ALL_ONES, bands)]
    assert len(widths) == bands and sum(widths) == 64
    assert max(widths) - min(widths) <= 1
    for bit in range(64):
        assert sum(1 for v in band_values(1 << bit, bands) if v) == 1
    rng = random.Random(bands)
    for _ in range(100):
        h = rng.getrandbits(64)
        rebuilt, shift = 0, 0
        for value, width in zip(band_values(h, bands), widths, strict=True):
            rebuilt |= value << shift
            shift += width
        assert rebuilt == h


@pytest.mark.parametrize("threshold", [0, 4, 8, 12])
def test_near_copy_always_shares_a_band(threshold: int) -> None:
    rng = random.Random(threshold)
    for _ in range(2000):
        h = rng.getrandbits(64)
        near = h
        for bit in rng.sample(range(64), rng.randint(0, threshold)):
            near ^= 1 << bit
        assert hamming(h, near) <= threshold
        pairs = zip(band_values(h, threshold + 1), band_values(near, threshold + 1), strict=True)
        assert any(a == b for a, b in pairs)


def test_hash_helpers_round_trip() -> None:
    rng = random.Random(0)
    for v in [0, 1, ALL_ONES, *(rng.getrandbits(64) for _ in range(100))]:
        assert len(int_to_hex(v)) == 16
        assert hex_to_int(int_to_hex(v)) == v
    assert hamming(0b1011, 0b0110) == 3
    assert hamming(0, ALL_ONES) == 64
    with pytest.raises(ValueError):
        hex_to_int("1" + "0" * 16)
