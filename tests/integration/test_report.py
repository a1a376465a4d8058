"""The run report opens in headless Chromium with every picture loaded."""

from __future__ import annotations

import re

from tests.integration.helpers import images_shown_by_chromium, make_catalog, sandbox_for, write_csv


def test_report_is_self_contained_and_its_images_load(tmp_path, cluster_factory):
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

    total, loaded = images_shown_by_chromium(out, tmp_path)
    # Contact sheets: T1's 2 photos, T2's and T3's 2 own + the copy each lists of T1's (3 each) = 8;
    # the 2 merged copies beside their kept images (2 each) = 4.
    assert total == 12 and loaded == total
