"""How the dedup claim scales with the corpus: Redis work per image, worker time, against a naive scan.

Run from the repo root: ``python -m benchmarks.dedup_index [--sizes 10000,100000,1000000] [--queries 2000]``.

For each corpus size N a private redis-server (no persistence) is flushed and loaded with N
records of random (seeded) 64-bit pHash/dHash through ``ImageDeduplicator.bulk_load``; then a fresh
replica (a new worker process) syncs with the claim log (timed: a worker's start-up) and ``claim()``
is timed for Q queries, half near copies (a stored pHash with 0..threshold random bit flips, same
dHash) and half random hashes (kept: each appends to the log). Near copies must all be found
(recall 100 %) and every answer must agree with a brute-force scan.

Redis work per claim comes from the server itself (``INFO commandstats``: calls and usec of every
command, reset after the warm-up), so it counts what a worker really sends. The baseline is a naive
scan in Python over in-memory lists of all N hashes (int XOR + ``bit_count``), on a few queries per size.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import redis

from benchmarks.redis_server import private_redis
from homeshots.imaging.hashing import hamming, int_to_hex
from homeshots.imaging.near_index import BandPlan
from managers import keys
from managers.deduplicator import ImageDeduplicator, ImageRecord
from managers.index_replica import IndexReplica

NAIVE_BUDGET = 10_000_000
"""Hash comparisons the naive baseline may spend per size (queries = budget / N, within bounds)."""


@dataclass(frozen=True, slots=True)
class Query:
    """One lookup: near copies carry the stored index they were made from and their bit flips."""

    phash: int
    dhash: int
    source: int | None
    flips: int


@dataclass(slots=True)
class SizeResult:
    """Everything measured at one corpus size."""

    size: int
    build_s: float
    lookup_us: list[float]
    server_us: float
    bytes_per_image: float
    record_bytes: float
    keys: int
    commands: float
    redis_us: float
    sync_s: float
    replica_bytes: float
    recall_hits: int
    recall_total: int
    random_matches: int
    naive_us: float
    naive_queries: int
    naive_agrees: bool


def sha_for(seed: int, index: int) -> str:
    """A deterministic, realistic-looking (64 hex) pixel digest for stored image ``index``."""
    return hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()


def flip_bits(value: int, count: int, rng: random.Random) -> int:
    """``value`` with ``count`` distinct random bits of 64 flipped."""
    for bit in rng.sample(range(64), count):
        value ^= 1 << bit
    return value


LEAN = False
"""``--lean``: records with one-letter paths and URLs, so ten million fit in a few GB (the claim's cost
does not depend on a record's size; memory per image is then not the pipeline's)."""


def make_record(sha: str, phash: int, dhash: int, index: int) -> ImageRecord:
    """A record with field sizes like the pipeline's, so memory per image is realistic."""
    if LEAN:
        return ImageRecord(sha, int_to_hex(phash), "r", "p", 1, 1, "x", "z", "u", dhash=int_to_hex(dhash))
    return ImageRecord(
        sha256=sha,
        phash=int_to_hex(phash),
        raw_key=f"raw/{sha[:2]}/{sha}.jpg",
        processed_key=f"processed/{sha[:2]}/{sha}.png",
        width=1024,
        height=683,
        property_id=f"prop-{index // 25}",
        source="zillow",
        source_url=f"https://photos.example.com/p/{index}/full.jpg",
        run_id="bench",
        source_pixels=1600 * 1200,
        dhash=int_to_hex(dhash),
    )


def naive_find(
    phashes: Sequence[int], dhashes: Sequence[int], phash: int, dhash: int, threshold: int, dhash_threshold: int
) -> tuple[int, int] | None:
    """(index, distance) of the nearest stored pHash within ``threshold`` whose dHash also agrees."""
    best: tuple[int, int] | None = None
    for i, stored in enumerate(phashes):
        d = (phash ^ stored).bit_count()
        if d <= threshold and (dhash ^ dhashes[i]).bit_count() <= dhash_threshold and (best is None or d < best[1]):
            best = (i, d)
    return best


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * pct // 100)))
    return ordered[int(rank) - 1]


def make_queries(
    phashes: Sequence[int], dhashes: Sequence[int], count: int, threshold: int, rng: random.Random
) -> list[Query]:
    """Alternate near copies of stored hashes and random hashes, ``count`` in all."""
    out: list[Query] = []
    for q in range(count):
        if q % 2 == 0:
            j, flips = rng.randrange(len(phashes)), rng.randint(0, threshold)
            out.append(Query(flip_bits(phashes[j], flips, rng), dhashes[j], j, flips))
        else:
            out.append(Query(rng.getrandbits(64), rng.getrandbits(64), None, 0))
    return out


def _records(seed: int, phashes: Sequence[int], dhashes: Sequence[int]) -> Iterator[ImageRecord]:
    for i, (p, d) in enumerate(zip(phashes, dhashes, strict=True)):
        yield make_record(sha_for(seed, i), p, d, i)


def _query_record(query: Query, rng: random.Random) -> ImageRecord:
    sha = f"{rng.getrandbits(256):064x}"  # a new digest: the exact-copy shortcut must not fire
    return make_record(sha, query.phash, query.dhash, 0)


def _memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _command_totals(client: redis.Redis) -> tuple[int, float]:
    """(calls, usec) of every command the server ran since the last CONFIG RESETSTAT, INFO excluded."""
    stats = client.info("commandstats")
    calls = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))
    usec = sum(float(v["usec"]) for k, v in stats.items() if k not in ("cmdstat_info", "cmdstat_config|resetstat"))
    return calls, usec


def measure(
    client: redis.Redis, size: int, queries: int, seed: int, threshold: int, dhash_threshold: int
) -> SizeResult:
    """Load ``size`` random records into a flushed Redis and measure lookups against them."""
    rng = random.Random(seed)
    phashes = [rng.getrandbits(64) for _ in range(size)]
    dhashes = [rng.getrandbits(64) for _ in range(size)]
    client.flushall()
    dedup = ImageDeduplicator(client, threshold, dhash_threshold, replica=IndexReplica(threshold))
    before = _memory(client)
    started = time.perf_counter()
    dedup.bulk_load(_records(seed, phashes, dhashes))
    build_s = time.perf_counter() - started
    used = _memory(client) - before
    sample = [keys.image(sha_for(seed, i)) for i in rng.sample(range(size), min(size, 500))]
    pipe = client.pipeline(transaction=False)
    for key in sample:
        pipe.memory_usage(key, samples=0)
    record_bytes = statistics.fmean(int(v or 0) for v in pipe.execute())

    worker = ImageDeduplicator(client, threshold, dhash_threshold, replica=IndexReplica(threshold))
    started = time.perf_counter()
    worker.replica.sync(worker.log)  # a worker process starting: every packed segment, then the open one
    sync_s = time.perf_counter() - started
    replica_bytes = worker.replica.index.nbytes() / size
    dedup = worker
    # Warm-up (script cache, connection, allocator) on near copies only: a random warm-up hash would be
    # kept, and the measured queries would then be compared with more than the corpus.
    warm = [q for q in make_queries(phashes, dhashes, 100, threshold, rng) if q.source is not None]
    qs = make_queries(phashes, dhashes, queries, threshold, rng)
    for query in warm:
        dedup.claim(_query_record(query, rng))
    client.config_resetstat()
    lookup_us: list[float] = []
    results = []
    hits = total = random_matches = 0
    for query in qs:
        record = _query_record(query, rng)
        t0 = time.perf_counter()
        claimed = dedup.claim(record)  # registers a query that matches nothing (a few, among 10k+)
        lookup_us.append((time.perf_counter() - t0) * 1e6)
        match = None if claimed.record is record else claimed
        results.append(match)
        if query.source is not None:
            total += 1
            expected = hamming(query.phash, phashes[query.source])
            hits += match is not None and match.distance <= expected
        elif match is not None:
            random_matches += 1
    calls, usec = _command_totals(client)
    server_us = float(client.info("commandstats").get("cmdstat_evalsha", {}).get("usec_per_call", 0.0))

    naive_n = max(4, min(len(qs), NAIVE_BUDGET // size))
    naive_times, agrees = [], True
    for query, match in zip(qs[:naive_n], results[:naive_n], strict=True):
        t0 = time.perf_counter()
        found = naive_find(phashes, dhashes, query.phash, query.dhash, threshold, dhash_threshold)
        naive_times.append((time.perf_counter() - t0) * 1e6)
        agrees &= (found is None) == (match is None) and (found is None or found[1] == match.distance)
    return SizeResult(
        size=size,
        build_s=build_s,
        lookup_us=lookup_us,
        server_us=server_us,
        bytes_per_image=used / size,
        record_bytes=record_bytes,
        keys=int(client.dbsize()),
        commands=calls / len(qs),
        redis_us=usec / len(qs),
        sync_s=sync_s,
        replica_bytes=replica_bytes,
        recall_hits=hits,
        recall_total=total,
        random_matches=random_matches,
        naive_us=statistics.fmean(naive_times),
        naive_queries=naive_n,
        naive_agrees=agrees,
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "-" * len(line), *body])


def report(results: Sequence[SizeResult], threshold: int, dhash_threshold: int) -> str:
    """The printed tables: index cost per size, then the naive baseline and the speedup."""
    plan = BandPlan.for_threshold(threshold)
    index_rows = [
        [
            f"{r.size:,}",
            f"{r.build_s:.1f}",
            f"{r.build_s / r.size * 1e6:.1f}",
            f"{statistics.fmean(r.lookup_us):.0f}",
            f"{percentile(r.lookup_us, 95):.0f}",
            f"{r.server_us:.0f}",
            f"{r.bytes_per_image:.0f}",
            f"{r.record_bytes:.0f}",
            f"{r.keys:,}",
            f"{r.commands:.1f}",
            f"{r.redis_us:.1f}",
            f"{r.replica_bytes:.0f}",
            f"{r.sync_s:.2f}",
            f"{r.recall_hits}/{r.recall_total} ({100 * r.recall_hits / max(1, r.recall_total):.1f}%)",
            f"{r.random_matches}",
        ]
        for r in results
    ]
    naive_rows = [
        [
            f"{r.size:,}",
            f"{r.naive_queries}",
            f"{r.naive_us / 1000:.1f}",
            f"{statistics.fmean(r.lookup_us):.0f}",
            f"{r.naive_us / statistics.fmean(r.lookup_us):,.1f}x",
            "yes" if r.naive_agrees else "NO",
        ]
        for r in results
    ]
    first, last = results[0], results[-1]
    ratio = statistics.fmean(last.lookup_us) / statistics.fmean(first.lookup_us)
    server_ratio = last.redis_us / first.redis_us if first.redis_us else float("nan")
    return "\n".join(
        [
            f"Claim log + in-memory replica (multi-index: bands {list(plan.widths)} bits, radius {plan.radius}); "
            f"pHash <= {threshold} bits, dHash <= {dhash_threshold}",
            _table(
                [
                    "N",
                    "build s",
                    "build us/img",
                    "lookup us",
                    "p95 us",
                    "server us",
                    "mem B/img",
                    "record B",
                    "keys",
                    "cmds/claim",
                    "Redis us/claim",
                    "replica B/img",
                    "replica start s",
                    "near-copy recall",
                    "random hits",
                ],
                index_rows,
            ),
            "",
            "Naive baseline: Python scan over in-memory lists of all N hashes (no Redis round trip)",
            _table(["N", "queries", "naive ms/query", "MIH us/query", "MIH speedup", "same answers"], naive_rows),
            "",
            f"claim cost ratio N={last.size:,} / N={first.size:,}: {ratio:.2f}x client-observed, "
            f"{server_ratio:.2f}x Redis CPU (corpus grew {last.size / first.size:,.0f}x)",
            "lookup us = client-observed claim() incl. loopback round trips; server us = EVALSHA usec_per_call;",
            "cmds/claim and Redis us/claim = every command the server ran (commandstats calls and usec) / claims;",
            "mem B/img = used_memory growth / N (record + log entry); record B = MEMORY USAGE of a record;",
            "replica B/img = a worker process's in-memory index; replica start = a new worker's sync with the log.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="comma-separated corpus sizes")
    parser.add_argument("--queries", type=int, default=2000, help="claim() calls per size (half near copies)")
    parser.add_argument("--threshold", type=int, default=8, help="pHash Hamming threshold")
    parser.add_argument("--dhash-threshold", type=int, default=12, help="dHash Hamming threshold")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--lean", action="store_true", help="small records (for 10M on a laptop; see LEAN)")
    args = parser.parse_args(argv)
    global LEAN
    LEAN = args.lean
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not sizes or min(sizes) < 1 or args.queries < 2:
        parser.error("sizes must be positive and --queries at least 2")
    results = []
    with private_redis() as client:
        for size in sizes:
            print(f"N={size:,}: loading and querying ...", file=sys.stderr, flush=True)
            results.append(measure(client, size, args.queries, args.seed, args.threshold, args.dhash_threshold))
    print(report(results, args.threshold, args.dhash_threshold))
    ok = all(r.recall_hits == r.recall_total and r.naive_agrees for r in results)
    if not ok:
        print("FAILED: a near copy was missed or the index disagrees with the naive scan", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
