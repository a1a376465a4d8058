"""What a real backfill costs Redis per image: commands, round trips and Redis CPU, broker traffic included.

Run from the repo root: ``python -m benchmarks.redis_cost [--properties 80] [--photos-each 3]``.

A private redis-server (state, broker and results, the default deployment), the sandbox serving all
four sources (each photo listed by the MLS, Zillow and Redfin in their own sizes and encodings, one
sketch per parcel from the assessor: about 12 downloads per property, as in a real backfill), one
Celery worker (prefork, 2 processes) and the real CLI (``homeshots backfill --no-wait``). Counted on
the server from just before submission to the run's end: ``INFO commandstats`` (every command,
those a script runs included), ``total_reads_processed`` (round trips: a pipeline is one) and
``used_cpu_user + used_cpu_sys``, minus this script's own status polls.

The baseline in the same run is the server's cost of one round trip on this machine (a plain SET,
measured first): Redis CPU per image is mostly round trips x that cost, so the ratio says how many
round trips' worth of work an image takes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from benchmarks.pipeline_run import ROOT, _worker
from benchmarks.redis_server import private_redis

SOURCES = ("mls", "maricopa", "zillow", "redfin")


def _server(client: redis.Redis) -> tuple[dict[str, tuple[int, int]], int, float]:
    stats = client.info("commandstats")
    per = {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"])) for k, v in stats.items()}
    info = client.info("stats")
    cpu = client.info("cpu")
    return per, int(info["total_reads_processed"]), float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])


def round_trip_cost(client: redis.Redis, count: int = 3000) -> float:
    """Server CPU seconds per plain SET round trip on this machine (the unit everything else is in)."""
    _, _, before = _server(client)
    for i in range(count):
        client.set("hs:bench:rt", i)
    _, _, after = _server(client)
    client.delete("hs:bench:rt")
    return (after - before) / count


@contextlib.contextmanager
def _world(properties: int, each: int, seed: int) -> Iterator[tuple[object, list]]:
    from homeshots_sandbox import Listing, SandboxServer, generate_photo

    listings, photos = [], {}
    for i in range(properties):
        names = []
        for j in range(each):
            name = f"R{i:05d}_{j}.jpg"
            photos[name] = generate_photo(seed + i * 100 + j, size=(1600, 1067))
            names.append(name)
        listings.append(
            Listing(
                f"R{i:05d}", f"{i + 1} Cost Ave", "Phoenix", "85001", names,
                apn=f"{100 + i // 100:03d}-{i % 100:02d}-{i % 997:03d}", zpid=str(9_000_000 + i),
                redfin_id=str(7_000_000 + i),
            )
        )  # fmt: skip
    with SandboxServer(listings, photos, services=list(SOURCES)) as sandbox:
        yield sandbox, listings


def _csv(path: Path, listings: list) -> Path:
    import csv

    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["address", "city", "state", "zip", "apn", "mls_listing_key", "zpid"])
        writer.writeheader()
        for x in listings:
            writer.writerow(
                {"address": x.address, "city": x.city, "state": "AZ", "zip": x.postal_code, "apn": x.apn,
                 "mls_listing_key": x.listing_key, "zpid": x.zpid}
            )  # fmt: skip
    return path


@contextlib.contextmanager
def _monitor(port: int, path: Path) -> Iterator[None]:
    """``redis-cli monitor`` into ``path`` while the block runs (its own connection, not counted as work)."""
    with path.open("w") as out:
        proc = subprocess.Popen(["redis-cli", "-p", str(port), "monitor"], stdout=out, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            proc.terminate()
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--properties", type=int, default=80)
    parser.add_argument("--photos-each", type=int, default=3, help="photos per listing (each served by 3 sources)")
    parser.add_argument("--seed", type=int, default=77_000)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--monitor", type=Path, help="write the server's MONITOR stream of the run here")
    parser.add_argument("--scripts", action="store_true", help="time each Lua script (SLOWLOG of every command)")
    parser.add_argument(
        "--pin", action="store_true", help="redis-server on the last core alone, everything else on the others"
    )
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="homeshots-redis-cost-")))
        client = stack.enter_context(private_redis())
        if args.pin:
            cores = sorted(os.sched_getaffinity(0))
            if len(cores) < 2:
                parser.error("--pin needs two cores or more")
            os.sched_setaffinity(client.server_pid, {cores[-1]})  # type: ignore[attr-defined]
            os.sched_setaffinity(0, set(cores[:-1]))  # the sandbox, the worker and the CLI inherit it
        unit = round_trip_cost(client)
        sandbox, listings = stack.enter_context(_world(args.properties, args.photos_each, args.seed))
        port = client.connection_pool.connection_kwargs["port"]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOMESHOTS_", "AWS_"))}
        env |= sandbox.env() | {  # type: ignore[attr-defined]
            "HOMESHOTS_REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "HOMESHOTS_STORE_URL": f"file://{tmp / 'store'}",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'sandbox'}",
        }
        for source in SOURCES:
            env[f"HOMESHOTS_{source.upper()}_RATE"] = "1000"  # politeness is not what is measured here
        stack.enter_context(_worker(env, 2, "prefork", tmp / "worker.log", "cost"))
        props = _csv(tmp / "props.csv", listings)
        time.sleep(3)  # the worker connects and declares its queues before we count
        if args.monitor:
            stack.enter_context(_monitor(port, args.monitor))
        if args.scripts:
            client.config_set("slowlog-log-slower-than", 0)
            client.config_set("slowlog-max-len", 1_000_000)
            client.slowlog_reset()
        per0, reads0, cpu0 = _server(client)
        started = time.monotonic()
        sent = subprocess.run(
            [sys.executable, "-m", "homeshots", "backfill", str(props), "--run-id", "cost", "--no-wait"],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        if sent.returncode != 0:
            print(sent.stdout + sent.stderr, file=sys.stderr)
            return 1
        polls = 0
        from managers.run_manager import RunManager

        meta = RunManager(client, "cost").meta_key
        while client.hget(meta, "status") != "finished":
            polls += 1
            if time.monotonic() - started > args.timeout:
                print("the run did not finish", file=sys.stderr)
                return 1
            time.sleep(1.0)
        elapsed = time.monotonic() - started
        per1, reads1, cpu1 = _server(client)
        result = client.get(RunManager(client, "cost").keys.result) or "{}"
        slow = client.slowlog_get(1_000_000) if args.scripts else []
    import json

    outcome = json.loads(result)
    images = int(outcome.get("total_images", 0))
    if not images:
        print(f"no images in the run: {outcome}", file=sys.stderr)
        return 1
    calls = {k: (c - per0.get(k, (0, 0))[0], u - per0.get(k, (0, 0))[1]) for k, (c, u) in per1.items()}
    calls = {k: v for k, v in calls.items() if v[0] > 0 and k != "info"}
    calls["hget"] = (calls.get("hget", (polls, 0))[0] - polls, calls.get("hget", (0, 0))[1])
    total = sum(c for c, _ in calls.values())
    reads = reads1 - reads0 - polls - 3
    cpu = cpu1 - cpu0
    lanes = int(outcome.get("properties_completed", 0)) + int(outcome.get("properties_failed", 0))
    print(
        f"backfill: {args.properties} properties x 4 sources, {images} images, "
        f"{outcome.get('unique_images')} unique, {elapsed:.1f} s"
    )
    print(f"baseline: one plain SET round trip costs this server {unit * 1e6:.1f} us of CPU")
    print(
        f"per image: {total / images:.1f} commands (scripts' own included), {reads / images:.1f} round trips, "
        f"{cpu / images * 1e6:.0f} us Redis CPU = {cpu / images / unit:.1f} round trips' worth"
    )
    print(f"per property ({lanes} of them, 4 lanes each): {reads / max(lanes, 1):.1f} round trips")
    print("by command (calls per image, usec inside the command per image):")
    for name, (c, u) in sorted(calls.items(), key=lambda kv: -kv[1][0])[:16]:
        print(f"  {name:18} {c / images:6.2f} {u / images:7.1f}")
    if slow:
        _script_times(slow, images)
    return 0


def _script_times(entries: list[dict], images: int) -> None:
    """Microseconds per image and per call of each Lua script, named by its module and constant."""
    import hashlib
    import importlib

    names = {}
    for module in ("managers.claim_log", "managers.lane_recorder", "managers.deduplicator",
                   "managers.source_limiter", "managers.run_manager"):  # fmt: skip
        for name, value in vars(importlib.import_module(module)).items():
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = f"{module}.{name}"
    times: dict[str, list[int]] = {}
    for entry in entries:
        command = entry["command"]
        command = command.decode() if isinstance(command, bytes) else command
        parts = command.split()
        if parts and parts[0].upper() == "EVALSHA":
            times.setdefault(names.get(parts[1], "celery/other " + parts[1][:8]), []).append(int(entry["duration"]))
    print("Lua scripts (usec per image, median usec per call, calls):")
    for name, values in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        values.sort()
        print(f"  {name:44} {sum(values) / images:7.1f} {values[len(values) // 2]:6d} {len(values):6d}")


if __name__ == "__main__":
    raise SystemExit(main())
