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
    """Local Celery workers as child processes: one image lane per core, fed across task boundaries.

    ``threads`` (the default): one ``celery worker -P threads`` process per core, each running
    ``task_threads`` tasks (a property at one source each) at once that share the process's one image
    lane and byte budget, so while one task waits (its listing query, its first download, recording
    it) the other's photos keep the core busy, and memory stays bounded by bytes per process. The
    threads pool enforces no hard time limit: each task's own deadline (soft limit - 45 s) still ends
    stuck downloads, not a decode that never returns. ``prefork``: one ``--pool=prefork`` command with
    ``concurrency`` children (Celery's default), which kills a child past the hard limit but leaves a
    core idle at every task boundary (``benchmarks/RESULTS.md``, "Side by side").
    """

    def __init__(
        self,
        env: dict[str, str],
        log_file: Path,
        concurrency: int | None = None,
        pool: str = "threads",
        task_threads: int = 2,
    ) -> None:
        if pool not in ("threads", "prefork"):
            raise ConfigError(f"embedded worker pool must be 'threads' or 'prefork', not {pool!r}")
        self.env = env
        self.log_file = log_file
        self.concurrency = concurrency or os.cpu_count() or 1
        self.pool = pool
        self.task_threads = max(1, task_threads)
        self.procs: list[subprocess.Popen[bytes]] = []

    def commands(self) -> list[list[str]]:
        """The worker commands: one per core with threads, one with ``concurrency`` children with prefork."""
        base = [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--loglevel=INFO", "-E"]
        base += ["--without-gossip", "--without-mingle"]
        name = f"--hostname=embedded-{os.getpid()}"
        if self.pool == "prefork":
            return [[*base, f"--concurrency={self.concurrency}", "--pool=prefork", f"{name}@%h"]]
        threads = [*base, f"--concurrency={self.task_threads}", "--pool=threads"]
        return [[*threads, f"{name}-{i}@%h"] for i in range(self.concurrency)]

    def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            for command in self.commands():
                self.procs.append(
                    subprocess.Popen(
                        command,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        preexec_fn=_die_with_parent,
                    )
                )

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The first worker process (the only one with prefork)."""
        return self.procs[0] if self.procs else None

    def alive(self) -> bool:
        """Every worker process still runs (one that died means lost capacity and, maybe, a crash to see)."""
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def stop(self, timeout: float = 60) -> None:
        """Warm shutdown (SIGTERM lets running tasks finish), then SIGKILL after ``timeout``."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []
