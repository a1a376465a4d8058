"""The evolving world over real HTTP: unchanged nights change nothing, changed nights match the ground truth."""

from __future__ import annotations

import io
import itertools
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import imagehash
import pytest
from homeshots_sandbox import SandboxServer, World, photo_key
from homeshots_sandbox.world import DISTINCT, NightTruth, PhotoDelta
from PIL import Image

from tests.sandbox.crawl import Crawl, crawl, fetch, reso_pages

ROOT = Path(__file__).resolve().parents[2]
LISTING_SOURCES = ("mls", "zillow", "redfin")
MERGE_PHASH = 8
"""homeshots merges two photos at pHash distance <= 8 (settings.dedup_threshold)."""


def _phash(data: bytes) -> imagehash.ImageHash:
    with Image.open(io.BytesIO(data)) as img:
        return imagehash.phash(img)


@pytest.fixture(scope="module")
def world() -> World:
    return World(60, seed=11, photos_per_listing=(3, 6))


@pytest.fixture(scope="module")
def server(world: World) -> Iterator[SandboxServer]:
    with world.server() as server:
        yield server


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, trust_env=False) as c:
        yield c


def test_unchanged_night_changes_nothing(world: World, server: SandboxServer, http: httpx.Client) -> None:
    before = crawl(http, server)
    truth = world.advance(0)
    after = crawl(http, server)
    assert truth.changed_keys() == []
    assert all(not t.modified and not t.photos_modified for t in truth.listings.values())
    assert all(t.delta == PhotoDelta(unchanged=t.photos) for t in truth.listings.values())
    assert after.documents == before.documents  # RESO JSON (timestamps too), Zillow pages, Redfin JSON
    assert after.urls == before.urls
    assert {u: (f.status, f.etag, f.last_modified, f.sha256) for u, f in after.photos.items()} == {
        u: (f.status, f.etag, f.last_modified, f.sha256) for u, f in before.photos.items()
    }
    assert all(f.status == 200 for f in after.photos.values())
    assert any("/cdn/mls/" in u for u in after.photos) and any("/photos/" in u for u in after.photos)  # both feeds


def test_ten_percent_night_matches_the_ground_truth(world: World, server: SandboxServer, http: httpx.Client) -> None:
    before = crawl(http, server)
    start = world.night + 1
    truth = world.advance(0.1)
    after = crawl(http, server)
    assert truth.night == start
    totals = truth.totals()
    assert totals["modified"] == round(0.1 * 60)
    for kind in ("new", "changed", "removed", "replaced", "reencoded"):  # six changed listings: every kind
        assert totals[kind] >= 1, (kind, totals)
    assert any(t.modified and not t.photos_modified for t in truth.listings.values()), "a price-only change"

    for key, listing in truth.listings.items():
        for source in LISTING_SOURCES:
            if source not in listing.sources:
                assert (key, source) not in after.urls
                continue
            assert _served_delta(before, after, key, source) == _expected_delta(listing.by_source[source])
            assert after.identities(key, source) == list(listing.photos)
            if not listing.modified:
                assert after.documents[(key, source)] == before.documents[(key, source)]
        if "mls" in listing.sources:
            _check_reso(
                json.loads(after.documents[(key, "mls")]), json.loads(before.documents[(key, "mls")]), truth, key
            )
        _check_pairs(before, after, key, listing.delta)


def _served_delta(before: Crawl, after: Crawl, key: str, source: str) -> dict[str, set[str]]:
    """The delta a client could see: identities gone or new, and among the kept ones, new bytes or not."""
    old, new = before.etags(key, source), after.etags(key, source)
    kept = old.keys() & new.keys()
    return {
        "appeared": set(new) - set(old),
        "disappeared": set(old) - set(new),
        "changed": {i for i in kept if old[i] != new[i]},
        "unchanged": {i for i in kept if old[i] == new[i]},
    }


def _expected_delta(delta: PhotoDelta) -> dict[str, set[str]]:
    return {
        "appeared": set(delta.appeared),
        "disappeared": set(delta.disappeared),
        "changed": set(delta.changed),
        "unchanged": set(delta.unchanged),
    }


def _check_reso(doc: dict, old: dict, truth: NightTruth, key: str) -> None:
    listing, start = truth.listings[key], truth.clock
    assert doc["ModificationTimestamp"] == listing.modification_timestamp
    assert doc["PhotosChangeTimestamp"] == listing.photos_change_timestamp
    assert (doc["ModificationTimestamp"] > start) == listing.modified
    assert (doc["ModificationTimestamp"] != old["ModificationTimestamp"]) == listing.modified
    assert (doc["PhotosChangeTimestamp"] != old["PhotosChangeTimestamp"]) == listing.photos_modified
    stamps = {m["MediaKey"]: m["MediaModificationTimestamp"] for m in doc["Media"]}
    was = {m["MediaKey"]: m["MediaModificationTimestamp"] for m in old["Media"]}
    assert stamps == listing.photo_timestamps
    for identity in listing.delta.changed:
        assert stamps[identity] == listing.modification_timestamp > was[identity]
    for identity in listing.delta.appeared:
        assert stamps[identity] == listing.modification_timestamp
    for identity in listing.delta.unchanged:
        assert stamps[identity] == was[identity] < start


def _check_pairs(before: Crawl, after: Crawl, key: str, delta: PhotoDelta) -> None:
    """A re-encode is the same picture (a dedup merges it); a replacement is another picture, far away."""
    source = next((s for s in LISTING_SOURCES if (key, s) in after.urls), None)
    if source is None:
        return
    old = {photo_key(u): before.photos[u] for u in before.urls[(key, source)]}
    new = {photo_key(u): after.photos[u] for u in after.urls[(key, source)]}
    for was, now in delta.reencoded:
        assert old[was].sha256 != new[now].sha256
        assert _phash(old[was].data) - _phash(new[now].data) <= MERGE_PHASH
    for was, now in delta.replaced:
        assert _phash(old[was].data) - _phash(new[now].data) > 12
    for identity in delta.changed:
        assert _phash(old[identity].data) - _phash(new[identity].data) > 12


def test_night_timestamps_follow_the_clock(world: World) -> None:
    truth = world.truth()
    assert truth.clock == world.night_start(truth.night).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key in truth.changed_keys():
        stamp = truth.listings[key].modification_timestamp
        assert truth.clock < stamp < world.night_start(truth.night + 1).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_sketches_stay_the_same(world: World, server: SandboxServer, http: httpx.Client) -> None:
    listing = next(x for x in server.listings if "maricopa" in x.sources and x.apn)
    url = f"{server.base_url}/maricopa/parcel/{listing.apn}/sketches/"
    headers = {"AUTHORIZATION": "sandbox-maricopa-token"}
    first = http.get(url, headers=headers).json()
    world.advance(0.5)
    assert http.get(url, headers=headers).json() == first
    assert world.truth().listings[listing.listing_key].by_source["maricopa"].unchanged == tuple(
        f"{listing.apn}/sketch/{n}" for n in range(1, listing.sketches + 1)
    )


def test_distinct_pictures_are_far_apart(world: World) -> None:
    """Every photo of tonight shows its own picture: no two are near duplicates (pHash distance > 12)."""
    keys = [p.key for prop in world.properties()[:15] for p in prop.photos]
    hashes = [_phash(world.photo_data(k)) for k in keys]
    assert len(keys) > 40
    assert min(a - b for a, b in itertools.combinations(hashes, 2)) > 12
    assert DISTINCT >= 12


def test_same_seed_same_world_other_seed_other_world() -> None:
    def nights(seed: int) -> list[dict]:
        world = World(6, seed=seed, change_fraction=0.5, photos_per_listing=(2, 3))
        world.advance()
        world.advance(0.2)
        return [world.truth(n).as_dict() for n in range(3)] + [
            {"data": world.photo_data(world.truth().listings["W00001"].photos[0])}
        ]

    assert nights(4) == nights(4)
    assert nights(4) != nights(5)


def test_listings_are_copies_the_caller_may_change(world: World) -> None:
    listings = world.listings()
    listings[0].photos.clear()
    assert world.listings()[0].photos


def test_requests_during_advance_see_one_night(world: World, server: SandboxServer) -> None:
    """Each answer while nights turn comes from a single night: a whole RESO page matches one night's truth."""
    errors: list[str] = []
    pages_read = [0]
    done = threading.Event()

    def one_night(page: dict) -> bool:
        seen = {
            d["ListingKey"]: (
                d["ModificationTimestamp"],
                {m["MediaKey"]: m["MediaModificationTimestamp"] for m in d["Media"]},
            )
            for d in page["value"]
        }
        return any(
            all(
                (world.truth(n).listings[k].modification_timestamp, world.truth(n).listings[k].photo_timestamps) == v
                for k, v in seen.items()
            )
            for n in range(world.night + 1)
        )

    def read() -> None:
        with httpx.Client(timeout=30, trust_env=False) as client:
            while True:  # at least once, even if the nights are done first
                try:
                    pages = reso_pages(client, server, {"$expand": "Media", "$top": "200"})
                except AssertionError as exc:
                    errors.append(str(exc))
                    return
                pages_read[0] += len(pages)
                errors.extend(
                    f"a page mixes nights: {p['value'][0]['ListingKey']}..." for p in pages if not one_night(p)
                )
                if done.is_set():
                    return

    readers = [threading.Thread(target=read) for _ in range(2)]
    for t in readers:
        t.start()
    for _ in range(4):
        world.advance(0.3)
    done.set()
    for t in readers:
        t.join(60)
    assert errors == []
    assert pages_read[0] >= 2 * 3  # two readers, at least one full pass of 60 listings in pages of 25


def test_cli_serves_a_world_and_advances_it(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "sandbox"), str(ROOT)]))
    command = [sys.executable, "-m", "homeshots_sandbox", "serve", "--world", "--properties", "4", "--seed", "9"]
    proc = subprocess.Popen(
        [*command, "--night", "2", "--port", "0"], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "listening on http://127.0.0.1:" in first, first
        base = first.split("listening on ", 1)[1].split(";", 1)[0]
        with httpx.Client(timeout=30, trust_env=False) as client:
            assert client.get(base + "/sandbox/world").json()["night"] == 2
            moved = client.post(base + "/sandbox/advance", params={"change_fraction": "0.5"}).json()
            assert moved["night"] == 3 and len(moved["changed"]) == 2
            expected = World(4, seed=9)
            expected.goto(2)
            assert moved["changed"] == expected.advance(0.5).changed_keys()
            assert client.get(base + "/sandbox/truth", params={"night": 3}).json()["changed"] == moved["changed"]
            assert client.post(base + "/sandbox/advance", params={"change_fraction": "2"}).status_code == 400
            doc = client.get(base + "/sandbox/truth").json()
            assert fetch(client, base + f"/photos/{doc['listings']['W00001']['photos'][0]}.jpg").status == 200
    finally:
        proc.terminate()
        proc.wait(10)
