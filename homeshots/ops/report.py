"""``homeshots report``: one self-contained HTML page to judge a run at a glance.

The run result per source, failures by kind with examples, a contact sheet of each property's
photos, and every merged duplicate beside the copy it was merged into, with sources and distances.
Pictures are embedded as small JPEG data URIs, so the page opens anywhere, offline. The page is a
Jinja2 template with autoescape on: text that came from a listing site is always escaped.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import redis
from jinja2 import Environment, PackageLoader, select_autoescape

from homeshots.core.errors import StoreError
from homeshots.imaging.hashing import hamming, hex_to_int
from homeshots.imaging.standardizer import thumbnail
from homeshots.storage import Store, image_key
from managers.extraction_stats import SOURCE_FIELDS, SUMMARY_ROWS
from managers.manifest_manager import ManifestEntry, ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager

THUMB = 256
_ENV = Environment(
    loader=PackageLoader("homeshots.ops", "templates"),
    autoescape=select_autoescape(["j2", "html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_REPORT_ROWS = (
    "total_properties",
    "properties_completed",
    "properties_failed",
    "properties_skipped",
    "total_images",
    "unique_images",
    "duplicate_images",
    "copies_upgraded",
    "failed_downloads",
    "duration_seconds",
)


@dataclass(frozen=True, slots=True)
class Card:
    """One picture on the page, with the caption under it; ``src`` is None when its file is missing."""

    src: str | None
    caption: str


class ReportBuilder:
    """Builds the page from Redis (result, manifest, failures) and the store (the pictures)."""

    def __init__(self, client: redis.Redis, store: Store, run_id: str, *, max_properties: int = 200) -> None:
        self.client, self.store, self.run_id = client, store, run_id
        self.max_properties = max_properties
        self._thumbs: dict[str, str | None] = {}

    def build(self) -> str:
        runs = RunManager(self.client, self.run_id)
        meta = runs.meta()
        result = runs.final_result() if meta.get("status") == "finished" else None
        result = result or runs.current_result().to_dict()
        rows = list(ManifestManager(self.client, self.run_id).entries())
        return _ENV.get_template("report.html.j2").render(
            run_id=self.run_id,
            meta=meta,
            **self._result(result),
            failures=self._failures(),
            **self._contact_sheets(rows),
            **self._duplicates(rows),
        )

    @staticmethod
    def _result(result: dict[str, Any]) -> dict[str, Any]:
        labels = dict((key, label) for label, key in SUMMARY_ROWS)
        sources = [
            {
                "name": name,
                "values": [s.get(c.name, 0) for c in SOURCE_FIELDS],
                "failures": ", ".join(f"{k}={v}" for k, v in sorted(s.get("failures", {}).items())),
            }
            for name, s in result.get("by_source", {}).items()
        ]
        return {
            "totals": [(labels[key], result.get(key, 0)) for key in _REPORT_ROWS],
            "source_columns": SOURCE_FIELDS,
            "sources": sources,
            "blocked": sorted(result.get("blocked_sources", {}).items()),
        }

    def _failures(self) -> list[tuple[str, int, list[str]]]:
        examples: dict[str, list[str]] = defaultdict(list)
        for pid, reason in StateManager(self.client, self.run_id).failures():
            examples[f"property: {reason.get('kind', '?')}"].append(f"{pid}: {reason.get('message', '')}")
        for row in ManifestManager(self.client, self.run_id).failures():
            examples[f"image: {row.get('kind', '?')}"].append(
                f"{row['property_id']} {row['source_url']}: {row.get('message', '')}"
            )
        return [(kind, len(msgs), msgs[:3]) for kind, msgs in sorted(examples.items())]

    def _contact_sheets(self, rows: list[ManifestEntry]) -> dict[str, Any]:
        by_property: dict[str, list[ManifestEntry]] = defaultdict(list)
        for row in rows:
            by_property[row.property_id].append(row)
        sheets = []
        for pid in sorted(by_property)[: self.max_properties]:
            entries = sorted(by_property[pid], key=lambda r: (r.source, r.source_url))
            stored = [r for r in entries if r.duplicate_of is None]
            sheets.append(
                {
                    "address": entries[0].address,
                    "property_id": pid,
                    "merged": len(entries) - len(stored),
                    "cards": [self._card(r.processed_key, f"{r.source} {r.width}x{r.height}") for r in stored],
                }
            )
        return {"sheets": sheets, "more_properties": max(0, len(by_property) - self.max_properties)}

    def _duplicates(self, rows: list[ManifestEntry]) -> dict[str, Any]:
        kept = {r.sha256: r for r in rows if r.duplicate_of is None}
        copies = [r for r in rows if r.duplicate_of]
        pairs = []
        for row in copies[: self.max_properties * 4]:
            original = kept.get(row.duplicate_of or "")
            distance = hamming(hex_to_int(row.phash), hex_to_int(original.phash)) if original else None
            left = self._card(
                row.processed_key,
                "kept: " + (f"{original.source} {original.source_url}" if original else "from an earlier run"),
            )
            right = self._card(
                image_key("thumbs", row.sha256, "JPEG"),
                f"copy: {row.source} {row.source_url} — pHash distance {'?' if distance is None else distance}",
                fallback=row.processed_key,
            )
            pairs.append((left, right))
        return {"duplicates": pairs, "duplicate_count": len(copies)}

    def _card(self, key: str, caption: str, *, fallback: str | None = None) -> Card:
        return Card(self._thumb(key) or (self._thumb(fallback) if fallback else None), caption)

    def _thumb(self, key: str) -> str | None:
        if key not in self._thumbs:
            self._thumbs[key] = _data_uri(self.store, key)
        return self._thumbs[key]


def _data_uri(store: Store, key: str) -> str | None:
    try:
        jpeg = thumbnail(store.get(key), THUMB)
    except (StoreError, OSError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
