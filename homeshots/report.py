"""``homeshots report``: one self-contained HTML page to judge a run at a glance.

The run result per source, failures by kind with examples, a contact sheet of each property's
photos, and every merged duplicate beside the copy it was merged into, with sources and distances.
Pictures are embedded as small JPEG data URIs, so the page opens anywhere, offline.
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import redis
from PIL import Image

from homeshots.store import Store, StoreError, image_key
from imaging.hashing import hamming, hex_to_int
from managers.manifest_manager import ManifestEntry, ManifestManager
from managers.run_manager import RunManager
from managers.state_manager import StateManager

THUMB = 256
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}h1{margin:0 0 4px}h2{margin-top:32px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.bad{color:#b00020;font-weight:600}
.sheet{display:flex;flex-wrap:wrap;gap:8px}.card{width:264px;font-size:12px;overflow-wrap:anywhere}
.card img{width:256px;border:1px solid #ddd;display:block}
.pair{display:flex;gap:12px;align-items:flex-start;margin:10px 0;padding:8px;border:1px solid #eee}.muted{color:#777}
"""
CHECK = """
window.addEventListener('load', () => {
  const imgs = [...document.images];
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""


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
        parts = [f"<h1>homeshots run {_e(self.run_id)}</h1>",
                 f"<p class=muted>status {_e(meta.get('status', '?'))}, started {_e(meta.get('started_at', ''))}, "
                 f"input {_e(meta.get('input', ''))}</p>",
                 self._result(result), self._failures(), self._contact_sheets(rows), self._duplicates(rows)]
        body = "\n".join(parts)
        return (f"<!doctype html><html><head><meta charset=utf-8><title>homeshots {_e(self.run_id)}</title>"
                f"<style>{STYLE}</style><script>{CHECK}</script></head><body>{body}</body></html>")

    def _result(self, result: dict[str, Any]) -> str:
        totals = "".join(f"<tr><td>{_e(k.replace('_', ' '))}</td><td>{_e(result.get(k, 0))}</td></tr>"
                         for k in ("total_properties", "properties_completed", "properties_failed",
                                   "properties_skipped", "total_images", "unique_images", "duplicate_images",
                                   "copies_upgraded", "failed_downloads", "duration_seconds"))
        cols = ("images_found", "images_stored", "duplicates_detected", "copies_upgraded", "images_failed",
                "properties_processed", "properties_failed")
        head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in cols)
        rows = "".join(
            f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(s.get(c, 0))}</td>" for c in cols)
            + f"<td>{_e(', '.join(f'{k}={v}' for k, v in sorted(s.get('failures', {}).items())) or '-')}</td></tr>"
            for name, s in result.get("by_source", {}).items())
        blocked = "".join(f"<p class=bad>BLOCKED: {_e(src)} refused {n} properties with its bot wall</p>"
                          for src, n in result.get("blocked_sources", {}).items())
        return (f"<h2>Result</h2><table>{totals}</table><h2>By source</h2>{blocked}"
                f"<table><tr><th>source</th>{head}<th>failures by kind</th></tr>{rows}</table>")

    def _failures(self) -> str:
        examples: dict[str, list[str]] = defaultdict(list)
        for pid, reason in StateManager(self.client, self.run_id).failures():
            examples[f"property: {reason.get('kind', '?')}"].append(f"{pid}: {reason.get('message', '')}")
        for row in ManifestManager(self.client, self.run_id).failures():
            examples[f"image: {row.get('kind', '?')}"].append(f"{row['property_id']} {row['source_url']}: "
                                                             f"{row.get('message', '')}")
        if not examples:
            return "<h2>Failures</h2><p>none</p>"
        items = "".join(f"<tr><td>{_e(kind)}</td><td>{len(msgs)}</td><td style='text-align:left'>"
                        + "<br>".join(_e(m) for m in msgs[:3]) + "</td></tr>"
                        for kind, msgs in sorted(examples.items()))
        return f"<h2>Failures by kind</h2><table><tr><th>kind</th><th>count</th><th>examples</th></tr>{items}</table>"

    def _contact_sheets(self, rows: list[ManifestEntry]) -> str:
        by_property: dict[str, list[ManifestEntry]] = defaultdict(list)
        for row in rows:
            by_property[row.property_id].append(row)
        out = ["<h2>Contact sheets</h2>"]
        for pid in sorted(by_property)[: self.max_properties]:
            entries = sorted(by_property[pid], key=lambda r: (r.source, r.source_url))
            stored = [r for r in entries if r.duplicate_of is None]
            cards = "".join(self._card(r.processed_key, f"{r.source} {r.width}x{r.height}") for r in stored)
            merged = len(entries) - len(stored)
            note = f"<p class=muted>{merged} more cop{'y' if merged == 1 else 'ies'} merged</p>" if merged else ""
            out.append(f"<h3>{_e(entries[0].address)} <span class=muted>{_e(pid)}</span></h3>"
                       f"<div class=sheet>{cards}</div>{note}")
        if len(by_property) > self.max_properties:
            out.append(f"<p class=muted>{len(by_property) - self.max_properties} more properties not shown</p>")
        return "".join(out)

    def _duplicates(self, rows: list[ManifestEntry]) -> str:
        kept = {r.sha256: r for r in rows if r.duplicate_of is None}
        copies = [r for r in rows if r.duplicate_of]
        out = [f"<h2>Merged duplicates ({len(copies)})</h2>"]
        for row in copies[: self.max_properties * 4]:
            original = kept.get(row.duplicate_of or "")
            distance = hamming(hex_to_int(row.phash), hex_to_int(original.phash)) if original else None
            left = self._card(row.processed_key, "kept: " + (f"{original.source} {original.source_url}"
                                                             if original else "from an earlier run"))
            right = self._card(image_key("thumbs", row.sha256, "JPEG"),
                               f"copy: {row.source} {row.source_url} — pHash distance "
                               f"{'?' if distance is None else distance}", fallback=row.processed_key)
            out.append(f"<div class=pair>{left}{right}</div>")
        return "".join(out)

    def _card(self, key: str, caption: str, *, fallback: str | None = None) -> str:
        src = self._thumb(key) or (self._thumb(fallback) if fallback else None)
        img = f"<img alt='{_e(caption)}' src='{src}'>" if src else "<p class=bad>missing file</p>"
        return f"<div class=card>{img}{_e(caption)}</div>"

    def _thumb(self, key: str) -> str | None:
        if key not in self._thumbs:
            self._thumbs[key] = _data_uri(self.store.get, key)
        return self._thumbs[key]


def _data_uri(read: Callable[[str], bytes], key: str) -> str | None:
    try:
        data = read(key)
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            im.thumbnail((THUMB, THUMB))
            out = io.BytesIO()
            im.save(out, "JPEG", quality=80)
    except (StoreError, OSError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
