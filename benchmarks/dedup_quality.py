"""How well the near-copy merge rule (pHash, confirmed by dHash) separates copies from distinct photos.

Run from the repo root: ``python -m benchmarks.dedup_quality [--photos DIR] [--limit N]``.

Photos are read from ``../shared/datasets/houses`` (beside the checkout) when that folder exists,
else generated with ``homeshots_sandbox.generate_photo`` (no room labels then, so no same-room
hard negatives). Each original gets transformed copies (re-encode, resize, WebP, EXIF rotation,
small crop, brightness); everything is standardized with ``ImageStandardizer`` defaults and the
rule ``is_near_copy`` is applied: copies against their original (recall), and every pair of
distinct originals (false merges, also counted for the pHash alone and for same-room pairs).

Real listings re-use photos, and so does the data set (houses relisted under another number, some
photo files repeated). A pair of "distinct" originals whose 32x32 grey thumbnails are practically
equal (``same_picture``, a pixel check independent of both hashes) is a true duplicate: it is
counted apart, as a correct merge, and not as a false merge.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path

from homeshots_sandbox import generate_photo
from PIL import Image, ImageChops, ImageEnhance, ImageOps, ImageStat

from homeshots.core.settings import Settings
from homeshots.imaging.hashing import hamming
from homeshots.imaging.standardizer import ImageStandardizer
from managers.deduplicator import is_near_copy

ROOT = Path(__file__).resolve().parent.parent
DATASET = ROOT.parent / "shared" / "datasets" / "houses"
DEFAULT_THRESHOLD = int(Settings.model_fields["dedup_threshold"].default)
DEFAULT_DHASH_THRESHOLD = int(Settings.model_fields["dedup_dhash_threshold"].default)
ORIENTATION_TAG = 0x0112
CROP_FRACTION = 0.03
SAME_PICTURE_DIFF = 4.0
"""Mean grey-level difference (0-255) of 32x32 thumbnails below which two files show one picture."""
HEADROOM_THRESHOLDS = (12, 16, 20)
"""pHash thresholds beyond the grid, to show what the dHash guard would have to stop."""
Hashes = tuple[int, int]
"""(pHash, dHash) of one standardized image."""


def _jpeg(im: Image.Image, quality: int = 95, exif: bytes | None = None) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=quality, **({"exif": exif} if exif else {}))
    return out.getvalue()


def reencode_jpeg_q60(im: Image.Image) -> bytes:
    """The same pixels re-encoded as JPEG quality 60."""
    return _jpeg(im, quality=60)


def resize_half(im: Image.Image) -> bytes:
    """Half width and height (Lanczos), JPEG q95."""
    return _jpeg(im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS))


def webp_q75(im: Image.Image) -> bytes:
    """The same pixels as WebP quality 75."""
    out = io.BytesIO()
    im.save(out, "WEBP", quality=75)
    return out.getvalue()


def exif_rotate(im: Image.Image) -> bytes:
    """Pixels stored turned 90 degrees counter-clockwise, tagged Orientation 6 so viewers show them upright."""
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    return _jpeg(im.transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


def crop_edges(im: Image.Image, fraction: float = CROP_FRACTION) -> bytes:
    """``fraction`` of the width/height cut from each side, JPEG q95."""
    dx, dy = round(im.width * fraction), round(im.height * fraction)
    return _jpeg(im.crop((dx, dy, im.width - dx, im.height - dy)))


def brighten(im: Image.Image, factor: float = 1.15) -> bytes:
    """Brightness +15 % (``ImageEnhance.Brightness``), JPEG q95."""
    return _jpeg(ImageEnhance.Brightness(im).enhance(factor))


TRANSFORMS: dict[str, Callable[[Image.Image], bytes]] = {
    "jpeg q60": reencode_jpeg_q60,
    "resize 50%": resize_half,
    "webp q75": webp_q75,
    "exif rotate": exif_rotate,
    "crop 3%": crop_edges,
    "brightness +15%": brighten,
}


@dataclass(frozen=True, slots=True)
class Photo:
    """An original: its file bytes, a display name, and the room kind when the data set says it."""

    name: str
    room: str | None
    data: bytes


@dataclass(frozen=True, slots=True)
class PhotoHashes:
    """Hashes of one original and of each of its transformed copies."""

    original: Hashes
    copies: dict[str, Hashes]


@dataclass(frozen=True, slots=True)
class PairDistance:
    """Hamming distances between two distinct originals."""

    i: int
    j: int
    phash: int
    dhash: int
    same_room: bool
    same_picture: bool = False
    """The two files show one picture (a duplicate in the data set), checked on pixels."""


@dataclass(frozen=True, slots=True)
class PairCounts:
    """Pairs of different pictures and how many a rule would merge (overall, same room); duplicates apart."""

    total: int
    merged: int
    phash_only: int
    same_room_total: int
    same_room_merged: int
    same_room_phash_only: int
    duplicates: int = 0
    duplicates_merged: int = 0


def room_of(path: Path) -> str | None:
    """``12_kitchen.jpg`` -> ``kitchen``; None when the name has no room part."""
    _, sep, room = path.stem.partition("_")
    return room if sep and room else None


def load_photos(directory: Path | None, limit: int | None) -> tuple[list[Photo], str]:
    """Originals from ``directory`` if it has JPEGs, else generated ones; and where they came from."""
    if directory is not None and directory.is_dir():
        files = sorted(p for p in directory.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if files:
            files = files[:limit] if limit else files
            return [Photo(p.name, room_of(p), p.read_bytes()) for p in files], f"{len(files)} photos from {directory}"
    count = limit or 120
    photos = [Photo(f"generated-{seed}", None, generate_photo(seed, (1024, 683))) for seed in range(count)]
    return photos, (
        f"{directory} not found: {count} photos generated with homeshots_sandbox.generate_photo "
        "(no room labels, so no same-room hard negatives)"
    )


def standardized_hashes(data: bytes, standardizer: ImageStandardizer | None = None) -> Hashes:
    """(pHash, dHash) of the image as the pipeline standardizes it."""
    image = (standardizer or ImageStandardizer()).standardize(data)
    return image.phash, image.dhash


def hash_photo(data: bytes) -> PhotoHashes:
    """Standardize an original and each transformed copy of it."""
    standardizer = ImageStandardizer()
    with Image.open(io.BytesIO(data)) as opened:
        upright = ImageOps.exif_transpose(opened).convert("RGB")
    copies = {name: standardized_hashes(fn(upright), standardizer) for name, fn in TRANSFORMS.items()}
    return PhotoHashes(standardized_hashes(data, standardizer), copies)


def thumbnail(data: bytes, size: int = 32) -> Image.Image:
    """The upright image as a ``size`` x ``size`` grey thumbnail (box-averaged)."""
    with Image.open(io.BytesIO(data)) as opened:
        return ImageOps.exif_transpose(opened).convert("L").resize((size, size), Image.Resampling.BOX)


def thumbnail_difference(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute grey-level difference (0-255) of two equally sized thumbnails."""
    return float(ImageStat.Stat(ImageChops.difference(a, b)).mean[0])


def same_picture(a: bytes, b: bytes) -> bool:
    """Whether two files show one picture (any size or encoding), judged on pixels, not hashes."""
    return thumbnail_difference(thumbnail(a), thumbnail(b)) < SAME_PICTURE_DIFF


def pair_distances(
    originals: Sequence[Hashes],
    rooms: Sequence[str | None],
    is_same_picture: Callable[[int, int], bool] | None = None,
    check_below: int = 64,
) -> list[PairDistance]:
    """Distances for every unordered pair of distinct originals.

    ``is_same_picture(i, j)`` is asked only for pairs within ``check_below`` pHash bits (it is slow).
    """
    out = []
    for i, j in combinations(range(len(originals)), 2):
        dp = hamming(originals[i][0], originals[j][0])
        duplicate = is_same_picture is not None and dp <= check_below and is_same_picture(i, j)
        out.append(
            PairDistance(
                i,
                j,
                dp,
                hamming(originals[i][1], originals[j][1]),
                rooms[i] is not None and rooms[i] == rooms[j],
                duplicate,
            )
        )
    return out


def count_pairs(pairs: Sequence[PairDistance], threshold: int, dhash_threshold: int) -> PairCounts:
    """How many pairs of different pictures the rule, and the pHash alone, would merge; duplicates apart."""
    distinct = [p for p in pairs if not p.same_picture]
    merged = [p for p in distinct if p.phash <= threshold and p.dhash <= dhash_threshold]
    phash_only = [p for p in distinct if p.phash <= threshold]
    duplicates = [p for p in pairs if p.same_picture]
    return PairCounts(
        total=len(distinct),
        merged=len(merged),
        phash_only=len(phash_only),
        same_room_total=sum(p.same_room for p in distinct),
        same_room_merged=sum(p.same_room for p in merged),
        same_room_phash_only=sum(p.same_room for p in phash_only),
        duplicates=len(duplicates),
        duplicates_merged=sum(p.phash <= threshold and p.dhash <= dhash_threshold for p in duplicates),
    )


def copy_merge_share(results: Sequence[PhotoHashes], transform: str, threshold: int, dhash_threshold: int) -> float:
    """Share of ``transform`` copies the rule merges with their original."""
    merged = sum(is_near_copy(*r.original, *r.copies[transform], threshold, dhash_threshold) for r in results)
    return merged / len(results)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def _spread(values: Sequence[int]) -> str:
    ordered = sorted(values)
    return f"{statistics.median(ordered):g}/{ordered[int(0.95 * (len(ordered) - 1))]}/{ordered[-1]}"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def report(
    photos: Sequence[Photo],
    results: Sequence[PhotoHashes],
    thresholds: Sequence[int],
    dhash_thresholds: Sequence[int],
    threshold: int,
    dhash_threshold: int,
) -> str:
    """All printed tables."""
    out: list[str] = []
    copy_rows = []
    for name in TRANSFORMS:
        dp = [hamming(r.original[0], r.copies[name][0]) for r in results]
        dd = [hamming(r.original[1], r.copies[name][1]) for r in results]
        phash_alone = sum(d <= threshold for d in dp) / len(results)
        copy_rows.append(
            [
                name,
                _pct(copy_merge_share(results, name, threshold, dhash_threshold)),
                _pct(phash_alone),
                _spread(dp),
                _spread(dd),
            ]
        )
    out += [
        f"(a) copies merged with their original (pHash <= {threshold}, dHash <= {dhash_threshold}), "
        f"{len(results)} originals",
        _table(["transform", "merged", "pHash alone", "pHash d med/p95/max", "dHash d med/p95/max"], copy_rows),
        "",
    ]

    rooms = [p.room for p in photos]
    check_below = max([*thresholds, *HEADROOM_THRESHOLDS])
    thumbs: dict[int, Image.Image] = {}

    def is_same_picture(i: int, j: int) -> bool:
        for k in (i, j):
            if k not in thumbs:
                thumbs[k] = thumbnail(photos[k].data)
        return thumbnail_difference(thumbs[i], thumbs[j]) < SAME_PICTURE_DIFF

    pairs = pair_distances([r.original for r in results], rooms, is_same_picture, check_below)
    c = count_pairs(pairs, threshold, dhash_threshold)
    out += [
        f"(b) false merges among distinct originals (pHash <= {threshold}, dHash <= {dhash_threshold})",
        _table(
            ["pairs", "count", "rule merges", "pHash alone merges"],
            [
                ["all different pictures", f"{c.total:,}", f"{c.merged}", f"{c.phash_only}"],
                [
                    "same room (hard neg.)",
                    f"{c.same_room_total:,}",
                    f"{c.same_room_merged}",
                    f"{c.same_room_phash_only}",
                ],
                ["data-set duplicates", f"{c.duplicates}", f"{c.duplicates_merged} (correct)", ""],
            ],
        ),
    ]
    per_room = sorted({r for r in rooms if r})
    if per_room:
        room_rows = []
        for room in per_room:
            rc = count_pairs([p for p in pairs if p.same_room and rooms[p.i] == room], threshold, dhash_threshold)
            room_rows.append([room, f"{rc.total:,}", f"{rc.merged}", f"{rc.phash_only}"])
        out += ["", _table(["same room", "pairs", "rule merges", "pHash alone merges"], room_rows)]
    else:
        out.append("(no room labels: same-room hard negatives not measured)")
    dups = [p for p in pairs if p.same_picture]
    if dups:
        out.append("data-set duplicates (same picture on pixels; pHash/dHash distance):")
        out += [f"  {photos[p.i].name} = {photos[p.j].name} ({p.phash}/{p.dhash})" for p in dups[:12]]
    distinct = [p for p in pairs if not p.same_picture]
    if distinct:
        nearest = min(distinct, key=lambda p: (p.phash, p.dhash))
        out.append(
            f"nearest different pictures: {photos[nearest.i].name} ~ {photos[nearest.j].name}, "
            f"pHash {nearest.phash}, dHash {nearest.dhash}"
        )
    out.append("")

    grid_rows = []
    for t in [*thresholds, *(h for h in HEADROOM_THRESHOLDS if h > max(thresholds))]:
        for dt in dhash_thresholds:
            shares = {name: copy_merge_share(results, name, t, dt) for name in TRANSFORMS}
            worst = min(shares, key=lambda n: shares[n])
            gc = count_pairs(pairs, t, dt)
            grid_rows.append(
                [
                    f"{t}" + ("*" if t > max(thresholds) else ""),
                    f"{dt}",
                    _pct(statistics.fmean(shares.values())),
                    f"{worst} {_pct(shares[worst])}",
                    f"{gc.merged} ({gc.phash_only})",
                    f"{gc.same_room_merged} ({gc.same_room_phash_only})",
                ]
            )
    out += [
        "(c) threshold grid: copies merged (all transforms), false merges of different pictures "
        "(pHash alone in brackets)",
        _table(
            ["pHash t", "dHash t", "copies merged", "worst transform", "false merges", "same-room false"], grid_rows
        ),
        "* beyond the grid, to show what the dHash guard stops; data-set duplicates are not counted as false.",
    ]
    return "\n".join(out)


def _ints(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DATASET, help=f"folder of originals (default {DATASET})")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    parser.add_argument("--thresholds", default="6,8,10", help="pHash thresholds for the grid")
    parser.add_argument("--dhash-thresholds", default="8,12,16", help="dHash thresholds for the grid")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    photos, origin = load_photos(args.photos, args.limit)
    print(f"originals: {origin}", flush=True)
    if len(photos) < 2:
        parser.error("need at least two photos")
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(hash_photo, [p.data for p in photos], chunksize=8))
    print(
        report(
            photos,
            results,
            _ints(args.thresholds),
            _ints(args.dhash_thresholds),
            DEFAULT_THRESHOLD,
            DEFAULT_DHASH_THRESHOLD,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
