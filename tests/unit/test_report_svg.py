"""The report's SVG charts: round ticks, well-formed XML, every text escaped, and the plots from samples."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from itertools import pairwise

import pytest

from homeshots.ops import report_plots
from homeshots.ops.report_svg import MAX_POINTS, Series, bar_chart, fmt, line_chart, nice_ticks

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & 'quoted'"


@pytest.mark.parametrize(
    ("low", "high", "step"),
    [(0, 7, 2), (0, 1, 0.2), (0, 143, 50), (0, 20_000, 5000), (3.2, 3.9, 0.2), (5, 5, 1)],
)
def test_nice_ticks_are_round_and_cover_the_range(low: float, high: float, step: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high
    assert all(abs((b - a) - step) < 1e-9 for a, b in pairwise(ticks))
    assert 2 <= len(ticks) <= 8


def test_fmt_is_short() -> None:
    assert [fmt(v) for v in (0, 3.0, 0.25, 1200, 25_000, 3_500_000)] == ["0", "3", "0.25", "1200", "25k", "3.5M"]


def test_line_chart_escapes_names_and_parses() -> None:
    svg = line_chart(HOSTILE, [Series(HOSTILE, [(0, 1), (1, 3), (2, 2)])], x_label=HOSTILE, y_label="y")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    root = ET.fromstring(svg)
    assert root.find(f"{SVG}title").text == HOSTILE
    assert len(root.findall(f".//{SVG}polyline")) == 1


def test_long_series_are_thinned_and_empty_charts_say_so() -> None:
    svg = line_chart("t", [Series("s", [(i, i) for i in range(5000)])], x_label="x", y_label="y")
    points = ET.fromstring(svg).find(f".//{SVG}polyline").get("points").split()
    assert len(points) <= MAX_POINTS + 1
    assert "no data" in line_chart("t", [Series("s", [])], x_label="x", y_label="y")
    assert "no data" in bar_chart("t", ["a"], [Series("s", [0])], x_label="x", y_label="y")


def test_bar_chart_has_a_bar_per_category_and_series() -> None:
    svg = bar_chart("deltas", ["mls", HOSTILE], [Series("new", [3, 1]), Series("removed", [0, 2])], x_label="x",
                    y_label="y")  # fmt: skip
    root = ET.fromstring(svg)
    bars = [r for r in root.findall(f".//{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == 4
    assert "<script>" not in svg


def _sample(t: float, completed: int, stored: int, fails: dict[str, int]) -> dict:
    return {"t": t, "window": 0, "completed": completed, "failed": 0,
            "counters": {"run.images_stored": stored} | fails}  # fmt: skip


def test_plots_from_progress_samples() -> None:
    samples = [
        _sample(110, 100, 400, {"fail.zillow.source_blocked": 2}),
        _sample(120, 300, 1000, {"fail.zillow.source_blocked": 5, "fail.mls.image_timeout": 1}),
    ]
    throughput = ET.fromstring(report_plots.throughput(samples, started=100.0))
    lines = throughput.findall(f".//{SVG}polyline")
    assert len(lines) == 2  # properties/s: 10 then 20; images/s: 40 then 60
    by_kind = report_plots.failures_over_time(samples, 100.0, "kind")
    assert "source_blocked" in by_kind and "image_timeout" in by_kind
    assert "zillow" in report_plots.failures_over_time(samples, 100.0, "source")
    assert report_plots.failures_over_time([_sample(1, 1, 1, {})], None, "kind") is None
    assert report_plots.throughput([], None) is None


def test_histogram_bins_widen_for_long_tails() -> None:
    svg = report_plots.photos_histogram(Counter({0: 3, 1: 10, 150: 1}), 14)
    labels = [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "0-3" in labels
    assert report_plots.photos_histogram(Counter(), 0) is None


def test_deltas_only_when_the_run_has_them() -> None:
    assert report_plots.deltas({"mls": {"photos_new": 0}}) is None
    assert "unchanged" in report_plots.deltas({"mls": {"photos_new": 2, "photos_unchanged": 5}})
