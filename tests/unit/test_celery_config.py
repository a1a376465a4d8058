"""Celery settings that keep tasks safe to redeliver."""

from __future__ import annotations

import pytest

from celery_app.app import build_config
from homeshots.settings import Settings


@pytest.mark.parametrize("time_limit", [15, 600, 7200])
def test_build_config(time_limit: int) -> None:
    conf = build_config(Settings(redis_url="redis://r/0", task_time_limit=time_limit))
    assert conf["accept_content"] == ["json"] and conf["result_accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_time_limit"] == time_limit
    assert conf["broker_transport_options"]["visibility_timeout"] > time_limit
    assert conf["broker_url"] == conf["result_backend"] == "redis://r/0"
