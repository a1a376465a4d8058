"""A process's replica of the claim log: the kept images' pHashes in memory, searched without Redis.

Position ``i`` of the replica is entry ``i`` of the log, so a candidate's sha256 is one LINDEX away and
the replica holds only the hashes (about 32 bytes per kept image, see ``NearIndex``). It catches up from
where it stands: segments' packed pHashes in one GET each when it starts, then the entries an append
reports it missed. The threads of one process share one replica (``shared_replica``).
"""

from __future__ import annotations

import os
import threading

from homeshots.imaging.near_index import NearIndex
from managers.claim_log import ClaimLog

_LOAD_BATCH = 64
"""Packed segments fetched per round trip when a replica starts."""


class IndexReplica:
    """The pHashes of the log's first ``len(self)`` entries, and the search over them."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.lock = threading.RLock()
        self.index = NearIndex(threshold)
        self.synced = False

    def __len__(self) -> int:
        return len(self.index)

    def reset(self) -> None:
        with self.lock:
            self.index = NearIndex(self.threshold)
            self.synced = False

    def absorb(self, position: int, packed: str) -> None:
        """pHashes of the log (16 hex each) from ``position`` on: what an append said we missed, or a read."""
        with self.lock:
            skip = len(self.index) - position  # another thread of this process may have absorbed some
            count = len(packed) // 16
            if 0 <= skip < count:
                self.index.add([int(packed[i : i + 16], 16) for i in range(skip * 16, count * 16, 16)])

    def sync(self, log: ClaimLog) -> None:
        """Catch up with the log, a batch of segments (one GET each) per round trip.

        A replica whose last entry is not the log's any more (the index was flushed) starts over.
        """
        with self.lock:
            if len(self.index):
                last = log.members_at([len(self.index) - 1])[0]
                if last is None or int(last[:16], 16) != self.index.hash_at(len(self.index) - 1):
                    self.index = NearIndex(self.threshold)
            while True:
                first = len(self.index) // log.size
                for segment, blob in zip(
                    range(first, first + _LOAD_BATCH), log.packed(range(first, first + _LOAD_BATCH)), strict=True
                ):
                    self.absorb(segment * log.size, blob)
                    if len(blob) < log.size * 16:
                        self.synced = True
                        return

    def hash_at(self, position: int) -> int:
        with self.lock:
            return self.index.hash_at(position)

    def within(self, phash: int) -> list[tuple[int, int]]:
        """(log position, distance) of every kept pHash within the threshold, nearest first."""
        with self.lock:
            return self.index.within(phash)


_SHARED: dict[tuple[object, ...], IndexReplica] = {}
_SHARED_LOCK = threading.Lock()


def _server_identity(client: object) -> tuple[object, ...]:
    """Which Redis (or cluster) a client talks to: threads' clients of one server share a replica."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None:
        kw = pool.connection_kwargs
        return ("redis", kw.get("host"), kw.get("port"), kw.get("path"), kw.get("db", 0))
    nodes = getattr(client, "get_nodes", None)
    if nodes is not None:
        return ("cluster", *sorted(node.name for node in nodes()))
    return ("client", id(client))


def shared_replica(log: ClaimLog, threshold: int) -> IndexReplica:
    """The one replica of this process for this Redis and threshold (its threads share it)."""
    key = (os.getpid(), *_server_identity(log.client), threshold)
    with _SHARED_LOCK:
        replica = _SHARED.get(key)
        if replica is None:
            replica = _SHARED[key] = IndexReplica(threshold)
        return replica
