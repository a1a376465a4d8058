"""The namespace lab itself: hosts reach the services host over the bridge, a cut cable isolates one host,
a killed host leaves no process, and nothing is left behind on the machine (namespaces, links, routes)."""

from __future__ import annotations

import subprocess
import sys

from homeshots_sandbox.redis_servers import LocalRedisCluster

from managers.connection import connect
from tests.chaos.netns import PREFIX, Host, Lab, ip, skip_unless_available
from tests.conftest import wait_until

PORT = 8080
SERVE = "import socket, time\ns = socket.create_server((%r, %d))\nwhile True:\n    s.accept()[0].close()"


def _reaches(host: Host, address: str, timeout: float = 1.0) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {PORT}), timeout={timeout}).close()"
    return subprocess.run(["ip", "netns", "exec", host.netns, sys.executable, "-c", probe],
                          capture_output=True, timeout=30).returncode == 0  # fmt: skip


def _namespaces() -> set[str]:
    return {line.split()[0] for line in ip("netns", "list").splitlines() if line.strip()}


def test_lab_wires_cuts_kills_and_leaves_nothing_behind():
    skip_unless_available()
    machine = _machine_network()
    with Lab(2) as lab:
        assert {lab.services.netns, *(h.netns for h in lab.hosts)} <= _namespaces()
        lab.popen(lab.services, [sys.executable, "-c", SERVE % (lab.services.address, PORT)])
        wait_until(lambda: all(_reaches(h, lab.services.address) for h in lab.hosts), timeout=20, what="both hosts")

        lab.cut(lab.hosts[0])
        assert not _reaches(lab.hosts[0], lab.services.address), "a cut host still reaches the services"
        assert _reaches(lab.hosts[1], lab.services.address), "cutting one host cut the other"
        lab.reconnect(lab.hosts[0])
        wait_until(lambda: _reaches(lab.hosts[0], lab.services.address), timeout=20, what="the host back")

        # The test process reaches the services host through ``call``, while staying on the machine's network.
        assert lab.call(_reaches, lab.hosts[1], lab.services.address)
        parent = lab.popen(lab.hosts[1], ["sh", "-c", "sleep 300 & sleep 300"])
        wait_until(lambda: len(_pids(lab.hosts[1])) >= 2, timeout=10, what="the host's processes")
        assert lab.kill(lab.hosts[1]) >= 2
        assert parent.poll() is not None and not _pids(lab.hosts[1]), "a process survived the host's SIGKILL"
        tag = lab.tag
    assert not {n for n in _namespaces() if n.startswith(tag + "-")}, "namespaces left behind"
    assert _machine_network() == machine, "the machine's own interfaces, addresses or routes changed"


def test_lab_removes_what_a_crashed_run_left_but_not_a_live_run():
    skip_unless_available()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid nobody has now: the "crashed" run's
    crashed, live = f"{PREFIX}{gone.pid}-svc", f"{PREFIX}1-h1"  # pid 1 is always alive
    ip("netns", "add", crashed)
    ip("netns", "add", live)
    try:
        with Lab(1):
            assert crashed not in _namespaces()
            assert live in _namespaces()
    finally:
        for name in (crashed, live):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_redis_cluster_inside_the_services_namespace(tmp_path):
    """A 3-master cluster made and restarted inside the services host (its data kept), reachable from a
    worker host and from the test through ``Lab.call``. (Nothing probes it from the machine's own network:
    that traffic would leave through the machine's default route.)"""
    skip_unless_available()
    with Lab(1) as lab:
        cluster = LocalRedisCluster(tmp_path, host=lab.services.address, appendonly=True, netns=lab.services.netns)
        try:
            cluster.start()
            client = lab.call(connect, cluster.url, cluster=True)
            lab.call(lambda: [client.set(f"k{i}", i) for i in range(30)])
            cluster.restart(1, down_for=1.0)
            assert lab.call(lambda: [int(client.get(f"k{i}")) for i in range(30)]) == list(range(30))
            node = cluster.nodes[0]
            probe = ["redis-cli", "-h", node.host, "-p", str(node.port), "PING"]
            seen = subprocess.run(["ip", "netns", "exec", lab.hosts[0].netns, *probe], capture_output=True, text=True)
            assert seen.stdout.strip() == "PONG", "a worker host cannot reach the cluster"
        finally:
            cluster.stop()


def _pids(host: Host) -> list[str]:
    return ip("netns", "pids", host.netns).split()


def _machine_network() -> tuple[str, str, str]:
    """The machine's interfaces, addresses and routes (brief forms: no ticking address lifetimes)."""
    return ip("-br", "link"), ip("-br", "addr"), ip("route", "show")
