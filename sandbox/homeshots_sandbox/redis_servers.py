"""Private redis-servers for tests, benchmarks and the demo: one node, or a real Redis Cluster.

Every server listens on a free port of the given host (127.0.0.1 by default), keeps its files in a
folder of the caller's, and can be stopped, killed and restarted on the same port: what the chaos
tests do to a node. A cluster is made the way operators make one: ``--cluster-enabled yes`` nodes
joined by ``redis-cli --cluster create``. Given ``netns``, nodes (and the ``redis-cli`` that checks
and joins them) run inside that network namespace, on an address that exists only there.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis


class RedisServerError(RuntimeError):
    """redis-server is missing, or a node did not come up."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (and, for a cluster node, whose bus port +10000 is free too)."""
    for _ in range(200):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind((host, port + 10000))
            except OSError:
                continue
        return port
    raise RedisServerError("no free port pair for a redis node")


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RedisServerError(f"{name} is not on PATH: run `make setup`")
    return path


class RedisNode:
    """One redis-server process; ``cluster=True`` makes it a cluster node (not yet joined)."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        cluster: bool = False,
        appendonly: bool = False,
        maxmemory: str | None = None,
        netns: str | None = None,
    ) -> None:
        self.dir = directory
        self.host = host
        self.port = port or free_port(host if netns is None else "127.0.0.1")
        self.cluster = cluster
        self.appendonly = appendonly
        self.maxmemory = maxmemory
        self.netns = netns
        """Run inside this network namespace (``ip netns exec``): the node is then only reachable there."""
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        args = [
            _binary("redis-server"),
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--maxmemory-policy", "noeviction",
        ]  # fmt: skip
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory]
        if self.cluster:
            args += [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "3000",
            ]
        if self.netns:
            # Its address exists only inside the namespace, so clients there may connect without a password.
            args = ["ip", "netns", "exec", self.netns, *args, "--protected-mode", "no"]
        return args

    def start(self, timeout: float = 20.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.wait_ready(timeout)

    def cli(self, *args: str, timeout: float = 10.0) -> str:
        """``redis-cli`` against this node, from inside its namespace when it has one (the caller may be
        outside it): what readiness checks and cluster set-up use."""
        command = [_binary("redis-cli"), "-h", self.host, "-p", str(self.port), *args]
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return proc.stdout if proc.returncode == 0 else ""

    def wait_ready(self, timeout: float = 20.0) -> None:
        if self.netns:
            self._wait(lambda: self.cli("PING").strip() == "PONG", timeout)
            return
        client = redis.Redis(host=self.host, port=self.port, socket_connect_timeout=0.5, socket_timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if (self.proc is not None and self.proc.poll() is not None) or time.monotonic() > deadline:
                    raise RedisServerError(f"redis-server did not start on {self.host}:{self.port}")
                time.sleep(0.05)
        finally:
            client.close()

    def _wait(self, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            if (self.proc is not None and self.proc.poll() is not None) or time.monotonic() > deadline:
                raise RedisServerError(f"redis-server did not start on {self.host}:{self.port} in {self.netns}")
            time.sleep(0.05)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a clean shutdown, AOF flushed) or SIGKILL (a crash)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self, *, kill: bool = False, down_for: float = 0.0) -> None:
        self.stop(kill=kill)
        time.sleep(down_for)
        self.start()

    def client(self) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, decode_responses=True)


class LocalRedisCluster:
    """A Redis Cluster of ``masters`` nodes (no replicas) on one host, made by ``redis-cli --cluster create``."""

    def __init__(
        self,
        directory: Path,
        *,
        masters: int = 3,
        host: str = "127.0.0.1",
        appendonly: bool = False,
        netns: str | None = None,
    ):
        if masters < 3:
            raise RedisServerError("redis-cli --cluster create needs at least 3 masters")
        self.nodes = [
            RedisNode(directory / f"node{i}", host=host, cluster=True, appendonly=appendonly, netns=netns)
            for i in range(masters)
        ]
        self.netns = netns
        """Every node runs inside this network namespace, and so do ``redis-cli`` and the health checks."""

    @property
    def url(self) -> str:
        """Any node names the cluster (``HOMESHOTS_REDIS_URL`` with ``HOMESHOTS_REDIS_CLUSTER=true``)."""
        return self.nodes[0].url

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        command = [
            _binary("redis-cli"),
            "--cluster", "create",
            *(f"{n.host}:{n.port}" for n in self.nodes),
            "--cluster-replicas", "0",
            "--cluster-yes",
        ]  # fmt: skip
        if self.netns:
            command = ["ip", "netns", "exec", self.netns, *command]
        subprocess.run(
            command,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
        )  # fmt: skip
        self.wait_ok(timeout)

    def wait_ok(self, timeout: float = 60.0) -> None:
        """Until every node says ``cluster_state:ok`` (after a create or a node restart)."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                states.append("cluster_state:ok" in self._cluster_info(node))
            if all(states):
                return
            if time.monotonic() > deadline:
                raise RedisServerError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.1)

    def _cluster_info(self, node: RedisNode) -> str:
        if node.netns:
            return node.cli("CLUSTER", "INFO")
        try:
            info = node.client().execute_command("CLUSTER", "INFO")
        except redis.RedisError:
            return ""
        return info if isinstance(info, str) else info.decode()

    def restart(self, index: int, *, kill: bool = False, down_for: float = 0.0) -> None:
        """Stop node ``index`` and start it again on the same port with its ``nodes.conf`` (it rejoins)."""
        self.nodes[index].restart(kill=kill, down_for=down_for)
        self.wait_ok()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
