"""Hosts made of network namespaces, for chaos runs across machines on one box.

A "services" namespace holds a Linux bridge (``br0``, the switch) and the services' address; each
worker host is a namespace wired to that bridge by a veth pair (``eth0`` inside the host, ``sw-<n>``
on the bridge). Everything — bridge, addresses, routes — lives inside namespaces this module creates
and removes, so the machine's own interfaces, routes and firewall are never touched. Namespace names
carry the creating process's pid (``hsnet<pid>-svc``, ``hsnet<pid>-h1``...) so runs never collide,
and a run removes what an earlier, crashed run of this module left behind (its pid no longer alive).

The test process itself stays in the machine's namespace: ``Lab.call`` runs a function on a thread
that has entered the services namespace (sockets and subprocesses it opens live there), and
``Lab.popen`` starts a process inside any namespace (``ip netns exec``) in its own process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

PREFIX = "hsnet"
SUBNET = ipaddress.ip_network("10.213.0.0/24")
"""Private; it exists only inside this module's namespaces (each run has its own, so runs never clash)."""
NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
T = TypeVar("T")


class NetnsError(RuntimeError):
    """An ``ip`` command failed while building or changing the namespaces."""


@functools.cache
def unavailable() -> str | None:
    """Why namespaces cannot be made here (not root, no ``ip``, a container without the right), or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI's chaos stage runs as root)"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed: `make test-chaos` installs it"
    probe = f"{PREFIX}{os.getpid()}-probe"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    if made.returncode != 0:
        return f"`ip netns add` is not allowed here: {made.stderr.strip()}"
    return None


def skip_unless_available() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


def ip(*args: str) -> str:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


@dataclass
class Host:
    """One machine: a namespace, its address on the bridge, and the processes started on it."""

    netns: str
    address: str
    switch_port: str | None = None
    """The veth end on the bridge (in the services namespace); None for the services host itself."""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _pids(netns: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split()] if proc.returncode == 0 else []


def _remove_namespace(netns: str) -> None:
    """Kill what still runs inside (only processes started in it by this module) and delete it."""
    for pid in _pids(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def remove_leftovers(prefix: str = PREFIX) -> list[str]:
    """Namespaces of earlier runs of this module whose process is gone (a crash, a kill -9)."""
    removed = []
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        name = line.split()[0] if line.split() else ""
        match = re.fullmatch(rf"{re.escape(prefix)}(\d+)-\w+", name)
        if match is None or _alive(int(match.group(1))):
            continue
        _remove_namespace(name)
        removed.append(name)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _enter(netns: str) -> None:
    """Move the calling thread into ``netns`` (``setns(2)``; Python 3.11 has no ``os.setns``)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(NETNS_DIR / netns, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {netns}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class Lab:
    """A services namespace with the bridge and ``hosts`` worker-host namespaces wired to it."""

    def __init__(self, hosts: int, *, prefix: str = PREFIX) -> None:
        self.tag = f"{prefix}{os.getpid()}"
        addresses = list(SUBNET.hosts())
        self.services = Host(f"{self.tag}-svc", str(addresses[0]))
        self.hosts = [
            Host(f"{self.tag}-h{i + 1}", str(addresses[9 + i]), switch_port=f"sw-{i + 1}") for i in range(hosts)
        ]
        self._thread: ThreadPoolExecutor | None = None
        self.prefix = prefix

    @property
    def subnet(self) -> str:
        return str(SUBNET)

    # --- lifecycle -------------------------------------------------------------------------------
    def create(self) -> Lab:
        remove_leftovers(self.prefix)
        svc = self.services.netns
        try:
            ip("netns", "add", svc)
            ip("-n", svc, "link", "set", "lo", "up")
            ip("-n", svc, "link", "add", "br0", "type", "bridge")
            ip("-n", svc, "addr", "add", f"{self.services.address}/{SUBNET.prefixlen}", "dev", "br0")
            ip("-n", svc, "link", "set", "br0", "up")
            for host in self.hosts:
                assert host.switch_port is not None
                ip("netns", "add", host.netns)
                ip("-n", host.netns, "link", "set", "lo", "up")
                # Made inside the services namespace, the peer moved straight into the host's: the
                # pair never exists in the machine's own namespace.
                ip("-n", svc, "link", "add", host.switch_port, "type", "veth", "peer", "name", "eth0",
                   "netns", host.netns)  # fmt: skip
                ip("-n", svc, "link", "set", host.switch_port, "master", "br0")
                ip("-n", svc, "link", "set", host.switch_port, "up")
                ip("-n", host.netns, "addr", "add", f"{host.address}/{SUBNET.prefixlen}", "dev", "eth0")
                ip("-n", host.netns, "link", "set", "eth0", "up")
            self._thread = ThreadPoolExecutor(1, thread_name_prefix=svc, initializer=_enter, initargs=(svc,))
        except BaseException:
            self.destroy()
            raise
        return self

    def destroy(self) -> None:
        """Stop every process started in the namespaces, then remove them (safe to call twice)."""
        for host in [*self.hosts, self.services]:
            for proc in host.procs:
                _kill_group(proc)
        if self._thread is not None:
            self._thread.shutdown(wait=True)  # the thread holds a reference to the services namespace
            self._thread = None
        for host in [*self.hosts, self.services]:
            if (NETNS_DIR / host.netns).exists():
                _remove_namespace(host.netns)
        for host in [*self.hosts, self.services]:
            for proc in host.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)

    def __enter__(self) -> Lab:
        return self.create()

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # --- running things --------------------------------------------------------------------------
    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args)`` on a thread inside the services namespace: what the test reads from Redis or S3."""
        assert self._thread is not None, "the lab is not created"
        return self._thread.submit(fn, *args, **kwargs).result()

    def popen(self, host: Host, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``args`` on ``host`` in a new process group (so the whole of it can be SIGKILLed)."""
        proc = subprocess.Popen(["ip", "netns", "exec", host.netns, *args], start_new_session=True, **kwargs)
        host.procs.append(proc)
        return proc

    # --- faults ------------------------------------------------------------------------------------
    def cut(self, host: Host) -> None:
        """Pull the host's cable at the switch: its packets are dropped, its connections hang (no RST)."""
        assert host.switch_port is not None
        ip("-n", self.services.netns, "link", "set", host.switch_port, "down")

    def reconnect(self, host: Host) -> None:
        assert host.switch_port is not None
        ip("-n", self.services.netns, "link", "set", host.switch_port, "up")

    def kill(self, host: Host) -> int:
        """SIGKILL everything running on ``host``: each process group started there, then any stray
        process still inside its namespace. Returns how many processes were killed."""
        pids = set(_pids(host.netns))
        for proc in host.procs:
            _kill_group(proc)
        for pid in _pids(host.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _pids(host.netns) and time.monotonic() < deadline:
            time.sleep(0.05)
        for proc in host.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        return len(pids)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group ``proc`` leads. Only while ``proc`` is not reaped: until then its pid
    (the group id) cannot belong to anyone else; strays of a reaped leader are found by namespace."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
