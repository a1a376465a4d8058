"""Small builders shared by the integration tests: sandbox catalogs and property files."""

from __future__ import annotations

import csv
import io
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from homeshots_sandbox import Listing, SandboxServer, generate_photo
from PIL import Image, ImageOps

from homeshots.imaging.hashing import int_to_hex
from managers.deduplicator import ImageRecord


def near_copy(data: bytes, scale: float = 0.7, quality: int = 82) -> bytes:
    """A resized, re-encoded copy: a different file of the same picture."""
    with Image.open(io.BytesIO(data)) as opened:
        im = ImageOps.exif_transpose(opened)
        small = im.resize((int(im.width * scale), int(im.height * scale)))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=quality)
        return out.getvalue()


def make_catalog(
    n: int, photos_each: int = 3, *, seed: int = 0, size: tuple[int, int] = (1600, 1200)
) -> tuple[list[Listing], dict[str, bytes]]:
    """``n`` listings T1..Tn with distinct generated photos; T2 repeats T1's first photo exactly
    and T3 lists a resized copy of T1's second photo."""
    listings, photos = [], {}
    for i in range(1, n + 1):
        names = []
        for j in range(photos_each):
            name = f"T{i}_{j}.jpg"
            photos[name] = generate_photo(seed + i * 100 + j, size=size, orientation=6 if j == 1 else None)
            names.append(name)
        listings.append(Listing(f"T{i}", f"{i} Test St", "Phoenix", "85001", names))
    if n >= 3 and photos_each >= 2:
        photos["T2_same.jpg"] = photos["T1_0.jpg"]
        photos["T3_near.jpg"] = near_copy(photos["T1_1.jpg"])
        listings[1].photos.append("T2_same.jpg")
        listings[2].photos.append("T3_near.jpg")
    return listings, photos


def write_csv(path: Path, listings: list[Listing], extra_rows: list[dict[str, str]] | None = None) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["address", "city", "state", "zip", "mls_listing_key"])
        writer.writeheader()
        for listing in listings:
            writer.writerow(
                {
                    "address": listing.address,
                    "city": listing.city,
                    "state": "AZ",
                    "zip": listing.postal_code,
                    "mls_listing_key": listing.listing_key,
                }
            )
        for row in extra_rows or []:
            writer.writerow(row)
    return path


def sandbox_for(listings: list[Listing], photos: dict[str, bytes], **kwargs: object) -> SandboxServer:
    """A sandbox serving only the MLS unless ``services`` says otherwise (keeps counts simple)."""
    kwargs.setdefault("services", ["mls"])
    return SandboxServer(listings, photos, **kwargs)  # type: ignore[arg-type]


def status_json(cluster: object, run_id: str) -> dict:
    proc = cluster.cli("status", run_id, "--json")  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def manifest_rows(cluster: object, run_id: str) -> list[dict]:
    proc = cluster.cli("manifest", run_id)  # type: ignore[attr-defined]
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


class Sleeps:
    """A no-op ``asyncio.sleep`` that records how long the code wanted to wait (retries, Retry-After)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def index_record(sha: str, phash: int, pid: str = "p1", dhash: int = 0, source: str = "mls") -> ImageRecord:
    """A kept-image record with the given hashes (files and URL named after its digest)."""
    return ImageRecord(
        sha256=sha,
        phash=int_to_hex(phash),
        raw_key=f"raw/{sha}.jpg",
        processed_key=f"processed/{sha}.png",
        width=10,
        height=10,
        property_id=pid,
        source=source,
        source_url=f"http://x/{sha}",
        run_id="r",
        dhash=int_to_hex(dhash),
    )


def flip_bits(value: int, bits: int, rng: random.Random) -> int:
    """``value`` with ``bits`` distinct random bits of 64 flipped."""
    for bit in rng.sample(range(64), bits):
        value ^= 1 << bit
    return value


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def images_shown_by_chromium(page: Path, work: Path) -> tuple[int, int]:
    """(pictures on the page, pictures that loaded) as headless Chromium renders ``page`` (the report's
    ``data-images-total`` / ``data-images-loaded`` on ``<body>``, set by its own script once loaded)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)")
    dom = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work / 'chromium'}", "--virtual-time-budget=10000",
         "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout  # fmt: skip
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    total = int(re.search(r'data-images-total="(\d+)"', body.group(0)).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body.group(0)).group(1))
    return total, loaded
