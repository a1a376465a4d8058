"""The report's plots: what the run's progress samples, its manifest stream and its result show over time.

Progress samples (one per finished window, see ``RunManager.record_progress``) carry cumulative
totals, so rates are differences between neighbours, and failures over time are the cumulative
``fail.<source>.<kind>`` counters summed by kind or by source.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from markupsafe import Markup

from homeshots.ops.report_svg import Series, bar_chart, line_chart
from managers.extraction_stats import parse_counter_key

MAX_LINES = 8
"""Series drawn per failure chart; the rest are summed into "other" (a legend of 40 kinds reads as noise)."""
MAX_BINS = 40
DELTAS = ("new", "changed", "unchanged", "removed")


def _time_axis(span: float) -> tuple[float, str]:
    """A divisor and unit that keep the x axis readable for a minute-long test or a 10-hour night."""
    if span < 180:
        return 1.0, "seconds since start"
    if span < 3 * 3600:
        return 60.0, "minutes since start"
    return 3600.0, "hours since start"


def throughput(samples: Sequence[dict[str, Any]], started: float | None) -> Markup | None:
    """Properties/s and images stored/s per window, from neighbouring samples' totals."""
    if not samples:
        return None
    origin = started if started is not None and started <= samples[0]["t"] else samples[0]["t"]
    divisor, unit = _time_axis(samples[-1]["t"] - origin)
    props: list[tuple[float, float]] = []
    images: list[tuple[float, float]] = []
    prev_t, prev_p, prev_i = origin, 0, 0
    for s in samples:
        done = int(s.get("completed", 0)) + int(s.get("failed", 0))
        stored = int(s.get("counters", {}).get("run.images_stored", 0))
        dt = s["t"] - prev_t
        if dt > 0:
            x = (s["t"] - origin) / divisor
            props.append((x, max(0.0, (done - prev_p) / dt)))
            images.append((x, max(0.0, (stored - prev_i) / dt)))
        prev_t, prev_p, prev_i = s["t"], done, stored
    return line_chart(
        "Throughput per window",
        [Series("properties/s", props), Series("images stored/s", images)],
        x_label=unit,
        y_label="per second",
    )


def failures_over_time(samples: Sequence[dict[str, Any]], started: float | None, by: str) -> Markup | None:
    """Cumulative failures by ``kind`` or by ``source`` at each sample (the biggest few, the rest as "other")."""
    if not samples:
        return None
    origin = started if started is not None and started <= samples[0]["t"] else samples[0]["t"]
    divisor, unit = _time_axis(samples[-1]["t"] - origin)
    totals: list[tuple[float, Counter[str]]] = []
    for s in samples:
        counts: Counter[str] = Counter()
        for key, value in s.get("counters", {}).items():
            scope, source, name = parse_counter_key(key)
            if scope == "fail" and source is not None:
                counts[name if by == "kind" else source] += int(value)
        totals.append(((s["t"] - origin) / divisor, counts))
    final = totals[-1][1]
    if not any(final.values()):
        return None
    top = [name for name, _ in sorted(final.items(), key=lambda kv: (-kv[1], kv[0]))[:MAX_LINES]]
    rest = set(final) - set(top)
    series = [Series(name, [(x, c[name]) for x, c in totals]) for name in top]
    if rest:
        series.append(Series("other", [(x, sum(c[n] for n in rest)) for x, c in totals]))
    return line_chart(f"Failures so far, by {by}", series, x_label=unit, y_label="failures (cumulative)")


def photos_histogram(hist: Counter[int], properties: int) -> Markup | None:
    """How many properties have 0, 1, 2... distinct photos (bins widen past ``MAX_BINS`` values)."""
    if not hist:
        return None
    top = max(hist)
    width = max(1, -(-(top + 1) // MAX_BINS))
    bins: Counter[int] = Counter()
    for photos, count in hist.items():
        bins[photos // width] += count
    labels = [str(b * width) if width == 1 else f"{b * width}-{b * width + width - 1}" for b in range(top // width + 1)]
    return bar_chart(
        f"Photos per property ({properties} properties with manifest rows)",
        labels,
        [Series("properties", [bins[b] for b in range(len(labels))])],
        x_label="distinct photos",
        y_label="properties",
        legend=False,
    )


def deltas(by_source: dict[str, dict[str, Any]]) -> Markup | None:
    """The night's photos new / changed / unchanged / removed per source (None when the run has none)."""
    sources = sorted(by_source)
    values = {d: [int(by_source[s].get(f"photos_{d}", 0)) for s in sources] for d in DELTAS}
    if not any(v for row in values.values() for v in row):
        return None
    return bar_chart(
        "Photos against the listing memory, by source",
        sources,
        [Series(d, values[d]) for d in DELTAS],
        x_label="source",
        y_label="photos",
    )
