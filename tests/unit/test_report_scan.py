"""The report's one pass: what it keeps does not depend on the order rows come in, and stays bounded."""

from __future__ import annotations

import random
from typing import Any

from homeshots.imaging.hashing import int_to_hex
from homeshots.ops.report_scan import ROWS_PER_SAMPLE, FailureDigest, ManifestDigest, sample_rank


def _row(pid: str, j: int, phash: int, *, copy_of: str | None = None, source: str = "mls", change: str = "new") -> dict:
    sha = f"{pid}-{j}-{source}".ljust(64, "0")
    return {
        "property_id": pid,
        "address": f"{pid} Main St",
        "source": source,
        "source_url": f"https://{source}.test/{pid}/{j}",
        "sha256": sha,
        "phash": int_to_hex(phash),
        "processed_key": f"processed/{sha[:2]}/{sha}.png",
        "width": 1024,
        "height": 768,
        "duplicate_of": copy_of,
        "change": change,
    }


def _properties(n: int, seed: int = 1) -> list[tuple[str, list[dict[str, Any]]]]:
    """Properties with 0-30 photos; every other photo also listed by zillow, up to 12 bits away."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        pid, rows = f"p{i}", []
        for j in range(rng.randrange(0, 31)):
            phash = rng.getrandbits(64)
            kept = _row(pid, j, phash, change="removed" if j == 5 else "new")
            rows.append(kept)
            if j % 2:
                rows.append(_row(pid, j, phash ^ ((1 << rng.randrange(0, 13)) - 1), copy_of=kept["sha256"],
                                 source="zillow"))  # fmt: skip
        out.append((pid, rows))
    return out


def _digest(groups: list[tuple[str, list[dict[str, Any]]]]) -> ManifestDigest:
    digest = ManifestDigest(None, sample_size=10, pair_count=15, corpus_threshold=8, property_threshold=20)  # type: ignore[arg-type]
    for pid, rows in groups:
        digest.add(pid, rows)
    return digest


def test_sample_and_pairs_do_not_depend_on_scan_order() -> None:
    groups = _properties(300)
    one, two = _digest(groups), _digest(list(reversed(groups)))
    sample_one, pairs_one = one.finish()
    sample_two, pairs_two = two.finish()
    assert [p.property_id for p in sample_one] == [p.property_id for p in sample_two]
    assert [p.property_id for p in sample_one] == sorted((pid for pid, _ in groups), key=sample_rank)[:10]
    assert [(p.copy["sha256"], p.margin) for p in pairs_one] == [(p.copy["sha256"], p.margin) for p in pairs_two]


def test_pairs_are_the_smallest_margins_first() -> None:
    groups = _properties(300)
    digest = _digest(groups)
    _, pairs = digest.finish()
    all_margins = sorted(
        20 - (int(r["phash"], 16) ^ int(k["phash"], 16)).bit_count()
        for _, rows in groups
        for r in rows
        if r["duplicate_of"]
        for k in rows
        if k["sha256"] == r["duplicate_of"]
    )
    assert [p.margin for p in pairs] == all_margins[:15]
    assert all(p.scope == "property" and p.threshold == 20 for p in pairs)
    assert digest.copies == len(all_margins)


def test_histogram_counts_distinct_photos_not_rows_and_not_removed() -> None:
    pid = "solo"
    kept = _row(pid, 0, 1)
    rows = [kept, _row(pid, 0, 1, copy_of=kept["sha256"], source="zillow"), _row(pid, 1, 2, change="removed")]
    digest = _digest([(pid, rows)])
    sample, _ = digest.finish()
    assert digest.photos_per_property == {1: 1}
    assert sample[0].photo_count == 1 and sample[0].photos[0].sources == ["mls", "zillow"]
    assert sample[0].copies == 1 and sample[0].removed == 1


def test_a_sampled_property_keeps_a_bounded_number_of_photos() -> None:
    rows = [_row("big", j, j) for j in range(500)]
    sample, _ = _digest([("big", rows)]).finish()
    assert len(sample[0].photos) == ROWS_PER_SAMPLE and sample[0].photo_count == 500


def test_failure_examples_are_the_same_in_any_order() -> None:
    rows = [
        {"scope": "image", "property_id": f"p{i}", "source": "mls", "kind": "timeout", "source_url": f"u{i}",
         "message": "slow", "retryable": True}
        for i in range(50)
    ]  # fmt: skip
    one, two = FailureDigest(), FailureDigest()
    for row in rows:
        one.add(row)
    for row in reversed(rows):
        two.add(row)
    (key, group), *_ = one.table()
    assert key == ("image", "mls", "timeout") and group.count == 50 and group.retryable == 50
    assert group.examples == two.table()[0][1].examples and len(group.examples) == 3
