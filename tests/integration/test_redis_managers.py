"""The managers' Redis scripts against a real redis-server: dedup claims and stats merging."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

from managers.connection import connect
from managers.deduplicator import ImageDeduplicator, kept_files
from tests.integration.helpers import flip_bits as _flip
from tests.integration.helpers import index_record as _record


def test_claim_finds_exact_and_near_copies_within_the_threshold(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    rng = random.Random(7)
    base = rng.getrandbits(64)
    first = _record("a" * 64, base)
    assert dedup.claim(first).record == first
    again = dedup.claim(_record("a" * 64, base, pid="p2"))
    assert again.record == first and again.distance == 0
    near = dedup.claim(_record("b" * 64, _flip(base, 8, rng), pid="p3"))
    assert near.record == first and near.distance == 8
    far_hash = _flip(base, 10, rng)
    far = _record("c" * 64, far_hash, pid="p4")
    assert dedup.claim(far).record == far, "10 bits apart is a different picture at threshold 8"
    assert dedup.claim(_record("d" * 64, _flip(base, 3, rng))).record == first
    other = _record("e" * 64, _flip(base, 2, rng), dhash=(1 << 20) - 1)
    assert dedup.claim(other).record == other, "a pHash match whose dHash disagrees (20 bits) is a different picture"


def test_multi_index_lookup_is_exact_against_brute_force(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    rng = random.Random(3)
    stored = [rng.getrandbits(64) for _ in range(3000)]
    dedup.bulk_load(_record(f"{i:064x}", h) for i, h in enumerate(stored))
    for n in range(400):
        query = _flip(stored[rng.randrange(len(stored))], rng.randrange(0, 11), rng) if n % 4 else rng.getrandbits(64)
        brute = min(bin(query ^ h).count("1") for h in stored)
        mine = _record(f"f{n:063x}", query)
        found = dedup.claim(mine)
        if brute <= 8:
            assert found.record != mine and found.distance == brute
        else:
            assert found.record == mine  # kept: nothing within the threshold
            stored.append(query)


def test_concurrent_copies_keep_exactly_one(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    rng = random.Random(11)
    base = rng.getrandbits(64)
    copies = [_record(f"{i:064x}", _flip(base, rng.randrange(0, 5), rng), pid=f"p{i}") for i in range(40)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        kept = list(pool.map(lambda r: dedup.claim(r).record, copies))
    assert len({k.sha256 for k in kept}) == 1


def test_upgrade_switches_to_the_larger_copy_only(redis_server):
    from dataclasses import replace

    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    small = replace(_record("a" * 64, 12345), source_pixels=1280 * 853)
    dedup.claim(small)
    larger = replace(_record("b" * 64, 12345 ^ 3, pid="p2"), source_pixels=2048 * 1365)
    switched, garbage = dedup.upgrade(small, larger)
    assert switched and garbage == [small.raw_key, small.processed_key]
    assert sorted(dedup.garbage()) == sorted(garbage)
    assert kept_files(dedup.client, ["a" * 64]) == {"a" * 64: (larger.raw_key, larger.processed_key)}
    dedup.forget_garbage(garbage)

    middle = replace(_record("c" * 64, 12345 ^ 5, pid="p3"), source_pixels=1536 * 1024)
    switched, garbage = dedup.upgrade(small, middle)
    assert not switched, "a smaller copy never replaces a larger one"
    assert garbage == [middle.raw_key, middle.processed_key], "the loser's own files are dropped"
    dedup.forget_garbage(garbage)

    # The same larger copy arriving twice (one listing twice, a redelivery): the second loses, but
    # its files are the kept ones and must not be deleted.
    switched, garbage = dedup.upgrade(small, larger)
    assert not switched and garbage == []
    assert dedup.garbage() == []
