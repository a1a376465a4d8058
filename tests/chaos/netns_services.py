"""The services host of a namespace lab: Redis, the S3 server and the sources' sandbox, each a process.

They listen on the services namespace's address only (``Lab.services.address``), on fixed ports:
the namespace is a fresh host of its own, nothing else listens there. Redis is pluggable (one node
with an append-only file, or a real 3-master Redis Cluster plus a plain Redis for the broker), so
the same scenario runs on both; ``restart_one`` restarts one node the way an operator would.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Protocol

import boto3
import redis
from homeshots_sandbox.redis_servers import LocalRedisCluster, RedisNode

from managers.connection import connect
from tests.chaos.catalog_server import build
from tests.chaos.netns import Lab
from tests.conftest import CREDS, ROOT

REDIS_PORT, BROKER_PORT, CLUSTER_PORTS = 6390, 6391, (7001, 7002, 7003)
S3_PORT, SANDBOX_PORT = 9000, 8765
BUCKET, PREFIX = "homeshots-test", "run/"


class StateRedis(Protocol):
    """Where homeshots keeps its state, as the scenario sees it."""

    kind: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def env(self) -> dict[str, str]: ...

    def client(self) -> Any:
        """A client of the state (call it inside the services namespace: ``Lab.call``)."""

    def restart_one(self, down_for: float) -> str:
        """Stop one node cleanly (its append-only file flushed) and start it again; says which."""


class SingleRedis:
    """One redis-server with an append-only file: state, broker and results together (the default)."""

    kind = "single"

    def __init__(self, lab: Lab, directory: Path) -> None:
        self.node = RedisNode(
            directory / "redis", host=lab.services.address, port=REDIS_PORT, appendonly=True, netns=lab.services.netns
        )

    def start(self) -> None:
        self.node.start()

    def stop(self) -> None:
        self.node.stop()

    def env(self) -> dict[str, str]:
        return {"HOMESHOTS_REDIS_URL": self.node.url}

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.node.host, port=self.node.port, decode_responses=True, socket_timeout=10)

    def restart_one(self, down_for: float) -> str:
        self.node.restart(down_for=down_for)
        return f"redis {self.node.host}:{self.node.port}"


class ClusterRedis:
    """State on a 3-master Redis Cluster (AOF on every node); broker and results on a plain Redis."""

    kind = "cluster"

    def __init__(self, lab: Lab, directory: Path) -> None:
        self.cluster = LocalRedisCluster(
            directory / "cluster", host=lab.services.address, appendonly=True, netns=lab.services.netns
        )
        for node, port in zip(self.cluster.nodes, CLUSTER_PORTS, strict=True):
            node.port = port
        self.broker = RedisNode(
            directory / "broker", host=lab.services.address, port=BROKER_PORT, appendonly=True, netns=lab.services.netns
        )

    def start(self) -> None:
        self.broker.start()
        self.cluster.start()

    def stop(self) -> None:
        self.cluster.stop()
        self.broker.stop()

    def env(self) -> dict[str, str]:
        return {
            "HOMESHOTS_REDIS_URL": self.cluster.url,
            "HOMESHOTS_REDIS_CLUSTER": "true",
            "HOMESHOTS_BROKER_URL": self.broker.url,
        }

    def client(self) -> Any:
        return connect(self.cluster.url, cluster=True)

    def restart_one(self, down_for: float) -> str:
        node = self.cluster.nodes[1]
        self.cluster.restart(1, down_for=down_for)
        return f"cluster node {node.host}:{node.port}"


REDIS_KINDS: dict[str, type[SingleRedis] | type[ClusterRedis]] = {"single": SingleRedis, "cluster": ClusterRedis}


class Services:
    """Redis, moto's S3 server and the sandbox serving the test catalog, all on the services host."""

    def __init__(
        self, lab: Lab, directory: Path, redis_kind: str, *, properties: int, photos_each: int, latency: float
    ) -> None:
        self.lab = lab
        self.logs = directory / "logs"
        self.redis: StateRedis = REDIS_KINDS[redis_kind](lab, directory)
        self.catalog = (properties, photos_each, latency)
        self.host = lab.services.address
        self.sandbox = build(properties, photos_each, latency, host=self.host, port=SANDBOX_PORT)
        """Not started here: what the sandbox process serves, to compute its env and the expected counts."""

    @property
    def s3_endpoint(self) -> str:
        return f"http://{self.host}:{S3_PORT}"

    def start(self) -> Services:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        properties, photos_each, latency = self.catalog
        self._spawn("svc-s3", [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(S3_PORT)], env)
        sandbox = [sys.executable, "-m", "tests.chaos.catalog_server", "--properties", str(properties),
                   "--photos-each", str(photos_each), "--latency", str(latency), "--host", self.host,
                   "--port", str(SANDBOX_PORT)]  # fmt: skip
        self._spawn("svc-sandbox", sandbox, env)
        for port in (S3_PORT, SANDBOX_PORT):
            self.lab.call(_wait_listening, self.host, port, 60.0)
        self.lab.call(lambda: self.s3().create_bucket(Bucket=BUCKET))
        return self

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.lab.popen(self.lab.services, args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.redis.stop()  # the lab kills whatever else still runs when it is destroyed

    def env(self) -> dict[str, str]:
        """What workers and the CLI need: state, store, sources, and the private subnet allowed."""
        return (
            self.redis.env()
            | CREDS
            | self.sandbox.env()
            | {
                "HOMESHOTS_STORE_URL": f"s3://{BUCKET}/{PREFIX.rstrip('/')}",
                "HOMESHOTS_S3_ENDPOINT_URL": self.s3_endpoint,
                "HOMESHOTS_ALLOW_PRIVATE_HOSTS": self.lab.subnet,
            }
        )

    def s3(self) -> Any:
        """A boto3 S3 client of the store (use it inside the services namespace: ``Lab.call``)."""
        return boto3.client("s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip


def _wait_listening(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
