"""Shared hypothesis strategies: JSON trees shaped like the sources' answers, junk, and mutations of both.

``FUZZ`` keeps every test fast enough for the default run (``HOMESHOTS_FUZZ_EXAMPLES`` scales it up for
a long hunt); ``database=None`` keeps hypothesis from writing ``.hypothesis/`` into the worktree.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from homeshots.core.models import MAX_PROBLEMS, ImageRef, Parsed

SCALE = float(os.environ.get("HOMESHOTS_FUZZ_EXAMPLES", "1"))


def fuzz(examples: int) -> settings:
    """Settings for one fuzz test: ``examples`` runs (times the scale), no deadline, no example database."""
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


SPECIAL: list[Any] = [
    None, True, False, 0, -1, 1.5, 2**70, -(2**63), 10**400, 1e300, float("inf"), float("nan"), "1e999", "-7",
    "", " ", "\t\n", "²", "\u0661\u0662", "9" * 5000, "x" * 100_000, "http://[::1/x", "https://h:port/x", "//",
    "\x00\n\u2028", "\ud800", "\u202e", [], {}, [[]], {"": None}, "data:image/png;base64,", "{}&&", "<html>",
]  # fmt: skip
"""Values that broke parsers somewhere: wrong types, huge and unicode-digit strings, bad URLs."""

json_leaf = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_tree = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)
special = st.sampled_from(SPECIAL).map(copy.deepcopy)  # a copy: mutations must not change SPECIAL
junk = st.one_of(special, special, json_tree)
"""Two parts known trouble to one part random tree: the known values find the bugs, the trees the surprises."""


def _spots(doc: Any) -> Iterator[tuple[Any, Any]]:
    """Every (container, key or index) in a JSON tree, parents before children."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield doc, key
            yield from _spots(value)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield doc, i
            yield from _spots(value)


@st.composite
def mutated(draw: st.DrawFn, doc: Any, keys: list[str]) -> Any:
    """``doc`` with 1-4 random mutations: a value replaced by junk, a key or item deleted, junk inserted
    (under one of ``keys``, the field names the parser reads, or a random one)."""
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.integers(1, 4))):
        spots = list(_spots(doc))
        if not spots or draw(st.integers(0, 20)) == 0:
            return draw(junk)
        parent, key = spots[draw(st.integers(0, len(spots) - 1))]
        action = draw(st.sampled_from(["replace", "replace", "delete", "insert"]))
        if action == "replace":
            parent[key] = draw(junk)
        elif action == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(keys) | st.text(max_size=6))] = draw(junk)
        else:
            parent.insert(key, draw(junk))
    return doc


def check_parsed(parsed: Parsed[Any], *, max_items: int | None = None) -> None:
    """What every parse result must be, whatever the input: good refs in order, bounded problems."""
    assert isinstance(parsed.items, tuple) and isinstance(parsed.problems, tuple)
    assert len(parsed.problems) <= MAX_PROBLEMS + 1
    for problem in parsed.problems:
        assert isinstance(problem.message, str) and problem.message and problem.count >= 1
        assert len(problem.message) < 2000, "a problem message must not carry the whole junk value"
    if max_items is not None:
        assert len(parsed.items) <= max_items
    refs = [r for r in parsed.items if isinstance(r, ImageRef)]
    urls = [r.url for r in refs if r.url is not None]
    assert len(urls) == len(set(urls)), "refs are deduplicated by URL"
    for ref in refs:
        assert ref.url is None or (ref.url and ref.url == ref.url.strip())
