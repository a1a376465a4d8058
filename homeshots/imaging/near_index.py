"""An in-memory index of 64-bit perceptual hashes that finds every hash within a Hamming threshold.

Multi-index hashing (Norouzi et al.): the 64 bits are cut into ``m`` bands; two hashes within ``t`` bits
agree within ``floor(t / m)`` bits on at least one band (pigeonhole), so looking up, in each band, the
values within that radius of the query's finds every hash within ``t``, never scanning the corpus.

Each band is a sorted array of band values with the positions they came from (``numpy.searchsorted``
over a few hundred probe values); hashes added since the last merge sit in a short tail scanned by
brute force, merged into the sorted arrays when it grows (a linear merge of two sorted runs). About 32
bytes per hash: 1M kept images take 32 MB per process. Positions are insertion order, so a caller can
keep a log position per hash without storing anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import ceil

import numpy as np

_TAIL_MIN = 4096
_TAIL_MAX = 65536


@dataclass(frozen=True, slots=True)
class BandPlan:
    """How the 64 bits are cut: ``widths`` per band and the per-band probe ``radius``."""

    widths: tuple[int, ...]
    radius: int

    @classmethod
    def for_threshold(cls, threshold: int) -> BandPlan:
        # A radius of at most 2 keeps the probes per band at 1 + w + w(w-1)/2 (254 for 22 bits); at least
        # 2 bands keeps each band's values in 32 bits.
        bands = max(2, ceil((threshold + 1) / 3))
        widths = tuple(64 // bands + (1 if i < 64 % bands else 0) for i in range(bands))
        return cls(widths, threshold // bands)

    def values(self, phash: int) -> list[int]:
        """The band values of ``phash`` (low bits first)."""
        out, start = [], 0
        for width in self.widths:
            out.append((phash >> start) & ((1 << width) - 1))
            start += width
        return out

    def flips(self, width: int) -> np.ndarray:
        """Every XOR mask of at most ``radius`` bits in a band of ``width`` bits (the probe offsets)."""
        masks = [0]
        for r in range(1, self.radius + 1):
            masks += [sum(1 << b for b in bits) for bits in combinations(range(width), r)]
        return np.array(masks, dtype=np.uint32)


class NearIndex:
    """Hashes by insertion position; ``within`` answers exactly what a brute-force scan would."""

    def __init__(self, threshold: int) -> None:
        self.threshold = threshold
        self.plan = BandPlan.for_threshold(threshold)
        self._shifts = np.cumsum((0, *self.plan.widths[:-1])).astype(np.uint64)
        self._masks = [np.uint64((1 << w) - 1) for w in self.plan.widths]
        self._flips = [self.plan.flips(w) for w in self.plan.widths]
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._size = 0
        self._sorted = 0
        self._keys: list[np.ndarray] = [np.zeros(0, dtype=np.uint32) for _ in self.plan.widths]
        self._perm: list[np.ndarray] = [np.zeros(0, dtype=np.uint32) for _ in self.plan.widths]

    def __len__(self) -> int:
        return self._size

    def nbytes(self) -> int:
        """Memory held by the arrays (what a worker process pays per kept image)."""
        return int(self._hashes.nbytes + sum(k.nbytes + p.nbytes for k, p in zip(self._keys, self._perm, strict=True)))

    def add(self, hashes: np.ndarray | list[int]) -> None:
        """Append hashes; their positions continue from ``len(self)``."""
        new = np.asarray(hashes, dtype=np.uint64)
        end = self._size + len(new)
        if end > len(self._hashes):
            grown = np.zeros(max(end, 2 * len(self._hashes)), dtype=np.uint64)
            grown[: self._size] = self._hashes[: self._size]
            self._hashes = grown
        self._hashes[self._size : end] = new
        self._size = end
        if end - self._sorted > min(_TAIL_MAX, max(_TAIL_MIN, self._sorted // 8)):
            self._merge_tail()

    def hash_at(self, position: int) -> int:
        return int(self._hashes[position])

    def within(self, query: int) -> list[tuple[int, int]]:
        """(position, distance) of every hash within the threshold of ``query``, nearest first."""
        q = np.uint64(query)
        found: list[np.ndarray] = []
        for band in range(len(self.plan.widths)):
            if self._sorted == 0:
                break
            value = np.uint32((q >> self._shifts[band]) & self._masks[band])
            probes = np.sort(self._flips[band] ^ value)
            lo = np.searchsorted(self._keys[band], probes, side="left")
            hi = np.searchsorted(self._keys[band], probes, side="right")
            hit = hi > lo
            for start, stop in zip(lo[hit], hi[hit], strict=True):
                found.append(self._perm[band][start:stop])
        positions = np.unique(np.concatenate(found)).astype(np.int64) if found else np.zeros(0, np.int64)
        tail = np.arange(self._sorted, self._size, dtype=np.int64)
        positions = np.concatenate((positions, tail))
        distances = np.bitwise_count(self._hashes[positions] ^ q)
        close = distances <= self.threshold
        order = np.argsort(distances[close], kind="stable")
        return [(int(p), int(d)) for p, d in zip(positions[close][order], distances[close][order], strict=True)]

    def _merge_tail(self) -> None:
        """Fold the tail into each band's sorted arrays (two sorted runs: a linear merge)."""
        start, end = self._sorted, self._size
        tail = self._hashes[start:end]
        tail_pos = np.arange(start, end, dtype=np.uint32)
        for band in range(len(self.plan.widths)):
            values = ((tail >> self._shifts[band]) & self._masks[band]).astype(np.uint32)
            order = np.argsort(values, kind="stable")
            keys = np.concatenate((self._keys[band], values[order]))
            perm = np.concatenate((self._perm[band], tail_pos[order]))
            merged = np.argsort(keys, kind="stable")
            self._keys[band], self._perm[band] = keys[merged], perm[merged]
        self._sorted = end
