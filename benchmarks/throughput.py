"""Images per second of the whole pipeline against bare Pillow, with latency, and with 1 vs 2 workers.

Run from the repo root: ``python -m benchmarks.throughput [--images N] [--photos-each 4]`` (~4 min on
2 cores; results and their reading in ``benchmarks/RESULTS.md``).

Photos: ``../shared/datasets/houses`` (beside the checkout) upscaled to MLS-size photos (3000 px
longest side, JPEG q90) when that folder exists, else ``homeshots_sandbox.generate_photo`` at
3000x2000. Nothing is copied into the project: the photos live in memory and the sandbox serves them.

Measured in the same run, so every ratio compares like with like:

* **bare**: ``ImageStandardizer.standardize`` (decode + orient + sRGB + resize + encode + pixel
  sha256 + pHash + dHash) over every photo in a loop in this process, with the workers' settings.
* **pipeline**: a private ``redis-server``, the sandbox (MLS only, ``--photos-each`` photos per
  listing, ``latency`` seconds per image response) on 127.0.0.1, a local-folder store in a temp dir
  and real ``celery -A celery_app worker -P POOL --concurrency=C`` processes; a warm-up run
  (imports, OAuth token, connections), then the measured run, submitted with ``submit_backfill``
  from a helper process and timed from submission to the run's ``finished_at`` (chord callbacks and
  the final result included). Around the measured run: CPU seconds of the worker processes, of
  redis-server and of the sandbox (this process), the CPU the machine spent on anything else
  ("other load": noise from other users), and Redis' command counts, command times and network
  bytes (``INFO commandstats`` / ``INFO stats``; the helper's status polls are subtracted).

1. floor: pipeline with one prefork worker process (c=1) / bare, for each ``--png LEVEL:STRATEGY``
   (goal >= 0.85);
2. latency hiding: the sandbox answering each photo after ``--latency`` (50 ms) / without, for
   prefork c=1, for ``--big-listing`` photos per listing, and for one ``-P threads`` worker process
   with ``--threads`` task threads sharing one image lane (goal >= 0.9);
3. scale-out: prefork c=2 / c=1 (goal >= 1.8), and with latency: prefork c=2 against two
   ``-P threads`` worker processes.

The sandbox's server writes a response's headers and body separately; on a small (API) response
Nagle's algorithm then waits ~40 ms for the client's delayed ACK, a delay no real service adds, so
this benchmark turns Nagle off on the sandbox's sockets (``disable_nagle_algorithm``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from benchmarks.pipeline_run import MLS_LONGEST, PipelineResult, Png, pipeline
from benchmarks.proc_cpu import busy_seconds

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "houses"
"""Longest side of the photos as the MLS serves them (its full-size JPEGs)."""
WARMUP_SEED = 900_000
POLL_SECONDS = 0.2
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- photos ---------------------------------------------------------------------------------------
def _upscaled(path: Path) -> bytes:
    with Image.open(path) as opened:
        im = opened.convert("RGB")
    scale = MLS_LONGEST / max(im.size)
    im = im.resize((round(im.width * scale), round(im.height * scale)), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def load_photos(count: int) -> tuple[list[bytes], str]:
    """``count`` distinct MLS-size JPEGs and where they came from."""
    from homeshots_sandbox import generate_photo

    files = sorted(DATASET.glob("*.jpg")) if DATASET.is_dir() else []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        photos = list(pool.map(_upscaled, files[:count]))
        extra = count - len(photos)
        photos += list(pool.map(lambda i: generate_photo(10_000 + i, size=(MLS_LONGEST, 2000)), range(extra)))
    if files and extra <= 0:
        origin = f"{DATASET} ({count} of {len(files)} photos, upscaled to {MLS_LONGEST} px, JPEG q90)"
    elif files:
        origin = f"{DATASET} ({len(files)} photos upscaled to {MLS_LONGEST} px) + {extra} generated"
    else:
        origin = f"generated (homeshots_sandbox.generate_photo, {MLS_LONGEST}x2000 JPEG q90)"
    return photos, origin


# --- bare Pillow ------------------------------------------------------------------------------------
def bare(photos: list[bytes], png: Png) -> tuple[float, float, int, float]:
    """(images/s, CPU s per image, mean output bytes, other load in cores) of ``standardize`` alone."""
    from homeshots.core.settings import Settings
    from homeshots.imaging.standardizer import ImageStandardizer

    s = Settings(**{k.removeprefix("HOMESHOTS_").lower(): v for k, v in png.env().items()})
    std = ImageStandardizer(
        max_dimension=s.max_dimension,
        output_format=s.output_format,
        png_compress_level=s.png_compress_level,
        jpeg_quality=s.jpeg_quality,
        max_pixels=s.max_image_pixels,
        png_strategy=s.png_strategy,
        png_encoder=s.png_encoder,
    )
    std.standardize(photos[-1])  # imports and first-call costs out of the timing
    cpu0, busy0, t0, size = time.process_time(), busy_seconds(), time.perf_counter(), 0
    for data in photos:
        size += len(std.standardize(data).data)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    foreign = max(0.0, busy_seconds() - busy0 - cpu) / wall
    return len(photos) / wall, cpu / len(photos), size // len(photos), foreign


# --- report ----------------------------------------------------------------------------------------------
def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0]
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, load average {load:.2f} at start"


def verdict(ratio: float, goal: float) -> str:
    return f"{'met' if ratio >= goal else 'NOT met'} (goal >= {goal})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--images", type=int, default=160, help="photos per measured run (default 160)")
    parser.add_argument("--photos-each", type=int, default=4, help="photos per listing (default 4)")
    parser.add_argument(
        "--png",
        default="6:default,1:rle,1:isal",
        help="PNG LEVEL:STRATEGY (Pillow) or LEVEL:isal settings for the floor; the last one is used for the rest",
    )
    parser.add_argument("--latency", type=float, default=0.05, help="sandbox seconds per image response")
    parser.add_argument(
        "--threads", type=int, default=2, help="task threads of the -P threads latency run (0: skip it; default 2)"
    )
    parser.add_argument(
        "--big-listing",
        type=int,
        default=16,
        help="photos per listing of the larger-listing latency runs (0: skip them; default 16)",
    )
    parser.add_argument("--only", default="", help="comma list of parts: floor,latency,scale (default all)")
    parser.add_argument("--env", action="append", default=[], help="extra KEY=VALUE for the workers")
    args = parser.parse_args(argv)
    parts = set(filter(None, args.only.split(","))) or {"floor", "latency", "scale"}
    pngs = [Png.parse(x) for x in args.png.split(",")]
    main_png = pngs[-1]
    extra = dict(kv.split("=", 1) for kv in args.env)
    print(f"machine: {machine()}")
    photos, origin = load_photos(args.images)
    print(
        f"photos: {origin}; mean {statistics.mean(map(len, photos)) / 1e6:.2f} MB; "
        f"{args.photos_each} per listing, {-(-len(photos) // args.photos_each)} listings"
    )
    if extra:
        print(f"worker env: {extra}")
    results: dict[str, PipelineResult] = {}
    rows: list[str] = []
    ms = f"{1000 * args.latency:.0f} ms"

    def run(label: str, **kw: object) -> PipelineResult:
        if label not in results:
            kw.setdefault("each", args.photos_each)
            r = results[label] = pipeline(label, photos, extra_env=extra, **kw)  # type: ignore[arg-type]
            print(
                f"  pipeline, {label}: {r.rate:.2f} images/s ({r.seconds:.1f} s); CPU ms per image: worker "
                f"{1000 * r.worker_cpu / r.images:.0f} (main process "
                f"{1000 * (r.worker_cpu - r.pool_cpu) / r.images:.1f}), redis {1000 * r.redis_cpu / r.images:.1f}, "
                f"sandbox {1000 * r.sandbox_cpu / r.images:.1f}; other load {r.foreign_cpu / r.seconds:.2f} "
                f"cores; {_short(r.counters)}",
                flush=True,
            )
        return results[label]

    if "floor" in parts:
        print("\n1. floor: bare Pillow (this process) vs the pipeline with one worker process (prefork, c=1)")
        for png in pngs:
            rate, cpu, size, foreign = bare(photos, png)
            print(
                f"  bare, {png}: {rate:.2f} images/s, {1000 * cpu:.0f} ms CPU/image, PNG {size / 1e6:.3f} MB; "
                f"other load {foreign:.2f} cores",
                flush=True,
            )
            r = run(f"{png}, c=1", png=png)
            ratio = r.rate / rate
            rows.append(
                f"floor, {png}: bare {rate:.2f} img/s, pipeline c=1 {r.rate:.2f} img/s, ratio {ratio:.2f} "
                f"{verdict(ratio, 0.85)}"
            )
    if "latency" in parts:
        print(f"\n2. latency hiding: {ms} per image response, {main_png}")
        zero = run(f"{main_png}, c=1", png=main_png)
        slow = run(f"{main_png}, c=1, {ms} latency", png=main_png, latency=args.latency)
        ratio = slow.rate / zero.rate
        rows.append(
            f"latency {ms}, prefork c=1: {zero.rate:.2f} -> {slow.rate:.2f} img/s, ratio {ratio:.2f} "
            f"{verdict(ratio, 0.9)}"
        )
        if args.big_listing:
            big = {"png": main_png, "each": args.big_listing}
            bzero = run(f"{main_png}, c=1, {args.big_listing} photos per listing", **big)
            bslow = run(
                f"{main_png}, c=1, {args.big_listing} photos per listing, {ms} latency", latency=args.latency, **big
            )
            rows.append(
                f"latency {ms}, prefork c=1, {args.big_listing} photos per listing: {bzero.rate:.2f} -> "
                f"{bslow.rate:.2f} img/s, ratio {bslow.rate / bzero.rate:.2f} "
                f"{verdict(bslow.rate / bzero.rate, 0.9)}"
            )
        if args.threads:
            tzero = run(
                f"{main_png}, -P threads c={args.threads}", png=main_png, pool="threads", concurrency=args.threads
            )
            tslow = run(
                f"{main_png}, -P threads c={args.threads}, {ms} latency",
                png=main_png,
                pool="threads",
                concurrency=args.threads,
                latency=args.latency,
            )
            rows.append(
                f"latency {ms}, one process -P threads c={args.threads}: {tzero.rate:.2f} -> "
                f"{tslow.rate:.2f} img/s, ratio {tslow.rate / tzero.rate:.2f} "
                f"{verdict(tslow.rate / tzero.rate, 0.9)}; vs prefork c=1 without latency "
                f"{tslow.rate / zero.rate:.2f}"
            )
    if "scale" in parts:
        print(f"\n3. scale-out: 1 vs 2 worker processes (prefork), {main_png}")
        one = run(f"{main_png}, c=1", png=main_png)
        two = run(f"{main_png}, c=2", png=main_png, concurrency=2)
        ratio = two.rate / one.rate
        rows.append(
            f"scale-out: c=1 {one.rate:.2f} img/s, c=2 {two.rate:.2f} img/s, ratio {ratio:.2f} {verdict(ratio, 1.8)}"
        )
        if args.threads:
            print(f"   and with {ms} latency: prefork c=2 vs two worker processes -P threads c={args.threads}")
            two_slow = run(f"{main_png}, c=2, {ms} latency", png=main_png, concurrency=2, latency=args.latency)
            threaded = {"png": main_png, "pool": "threads", "concurrency": args.threads, "workers": 2}
            tt = run(f"{main_png}, 2 workers -P threads c={args.threads}", **threaded)
            tt_slow = run(
                f"{main_png}, 2 workers -P threads c={args.threads}, {ms} latency", latency=args.latency, **threaded
            )
            rows.append(
                f"2 cores, {ms} latency: prefork c=2 {two.rate:.2f} -> {two_slow.rate:.2f} img/s (ratio "
                f"{two_slow.rate / two.rate:.2f}); 2 workers -P threads c={args.threads} {tt.rate:.2f} -> "
                f"{tt_slow.rate:.2f} img/s (ratio {tt_slow.rate / tt.rate:.2f}; "
                f"{tt.rate / one.rate:.2f}x and {tt_slow.rate / one.rate:.2f}x prefork c=1 without latency)"
            )
    print("\nRedis per image (measured run, all clients: worker, broker, results, events; submitter polls excluded):")
    for r in results.values():
        print(
            f"  {r.label}: {r.total_commands / r.images:.1f} commands, {r.net_bytes / r.images / 1e3:.1f} kB in+out, "
            f"{1000 * r.redis_cpu / r.images:.2f} ms redis CPU"
        )
    ref = results.get(f"{main_png}, c=1")
    if ref is not None:
        by_calls = sorted(ref.commands.items(), key=lambda kv: -kv[1])[:10]
        by_time = sorted(ref.usec.items(), key=lambda kv: -kv[1])[:6]
        print(f"  {ref.label}, calls per image: " + ", ".join(f"{k} {v / ref.images:.2f}" for k, v in by_calls))
        print(
            f"  {ref.label}, Redis µs per image (a script includes what it calls): "
            + ", ".join(f"{k} {v / ref.images:.0f}" for k, v in by_time)
        )
        cost, rate = ref.redis_cpu / ref.images, ref.rate
        fleet = 100 * rate
        print(
            f"  one Redis core at this cost: ~{1 / cost:.0f} images/s = ~{1 / cost / rate:.0f} worker processes at "
            f"{rate:.1f} images/s each; 100 such workers: {fleet:.0f} images/s, {fleet * cost:.2f} Redis cores, "
            f"{fleet * ref.net_bytes / ref.images / 1e6:.1f} MB/s, "
            f"{fleet * ref.total_commands / ref.images / 1e3:.0f}k commands/s"
        )
    print("\nsummary:")
    for row in rows:
        print(f"  {row}")


def _short(counters: dict[str, int]) -> str:
    keep = ("run.total_images", "run.images_stored", "run.duplicate_images", "run.failed_downloads")
    return ", ".join(f"{k.removeprefix('run.')}={counters[k]}" for k in keep if k in counters)


if __name__ == "__main__":
    main(sys.argv[1:])
