"""Every Redis key homeshots uses, in one place, so a reader sees the whole data model."""

from __future__ import annotations

PREFIX = "hs"


def run(run_id: str, part: str) -> str:
    """A per-run key: ``hs:run:{id}:meta``, ``...:completed``, ``...:manifest`` and so on."""
    return f"{PREFIX}:run:{{{run_id}}}:{part}"


def window(run_id: str, generation: int, index: int) -> str:
    """The JSON list of properties of one chord window of one submission."""
    return run(run_id, f"win:{generation}:{index}")


def image(sha256: str) -> str:
    """The corpus-wide record of one kept image (hash index entry); ``{idx}`` keeps the index in one slot."""
    return f"{PREFIX}:{{idx}}:img:{sha256}"


PHASH_BANDS = f"{PREFIX}:{{idx}}:band:"
"""Prefix of the sets ``<prefix><band>:<value as 8 hex>`` of ``<phash hex><sha256>`` members."""


def bucket(source: str) -> str:
    """Token bucket (tokens, ts) of one source, shared by the cluster."""
    return f"{PREFIX}:bucket:{source}"


def pause(source: str) -> str:
    """Exists (with a TTL) while the whole cluster backs off ``source`` after a 429."""
    return f"{PREFIX}:pause:{source}"


def bucket_waits() -> str:
    """Hash source -> seconds workers spent waiting for a token (for metrics)."""
    return f"{PREFIX}:bucket_waits"


GARBAGE = f"{PREFIX}:garbage"
"""Set of store keys replaced by a larger copy, deleted by the pipeline or a later window callback."""

SNAPSHOT_SEQ = f"{PREFIX}:snapshot_seq"
"""Counter naming snapshot files, so a restore applies them in the order they were written."""

RUNS = f"{PREFIX}:runs"
"""Sorted set of run ids by submission time."""
