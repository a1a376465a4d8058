"""The run report opens in headless Chromium with every picture loaded."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.integration.helpers import make_catalog, sandbox_for, write_csv

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


def test_report_is_self_contained_and_its_images_load(tmp_path, cluster_factory):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed: run `make setup` (it installs Debian's chromium)")
    listings, photos = make_catalog(3, photos_each=2, size=(800, 600))
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos) as sandbox:
        cluster = cluster_factory(sandbox.env())
        assert cluster.cli("backfill", str(props), "--run-id", "rep").returncode == 0
    out = tmp_path / "report.html"
    made = cluster.cli("report", "rep", "-o", str(out))
    assert made.returncode == 0, made.stderr
    page = out.read_text()
    assert "Merged duplicates (2)" in page and "pHash distance 0" in page
    assert "src='http" not in page and "src='file" not in page, "every picture is embedded"
    margins = [int(m) for m in re.findall(r"class='margin[^']*'>margin (-?\d+)", page)]
    assert len(margins) == 2 and margins == sorted(margins), "the merges closest to their threshold first"
    assert page.count("<svg") >= 3, "throughput, photos per property and deltas plots"

    dom = subprocess.run(
        [
            chromium,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    body = re.search(r"<body[^>]*>", dom)
    assert body, dom[:500]
    total = int(re.search(r'data-images-total="(\d+)"', body.group(0)).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body.group(0)).group(1))
    # Contact sheets: T1's 2 photos, T2's and T3's 2 own + the copy each lists of T1's (3 each) = 8;
    # the 2 merged copies beside their kept images (2 each) = 4.
    assert total == 12 and loaded == total
