"""An index of the old one-slot layout is moved by `homeshots migrate-index`: near copies still merge."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import asdict

from homeshots.imaging.hashing import int_to_hex
from managers import keys
from managers.connection import connect
from managers.deduplicator import ImageDeduplicator, ImageRecord
from managers.index_replica import IndexReplica
from tests.conftest import ROOT


def _record(i: int, phash: int) -> ImageRecord:
    sha = f"{i:064x}"
    return ImageRecord(
        sha256=sha, phash=int_to_hex(phash), raw_key=f"raw/{sha}.jpg", processed_key=f"processed/{sha}.png",
        width=10, height=10, property_id=f"p{i}", source="mls", source_url=f"http://x/{i}", run_id="old",
    )  # fmt: skip


def test_migrate_index_moves_the_old_layout(redis_server, tmp_path) -> None:
    client = connect(redis_server.url)
    old = [_record(i, random.Random(i).getrandbits(64)) for i in range(30)]  # far apart: 32 bits on average
    for record in old:  # as the one-slot layout kept them: records, band buckets, raw digests, garbage
        client.hset(f"hs:{{idx}}:img:{record.sha256}", mapping={k: str(v) for k, v in asdict(record).items()})
        client.sadd(f"hs:{{idx}}:band:0:{int(record.phash[:8], 16):08x}", record.member)
        client.set(f"hs:{{idx}}:raw:{record.sha256[::-1]}", record.sha256)
    client.sadd("hs:garbage", "raw/old-replaced.jpg")
    env = os.environ | {"HOMESHOTS_REDIS_URL": redis_server.url, "HOMESHOTS_STORE_URL": f"file://{tmp_path / 's'}"}
    run = subprocess.run(
        [sys.executable, "-m", "homeshots", "migrate-index"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "moved 30 kept images, 30 raw digests and 1 files" in " ".join(run.stdout.split())
    assert not list(client.scan_iter("hs:{idx}:*")) and not client.exists("hs:garbage")
    dedup = ImageDeduplicator(client, 8, replica=IndexReplica(8))
    copy = ImageRecord(**(asdict(old[7]) | {"sha256": "f" * 64, "phash": int_to_hex(int(old[7].phash, 16) ^ 0b101)}))
    assert dedup.claim(copy).record == old[7], "a near copy of a moved image merges into it"
    assert dedup.by_raw_digest(old[3].sha256[::-1]) == old[3]
    assert client.sismember(keys.garbage(0), "raw/old-replaced.jpg"), "its replaced file still waits for deletion"
    again = subprocess.run(
        [sys.executable, "-m", "homeshots", "migrate-index"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert again.returncode == 0 and "nothing to move" in again.stdout
    assert dedup.claim(old[2]).record == old[2], "an exact copy of a moved image is that image"
