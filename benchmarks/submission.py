"""Submitting a 100k-property backfill: time, peak memory and broker size, against reading the file alone.

Run from the repo root: ``python -m benchmarks.submission [--rows 100000] [--repeat 2]``.

A CSV of N rows (address, city, state, zip, apn, zpid; no property_id, so ids are derived as in real
files) is written to a temp dir and a private redis-server is started. Each measurement is a fresh
``python -m benchmarks.submission --child MODE`` process, so its peak RSS is its own:

* ``read`` (the baseline): iterate ``homeshots.core.inputs.read_properties`` over the file;
* ``submit``: ``tasks.submission.submit_backfill`` with default settings (windows of 1000, 2 in
  flight, resume on), Celery configured with ``celery_app.configure(Settings(redis_url=...))`` so
  the first windows' chords go to the private Redis; no worker runs. The time spent in
  ``tasks.window.submit_window`` (sending the chords) is reported apart from the rest.

Each mode runs ``--repeat`` times untimed by tracemalloc (best time and peak RSS are kept) and once
more under ``tracemalloc`` for the Python heap peak. Redis is flushed before every submit. After a
submit the broker queue must hold ``windows_in_flight * window_size`` messages, not N.
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
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.memory import peak_kb
from benchmarks.redis_server import private_redis

ROOT = Path(__file__).resolve().parent.parent
STREETS = ("W Camelback Road", "N Central Avenue", "E Indian School Rd", "S Mill Ave", "N 7th Street")
CITIES = ("Phoenix", "Scottsdale", "Tempe", "Mesa", "Chandler")


def write_csv(path: Path, rows: int) -> None:
    """``rows`` distinct, valid properties without property_id (ids are derived from the address)."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["address", "city", "state", "zip", "apn", "zpid"])
        for i in range(rows):
            writer.writerow(
                [
                    f"{100 + i % 9900} {STREETS[i % len(STREETS)]} Unit {i // 9900 + 1}",
                    CITIES[i % len(CITIES)],
                    "AZ",
                    f"85{i % 1000:03d}",
                    f"{100 + i % 900:03d}-{i % 100:02d}-{i % 1000:03d}",
                    str(7_000_000 + i),
                ]
            )


# --- the child ----------------------------------------------------------------------------------------
def _child(mode: str, path: Path, redis_url: str, run_id: str, trace: bool) -> dict[str, Any]:
    from homeshots.core.inputs import read_properties

    out: dict[str, Any] = {"mode": mode}
    if mode == "read":

        def work() -> None:
            out["rows"] = sum(1 for _ in read_properties(path))
    else:
        os.environ["HOMESHOTS_REDIS_URL"] = redis_url  # tasks.window reads get_settings()
        import tasks.window

        import celery_app
        from celery_app.app import QUEUE, release_result_subscriptions
        from homeshots.core.settings import Settings, get_settings
        from managers.connection import connect
        from tasks.submission import submit_backfill

        get_settings.cache_clear()
        settings = Settings(redis_url=redis_url)
        celery_app.configure(settings)
        client = connect(redis_url)
        sending = [0.0]
        original = tasks.window.submit_window

        def timed_submit_window(*args: Any) -> None:
            start = time.perf_counter()
            original(*args)
            sending[0] += time.perf_counter() - start

        tasks.window.submit_window = timed_submit_window  # submit_backfill imports it at call time

        def work() -> None:
            sub = submit_backfill(
                client, settings, path, run_id=run_id, sources=settings.sources, resume=True, skip_bad_rows=False
            )
            out.update(rows=sub.total_properties, windows=sub.windows)

    after_imports = peak_kb()
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    work()
    out["seconds"] = time.perf_counter() - start
    if trace:
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    out["imports"], out["peak"] = after_imports, peak_kb()
    if mode == "submit":
        out["sending_seconds"] = sending[0]
        out["queued"] = int(client.llen(QUEUE))
        out["expected_queued"] = settings.windows_in_flight * settings.window_size
        release_result_subscriptions()
    return out


# --- the parent ---------------------------------------------------------------------------------------
def _run_child(mode: str, path: Path, redis_url: str, run_id: str, trace: bool) -> dict[str, Any]:
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.submission",
        "--child",
        mode,
        "--csv",
        str(path),
        "--redis-url",
        redis_url,
        "--run-id",
        run_id,
    ] + (["--trace"] if trace else [])
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOMESHOTS_")}
    env["HOMESHOTS_STORE_URL"] = f"file://{path.parent / 'store'}"
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(kb: int | None) -> float:
    return (kb or 0) * 1024 / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--child", choices=("read", "submit"))
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--redis-url", default="")
    parser.add_argument("--run-id", default="bench")
    parser.add_argument("--trace", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.csv, args.redis_url, args.run_id, args.trace)))
        return 0

    with tempfile.TemporaryDirectory(prefix="homeshots-bench-submit-") as tmp, private_redis() as client:
        path = Path(tmp) / "properties.csv"
        print(f"writing {args.rows:,} rows ...", file=sys.stderr, flush=True)
        write_csv(path, args.rows)
        redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        runs: dict[str, list[dict[str, Any]]] = {"read": [], "submit": []}
        traced: dict[str, dict[str, Any]] = {}
        for k in range(args.repeat + 1):
            trace = k == args.repeat
            for mode in ("read", "submit"):
                print(f"{mode}{' (tracemalloc)' if trace else ''} ...", file=sys.stderr, flush=True)
                client.flushall()
                result = _run_child(mode, path, redis_url, f"bench-{k}", trace)
                if trace:
                    traced[mode] = result
                else:
                    runs[mode].append(result)
        file_mb = path.stat().st_size / 1e6

    best = {mode: min(results, key=lambda r: r["seconds"]) for mode, results in runs.items()}
    peak = {mode: max(_mb(r["peak"]["vmhwm_kb"]) for r in results) for mode, results in runs.items()}
    floor = {mode: min(_mb(r["imports"]["vmrss_kb"]) for r in results) for mode, results in runs.items()}
    print(f"Submission of {args.rows:,} properties ({file_mb:.1f} MB CSV), best of {args.repeat}, fresh process each")
    print(f"{'step':<34}{'seconds':>8}{'rows/s':>10}{'tracemalloc MB':>16}{'peak RSS MB':>13}{'RSS growth MB':>15}")
    for mode, label in (("read", "read_properties (baseline)"), ("submit", "submit_backfill")):
        r = best[mode]
        print(
            f"{label:<34}{r['seconds']:>8.2f}{r['rows'] / r['seconds']:>10,.0f}"
            f"{traced[mode]['traced_peak'] / 1e6:>16.1f}{peak[mode]:>13.1f}{peak[mode] - floor[mode]:>15.1f}"
        )
    sub = best["submit"]
    send = sub["sending_seconds"]
    print(
        f"  of which sending the first chords (tasks.window.submit_window): {send:.2f} s; "
        f"validating + writing {sub['windows']} windows: {sub['seconds'] - send:.2f} s"
    )
    overhead = sub["seconds"] - best["read"]["seconds"]
    print(
        f"overhead over reading alone: +{overhead:.2f} s ({sub['seconds'] / best['read']['seconds']:.2f}x the "
        f"baseline); without the chord sends: {(sub['seconds'] - send) / best['read']['seconds']:.2f}x"
    )
    queued = [r["queued"] for r in runs["submit"]]
    ok = all(q == sub["expected_queued"] for q in queued)
    print(
        f"broker queue after submit: {queued[0]:,} messages (windows_in_flight * window_size = "
        f"{sub['expected_queued']:,}; rows {args.rows:,}): {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
