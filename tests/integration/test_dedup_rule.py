"""The merge rule on a real Redis: colour verified, flat images never merged, looser within a property."""

from __future__ import annotations

import io
import json
from dataclasses import replace

from homeshots_sandbox import natural_photo
from PIL import Image, ImageEnhance

from homeshots.imaging.hashing import int_to_hex
from homeshots.imaging.similarity import MergeRule, Scope
from homeshots.imaging.standardizer import ImageStandardizer, StandardizedImage
from managers import keys
from managers.connection import connect
from managers.deduplicator import ImageDeduplicator, ImageRecord, kept_files

STANDARDIZER = ImageStandardizer()


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.convert("RGB").save(out, "JPEG", quality=92)
    return out.getvalue()


def _record(std: StandardizedImage, pid: str, url: str, pixels: int | None = None) -> ImageRecord:
    return ImageRecord(
        sha256=std.pixel_sha256,
        phash=int_to_hex(std.phash),
        raw_key=f"raw/{url}.jpg",
        processed_key=f"processed/{url}.png",
        width=std.width,
        height=std.height,
        property_id=pid,
        source="mls",
        source_url=f"http://x/{url}",
        source_pixels=pixels or std.width * std.height,
        dhash=int_to_hex(std.dhash),
        colour=std.colour,
        quality=std.quality,
        version=std.version,
    )


def _photo(seed: int) -> Image.Image:
    return natural_photo(seed, size=(1200, 900))


def test_a_recoloured_larger_copy_neither_merges_nor_replaces_another_propertys_photo(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    original = _photo(3)  # its channel swap has nearly the same grey hashes (4 bits of pHash apart)
    kept = _record(STANDARDIZER.standardize(_jpeg(original)), "p1", "kept", pixels=1200 * 900)
    assert dedup.claim(kept, property_key="p1").record == kept
    channels = original.split()
    recoloured = Image.merge("RGB", (channels[2], channels[0], channels[1])).resize((2400, 1800))
    other = _record(STANDARDIZER.standardize(_jpeg(recoloured)), "p2", "recoloured", pixels=2400 * 1800)
    assert (int(other.phash, 16) ^ int(kept.phash, 16)).bit_count() <= 8, "grey hashes alike: only colour differs"
    assert dedup.claim(other, property_key="p2").record == other, "a recolour is another picture"
    assert kept_files(dedup.client, [kept.sha256]) == {kept.sha256: (kept.raw_key, kept.processed_key)}


def test_flat_and_degenerate_images_are_never_near_copies(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    gradient = Image.new("I;16", (256, 256))
    gradient.putdata([x * 256 for _ in range(256) for x in range(256)])
    flats = [
        Image.new("RGB", (1, 1), (200, 30, 30)),
        Image.new("RGB", (1, 1), (30, 30, 200)),
        Image.new("RGB", (800, 600), (0, 0, 0)),
        Image.new("RGB", (100000, 2), (20, 200, 20)),
        Image.new("RGB", (640, 480), (250, 250, 250)),
    ]
    records = []
    for i, im in enumerate(flats):
        out = io.BytesIO()
        im.save(out, "PNG")
        records.append(_record(STANDARDIZER.standardize(out.getvalue()), "flat", f"flat{i}"))
    out = io.BytesIO()
    gradient.save(out, "PNG")
    records.append(_record(STANDARDIZER.standardize(out.getvalue()), "flat", "gradient"))
    assert all(r.quality < MergeRule.default().corpus.min_quality for r in records)
    kept = [dedup.claim(r, property_key="flat").record for r in records]
    distinct = {r.sha256 for r in records}
    assert {k.sha256 for k in kept} == distinct, "each distinct flat image is kept as itself"


def test_a_crop_merges_within_its_property_under_the_looser_rule(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    rule = MergeRule.default()
    photo = _photo(7)
    w, h = photo.size
    cropped = photo.crop((int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)))
    first = _record(STANDARDIZER.standardize(_jpeg(photo)), "p1", "whole")
    crop_std = STANDARDIZER.standardize(_jpeg(cropped))
    assert rule.decide(first.traits, _record(crop_std, "p1", "crop").traits, Scope.PROPERTY)
    dedup.claim(first, property_key="p1")
    same_property = _record(crop_std, "p1", "crop")
    assert dedup.claim(same_property, property_key="p1").record.sha256 == first.sha256
    elsewhere = _record(crop_std, "p9", "crop-elsewhere")
    merged = dedup.claim(elsewhere, property_key="p9").record.sha256 == first.sha256
    assert merged == rule.decide(first.traits, elsewhere.traits, Scope.CORPUS), "other properties: the tight rule"


def test_an_upgrade_keeps_the_provenance_of_the_files_it_replaces(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    photo = _photo(3)
    small = _record(STANDARDIZER.standardize(_jpeg(photo.resize((600, 450)))), "p1", "small", pixels=600 * 450)
    dedup.claim(small, property_key="p1")
    larger = replace(
        small,
        sha256="f" * 64,
        raw_key="raw/large.jpg",
        processed_key="processed/large.png",
        property_id="p2",
        source="zillow",
        source_url="http://z/large",
        source_pixels=2048 * 1536,
    )
    switched, _ = dedup.upgrade(small, larger)
    assert switched
    record = ImageRecord.from_redis(dedup.client.hgetall(keys.image(small.sha256)))
    assert (record.property_id, record.source, record.source_url) == ("p1", "mls", "http://x/small")
    assert json.loads(record.files_from) == {"property_id": "p2", "source": "zillow", "source_url": "http://z/large"}
    [replaced] = json.loads(record.replaced)
    assert (replaced["raw_key"], replaced["processed_key"]) == (small.raw_key, small.processed_key)
    assert replaced["from"] == {"property_id": "p1", "source": "mls", "source_url": "http://x/small"}


def test_exif_rotation_and_brightness_copies_still_merge_corpus_wide(redis_server):
    dedup = ImageDeduplicator(connect(redis_server.url), threshold=8)
    photo = _photo(11)
    first = _record(STANDARDIZER.standardize(_jpeg(photo)), "p1", "first")
    dedup.claim(first, property_key="p1")
    brighter = ImageEnhance.Brightness(photo).enhance(1.15)
    copy = _record(STANDARDIZER.standardize(_jpeg(brighter.resize((800, 600)))), "p2", "copy")
    assert dedup.claim(copy, property_key="p2").record.sha256 == first.sha256
