"""A throwaway private redis-server for benchmarks: free loopback port, temp dir, no persistence."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator

import redis

from homeshots.ops.embedded import free_port


class BenchmarkRedisError(RuntimeError):
    """redis-server is missing or did not start."""


@contextlib.contextmanager
def private_redis(start_timeout: float = 20.0) -> Iterator[redis.Redis]:
    """Start ``redis-server`` on 127.0.0.1 in a temp dir, yield a client (str replies), stop it after."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise BenchmarkRedisError("redis-server is not on PATH: run `make setup`")
    with tempfile.TemporaryDirectory(prefix="homeshots-bench-redis-") as tmp:
        port = free_port()
        proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                tmp,
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=600)
        client.server_pid = proc.pid  # type: ignore[attr-defined]  (benchmarks pin it to a core of its own)
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    if client.ping():
                        break
                except redis.ConnectionError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise BenchmarkRedisError(f"redis-server did not start on port {port}")
                time.sleep(0.05)
            yield client
        finally:
            client.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
