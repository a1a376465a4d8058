"""A worker process opens its resources after the fork and closes them when it ends."""

from __future__ import annotations

import os

import pytest

from homeshots.core.settings import get_settings
from homeshots.pipeline import worker_context
from homeshots.pipeline.worker_context import get_context, process_started, process_stopping


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOMESHOTS_REDIS_URL", "redis://127.0.0.1:1/0")  # never connected to here
    get_settings.cache_clear()
    yield
    process_stopping()
    get_settings.cache_clear()


def test_process_shutdown_closes_http_clients_and_loops() -> None:
    ctx = get_context()
    client = ctx.client_for("mls")
    assert get_context() is ctx, "one context per thread, reused across tasks"
    process_stopping()
    assert client.is_closed and ctx.loop.is_closed()
    assert get_context() is not ctx, "a later task in a thread-pool worker gets a fresh one"


def test_a_new_process_never_uses_what_its_parent_opened() -> None:
    parent = get_context()
    worker_context.image_lane(1)
    pid = os.fork()
    if pid == 0:  # the child, as Celery's worker_process_init runs it
        process_started()
        fresh = get_context()
        ok = fresh is not parent and worker_context._lane is None
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
