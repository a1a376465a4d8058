"""Size, time and peak memory of ``homeshots report`` for large synthetic runs.

Run from the repo root: ``python -m benchmarks.report_scale [--sizes 10000,100000]``.

A run is written straight into a private ``redis-server`` and a temp-dir local store with pipelines
(``populate``): the manifest rows of N properties (about 6 photos each, a third of them listed again
by a second source and merged, pHash distances spread up to the thresholds, a few copies of another
property's photo), nightly deltas on every row, property and image failures of several kinds and
sources, a night plan, and a progress sample every 1000 properties. Only the photos of a few dozen
properties exist as files; every other file is missing, as the report must survive. Some addresses
and URLs carry ``<script>`` to check escaping. The tests (``tests/integration/test_report_scale.py``)
use the same builder.

Each size is measured twice: once plain (the time and page size a person gets) and once under
``tracemalloc`` (the Python heap's peak; tracing slows the run, so its time is not the one reported).
Goals: page <= 20 MB, written in <= 60 s, peak < 300 MB, at 100k properties on 2 cores.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import tempfile
import time
import tracemalloc
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from PIL import Image, ImageDraw

from homeshots.imaging.hashing import int_to_hex
from homeshots.ops.report import ReportBuilder
from homeshots.ops.report_scan import sample_rank
from homeshots.storage import LocalStore, image_key
from managers import keys
from managers.extraction_stats import ExtractionResult
from managers.run_manager import RunManager
from managers.state_manager import StateManager

SOURCES = ("mls", "maricopa", "zillow", "redfin")
COPY_SOURCES = (("zillow", 0.3), ("redfin", 0.12))
"""A listing photo is listed again by these sources with these probabilities (and merged)."""
PROPERTY_FAILURES = (("zillow", "source_blocked"), ("redfin", "source_timeout"), ("", "lost"), ("", "poison"))
IMAGE_FAILURES = ("timeout", "decode", "too_large", "http_404")
CHANGES = (("unchanged", 0.7), ("new", 0.2), ("changed", 0.05), ("removed", 0.05))
INJECTED = '<script>alert("homeshots")</script>'
WINDOW = 1000
GOAL_BYTES, GOAL_SECONDS, GOAL_PEAK_MB = 20 * 1024 * 1024, 60.0, 300.0


@dataclass(frozen=True)
class SyntheticRun:
    run_id: str
    properties: int
    rows: int
    copies: int
    failed_properties: int
    image_failures: int
    files: int


@dataclass(frozen=True)
class Measurement:
    seconds: float
    megabytes: float
    peak_mb: float | None
    inlined: int
    linked: int
    missing: int


def _sha(*parts: object) -> str:
    return hashlib.sha256("-".join(map(str, parts)).encode()).hexdigest()


def _flip(value: int, bits: int, rng: random.Random) -> int:
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


def _picture(sha: str, size: tuple[int, int]) -> Image.Image:
    """A distinct, cheap picture per image: a coloured background with a few shapes."""
    rng = random.Random(sha)
    im = Image.new("RGB", size, tuple(rng.randrange(40, 220) for _ in range(3)))
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rng.randrange(size[0]), rng.randrange(size[1])
        w, h = rng.randrange(20, size[0] // 2), rng.randrange(20, size[1] // 2)
        box = (x, y, x + w, y + h)
        colour = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return im


def _encode(im: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **({"quality": 80} if fmt == "JPEG" else {"compress_level": 1}))
    return out.getvalue()


def _choose(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll, total = rng.random(), 0.0
    for name, weight in weighted:
        total += weight
        if roll < total:
            return name
    return weighted[-1][0]


def populate(
    client: redis.Redis,
    store: LocalStore,
    properties: int,
    *,
    run_id: str = "scale",
    seed: int = 0,
    with_files: int = 40,
) -> SyntheticRun:
    """Write a finished nightly run of ``properties`` properties (see the module doc); the ``with_files``
    properties the report samples first get real files (processed PNG, copies' thumbnails)."""
    rng = random.Random(seed)
    run = keys.RunKeys(run_id)
    pids = [f"prop-{i:07d}" for i in range(properties)]
    by_rank = sorted(pids, key=sample_rank)  # the order the report samples properties in
    with_files_ids, injected = set(by_rank[:with_files]), {*by_rank[:3], *pids[::997]}
    pool: list[tuple[str, int, str]] = []  # kept images with files: (sha, phash, property) other properties copy
    counters: Counter[str] = Counter()
    started = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
    t, rows_total = started.timestamp(), 0
    copies = failed = image_failures = files = completed = 0
    pipe = client.pipeline(transaction=False)
    for i, pid in enumerate(pids):
        address = f"{INJECTED} {i} Main St, Phoenix, AZ 85001" if pid in injected else f"{i} Main St, Phoenix, AZ 85001"
        if rng.random() < 0.02:
            source, kind = PROPERTY_FAILURES[rng.randrange(len(PROPERTY_FAILURES))]
            reason = {"source": source, "kind": kind, "message": f"{kind} after 3 tries", "retryable": kind != "poison"}
            pipe.hset(run.of(pid).failed, pid, json.dumps(reason, sort_keys=True))
            counters[f"fail.{source or 'mls'}.{kind}"] += 1
            failed += 1
        else:
            pipe.sadd(run.of(pid).completed, pid)
            completed += 1
            rows = []
            files_here = pid in with_files_ids
            for j in range(min(60, int(rng.expovariate(1 / 6)))):
                sha, phash = _sha(pid, j), rng.getrandbits(64)
                url = (
                    f"https://photos.example.com/{pid}/{j}.jpg"
                    if j != 3 or i % 499
                    else f"https://x.test/{INJECTED}.jpg"
                )
                change = _choose(rng, CHANGES)
                kept = {
                    "property_id": pid,
                    "address": address,
                    "source": "mls",
                    "source_url": url,
                    "sha256": sha,
                    "phash": int_to_hex(phash),
                    "raw_key": image_key("raw", sha, "JPEG"),
                    "processed_key": image_key("processed", sha, "PNG"),
                    "width": 1024,
                    "height": 768,
                    "duplicate_of": None,
                    "change": change,
                }
                origin, limit = phash, 20  # the kept image's pHash; the property rule's threshold
                if pool and rng.random() < 0.03:  # this photo is a copy of another property's photo
                    other, origin, _ = pool[rng.randrange(len(pool))]
                    limit = 8  # merged under the corpus rule
                    kept |= {"duplicate_of": other, "phash": int_to_hex(_flip(origin, rng.randrange(0, 9), rng))}
                    kept |= {"processed_key": image_key("processed", other, "PNG")}
                    copies += 1
                rows.append(kept)
                if files_here and not kept["duplicate_of"]:
                    im = _picture(sha, (1024, 768))
                    store.put(kept["processed_key"], _encode(im, "PNG"))
                    pipe.hset(
                        keys.image(sha),
                        mapping={
                            "sha256": sha,
                            "phash": kept["phash"],
                            "property_id": pid,
                            "source": "mls",
                            "source_url": url,
                            "raw_key": kept["raw_key"],
                            "processed_key": kept["processed_key"],
                        },
                    )
                    pool.append((sha, phash, pid))
                    files += 1
                for source, chance in COPY_SOURCES:
                    if rng.random() >= chance:
                        continue
                    copy_sha = _sha(pid, j, source)
                    distance = min(limit, int(rng.expovariate(1 / 3)))
                    rows.append(
                        kept
                        | {
                            "source": source,
                            "source_url": f"https://{source}.example.com/{pid}/{j}.webp",
                            "sha256": copy_sha,
                            "phash": int_to_hex(_flip(origin, distance, rng)),
                            "duplicate_of": kept["duplicate_of"] or sha,
                            "width": 768,
                            "height": 576,
                        }
                    )
                    copies += 1
                    if files_here:
                        store.put(image_key("thumbs", copy_sha, "JPEG"), _encode(_picture(sha, (256, 192)), "JPEG"))
                        files += 1
            rows_total += len(rows)
            _count(counters, rows)
            for source in {row["source"] for row in rows}:  # one field per property and lane, as recorded
                lane_rows = [row for row in rows if row["source"] == source]
                pipe.hset(run.of(pid).manifest, keys.lane_field(pid, source), json.dumps(lane_rows, sort_keys=True))
            if rng.random() < 0.04:
                fails = []
                for k in range(rng.randrange(1, 4)):
                    kind = IMAGE_FAILURES[rng.randrange(len(IMAGE_FAILURES))]
                    source = SOURCES[rng.randrange(len(SOURCES))]
                    where = f"https://{source}.example.com/{pid}/bad{k}.jpg" if i % 7 else f"https://x.test/{INJECTED}"
                    fails.append(
                        {
                            "property_id": pid,
                            "source": source,
                            "source_url": where,
                            "kind": kind,
                            "message": f"{kind}: {INJECTED}" if i % 11 == 0 else f"{kind} while downloading",
                            "retryable": kind == "timeout",
                        }
                    )
                    counters[f"fail.{source}.image_{kind}"] += 1
                    counters[f"src.{source}.images_failed"] += 1
                    counters["run.failed_downloads"] += 1
                for source in {f["source"] for f in fails}:
                    lane_fails = [f for f in fails if f["source"] == source]
                    field = keys.lane_field(pid, source)
                    pipe.hset(run.of(pid).image_failures, field, json.dumps(lane_fails, sort_keys=True))
                image_failures += len(fails)
        if (i + 1) % WINDOW == 0 or i + 1 == properties:
            # A slower stretch in the middle of the night, so the throughput plot has a shape.
            t += WINDOW / (14.0 if 0.4 < i / properties < 0.6 else 25.0) * (0.9 + 0.2 * rng.random())
            sample = {
                "t": t,
                "window": i // WINDOW,
                "completed": completed,
                "failed": failed,
                "counters": {k: v for k, v in counters.items() if v},
            }
            pipe.rpush(run.progress, json.dumps(sample, sort_keys=True, separators=(",", ":")))
            pipe.execute()
    _finish(client, run_id, properties, counters, started, t)
    return SyntheticRun(run_id, properties, rows_total, copies, failed, image_failures, files)


def _count(counters: Counter[str], rows: list[dict[str, object]]) -> None:
    """The run's and the sources' counters for a property's rows, as the pipeline would have counted them."""
    for row in rows:
        source, copy = row["source"], bool(row["duplicate_of"])
        counters["run.total_images"] += 1
        counters[f"src.{source}.images_found"] += 1
        counters[f"src.{source}.images_downloaded"] += 1
        counters[f"src.{source}.{'duplicates_detected' if copy else 'images_stored'}"] += 1
        counters[f"run.{'duplicate_images' if copy else 'images_stored'}"] += 1
        counters["run.unique_images"] += not copy
        counters[f"src.{source}.photos_{row['change']}"] += 1
        counters[f"run.photos_{row['change']}"] += 1
    for source in {row["source"] for row in rows}:
        counters[f"src.{source}.properties_processed"] += 1


def _finish(
    client: redis.Redis, run_id: str, properties: int, counters: Counter[str], started: datetime, end: float
) -> None:
    finished = datetime.fromtimestamp(end, UTC)
    night = {
        "hours": 8,
        "sources": {
            s: {"budget": b, "requests_planned": b - 100, "visited": v, "deferred": properties - v}
            for s, b, v in (
                ("mls", 288000, properties),
                ("maricopa", 57600, properties // 3),
                ("zillow", 14400, min(properties, 14000)),
                ("redfin", 28800, min(properties, 28000)),
            )
        },
        "replication": {"status": "completed", "since": (started - timedelta(days=1)).isoformat(), "changed": 812,
                        "kept": 240, "pages": 9},
    }  # fmt: skip
    runs = RunManager(client, run_id)
    client.hset(
        runs.meta_key,
        mapping={
            "run_id": run_id,
            "input": f"synthetic {properties} properties {INJECTED}",
            "sources": json.dumps(list(SOURCES)),
            "started_at": started.isoformat(),
            "finished_at": finished.isoformat(),
            "total_properties": properties,
            "properties_deferred": properties - min(properties, 14000),
            "night": json.dumps(night),
            "generation": 1,
        },
    )
    result = runs.current_result()
    exact = StateManager(client, run_id).exact_summary()  # the lanes were written without running totals
    result.properties_completed, result.properties_failed = exact.completed, exact.failed
    result.apply_counters(dict(counters))
    for source in SOURCES:
        result.add_source(source)
    runs.finalize(1, ExtractionResult.to_dict(result))


def measure(
    client: redis.Redis, store: LocalStore, run_id: str, output: Path, *, trace: bool = False
) -> tuple[Measurement, str]:
    """Build and write the page; returns the measurement and the page."""
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    builder = ReportBuilder(client, store, run_id, output_dir=output.parent)
    page = builder.build()
    output.write_text(page, encoding="utf-8")
    seconds = time.perf_counter() - started
    peak = None
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    pictures = builder.pictures
    size = output.stat().st_size / 1e6
    return Measurement(seconds, size, peak, pictures.inlined, pictures.linked, pictures.missing), page


def main(argv: list[str] | None = None) -> int:
    from benchmarks.redis_server import private_redis

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated numbers of properties")
    parser.add_argument("--keep", type=Path, help="copy each size's page here (report-<size>.html) to look at it")
    args = parser.parse_args(argv)
    print(f"{'properties':>10} {'rows':>9} {'populate s':>10} {'report s':>9} {'MB':>6} {'peak MB':>8} "
          f"{'inlined':>7} {'linked':>7} {'missing':>7}  goals")  # fmt: skip
    ok = True
    for size in (int(s) for s in args.sizes.split(",") if s):
        with private_redis() as client, tempfile.TemporaryDirectory(prefix="homeshots-report-") as tmp:
            store = LocalStore(Path(tmp) / "store")
            began = time.perf_counter()
            made = populate(client, store, size)
            populated = time.perf_counter() - began
            plain, page = measure(client, store, made.run_id, Path(tmp) / "report.html")
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"report-{size}.html").write_text(page, encoding="utf-8")
            traced, _ = measure(client, store, made.run_id, Path(tmp) / "report-traced.html", trace=True)
            met = plain.megabytes * 1e6 <= GOAL_BYTES and plain.seconds <= GOAL_SECONDS
            met = met and (traced.peak_mb or 0) < GOAL_PEAK_MB
            ok = ok and met
            print(
                f"{size:>10} {made.rows:>9} {populated:>10.1f} {plain.seconds:>9.1f} {plain.megabytes:>6.2f} "
                f"{traced.peak_mb or 0:>8.1f} {plain.inlined:>7} {plain.linked:>7} {plain.missing:>7}  "
                f"{'met' if met else 'MISSED'}",
                flush=True,
            )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
