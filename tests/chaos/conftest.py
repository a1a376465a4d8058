"""Chaos tests: real workers, Redis and S3 servers that are killed, restarted and made to fail."""

from __future__ import annotations

import pytest

CHAOS_ENV = {
    # Short limits so a killed worker's unacknowledged tasks come back within the test's time.
    "HOMESHOTS_TASK_TIME_LIMIT": "45",
    "HOMESHOTS_TASK_SOFT_TIME_LIMIT": "40",
    "HOMESHOTS_VISIBILITY_TIMEOUT": "50",
    "HOMESHOTS_STALL_SECONDS": "20",
    "HOMESHOTS_WINDOW_CALLBACK_MAX_WAITS": "12",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/chaos/" in str(item.fspath):
            item.add_marker(pytest.mark.chaos)
            item.add_marker(pytest.mark.timeout(600))
