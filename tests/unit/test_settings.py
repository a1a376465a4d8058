"""Settings read from HOMESHOTS_* environment variables."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from homeshots.core.settings import Settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("HOMESHOTS_"):
            monkeypatch.delenv(name)


def test_csv_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMESHOTS_SOURCES", " zillow, mls, ")
    monkeypatch.setenv("HOMESHOTS_ALLOW_PRIVATE_HOSTS", "minio, 10.0.0.0/8 ,127.0.0.1")
    monkeypatch.setenv("HOMESHOTS_WINDOW_SIZE", "50")
    s = Settings()
    assert s.sources == ["zillow", "mls"]
    assert s.allow_private_hosts == ["minio", "10.0.0.0/8", "127.0.0.1"]
    assert s.window_size == 50


def test_defaults() -> None:
    s = Settings()
    assert s.sources == ["mls", "maricopa", "zillow", "redfin"]
    assert s.allow_private_hosts == []


def test_unknown_source_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMESHOTS_SOURCES", "mls,trulia")
    with pytest.raises(ValidationError, match="trulia"):
        Settings()


def test_secret_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMESHOTS_MLS_CLIENT_SECRET", "hunter2-secret")
    s = Settings()
    assert s.mls_client_secret.get_secret_value() == "hunter2-secret"
    assert "hunter2-secret" not in repr(s)
    assert "hunter2-secret" not in str(s.model_dump())


def test_broker_falls_back_to_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMESHOTS_REDIS_URL", "redis://r:6379/0")
    assert Settings().effective_broker_url == "redis://r:6379/0"
    monkeypatch.setenv("HOMESHOTS_BROKER_URL", "amqp://guest@mq//")
    assert Settings().effective_broker_url == "amqp://guest@mq//"


def test_policy_per_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOMESHOTS_ZILLOW_PROXY_URL", "http://proxy.internal:3128")
    monkeypatch.setenv("HOMESHOTS_ZILLOW_RATE", "0.25")
    monkeypatch.setenv("HOMESHOTS_REDFIN_USER_AGENT", "Mozilla/5.0 test")
    s = Settings()
    assert s.policy("zillow").proxy_url == "http://proxy.internal:3128"
    assert s.policy("zillow").rate == 0.25
    assert s.policy("redfin").user_agent == "Mozilla/5.0 test"
    assert s.policy("mls").proxy_url is None and s.policy("mls").user_agent == s.user_agent
