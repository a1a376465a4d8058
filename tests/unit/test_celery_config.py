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
    assert conf["broker_url"] == "redis://r/0"
    assert conf["result_backend"] == "celery_app.results:ChordResultsBackend+redis://r/1", (
        "results live apart from the state's keys"
    )
    assert conf["result_expires"] == 6 * 3600
    assert conf["worker_max_memory_per_child"] == 1536 * 1024


def test_results_never_go_to_the_state_cluster() -> None:
    with pytest.raises(ValueError, match="BROKER_URL"):
        Settings(redis_url="redis://n1:7000/0", redis_cluster=True)
    with pytest.raises(ValueError, match="RESULT_BACKEND_URL"):
        Settings(redis_url="redis://n1:7000/0", redis_cluster=True, broker_url="amqp://guest@mq//")
    conf = build_config(Settings(redis_url="redis://r:6379/3", broker_url="amqp://guest@mq//"))
    assert conf["result_backend"] == "celery_app.results:ChordResultsBackend+redis://r:6379/4"
    conf = build_config(
        Settings(
            redis_url="redis://n1:7000/0",
            redis_cluster=True,
            broker_url="redis://q:6379/0",
            result_backend_url="redis://res:6379/2",
            result_expires_hours=2,
            worker_max_memory_per_child_mb=0,
        )
    )
    assert (conf["broker_url"], conf["result_backend"]) == (
        "redis://q:6379/0",
        "celery_app.results:ChordResultsBackend+redis://res:6379/2",
    )
    assert conf["result_expires"] == 7200 and conf["worker_max_memory_per_child"] is None


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
