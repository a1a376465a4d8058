"""Real parts for tests: a redis-server on a free port, Celery worker processes, the CLI."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import pytest
import redis

from homeshots.ops.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    diagnostics: Callable[[], str] = lambda: "",
    poll: float = 0.1,
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` (and the diagnostics) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{diagnostics()}"
        time.sleep(poll)


class RedisServer:
    """A private redis-server the test can stop, kill and restart (AOF optional)."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.dir = directory
        self.port = free_port()
        self.appendonly = appendonly
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make setup`")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.5).ping():
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def redis_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A private redis-server; tests marked ``redis_aof`` get one that keeps an append-only file."""
    server = RedisServer(tmp_path / "redis", appendonly=request.node.get_closest_marker("redis_aof") is not None)
    server.start()
    yield server
    server.stop()


@dataclass
class Cluster:
    """Env for the CLI and the worker processes started with it."""

    env: dict[str, str]
    store_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: Path | None = None
    cli_netns: str | None = None
    """The network namespace the CLI runs in (``ip netns exec``), when the services live in one."""

    def start_worker(
        self,
        concurrency: int = 2,
        name: str = "w1",
        queues: list[str] | None = None,
        *,
        netns: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """A real worker (main process + prefork children) in its own process group, so a test
        can SIGKILL the whole worker at once with ``os.killpg``; ``queues`` as ``-Q`` (default: all);
        ``netns``: on that namespace's host."""
        assert self.logs is not None
        log = (self.logs / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [
                *_in_netns(netns),
                sys.executable,
                "-m",
                "celery",
                "-A",
                "celery_app",
                "worker",
                "--loglevel=INFO",
                "-P",
                "prefork",
                f"--concurrency={concurrency}",
                "--without-gossip",
                "--without-mingle",
                f"--hostname={name}@%h",
                *(["-Q", ",".join(queues)] if queues else []),
            ],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        self.workers.append(proc)
        return proc

    def cli(
        self, *args: str, timeout: float = 180, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_in_netns(self.cli_netns), sys.executable, "-m", "homeshots", *args],
            env=env or self.env,
            cwd=cwd or ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def stop(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.workers:  # children of a worker killed with SIGKILL may linger
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if proc.poll() is not None:
                    os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def worker_log(self) -> str:
        assert self.logs is not None
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.logs.glob("*.log")))


def _in_netns(netns: str | None) -> list[str]:
    return ["ip", "netns", "exec", netns] if netns else []


def base_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOMESHOTS_", "AWS_"))}
    env.update(
        {
            "HOMESHOTS_STORE_URL": f"file://{tmp_path / 'store'}",
            "HOMESHOTS_EMBEDDED_DIR": str(tmp_path / "embedded"),
            "HOMESHOTS_WINDOW_SIZE": "3",
            "HOMESHOTS_MLS_MAX_RETRIES": "1",
            "HOMESHOTS_WINDOW_CALLBACK_MAX_WAITS": "30",
            "PYTHONPATH": str(ROOT),
            "COLUMNS": "200",
        }
    )
    return env


@pytest.fixture
def cluster_factory(tmp_path: Path, redis_server: RedisServer) -> Iterator:
    """Make a cluster (env + workers) against the test's Redis; everything is stopped afterwards."""
    made: list[Cluster] = []

    def make(extra: dict[str, str], *, workers: int = 1, concurrency: int = 2) -> Cluster:
        env = base_env(tmp_path) | {"HOMESHOTS_REDIS_URL": redis_server.url} | extra
        cluster = Cluster(env, tmp_path / "store", logs=tmp_path / "logs")
        cluster.logs.mkdir(exist_ok=True)  # type: ignore[union-attr]
        for i in range(workers):
            cluster.start_worker(concurrency, name=f"w{i + 1}-{len(made)}")
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop()


CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
"""Credentials moto's S3 server accepts (it checks none); workers need some to sign requests."""


@pytest.fixture
def s3_server() -> Iterator[tuple[str, object]]:
    """moto's S3 server on a free loopback port with bucket ``homeshots-test``: (endpoint, boto3 client)."""
    from moto.server import ThreadedMotoServer  # moto is heavy: only the S3 tests pay for its import

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="homeshots-test")
    yield endpoint, client
    server.stop()
