"""What every chaos test checks at the end: nothing lost, nothing stored or counted twice."""

from __future__ import annotations

import io
from collections.abc import Callable

import redis
from PIL import Image

from managers import keys
from tests.integration.helpers import manifest_rows, status_json


def index_processed_keys(client: redis.Redis) -> set[str]:
    """The processed file of every kept image in the hash index."""
    records = list(client.scan_iter(keys.IMAGE_PREFIX + "*", count=1000))
    pipe = client.pipeline(transaction=False)
    for key in records:
        pipe.hget(key, "processed_key")
    return {k for k in pipe.execute() if k}


def assert_nothing_lost_nothing_twice(
    cluster,
    run_id: str,
    client: redis.Redis,
    *,
    properties: int,
    images_per_property: int,
    extra_images: int,
    processed_objects: Callable[[], set[str]],
) -> dict:
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


def s3_processed(client, bucket: str, prefix: str) -> Callable[[], set[str]]:
    """The processed objects under ``prefix`` in an S3 bucket, as store keys."""

    def objects() -> set[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "processed/")
        return {o["Key"].removeprefix(prefix) for page in pages for o in page.get("Contents", [])}

    return objects


def assert_objects_decode(client, bucket: str, prefix: str) -> None:
    """Every processed object is whole: a partial write would not decode."""
    for key in s3_processed(client, bucket, prefix)():
        body = client.get_object(Bucket=bucket, Key=prefix + key)["Body"].read()
        with Image.open(io.BytesIO(body)) as im:
            im.load()
