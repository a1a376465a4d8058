"""``homeshots report``: one self-contained HTML page to judge a run at a glance, at any size of run.

The run result per source (and the night's plan), plots of throughput, failures and photos per
property as inline SVG, failures by kind with examples, the merged copies closest to the merge
threshold beside the image they were merged into, and contact sheets of a sample of properties.

It scales by never holding the run: the manifest and failures are streamed once (``report_scan``)
into counters and bounded samples, and only the first ``inline_limit`` pictures are embedded as small
JPEG data URIs; the others are placeholders that name (and, for a local store, link to) the stored
file, so a million-property run makes a page of a few megabytes that opens offline without fetching
anything. The page is a Jinja2 template with autoescape on: text that came from a listing site is
always escaped.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from jinja2 import Environment, PackageLoader, select_autoescape

from homeshots.core.errors import StoreError
from homeshots.core.settings import get_settings
from homeshots.imaging.similarity import MergeRule
from homeshots.imaging.standardizer import thumbnail
from homeshots.ops import report_plots
from homeshots.ops.report_scan import (
    FailureDigest,
    ManifestDigest,
    MergedPair,
    SampledProperty,
    failure_rows,
    manifest_groups,
)
from homeshots.storage import LocalStore, Store, image_key
from managers.deduplicator import kept_files
from managers.extraction_stats import SOURCE_FIELDS, SUMMARY_ROWS
from managers.run_manager import RunManager

THUMB = 200
INLINE_LIMIT = 300
"""Pictures embedded in the page (~10 KB each); the rest are linked, so the page stays a few MB."""
MAX_PAIRS = 100
THREADS = 4
"""Thumbnails are made in a few threads: Pillow releases the GIL while decoding and encoding."""
_ENV = Environment(
    loader=PackageLoader("homeshots.ops", "templates"),
    autoescape=select_autoescape(["j2", "html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(eq=False, slots=True)
class Card:
    """One picture on the page and its caption: inlined (``src``), linked (``location``, ``href`` for a
    local store) or missing. ``keys`` are the store keys to try, best first."""

    keys: tuple[str, ...]
    caption: str
    src: str | None = None
    href: str | None = None
    location: str = ""
    missing: bool = False


@dataclass
class Pictures:
    """Makes the cards: embeds the first ``limit`` pictures that exist, links the others."""

    store: Store
    output_dir: Path
    limit: int
    cards: list[Card] = field(default_factory=list)
    inlined: int = 0
    linked: int = 0
    missing: int = 0

    def card(self, caption: str, *keys: str) -> Card:
        card = Card(tuple(k for k in keys if k), caption)
        self.cards.append(card)
        return card

    def resolve(self) -> None:
        """Inline in page order until the budget is spent, then link (and look for missing files)."""
        pending: Iterator[Card] = iter(self.cards)
        with ThreadPoolExecutor(THREADS) as pool:
            while self.inlined < self.limit:
                chunk = list(islice(pending, THREADS * 4))
                if not chunk:
                    break
                for card, uri in zip(chunk, pool.map(self._data_uri, chunk), strict=True):
                    if uri is not None and self.inlined < self.limit:
                        card.src = uri
                        self.inlined += 1
                    else:
                        self._link(card)
        for card in pending:
            self._link(card)

    def _data_uri(self, card: Card) -> str | None:
        for key in card.keys:
            try:
                jpeg = thumbnail(self.store.get(key), THUMB)
            except (StoreError, OSError):
                continue
            return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
        return None

    def _link(self, card: Card) -> None:
        """A placeholder naming the file: a path relative to the page for a local store (a link that works
        next to the report), the ``s3://`` location otherwise (text: nothing is fetched)."""
        if not card.keys:
            card.missing, self.missing = True, self.missing + 1
            return
        if isinstance(self.store, LocalStore):
            paths = [self.store.location(k) for k in card.keys]
            path = next((p for p in paths if os.path.exists(p)), None)
            if path is None:
                card.missing, self.missing = True, self.missing + 1
                path = paths[0]
            card.location = os.path.relpath(path, self.output_dir)
            card.href = None if card.missing else quote(card.location.replace(os.sep, "/"))
        else:
            card.location = self.store.location(card.keys[0])
        if not card.missing:
            self.linked += 1


class ReportBuilder:
    """Builds the page from Redis (result, progress, manifest, failures) or the run's archive, and the store."""

    def __init__(
        self,
        client: redis.Redis,
        store: Store,
        run_id: str,
        *,
        max_properties: int = 200,
        max_pairs: int = MAX_PAIRS,
        inline_limit: int = INLINE_LIMIT,
        output_dir: Path | None = None,
        corpus_threshold: int | None = None,
        property_threshold: int | None = None,
    ) -> None:
        self.client, self.store, self.run_id = client, store, run_id
        self.max_properties, self.max_pairs = max_properties, max_pairs
        self.pictures = Pictures(store, (output_dir or Path.cwd()).resolve(), inline_limit)
        rule = MergeRule.default()
        self.corpus_threshold = corpus_threshold if corpus_threshold is not None else get_settings().dedup_threshold
        self.property_threshold = property_threshold if property_threshold is not None else rule.property.phash

    def build(self) -> str:
        runs = RunManager(self.client, self.run_id)
        meta = runs.meta()
        result = runs.result()
        archived = meta.get("records") == "archived"
        digest = ManifestDigest(
            self.client,
            sample_size=self.max_properties,
            pair_count=self.max_pairs,
            corpus_threshold=self.corpus_threshold,
            property_threshold=self.property_threshold,
        )
        for property_id, rows in manifest_groups(self.client, self.store, self.run_id, archived):
            digest.add(property_id, rows)
        sample, pairs = digest.finish()
        failures = FailureDigest()
        for row in failure_rows(self.client, self.store, self.run_id, archived):
            failures.add(row)
        self._resolve_files(sample, pairs)
        duplicates = [self._pair(p) for p in pairs]
        sheets = [self._sheet(p) for p in sample]
        self.pictures.resolve()
        samples = runs.progress()
        started = _epoch(meta.get("started_at"))
        return _ENV.get_template("report.html.j2").render(
            run_id=self.run_id,
            meta=meta,
            archived=archived,
            **_result(result),
            bad_rows=runs.bad_rows()[:5],
            plots=[
                p
                for p in (
                    report_plots.throughput(samples, started),
                    report_plots.failures_over_time(samples, started, "kind"),
                    report_plots.failures_over_time(samples, started, "source"),
                    report_plots.photos_histogram(digest.photos_per_property, digest.properties),
                    report_plots.deltas(result.get("by_source", {})),
                )
                if p is not None
            ],
            progress_samples=len(samples),
            failures=failures.table(),
            failures_by_scope=dict(failures.by_scope),
            duplicates=duplicates,
            duplicate_count=digest.copies,
            unmatched=digest.unmatched,
            sheets=sheets,
            digest=digest,
            pictures=self.pictures,
            thresholds={"corpus": self.corpus_threshold, "property": self.property_threshold},
        )

    def _resolve_files(self, sample: list[SampledProperty], pairs: list[MergedPair]) -> None:
        """The files the kept images have now (a larger copy may have replaced them): only for what is shown."""
        wanted = [photo.cluster for prop in sample for photo in prop.photos]
        wanted += [pair.kept["sha256"] for pair in pairs if pair.kept]
        files = kept_files(self.client, sorted(set(wanted)))
        for prop in sample:
            for photo in prop.photos:
                if photo.cluster in files:
                    photo.processed_key = files[photo.cluster][1]
        for pair in pairs:
            if pair.kept and pair.kept["sha256"] in files:
                pair.kept["processed_key"] = files[pair.kept["sha256"]][1]

    def _pair(self, pair: MergedPair) -> dict[str, Any]:
        copy, kept = pair.copy, pair.kept
        if kept is None:
            left = self.pictures.card("kept: not in the hash index")
        else:
            where = "" if kept.get("property_id") == copy["property_id"] else f" (property {kept.get('property_id')})"
            left = self.pictures.card(
                f"kept: {kept.get('source')} {kept.get('source_url')}{where}", kept["processed_key"]
            )
        right = self.pictures.card(
            f"copy: {copy['source']} {copy['source_url']} — pHash distance {pair.distance} "
            f"(threshold {pair.threshold}, {pair.scope} rule, margin {pair.margin})",
            image_key("thumbs", copy["sha256"], "JPEG"),
            copy.get("processed_key", ""),
        )
        return {"pair": pair, "address": copy.get("address", ""), "property_id": copy["property_id"],
                "left": left, "right": right}  # fmt: skip

    def _sheet(self, prop: SampledProperty) -> dict[str, Any]:
        cards = [
            self.pictures.card(
                f"{', '.join(photo.sources)} {photo.width}x{photo.height}" + (" · merged copy" if photo.merged else ""),
                photo.processed_key,
            )
            for photo in prop.photos
        ]
        return {"prop": prop, "cards": cards, "hidden": prop.photo_count - len(prop.photos)}


def _result(result: dict[str, Any]) -> dict[str, Any]:
    """The result's own numbers: totals, per source (with the delta columns), blocked sources, the night."""
    sources = [
        {
            "name": name,
            "values": [s.get(c.name, 0) for c in SOURCE_FIELDS],
            "failures": ", ".join(f"{k}={v}" for k, v in sorted(s.get("failures", {}).items())),
        }
        for name, s in sorted(result.get("by_source", {}).items())
    ]
    night = result.get("night") or None
    return {
        "totals": [(label, result.get(key, 0)) for label, key in SUMMARY_ROWS],
        "source_columns": SOURCE_FIELDS,
        "sources": sources,
        "blocked": sorted(result.get("blocked_sources", {}).items()),
        "night": night,
        "replication": (night or {}).get("replication") or {},
        "deferred": int(result.get("properties_deferred", 0) or 0),
    }


def _epoch(stamp: str | None) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None
