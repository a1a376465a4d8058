"""What a night costs: night 1 against an unchanged night and a night with ~10% of listings changed.

Run from the repo root: ``python -m benchmarks.nightly [--properties 80] [--memory-properties 10000]
[--memory-nights 30]``.

Part 1, traffic (real processes): a sandbox ``World`` (MLS, Zillow, Redfin) on 127.0.0.1, a private
redis-server, one ``celery -A celery_app worker`` and ``homeshots nightly`` three times: night 1, an
unchanged night, and a night where a tenth of the listings changed (new, replaced, changed-in-place,
removed and re-encoded photos). Printed per night, with the ratio to night 1: photo bodies and bytes
downloaded, 304 answers, source API requests (MLS separately), and the worker's CPU seconds. Night 3
is checked against the world's ground truth: every new or changed photo stored, every removed one
reported, no false merge.

Part 2, bounded state (in process, Celery eager): ``--memory-properties`` properties (one photo each)
through ``--memory-nights`` unchanged nights; Redis ``used_memory`` after night 1 and after the last.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.proc_cpu import tree_cpu
from benchmarks.redis_server import private_redis

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["mls", "zillow", "redfin"]


def _csv(path: Path, listings: list[Any]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["property_id", "address", "city", "state", "zip", "mls_listing_key", "zpid"]
        )
        writer.writeheader()
        for x in listings:
            writer.writerow(
                {
                    "property_id": x.listing_key,
                    "address": x.address,
                    "city": x.city,
                    "state": "AZ",
                    "zip": x.postal_code,
                    "mls_listing_key": x.listing_key,
                    "zpid": x.zpid,
                }
            )
    return path


def traffic(properties: int, tmp: Path) -> list[dict[str, Any]]:
    from homeshots_sandbox import World, photo_key

    world = World(properties=properties, seed=12, photos_per_listing=(6, 14), change_fraction=0.1)
    props = _csv(tmp / "props.csv", world.listings())
    rows: list[dict[str, Any]] = []
    with private_redis() as client, world.server(services=SOURCES) as sandbox:
        url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        env = (
            dict(os.environ)
            | sandbox.env()
            | {"HOMESHOTS_REDIS_URL": url, "PYTHONPATH": str(ROOT), "HOMESHOTS_STORE_URL": f"file://{tmp / 'store'}"}
        )
        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "--loglevel=WARNING",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            for label, change in (("night 1", None), ("unchanged", 0.0), ("10% changed", 0.1)):
                truth = world.advance(change) if change is not None else None
                before, cpu = sandbox.stats.as_dict(), tree_cpu(worker.pid)
                started = time.perf_counter()
                run = f"bench-{len(rows) + 1}"
                proc = subprocess.run(
                    [sys.executable, "-m", "homeshots", "nightly", str(props), "--run-id", run],
                    env=env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                )
                if proc.returncode != 0:
                    raise RuntimeError(proc.stdout + proc.stderr)
                after = sandbox.stats.as_dict()
                row = {
                    "night": label,
                    "seconds": time.perf_counter() - started,
                    "cpu": tree_cpu(worker.pid) - cpu,
                    "bodies": after["bodies"] - before["bodies"],
                    "bytes": after["body_bytes"] - before["body_bytes"],
                    "not_modified": after["not_modified"] - before["not_modified"],
                    "api": after["api_requests"] - before["api_requests"],
                    "mls_api": sum(v for k, v in after["requests"].items() if k.startswith(("/reso", "/oauth2")))
                    - sum(v for k, v in before["requests"].items() if k.startswith(("/reso", "/oauth2"))),
                    "mls_paths": {
                        k: v - before["requests"].get(k, 0)
                        for k, v in after["requests"].items()
                        if k.startswith(("/reso", "/oauth2")) and v > before["requests"].get(k, 0)
                    },
                }
                result = json.loads(
                    subprocess.run(
                        [sys.executable, "-m", "homeshots", "status", run, "--json"],
                        env=env,
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                    ).stdout
                )["result"]
                row |= {
                    k: result[k]
                    for k in ("photos_new", "photos_changed", "photos_unchanged", "photos_removed", "properties_failed")
                }
                if truth is not None and change:
                    row["check"] = _check(env, run, truth, photo_key)
                rows.append(row)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    return rows


def _check(env: dict[str, str], run: str, truth: Any, photo_key: Any) -> str:
    """Night 3 against the world's ground truth: deltas exact, no false merge."""
    proc = subprocess.run(
        [sys.executable, "-m", "homeshots", "manifest", run],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    got: dict[tuple[str, str, str], int] = {}
    for row in rows:
        got[(row["property_id"], row["source"], row["change"])] = (
            got.get((row["property_id"], row["source"], row["change"]), 0) + 1
        )
    expected: dict[tuple[str, str, str], int] = {}
    reencoded: set[str] = set()
    for key, listing in truth.listings.items():
        for source in SOURCES:
            delta = listing.by_source.get(source)
            if delta is None:
                continue
            reencoded |= {new for _, new in delta.reencoded}
            for change, n in (
                ("new", len(delta.appeared)),
                ("changed", len(delta.changed)),
                ("removed", len(delta.disappeared)),
            ):
                if n:
                    expected[(key, source, change)] = n
    missed = sum(max(0, n - got.get(k, 0)) for k, n in expected.items())
    extra = sum(max(0, n - expected.get(k, 0)) for k, n in got.items() if k[2] != "unchanged")
    merged_new = [r for r in rows if r["change"] == "new" and r["duplicate_of"]]
    false = sum(
        1 for r in merged_new if photo_key(r["source_url"]) not in reencoded and not _same_picture_elsewhere(r, rows)
    )
    return f"deltas missed {missed}, extra {extra}; merged new photos {len(merged_new)}, false merges {false}"


def _same_picture_elsewhere(row: dict[str, Any], rows: list[dict[str, Any]]) -> bool:
    """A new photo merged into the same photo of another source (MLS and Zillow list the same picture)."""
    key = row["source_url"].rsplit("/", 1)[-1].split(".")[0]
    return any(r["sha256"] == row["duplicate_of"] and key in r["source_url"] for r in rows)


def memory(properties: int, nights: int) -> tuple[int, list[int]]:
    """Redis used_memory after each of ``nights`` unchanged nights (eager Celery, in process)."""
    from homeshots_sandbox import Listing, SandboxServer, generate_photo

    listings = [Listing(f"M{i:05d}", f"{i} Memory Ln", "Phoenix", "85001", [f"m{i}.jpg"]) for i in range(properties)]
    photos = {f"m{i}.jpg": generate_photo(100_000 + i, size=(96, 72)) for i in range(properties)}
    with (
        private_redis() as client,
        SandboxServer(listings, photos, services=["mls"], page_size=200) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        os.environ.update(
            sandbox.env()
            | {
                "HOMESHOTS_REDIS_URL": url,
                "HOMESHOTS_STORE_URL": f"file://{tmp}/store",
                "HOMESHOTS_WINDOW_SIZE": "1000",
            }
        )
        from celery_app.app import app, configure
        from homeshots.core.settings import get_settings
        from tasks.nightly import submit_nightly

        get_settings.cache_clear()
        configure(get_settings())
        app.conf.task_always_eager = True
        props = Path(tmp) / "props.csv"
        with props.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["property_id", "address", "zip", "mls_listing_key"])
            writer.writeheader()
            for x in listings:
                writer.writerow(
                    {
                        "property_id": x.listing_key,
                        "address": x.address,
                        "zip": x.postal_code,
                        "mls_listing_key": x.listing_key,
                    }
                )
        used = []
        for night in range(nights):
            submit_nightly(client, get_settings(), props, run_id=f"mem-{night}", sources=["mls"])
            used.append(int(client.info("memory")["used_memory"]))
            print(f"  night {night + 1}: {used[-1] / 1e6:.1f} MB", file=sys.stderr, flush=True)
        return int(client.info("memory")["used_memory_startup"]), used


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=80)
    parser.add_argument("--memory-properties", type=int, default=10_000)
    parser.add_argument("--memory-nights", type=int, default=30)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="homeshots-bench-nightly-") as tmp:
        rows = traffic(args.properties, Path(tmp))
    first = rows[0]
    print(f"Nights over a world of {args.properties} properties (MLS, Zillow, Redfin), one worker (2 processes):")
    print(
        "| night | photo bodies | MB downloaded | 304s | source API requests | MLS API requests | worker CPU s | "
        "new | changed | unchanged | removed | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:

        def pct(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]}" if row is first else f"{row[key]} ({row[key] / max(1, first[key]):.1%})"

        print(
            f"| {row['night']} | {pct('bodies')} | {row['bytes'] / 1e6:.1f} | {row['not_modified']} | {pct('api')} | "
            f"{pct('mls_api')} | {row['cpu']:.1f} ({row['cpu'] / max(first['cpu'], 1e-9):.1%}) | {row['photos_new']} | "
            f"{row['photos_changed']} | {row['photos_unchanged']} | {row['photos_removed']} | {row['seconds']:.1f} |"
        )
    for row in rows:
        if "check" in row:
            print(f"{row['night']}: {row['check']}")
    for row in rows[1:]:
        print(f"{row['night']}: MLS requests by path: {row['mls_paths']}")
    _startup, used = memory(args.memory_properties, args.memory_nights)
    print(
        f"Redis used_memory, {args.memory_properties} properties (1 photo each), {args.memory_nights} unchanged "
        f"nights: after night 1 {used[0] / 1e6:.1f} MB, after night {len(used)} {used[-1] / 1e6:.1f} MB "
        f"(ratio {used[-1] / used[0]:.2f}x; growth per night and property "
        f"{(used[-1] - used[0]) / max(1, len(used) - 1) / args.memory_properties:.0f} bytes)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
