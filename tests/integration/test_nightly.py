"""Nights over real processes against a world that changes: deltas exact, an unchanged night nearly free."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

from homeshots_sandbox import World, photo_key

from tests.integration.helpers import manifest_rows, status_json

SOURCES = ("mls", "zillow")


def write_world_csv(path: Path, world: World) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["property_id", "address", "city", "state", "zip", "mls_listing_key", "zpid"]
        )
        writer.writeheader()
        for listing in world.listings():
            writer.writerow(
                {
                    "property_id": listing.listing_key,
                    "address": listing.address,
                    "city": listing.city,
                    "state": "AZ",
                    "zip": listing.postal_code,
                    "mls_listing_key": listing.listing_key,
                    "zpid": listing.zpid,
                }
            )
    return path


def night(cluster, props: Path, run_id: str) -> dict:
    proc = cluster.cli("nightly", str(props), "--run-id", run_id, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
    return status_json(cluster, run_id)["result"]


def changes_by_listing(cluster, run_id: str) -> dict[tuple[str, str], Counter]:
    """(listing key, source) -> Counter of change kinds, from ``homeshots manifest RUN --changes``."""
    proc = cluster.cli("manifest", run_id, "--changes")
    assert proc.returncode == 0, proc.stderr
    out: dict[tuple[str, str], Counter] = {}
    for line in proc.stdout.splitlines():
        row = json.loads(line)
        assert photo_key(row["source_url"]), row  # every row names a photo the world served
        out.setdefault((row["property_id"], row["source"]), Counter())[row["change"]] += 1
    return out


def test_three_nights_deltas_exact_and_an_unchanged_night_downloads_nothing(tmp_path, cluster_factory):
    world = World(properties=10, seed=5, photos_per_listing=(3, 6), change_fraction=0.5)
    props = write_world_csv(tmp_path / "props.csv", world)
    sandbox = world.server(services=list(SOURCES))
    with sandbox:
        cluster = cluster_factory(sandbox.env(), concurrency=2)

        first = night(cluster, props, "night-1")
        assert first["properties_failed"] == 0, first
        assert first["photos_new"] == first["total_images"] > 0 and first["photos_unchanged"] == 0

        world.advance(0)  # nothing changes
        before = sandbox.stats.as_dict()
        second = night(cluster, props, "night-2")
        after = sandbox.stats.as_dict()
        assert second["properties_failed"] == 0, second
        assert (second["photos_new"], second["photos_changed"], second["photos_removed"]) == (0, 0, 0)
        assert second["photos_unchanged"] == first["photos_new"]
        assert after["bodies"] - before["bodies"] == 0, "no photo body on an unchanged night"
        mls_calls = after["requests"].get("/reso/odata/Property", 0) - before["requests"].get("/reso/odata/Property", 0)
        assert mls_calls <= 2, f"the MLS is asked what changed, not about each property ({mls_calls} requests)"
        assert changes_by_listing(cluster, "night-2") == {}

        truth = world.advance(0.5)
        before = sandbox.stats.as_dict()
        third = night(cluster, props, "night-3")
        after = sandbox.stats.as_dict()
        assert third["properties_failed"] == 0, third
        assert third["night"]["replication"]["status"] == "completed"
        mls_calls = after["requests"].get("/reso/odata/Property", 0) - before["requests"].get("/reso/odata/Property", 0)
        assert mls_calls <= 2, "changed listings come with the replication: no per-property MLS query"
        some = next(iter(truth.listings))
        current = cluster.cli("photos", some)
        assert current.returncode == 0, current.stderr
        served = {
            photo_key(json.loads(line)["url"])
            for line in current.stdout.splitlines()
            if json.loads(line)["source"] == "mls"
        }
        assert served == set(truth.listings[some].photos), "a property's current photos, from the listing memory"
    got = changes_by_listing(cluster, "night-3")
    expected: dict[tuple[str, str], Counter] = {}
    bodies = 0
    for key, listing in truth.listings.items():
        for source in SOURCES:
            delta = listing.by_source.get(source)
            if delta is None:
                continue
            kinds = Counter(
                {"new": len(delta.appeared), "changed": len(delta.changed), "removed": len(delta.disappeared)}
            )
            kinds = +kinds  # drop zero counts
            if kinds:
                expected[(key, source)] = kinds
            bodies += len(delta.appeared) + len(delta.changed)
    assert got == expected
    assert third["photos_new"] == sum(c["new"] for c in expected.values())
    assert third["photos_changed"] == sum(c["changed"] for c in expected.values())
    assert third["photos_removed"] == sum(c["removed"] for c in expected.values())
    downloaded = after["bodies"] - before["bodies"]
    assert downloaded == bodies, "bodies are downloaded only for new and changed photos"


def test_a_source_over_its_budget_defers_the_rest_and_visits_them_first_the_next_night(tmp_path, cluster_factory):
    world = World(properties=8, seed=9, photos_per_listing=(2, 3))
    props = write_world_csv(tmp_path / "props.csv", world)
    with world.server(services=list(SOURCES)) as sandbox:
        # Zillow at 1 request/s for a night of 0.001 h (3.6 s): a budget of 3 requests, 3 properties a night.
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_ZILLOW_RATE": "1"}, concurrency=2)
        proc = cluster.cli("nightly", str(props), "--run-id", "tight-1", "--hours", "0.001", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr + cluster.worker_log()
        assert "zillow: budget 3 requests, 3 properties tonight, 5 deferred" in " ".join(proc.stdout.split())
        first = status_json(cluster, "tight-1")["result"]
        assert first["night"]["sources"]["zillow"] | {"budget": 3} == {
            "budget": 3,
            "requests_planned": 3,
            "visited": 3,
            "deferred": 5,
        }
        assert first["night"]["sources"]["mls"]["deferred"] == 0 and first["properties_completed"] == 8
        assert first["by_source"]["zillow"]["properties_processed"] == 3
        proc = cluster.cli("nightly", str(props), "--run-id", "tight-2", "--hours", "0.001", timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    second = status_json(cluster, "tight-2")["result"]
    visited_before = {r["property_id"] for r in manifest_rows(cluster, "tight-1") if r["source"] == "zillow"}
    visited_now = {r["property_id"] for r in manifest_rows(cluster, "tight-2") if r["source"] == "zillow"}
    assert second["night"]["sources"]["zillow"]["visited"] == 3
    assert not visited_before & visited_now, "the deferred properties, never seen by Zillow, come first"
