"""Peak memory of a worker-like process on a big photo and a big download, against naive code.

Run from the repo root: ``python -m benchmarks.memory``.

Every measurement is a fresh ``python -m benchmarks.memory --child MODE`` process that imports what
a worker imports, does one thing and reports its peak resident set (``VmHWM`` from
``/proc/self/status``; ``ru_maxrss`` is printed beside it as a cross-check). Modes:

* ``idle``: the imports only (the floor);
* ``standardize``: ``ImageStandardizer()`` (defaults) on a generated 6000x4000 JPEG, quality 90;
* ``download``: a 40 MiB body through ``homeshots.network.fetcher.Fetcher`` (byte cap 40 MiB + 64 KiB, an
  httpx client built like the worker's) from a loopback ``http.server`` run by this script;
* ``worker``: both in one process, the body still held while the photo is standardized (the
  pipeline keeps the raw bytes until they are stored);
* the baselines ``naive-image`` (``Image.open(...).convert("RGB")``, a full decode, then a resize
  to the same 1024 px), ``naive-download`` (``httpx.get(url).content``, not streamed) and
  ``naive-worker`` (both).

The goal is a peak below 300 MB for the worker modes.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 300.0
BODY_BYTES = 40 * 1024 * 1024
BYTE_CAP = BODY_BYTES + 64 * 1024
PHOTO_SIZE = (6000, 4000)
MODES = ("idle", "standardize", "naive-image", "download", "naive-download", "worker", "naive-worker")
BASELINE = {"standardize": "naive-image", "download": "naive-download", "worker": "naive-worker"}


# --- pure helpers -----------------------------------------------------------------------------------
def parse_status_kb(status: str, field: str) -> int | None:
    """A ``kB`` field (``VmHWM``, ``VmRSS``) of a ``/proc/<pid>/status`` text, or None."""
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == field:
            parts = value.split()
            if parts and parts[0].isdigit():
                return int(parts[0])
    return None


def peak_kb() -> dict[str, int | None]:
    """This process's peak and current RSS (kB) and ``ru_maxrss`` (kB on Linux)."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    return {
        "vmhwm_kb": parse_status_kb(status, "VmHWM"),
        "vmrss_kb": parse_status_kb(status, "VmRSS"),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }


# --- the child ----------------------------------------------------------------------------------------
def _child(mode: str, jpeg: Path, url: str) -> dict[str, Any]:
    import asyncio
    import io

    import httpx
    from PIL import Image

    from homeshots.imaging.standardizer import ImageStandardizer, target_size
    from homeshots.network.fetcher import Fetcher, FetchPolicy
    from homeshots.network.urlguard import URLGuard

    after_imports = peak_kb()
    start = time.perf_counter()
    held: list[bytes] = []
    detail: dict[str, Any] = {}

    def download() -> bytes:
        async def fetch() -> bytes:
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=30)
            async with httpx.AsyncClient(
                limits=limits, timeout=httpx.Timeout(30, connect=10), follow_redirects=False, trust_env=False
            ) as client:
                policy = FetchPolicy(timeout=30, deadline=60, max_bytes=BYTE_CAP, retries=2)
                return (await Fetcher(client, URLGuard(["127.0.0.1"])).fetch(url, policy, rate_limited=False)).content

        loop = asyncio.new_event_loop()  # as WorkerContext.run: one loop, run_until_complete per task
        try:
            return loop.run_until_complete(fetch())
        finally:
            loop.close()

    def naive_download() -> bytes:
        return httpx.get(url, timeout=30, trust_env=False).content

    def standardize() -> None:
        data = jpeg.read_bytes()
        std = ImageStandardizer().standardize(data)
        detail["output"] = f"{std.width}x{std.height} {std.format}"

    def naive_image() -> None:
        data = jpeg.read_bytes()
        im = Image.open(io.BytesIO(data)).convert("RGB")
        small = im.resize(target_size(*im.size, 1024), Image.Resampling.LANCZOS)
        detail["output"] = f"{small.width}x{small.height}"

    if mode in ("download", "worker"):
        held.append(download())
    if mode in ("naive-download", "naive-worker"):
        held.append(naive_download())
    if held and len(held[0]) != BODY_BYTES:
        raise AssertionError(f"downloaded {len(held[0])} bytes, expected {BODY_BYTES}")
    if mode in ("standardize", "worker"):
        standardize()
    if mode in ("naive-image", "naive-worker"):
        naive_image()
    return {"mode": mode, "seconds": time.perf_counter() - start, "imports": after_imports, "peak": peak_kb(), **detail}


def _make_jpeg(path: Path) -> None:
    """A 24-megapixel q90 JPEG with photo-like grain (shapes on a gradient plus noise)."""
    from PIL import Image, ImageChops, ImageDraw

    w, h = PHOTO_SIZE
    rng = random.Random(24)
    mask = Image.linear_gradient("L").resize((w, h))
    img = Image.composite(Image.new("RGB", (w, h), (70, 110, 160)), Image.new("RGB", (w, h), (200, 170, 120)), mask)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = rng.randrange(w), rng.randrange(h)
        box = (x0, y0, x0 + rng.randint(w // 20, w // 3), y0 + rng.randint(h // 20, h // 3))
        draw.rectangle(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    grain = Image.merge("RGB", [Image.effect_noise((w, h), 24) for _ in range(3)])
    img = ImageChops.add(img, grain, scale=1.0, offset=-128)
    img.save(path, "JPEG", quality=90)


# --- the parent ---------------------------------------------------------------------------------------
class _BodyHandler(http.server.BaseHTTPRequestHandler):
    body_path: Path

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(self.body_path.stat().st_size))
        self.end_headers()
        with self.body_path.open("rb") as fh:
            shutil.copyfileobj(fh, self.wfile, 1 << 16)

    def log_message(self, *args: Any) -> None:
        pass


def _run_child(mode: str, jpeg: Path, url: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", "--child", mode, "--jpeg", str(jpeg), "--url", url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _mb(kb: int | None) -> float:
    return (kb or 0) * 1024 / 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=(*MODES, "make-jpeg"))
    parser.add_argument("--jpeg", type=Path)
    parser.add_argument("--url", default="")
    args = parser.parse_args(argv)
    if args.child == "make-jpeg":
        _make_jpeg(args.jpeg)
        return 0
    if args.child:
        print(json.dumps(_child(args.child, args.jpeg, args.url)))
        return 0

    with tempfile.TemporaryDirectory(prefix="homeshots-bench-mem-") as tmp:
        jpeg, body = Path(tmp) / "photo.jpg", Path(tmp) / "body.bin"
        print("generating the 24 MP JPEG and the 40 MiB body ...", file=sys.stderr, flush=True)
        subprocess.run(
            [sys.executable, "-m", "benchmarks.memory", "--child", "make-jpeg", "--jpeg", str(jpeg)],
            cwd=ROOT,
            check=True,
            timeout=120,
        )
        block = os.urandom(1 << 20)
        with body.open("wb") as fh:
            for _ in range(BODY_BYTES >> 20):
                fh.write(block)
        handler = type("Handler", (_BodyHandler,), {"body_path": body})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/photo.bin"
        results = {}
        try:
            for mode in MODES:
                print(f"child {mode} ...", file=sys.stderr, flush=True)
                results[mode] = _run_child(mode, jpeg, url)
        finally:
            server.shutdown()
            server.server_close()
        jpeg_mb = jpeg.stat().st_size / 1e6

    floor = _mb(results["idle"]["peak"]["vmhwm_kb"])
    print(
        f"Peak RSS of a fresh process (MB = 10^6 bytes): 24 MP JPEG {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} q90 "
        f"({jpeg_mb:.1f} MB file), {BODY_BYTES / 1e6:.1f} MB body ({BODY_BYTES >> 20} MiB), cap {BYTE_CAP:,} bytes"
    )
    print(f"{'mode':<16}{'peak MB':>9}{'above floor':>13}{'ru_maxrss MB':>14}{'seconds':>9}  < {LIMIT_MB:.0f} MB")
    ok = True
    for mode in MODES:
        r = results[mode]
        peak = _mb(r["peak"]["vmhwm_kb"])
        under = peak < LIMIT_MB
        if mode in BASELINE:
            ok &= under
        print(
            f"{mode:<16}{peak:>9.1f}{peak - floor:>13.1f}{_mb(r['peak']['maxrss_kb']):>14.1f}"
            f"{r['seconds']:>9.2f}  {'yes' if under else 'NO'}"
        )
    for mode, naive in BASELINE.items():
        ours = _mb(results[mode]["peak"]["vmhwm_kb"]) - floor
        theirs = _mb(results[naive]["peak"]["vmhwm_kb"]) - floor
        print(
            f"{mode}: {ours:.1f} MB above the floor vs {theirs:.1f} MB for {naive} "
            f"(ratio {ours / theirs if theirs else float('nan'):.2f}x)"
        )
    print(f"worker modes under {LIMIT_MB:.0f} MB: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
