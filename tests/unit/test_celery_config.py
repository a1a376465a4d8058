"""Celery settings that keep tasks safe to redeliver."""

from __future__ import annotations

import pytest

from celery_app.app import build_config
from homeshots.core.settings import Settings


@pytest.mark.parametrize("time_limit", [15, 600, 7200])
def test_build_config(time_limit: int) -> None:
    conf = build_config(
        Settings(redis_url="redis://r/0", task_time_limit=time_limit, task_soft_time_limit=time_limit - 5)
    )
    assert conf["accept_content"] == ["json"] and conf["result_accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    assert conf["task_acks_late"] is True
    assert conf["task_reject_on_worker_lost"] is True
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_time_limit"] == time_limit
    assert conf["broker_transport_options"]["visibility_timeout"] > time_limit
    assert conf["broker_url"] == conf["result_backend"] == "redis://r/0"


def test_limits_that_would_redeliver_running_tasks_are_refused() -> None:
    with pytest.raises(ValueError, match="VISIBILITY_TIMEOUT"):
        Settings(task_time_limit=600, visibility_timeout=300)
    with pytest.raises(ValueError, match="SOFT_TIME_LIMIT"):
        Settings(task_time_limit=60, task_soft_time_limit=90)
    assert (
        build_config(Settings(task_time_limit=30, task_soft_time_limit=20, visibility_timeout=45))[
            "broker_transport_options"
        ]["visibility_timeout"]
        == 45
    )
