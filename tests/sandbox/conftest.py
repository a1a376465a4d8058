"""Shared pieces for the sandbox's own tests: an HTTP client that talks only to 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    """A keep-alive client that ignores proxy settings: every request goes to the local sandbox."""
    with httpx.Client(timeout=30, trust_env=False) as c:
        yield c
