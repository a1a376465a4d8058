"""What every chaos test checks at the end: nothing lost, nothing stored or counted twice."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

import redis
from homeshots_sandbox import Listing
from PIL import Image

from homeshots.core.inputs import derive_property_id
from managers import keys
from managers.state_manager import StateManager
from tests.integration.helpers import manifest_rows, status_json


def index_processed_keys(client: redis.Redis) -> set[str]:
    """The processed file of every kept image in the hash index."""
    records = list(client.scan_iter(keys.IMAGE_PATTERN, count=1000))
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


def assert_every_property_accounted(
    cluster,
    run_id: str,
    client: redis.Redis,
    *,
    listings: list[Listing],
    processed_objects: Callable[[], set[str]],
) -> dict:
    """The outcome a lost host or a cut cable may leave: every property completed, or failed with a reason;
    each completed property's photos in the manifest once each (or counted as failed downloads); the
    totals exact against the manifest; every kept image stored once and indexed. Every broken rule is
    listed at once (with the numbers), not just the first."""
    report = status_json(cluster, run_id)
    result, failed = report["result"], report["failed_properties"]
    assert report["status"] == "finished", report
    problems: list[str] = []

    def check(ok: bool, problem: str) -> None:
        if not ok:
            problems.append(problem)

    by_id = {derive_property_id(x.address, x.city, "AZ", x.postal_code): x for x in listings}
    completed = set(StateManager(client, run_id).completed_ids())
    both, neither = completed & set(failed), set(by_id) - completed - set(failed)
    check(not both, f"{len(both)} properties both completed and failed: {sorted(both)[:3]}")
    check(not neither, f"{len(neither)} properties with no outcome: {sorted(neither)[:3]}")
    no_reason = {pid: r for pid, r in failed.items() if not (r.get("kind") and r.get("message"))}
    check(not no_reason, f"failed without a reason: {no_reason}")
    counted = (result["properties_completed"], result["properties_failed"])
    check(
        counted == (len(completed), len(failed)),
        f"the result counts {counted[0]} completed and {counted[1]} failed, the state holds {len(completed)} "
        f"completed and {len(failed)} failed",
    )

    rows = manifest_rows(cluster, run_id)
    twice = [k for k, n in Counter((r["property_id"], r["source"], r["source_url"]) for r in rows).items() if n > 1]
    check(not twice, f"manifest rows written twice: {twice[:3]}")
    missing: dict[str, set[str]] = {}
    for pid in completed & set(by_id):
        expected = set(by_id[pid].photos)
        got = {_photo_name(r["source_url"]) for r in rows if r["property_id"] == pid}
        check(got <= expected, f"{pid}: rows for photos it does not list: {sorted(got - expected)}")
        if expected - got:
            missing[pid] = expected - got
    n_missing = sum(map(len, missing.values()))
    check(
        result["failed_downloads"] == n_missing if not failed else result["failed_downloads"] >= n_missing,
        f"{n_missing} photos of completed properties have no manifest row ({dict(list(missing.items())[:3])}), "
        f"the result counts {result['failed_downloads']} failed downloads",
    )
    check(
        len(rows) == result["total_images"] - result["failed_downloads"],
        f"{len(rows)} manifest rows, the result counts {result['total_images']} images of which "
        f"{result['failed_downloads']} failed downloads",
    )
    kept = {r["processed_key"] for r in rows if r["duplicate_of"] is None}
    check(result["unique_images"] == len(kept), f"{len(kept)} kept images, the result counts {result['unique_images']}")
    check({r["processed_key"] for r in rows} == kept, "a duplicate row points at a file that is not kept")
    stored = processed_objects()
    check(
        stored == kept,
        f"stored but not kept {sorted(stored - kept)[:3]}, kept but not stored {sorted(kept - stored)[:3]}",
    )
    indexed = index_processed_keys(client)
    check(
        indexed == kept,
        f"index and kept files differ: only indexed {sorted(indexed - kept)[:3]}, "
        f"only kept {sorted(kept - indexed)[:3]}",
    )
    assert not problems, "\n".join([*problems, f"result: {result}"])
    return result


def _photo_name(url: str) -> str:
    """The sandbox's photo name in a photo URL (``.../photos/<name>``)."""
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])
