"""What every chaos test checks at the end: nothing lost, nothing stored or counted twice."""

from __future__ import annotations

from collections.abc import Callable

import redis

from tests.integration.helpers import manifest_rows, status_json


def index_processed_keys(client: redis.Redis) -> set[str]:
    """The processed file of every kept image in the hash index."""
    keys = list(client.scan_iter("hs:{idx}:img:*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hget(key, "processed_key")
    return {k for k in pipe.execute() if k}


def assert_nothing_lost_nothing_twice(cluster, run_id: str, client: redis.Redis, *, properties: int,
                                      images_per_property: int, extra_images: int,
                                      processed_objects: Callable[[], set[str]]) -> dict:
    report = status_json(cluster, run_id)
    result = report["result"]
    assert report["status"] == "finished"
    assert result["properties_completed"] == properties and not report["failed_properties"], report
    # Every image of every property counted exactly once, whatever was redelivered or retried.
    assert result["total_images"] == properties * images_per_property + extra_images
    rows = manifest_rows(cluster, run_id)
    assert len(rows) == result["total_images"] - result["failed_downloads"]
    kept = {r["processed_key"] for r in rows}
    assert result["unique_images"] == len(kept) == sum(r["duplicate_of"] is None for r in rows)
    stored = processed_objects()
    assert stored == kept, f"orphans {sorted(stored - kept)[:3]}, missing {sorted(kept - stored)[:3]}"
    assert index_processed_keys(client) == kept, "the index points at exactly the stored files"
    return result


def local_processed(store_dir) -> Callable[[], set[str]]:
    return lambda: {p.relative_to(store_dir).as_posix() for p in (store_dir / "processed").rglob("*.png")}
