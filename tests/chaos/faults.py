"""Faults as operations, the way Celery's smoke tests do it: each one is injected mid-run and recovered.

A scenario runs a backfill over real processes, waits until part of it is done (``tests.conftest.wait_until``,
the one wait loop of the tests), injects one fault, recovers, lets the run finish, and then checks
the one shared invariant (``invariants.assert_nothing_lost_nothing_twice``).
"""

from __future__ import annotations

import enum
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

import redis

from celery_app.app import app
from tests.conftest import Cluster, RedisServer, wait_until


@dataclass
class Scene:
    """What a fault acts on: the test's cluster, Redis and (when the scenario has them) the sandbox and S3."""

    cluster: Cluster
    redis_server: RedisServer
    worker: subprocess.Popen[bytes] | None = None
    worker_name: str = ""
    sandbox: object | None = None
    s3_proxy: object | None = None
    restarts: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def client(self) -> redis.Redis:
        return self.redis_server.client()

    def start_worker(self) -> None:
        self.restarts += 1
        self.worker_name = f"victim-{self.restarts}"
        self.worker = self.cluster.start_worker(concurrency=2, name=self.worker_name)


class Fault(Protocol):
    """One way things go wrong: ``inject`` it mid-run, ``recover`` so the run can finish."""

    name: str

    def inject(self, scene: Scene) -> None: ...

    def recover(self, scene: Scene) -> None: ...


class WorkerKill(enum.Enum):
    """A worker host lost three ways: SIGKILL of the whole process group (tasks die mid-way), SIGTERM
    (Celery's warm shutdown lets running tasks finish) and a remote ``control shutdown``."""

    SIGKILL = "sigkill"
    SIGTERM = "sigterm"
    CONTROL_SHUTDOWN = "control_shutdown"

    def inject(self, scene: Scene) -> None:
        worker = scene.worker
        assert worker is not None, "the scenario starts a worker first"
        if self is WorkerKill.SIGKILL:
            os.killpg(worker.pid, signal.SIGKILL)  # the main process and its pool, mid-task
        elif self is WorkerKill.SIGTERM:
            worker.send_signal(signal.SIGTERM)
        else:
            app.conf.broker_url = scene.cluster.env["HOMESHOTS_REDIS_URL"]
            app.control.shutdown(destination=[f"{scene.worker_name}@{os.uname().nodename}"])
        worker.wait(timeout=120)

    def recover(self, scene: Scene) -> None:
        scene.start_worker()


@dataclass
class RedisRestart:
    """Redis stopped (SIGTERM: it fsyncs its append-only file) and started again on the same port."""

    down_seconds: float = 3.0
    name: str = "redis-restart"

    def inject(self, scene: Scene) -> None:
        scene.redis_server.stop()
        time.sleep(self.down_seconds)

    def recover(self, scene: Scene) -> None:
        scene.redis_server.start()


@dataclass
class StoreOutage:
    """The S3 server answers writes with 503, then holds some past the client's read timeout."""

    errors: int = 25
    stalls: int = 4
    stall_seconds: float = 5.0
    name: str = "store-outage"

    def inject(self, scene: Scene) -> None:
        proxy = scene.s3_proxy
        assert proxy is not None, "a store outage needs the S3 scenario"
        proxy.fail(self.errors)  # type: ignore[attr-defined]
        time.sleep(2.0)
        proxy.stall(self.stalls, self.stall_seconds)  # type: ignore[attr-defined]

    def recover(self, scene: Scene) -> None:
        proxy = scene.s3_proxy
        wait_until(
            lambda: proxy.failed == self.errors and proxy.stalled == self.stalls,  # type: ignore[attr-defined]
            timeout=120,
            what="the store outage to happen during the run",
        )


@dataclass
class SourceOutage:
    """The listing source and its photo CDN answer 503 for a while (more than the HTTP retries absorb)."""

    errors: int = 40
    name: str = "source-outage"

    def inject(self, scene: Scene) -> None:
        sandbox = scene.sandbox
        assert sandbox is not None
        for prefix in ("/reso/", "/photos/", "/cdn/"):  # the MLS API and wherever its photos are served from
            sandbox.fail(prefix, 503, times=self.errors)  # type: ignore[attr-defined]

    def recover(self, scene: Scene) -> None:
        sandbox = scene.sandbox
        wait_until(
            lambda: sandbox._failures[0].times == 0 and sandbox._failures[1].times == 0,  # type: ignore[attr-defined]
            timeout=120,
            what="the source outage to be used up",
        )
