"""The embedded default: a private redis-server and local Celery workers, started and stopped here.

The Redis keeps an append-only file under the data folder, so ``status``, ``manifest`` and a
resumed backfill find the run again after it stopped, and a killed demo resumes where it was.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from homeshots.core.errors import ConfigError


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this child when the CLI that started it dies, even by SIGKILL.

    Redis then flushes its append-only file and workers shut down warm, so a killed demo leaves no
    orphans and the next run resumes from what was recorded.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """A redis-server on a free loopback port with AOF under ``data_dir/redis``; reused if running."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = (data_dir / "redis").resolve()
        self.info_file = self.dir / "embedded.json"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        running = self._running_port()
        if running:
            self.port = running
            return self.url
        binary = shutil.which("redis-server")
        if not binary:
            raise ConfigError(
                "redis-server is not on PATH: run `make setup` (it installs one), "
                "or set HOMESHOTS_REDIS_URL to a Redis you run"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--maxmemory-policy",
                "noeviction",
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + 30
        while not self._ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ConfigError(f"embedded redis-server did not start; see {self.dir / 'redis.log'}")
            time.sleep(0.05)
        self.info_file.write_text(json.dumps({"pid": self.proc.pid, "port": self.port}))
        return self.url

    def stop(self) -> None:
        """Shut down what we started (SHUTDOWN flushes the AOF); leave a reused one alone."""
        if self.proc is None:
            return
        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=self.port, socket_timeout=10).shutdown(nosave=True)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.info_file.unlink(missing_ok=True)
        self.proc = None

    def _running_port(self) -> int | None:
        try:
            info = json.loads(self.info_file.read_text())
            os.kill(int(info["pid"]), 0)
        except (OSError, ValueError, KeyError):
            return None
        return int(info["port"]) if self._ping(int(info["port"])) else None

    @staticmethod
    def _ping(port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1).ping())
        except redis.RedisError:
            return False


class EmbeddedWorkers:
    """``celery -A celery_app worker`` as a child process with one pool process per core."""

    def __init__(self, env: dict[str, str], log_file: Path, concurrency: int | None = None) -> None:
        self.env = env
        self.log_file = log_file
        self.concurrency = concurrency or os.cpu_count() or 1
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "celery_app",
                    "worker",
                    "--loglevel=INFO",
                    f"--concurrency={self.concurrency}",
                    "--pool=prefork",
                    "-E",
                    "--without-gossip",
                    "--without-mingle",
                    f"--hostname=embedded-{os.getpid()}@%h",
                ],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM lets running tasks finish), then SIGKILL after ``timeout``."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
