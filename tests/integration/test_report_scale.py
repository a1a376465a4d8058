"""The report of a large run stays small, quick and bounded in memory, and escapes what listing sites wrote.

The runs are synthetic (``benchmarks.report_scale.populate``): manifest rows, failures and progress
samples written straight into a private Redis, and real files for only a few dozen properties, so
most pictures are missing files that must show as placeholders.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

from markupsafe import escape

from benchmarks.report_scale import GOAL_BYTES, GOAL_PEAK_MB, GOAL_SECONDS, INJECTED, measure, populate
from homeshots.ops.report import INLINE_LIMIT
from homeshots.storage import LocalStore
from managers.run_archive import RunArchive
from tests.integration.helpers import images_shown_by_chromium

SECTIONS = ("plots", "failures", "duplicates", "sheets")


def _check_page(page: str, out: Path) -> None:
    """Escaping, plots, pictures and links of a built page."""
    assert INJECTED not in page, "text from listing data reached the page unescaped"
    assert str(escape(INJECTED)) in page
    assert page.count("<script") == 1, "only the page's own image-counting script"
    svgs = re.findall(r"<svg\b.*?</svg>", page, flags=re.S)
    assert len(svgs) == 5, "throughput, failures by kind, failures by source, photos per property, deltas"
    for svg in svgs:
        ET.fromstring(svg)  # well-formed, every text escaped
    srcs = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert srcs and len(srcs) <= INLINE_LIMIT
    assert all(src.startswith("data:image/jpeg;base64,") for src in srcs)
    assert "src='http" not in page and "src='file" not in page
    assert "missing file" in page and "not inlined" in page
    hrefs = [h for h in re.findall(r"href='([^']*)'", page) if not h.startswith("#")]
    assert hrefs, "pictures beyond the inline budget are linked"
    for href in hrefs:
        assert not re.match(r"^[a-z]+:|^/", href), href
        assert (out.parent / unquote(href)).is_file(), href


def test_report_of_a_100k_property_run(tmp_path, redis_server):
    client, store = redis_server.client(), LocalStore(tmp_path / "store")
    made = populate(client, store, 100_000)
    assert made.rows > 500_000
    out = tmp_path / "report.html"
    result, page = measure(client, store, made.run_id, out, trace=True)
    assert result.megabytes * 1e6 <= GOAL_BYTES
    assert result.seconds <= GOAL_SECONDS, "under tracemalloc, which slows it"
    assert result.peak_mb is not None and result.peak_mb < GOAL_PEAK_MB
    assert f"Merged duplicates ({made.copies})" in page
    _check_page(page, out)


def test_report_of_a_10k_property_run_live_and_archived(tmp_path, redis_server):
    client, store = redis_server.client(), LocalStore(tmp_path / "store")
    made = populate(client, store, 10_000)
    out = tmp_path / "report.html"
    result, page = measure(client, store, made.run_id, out, trace=True)
    assert result.megabytes * 1e6 <= GOAL_BYTES and result.seconds <= GOAL_SECONDS
    assert result.peak_mb is not None and result.peak_mb < GOAL_PEAK_MB
    assert result.inlined == INLINE_LIMIT and result.missing > 0
    assert f"Merged duplicates ({made.copies})" in page
    assert f"{made.failed_properties} properties, {made.image_failures} images" in page
    _check_page(page, out)

    # Once the records left Redis, the same page is read from the store's archive.
    archive = RunArchive(client, store)
    archive.archive(made.run_id)
    assert archive.expire(made.run_id)
    archived_out = tmp_path / "archived.html"
    _, archived = measure(client, store, made.run_id, archived_out)
    assert "records from the archive in the store" in archived
    for section in SECTIONS:
        live = re.search(rf"<section id={section}>.*?</section>", page, flags=re.S)
        again = re.search(rf"<section id={section}>.*?</section>", archived, flags=re.S)
        assert live and again and live.group(0) == again.group(0), section

    total, loaded = images_shown_by_chromium(out, tmp_path)
    assert total == result.inlined and loaded == total
