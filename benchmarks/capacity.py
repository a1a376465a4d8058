"""How many worker cores one Redis node, and a 3-node Redis Cluster, can serve: the per-image Redis work alone.

Run from the repo root: ``python -m benchmarks.capacity [--cores 8] [--seconds 20] [--corpus 100000]``.

Simulated worker cores (processes, no image work) do exactly the Redis calls a real worker does for each
property it visits, through the real code: per lane (property and source) the task's start
(``LaneRecorder.start``, the listing memory), per image the dedup claim (``ImageDeduplicator.claim``
with the property's own images first, the raw digest noted with it; a backfill does not look raw digests
up before decoding, a nightly run does), then the
lane's record (``LaneRecorder.record`` and the run's totals). The broker's share is driven through kombu
too: each lane task is published to its source's queue and consumed and acknowledged by a standing
consumer (kombu's Redis transport: LPUSH, BRPOP, the unacked hash and index), its four task events
(sent, received, started, succeeded) are published, and its result is stored, published and counted into
its chunk as homeshots' result backend does (no result stored: ``INCR`` and ``GET`` in one round trip).

Two topologies are measured one after the other:

* **one node**: state, broker and results on one redis-server (the default deployment);
* **cluster**: state on a 3-master Redis Cluster, broker and results on a plain redis-server beside it.

For each: images/s sustained on this machine, commands and Redis CPU per image on every node (INFO
``commandstats`` and ``used_cpu_user + used_cpu_sys`` deltas), p99 claim latency, and the capacity it
implies: a Redis node is one thread, so a node saturates at one CPU second per second, and the topology
supports ``1 / (CPU seconds per image on its busiest state node)`` images/s. On a 2-core machine the
clients compete with the servers for CPU, so the measured images/s is a floor; the CPU-derived capacity
is what a node with a core of its own sustains. Cores supported = capacity / 14 images/s per core.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

IMAGES_PER_CORE = 14.0
"""Images/s one worker core standardizes (benchmarks/RESULTS.md, throughput)."""
LANES = ("mls", "maricopa", "zillow", "redfin")
IMAGES_PER_LANE = 3
"""About 12 images per property over its four sources, as the issue's real backfill (952 images, 80 properties)."""


@dataclass(frozen=True)
class Topology:
    name: str
    state_url: str
    cluster: bool
    broker_url: str
    state_nodes: list[tuple[str, int]]
    broker_node: tuple[str, int]


@dataclass
class NodeCost:
    name: str
    commands: int
    cpu_seconds: float
    by_command: dict[str, tuple[int, float]] | None = None
    """command -> (calls, usec) over the measurement (INFO commandstats deltas)."""


@dataclass
class Measured:
    topology: str
    images: int
    seconds: float
    claim_ms: list[float]
    nodes: list[NodeCost]
    broker: NodeCost | None

    @property
    def rate(self) -> float:
        return self.images / self.seconds

    def busiest(self) -> NodeCost:
        return max(self.nodes, key=lambda n: n.cpu_seconds)

    @property
    def capacity(self) -> float:
        """Images/s the state nodes sustain when each has a core of its own (the busiest one saturates first)."""
        return self.images / max(self.busiest().cpu_seconds, 1e-9)


def _node_stats(host: str, port: int) -> tuple[int, float, dict[str, tuple[int, float]]]:
    client = redis.Redis(host=host, port=port)
    stats = client.info("commandstats")
    cpu = client.info("cpu")
    client.close()
    per = {
        k.removeprefix("cmdstat_"): (int(v["calls"]), float(v["usec"])) for k, v in stats.items() if k != "cmdstat_info"
    }
    calls = sum(c for c, _ in per.values())
    return calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), per


def _delta(after: dict[str, tuple[int, float]], before: dict[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
    return {
        name: (calls - before.get(name, (0, 0.0))[0], usec - before.get(name, (0, 0.0))[1])
        for name, (calls, usec) in after.items()
        if calls > before.get(name, (0, 0.0))[0]
    }


def _record_for(seed: int, index: int, pid: str, source: str):
    from managers.deduplicator import ImageRecord

    digest = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()
    rng = random.Random(digest)
    return ImageRecord(
        sha256=digest,
        phash=f"{rng.getrandbits(64):016x}",
        raw_key=f"raw/{digest[:2]}/{digest}.jpg",
        processed_key=f"processed/{digest[:2]}/{digest}.png",
        width=1024,
        height=683,
        property_id=pid,
        source=source,
        source_url=f"https://photos.example/{digest[:20]}.jpg",
        run_id="capacity",
        source_pixels=3000 * 2000,
        dhash=f"{rng.getrandbits(64):016x}",
        # Hashes only (no colour signature): candidates are verified on their dHash, as version-1 records are.
    )


def _core(topology: Topology, core: int, stop_at: float, out: mp.Queue) -> None:
    """One simulated worker core: properties one after another, every Redis call a real worker makes."""
    from kombu import Connection, Exchange, Queue

    from managers.connection import connect
    from managers.deduplicator import ImageDeduplicator
    from managers.lane_recorder import LaneRecord, LaneRecorder
    from managers.listing_memory import ListingMemoryManager
    from managers.state_manager import LaneOutcome

    state = connect(topology.state_url, cluster=topology.cluster)
    results = redis.Redis.from_url(topology.broker_url.rsplit("/", 1)[0] + "/1")
    dedup = ImageDeduplicator(state, 8, 12)
    recorder, memory = LaneRecorder(state, "capacity"), ListingMemoryManager(state)
    exchange = Exchange("capacity", type="direct")
    queues = {lane: Queue(f"capacity.src.{lane}.{core}", exchange, routing_key=f"{lane}.{core}") for lane in LANES}
    body = {"args": ["capacity", {"property_id": "p", "address": "1 Main St, Phoenix, AZ 85001"}, "mls", list(LANES)]}
    images, claims, prop = 0, [], 0
    with Connection(topology.broker_url) as conn:
        producer = conn.Producer(serializer="json")
        consumers = {lane: conn.SimpleQueue(queues[lane]) for lane in LANES}
        events = redis.Redis.from_url(topology.broker_url)
        while time.monotonic() < stop_at:
            pid = f"c{core}-p{prop}"
            prop += 1
            for lane in LANES:
                producer.publish(body, exchange=exchange, routing_key=f"{lane}.{core}", declare=[queues[lane]])
                message = consumers[lane].get(timeout=5)
                for event in ("sent", "received", "started"):
                    events.publish("celeryev.task", json.dumps({"type": f"task-{event}", "uuid": pid}))
                if recorder.start(pid, lane, f"core{core}", time.time()) < 0:
                    continue
                memory.get(pid, lane)
                rows = []
                for j in range(IMAGES_PER_LANE):
                    record = _record_for(core, images, pid, lane)
                    raw = hashlib.sha256(f"raw{core}:{images}".encode()).hexdigest()
                    started = time.perf_counter()
                    kept = dedup.claim(record, property_key=pid, raw_sha256=raw).record
                    claims.append((time.perf_counter() - started) * 1000)
                    rows.append({"property_id": pid, "source": lane, "sha256": kept.sha256, "order": j})
                    images += 1
                counters = {f"src.{lane}.images_found": IMAGES_PER_LANE, "run.total_images": IMAGES_PER_LANE}
                recorder.record(LaneRecord(pid, lane, list(LANES), LaneOutcome("completed"), rows, [], counters))
                # The lane task stores no result; its chord part is one INCR and one GET of the chord's size.
                chord = results.pipeline(transaction=False)
                chord.incr(f"celery-taskset-meta-capacity-{core}-{lane}.n")
                chord.get(f"celery-taskset-meta-capacity-{core}-{lane}.s")
                chord.execute()
                message.ack()
                events.publish("celeryev.task", json.dumps({"type": "task-succeeded", "uuid": pid}))
    out.put((images, claims))


def _measure(topology: Topology, cores: int, seconds: float) -> Measured:
    before = {node: _node_stats(*node) for node in topology.state_nodes}
    broker_before = _node_stats(*topology.broker_node) if topology.broker_node not in topology.state_nodes else None
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    started = time.monotonic()
    procs = [ctx.Process(target=_core, args=(topology, i, started + seconds, out)) for i in range(cores)]
    for proc in procs:
        proc.start()
    got = [out.get(timeout=seconds + 120) for _ in procs]
    elapsed = time.monotonic() - started
    for proc in procs:
        proc.join()
    nodes = []
    for node in topology.state_nodes:
        calls, cpu, per = _node_stats(*node)
        b_calls, b_cpu, b_per = before[node]
        nodes.append(NodeCost(f"{node[0]}:{node[1]}", calls - b_calls, cpu - b_cpu, _delta(per, b_per)))
    broker = None
    if broker_before is not None:
        calls, cpu, per = _node_stats(*topology.broker_node)
        broker = NodeCost("broker", calls - broker_before[0], cpu - broker_before[1], _delta(per, broker_before[2]))
    return Measured(topology.name, sum(n for n, _ in got), elapsed, [c for _, cs in got for c in cs], nodes, broker)


def _preload(url: str, cluster: bool, corpus: int) -> None:
    """A corpus of ``corpus`` kept images in the index (the claim must cost the same however large it is)."""
    from managers.connection import connect
    from managers.deduplicator import ImageDeduplicator

    client = connect(url, cluster=cluster)
    dedup = ImageDeduplicator(client, 8, 12)
    batch = []
    for i in range(corpus):
        batch.append(_record_for(10**9, i, f"old{i // 12}", LANES[i % 4]))
        if len(batch) == 10_000:
            dedup.bulk_load(batch)
            batch = []
    if batch:
        dedup.bulk_load(batch)


@contextlib.contextmanager
def _one_node(tmp: Path) -> Iterator[Topology]:
    from homeshots_sandbox.redis_servers import RedisNode

    node = RedisNode(tmp / "one")
    node.start()
    try:
        address = (node.host, node.port)
        yield Topology("one node", node.url, False, node.url, [address], address)
    finally:
        node.stop()


@contextlib.contextmanager
def _cluster(tmp: Path) -> Iterator[Topology]:
    from homeshots_sandbox.redis_servers import LocalRedisCluster, RedisNode

    cluster = LocalRedisCluster(tmp / "cluster", masters=3)
    broker = RedisNode(tmp / "broker")
    cluster.start()
    broker.start()
    try:
        nodes = [(n.host, n.port) for n in cluster.nodes]
        yield Topology("3-node cluster", cluster.url, True, broker.url, nodes, (broker.host, broker.port))
    finally:
        broker.stop()
        cluster.stop()


def _report(results: list[Measured], breakdown: bool = False) -> None:
    print(
        f"{'topology':16} {'images':>7} {'img/s here':>10} {'p99 claim ms':>12} {'cmds/img':>9} "
        f"{'redis us/img':>12} {'busiest node us/img':>19} {'capacity img/s':>14} {'cores @14/s':>11}"
    )
    for r in results:
        nodes = [*r.nodes, *([r.broker] if r.broker else [])]
        commands = sum(n.commands for n in nodes) / r.images
        cpu = sum(n.cpu_seconds for n in nodes) / r.images * 1e6
        p99 = statistics.quantiles(r.claim_ms, n=100)[98] if len(r.claim_ms) >= 100 else max(r.claim_ms)
        print(
            f"{r.topology:16} {r.images:7d} {r.rate:10.0f} {p99:12.2f} {commands:9.1f} {cpu:12.1f} "
            f"{r.busiest().cpu_seconds / r.images * 1e6:19.1f} {r.capacity:14.0f} {r.capacity / IMAGES_PER_CORE:11.0f}"
        )
        for n in nodes:
            print(f"    {n.name:22} {n.commands / r.images:7.1f} cmds/img {n.cpu_seconds / r.images * 1e6:8.1f} us/img")
        if breakdown:
            merged: dict[str, list[float]] = {}
            for n in nodes:
                for name, (calls, usec) in (n.by_command or {}).items():
                    merged.setdefault(name, [0, 0.0])
                    merged[name][0] += calls
                    merged[name][1] += usec
            print("    per image, by command (calls, usec inside the command):")
            for name, (calls, usec) in sorted(merged.items(), key=lambda kv: -kv[1][0]):
                print(f"      {name:22} {calls / r.images:6.2f} {usec / r.images:7.1f}")
    if len(results) == 2:
        print(f"cluster / one node capacity: {results[1].capacity / results[0].capacity:.2f}x (goal >= 2.5x)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cores", type=int, default=8, help="simulated worker cores (processes)")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--corpus", type=int, default=100_000, help="kept images in the index before measuring")
    parser.add_argument("--breakdown", action="store_true", help="print commands and usec per image by command")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="homeshots-capacity-") as tmp:
        for make in (_one_node, _cluster):
            with make(Path(tmp)) as topology:
                print(f"{topology.name}: loading {args.corpus:,} kept images ...", file=sys.stderr, flush=True)
                _preload(topology.state_url, topology.cluster, args.corpus)
                results.append(_measure(topology, args.cores, args.seconds))
    _report(results, args.breakdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
