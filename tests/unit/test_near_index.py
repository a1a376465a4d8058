"""The in-memory multi-index answers exactly what a brute-force scan would, as it grows and merges."""

from __future__ import annotations

import random

import numpy as np
import pytest

from homeshots.imaging.near_index import BandPlan, NearIndex


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _brute(hashes: list[int], query: int, threshold: int) -> list[tuple[int, int]]:
    found = [(i, (h ^ query).bit_count()) for i, h in enumerate(hashes)]
    return sorted((i, d) for i, d in found if d <= threshold)


@pytest.mark.parametrize("threshold", [0, 3, 8, 12])
def test_within_equals_brute_force_while_growing_across_merges(threshold: int) -> None:
    rng = random.Random(threshold)
    index, hashes = NearIndex(threshold), []
    for batch in range(12):
        # Clustered hashes (near copies of a few bases) and random ones; batches cross the tail's merges.
        new = [
            _flip(hashes[rng.randrange(len(hashes))], rng.randint(0, threshold + 2), rng)
            if hashes and rng.random() < 0.5
            else rng.getrandbits(64)
            for _ in range(rng.choice([1, 50, 3000]))
        ]
        index.add(new)
        hashes += new
        assert len(index) == len(hashes)
        for _ in range(40):
            base = hashes[rng.randrange(len(hashes))]
            query = _flip(base, rng.randint(0, threshold + 3), rng) if rng.random() < 0.8 else rng.getrandbits(64)
            got = index.within(query)
            assert sorted(got) == _brute(hashes, query, threshold), f"batch {batch}"
            assert [d for _, d in got] == sorted(d for _, d in got), "nearest first"


def test_extreme_hashes_and_duplicates() -> None:
    index = NearIndex(8)
    ones = (1 << 64) - 1
    index.add([0, ones, 0, 1 << 63, ones ^ 0xFF])
    assert sorted(index.within(0)) == [(0, 0), (2, 0), (3, 1)]
    assert sorted(index.within(ones)) == [(1, 0), (4, 8)]
    assert index.hash_at(4) == ones ^ 0xFF


def test_memory_is_about_32_bytes_per_hash() -> None:
    index = NearIndex(8)
    index.add(np.arange(200_000, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    assert 24 <= index.nbytes() / len(index) <= 48


@pytest.mark.parametrize("threshold", [0, 4, 8, 12, 20])
def test_probe_masks_cover_the_radius(threshold: int) -> None:
    plan = BandPlan.for_threshold(threshold)
    for width in plan.widths:
        masks = plan.flips(width)
        assert len(set(masks.tolist())) == len(masks)
        assert max(int(m).bit_count() for m in masks) == plan.radius
        assert all(int(m) < (1 << width) for m in masks)
