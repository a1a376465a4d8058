"""The dedup claim on the claim log, against a real redis-server: exact across processes, O(1) Redis work.

Each worker process searches its own replica of the log; these tests run real processes (each with its
own replica and connection) and check what a user would: one kept image per picture whatever the
interleaving, a new worker sees everything kept before it, a worker that died between its append and
its record blocks nobody, a flushed index is noticed, and a claim sends a bounded number of commands.
"""

from __future__ import annotations

import multiprocessing
import random
from dataclasses import replace

from homeshots.imaging.hashing import int_to_hex
from managers import keys
from managers.claim_log import Appended, ClaimLog
from managers.connection import connect
from managers.deduplicator import ImageDeduplicator, ImageRecord
from managers.index_replica import IndexReplica
from tests.integration.helpers import flip_bits as _flip
from tests.integration.helpers import index_record


def _record(sha: str, phash: int, dhash: int = 0, pid: str = "p") -> ImageRecord:
    return index_record(sha, phash, pid=pid, dhash=dhash, source="zillow")


def _family_copies(seed: int, families: int, copies: int) -> list[tuple[int, ImageRecord]]:
    """``copies`` near copies (within 4 bits of their base, so any two are within 8) of each family."""
    rng = random.Random(seed)
    out = []
    for f in range(families):
        base, dhash = rng.getrandbits(64), rng.getrandbits(64)
        for c in range(copies):
            out.append((f, _record(f"{f:032x}{c:032x}", _flip(base, rng.randint(0, 4), rng), dhash, pid=f"p{c}")))
    rng.shuffle(out)
    return out


def _claim_all(url: str, segment: int, records: list[ImageRecord], out: multiprocessing.Queue) -> None:
    client = connect(url)
    dedup = ImageDeduplicator(client, 8, replica=IndexReplica(8), log=ClaimLog(client, segment))
    out.put([(r.sha256, dedup.claim(r).record.sha256) for r in records])


def test_processes_claiming_copies_at_once_keep_one_per_picture(redis_server) -> None:
    copies = _family_copies(5, families=60, copies=8)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue = ctx.Queue()
    parts = [[r for _, r in copies[i::4]] for i in range(4)]
    procs = [ctx.Process(target=_claim_all, args=(redis_server.url, 16, part, out)) for part in parts]
    for p in procs:
        p.start()
    answers = dict(pair for _ in procs for pair in out.get(timeout=120))
    for p in procs:
        p.join(timeout=30)
    family = {r.sha256: f for f, r in copies}
    kept_by_family: dict[int, set[str]] = {}
    for sha, kept in answers.items():
        assert family[kept] == family[sha], "a copy was merged into another picture"
        kept_by_family.setdefault(family[sha], set()).add(kept)
    assert all(len(kept) == 1 for kept in kept_by_family.values()), "a picture was kept twice"
    assert len(kept_by_family) == 60
    client = connect(redis_server.url)
    assert sum(1 for _ in client.scan_iter(keys.IMAGE_PATTERN)) == 60, "one record per kept picture"


def test_a_new_worker_sees_every_kept_image_across_segments(redis_server) -> None:
    client = connect(redis_server.url)
    rng = random.Random(9)
    first = ImageDeduplicator(client, 8, replica=IndexReplica(8), log=ClaimLog(client, 16))
    kept = [_record(f"{i:064x}", rng.getrandbits(64), rng.getrandbits(64)) for i in range(100)]
    for record in kept:
        assert first.claim(record).record == record
    assert len(client.get(keys.log_packed(5))) == 16 * 16 and len(client.get(keys.log_packed(6))) == 4 * 16
    late = ImageDeduplicator(client, 8, replica=IndexReplica(8), log=ClaimLog(client, 16))
    for i, record in enumerate(kept):
        copy = replace(record, sha256=f"{i + 1000:064x}", phash=int_to_hex(_flip(int(record.phash, 16), 3, rng)))
        match = late.claim(copy)
        assert match.record.sha256 == record.sha256 and match.distance == 3
    assert len(late.replica) == 100


def test_a_worker_dead_between_append_and_record_blocks_nobody(redis_server) -> None:
    client = connect(redis_server.url)
    log = ClaimLog(client)
    ghost = _record("a" * 64, 0x0123456789ABCDEF)
    assert isinstance(log.append(0, ghost.member, 8), Appended)  # then the worker died: no record
    dedup = ImageDeduplicator(client, 8, replica=IndexReplica(8))
    again = _record("a" * 64, 0x0123456789ABCDEF, pid="p2")
    assert dedup.claim(again).record == again, "the picture is kept by the next worker that sees it"
    near = _record("b" * 64, 0x0123456789ABCDEF ^ 0b111, pid="p3")
    assert dedup.claim(near).record == again


def test_a_flushed_index_is_noticed_by_a_replica(redis_server) -> None:
    client = connect(redis_server.url)
    dedup = ImageDeduplicator(client, 8, replica=IndexReplica(8), log=ClaimLog(client, 16))
    rng = random.Random(4)
    old = [_record(f"{i:064x}", rng.getrandbits(64)) for i in range(40)]
    for record in old:
        dedup.claim(record)
    client.flushall()
    other = ImageDeduplicator(client, 8, replica=IndexReplica(8), log=ClaimLog(client, 16))
    new = [_record(f"{i + 500:064x}", rng.getrandbits(64)) for i in range(40)]
    for record in new:
        other.claim(record)
    # The first worker's replica is of an index that no longer exists: a copy of an old picture is new.
    copy = replace(old[3], sha256="c" * 64)
    assert dedup.claim(copy).record == copy
    assert dedup.claim(replace(new[7], sha256="d" * 64)).record.sha256 == new[7].sha256


def test_a_claim_costs_a_few_commands_whatever_the_corpus(redis_server) -> None:
    client = connect(redis_server.url)
    rng = random.Random(2)
    loader = ImageDeduplicator(client, 8, replica=IndexReplica(8))
    stored = [_record(f"{i:064x}", rng.getrandbits(64), rng.getrandbits(64)) for i in range(20_000)]
    loader.bulk_load(stored)
    worker = ImageDeduplicator(client, 8, replica=IndexReplica(8))
    worker.replica.sync(worker.log)
    client.config_resetstat()
    claims = 0
    for i in range(200):
        if i % 2:
            source = stored[rng.randrange(len(stored))]
            record = replace(source, sha256=f"e{i:063x}", phash=int_to_hex(_flip(int(source.phash, 16), 5, rng)))
        else:
            record = _record(f"f{i:063x}", rng.getrandbits(64))
        worker.by_raw_digest(f"{i:064x}")  # what the pipeline asks before decoding a download
        worker.claim(record, property_key=f"prop-{i}", raw_sha256=f"{i:064x}")
        claims += 1
    stats = client.info("commandstats")
    calls = sum(
        int(v["calls"]) for name, v in stats.items() if name not in ("cmdstat_config|resetstat", "cmdstat_info")
    )
    assert calls / claims <= 10, stats
    assert "cmdstat_smembers" not in stats or stats["cmdstat_smembers"]["calls"] <= claims, "no band probes"


def test_an_append_that_missed_a_few_far_entries_goes_through_and_a_near_one_comes_back(redis_server) -> None:
    from managers.claim_log import CHECK_HERE, Behind

    log = ClaimLog(connect(redis_server.url), 64)
    first = _record("1" * 64, 0)
    assert log.append(0, first.member, 8) == Appended(0, "")
    far = _record("2" * 64, (1 << 40) - 1)  # 40 bits from the first
    reply = log.append(0, far.member, 8)
    assert reply == Appended(1, first.phash), "it had not seen the first, which is far: appended after it"
    near = _record("3" * 64, 0b111)  # 3 bits from the first
    assert log.append(0, near.member, 8) == Behind(first.phash + far.phash), "the caller must verify the first"
    assert log.append(2, near.member, 8, last_seen=far.phash) == Appended(2, "")
    last = near.phash
    for i in range(CHECK_HERE + 1):
        other = _record(f"{i + 10:064x}", ((1 << 50) - 1) << (i % 14))
        assert log.append(3 + i, other.member, 8, last_seen=last) == Appended(3 + i, "")
        last = other.phash
    many = log.append(3, _record("4" * 64, (1 << 63) | 0xFFFF).member, 8, last_seen=near.phash)
    assert isinstance(many, Behind) and len(many.missed) == 16 * (CHECK_HERE + 1), "too many to check in Redis"


def test_the_threads_of_a_process_share_one_replica_per_server(redis_server) -> None:
    from managers.index_replica import shared_replica

    one, two = connect(redis_server.url), connect(redis_server.url)
    assert shared_replica(ClaimLog(one), 8) is shared_replica(ClaimLog(two), 8), "one server: one replica"
    assert shared_replica(ClaimLog(one), 8) is not shared_replica(ClaimLog(one), 12), "per threshold"
    other_db = connect(redis_server.url.rsplit("/", 1)[0] + "/1")
    assert shared_replica(ClaimLog(other_db), 8) is not shared_replica(ClaimLog(one), 8), "another database"
