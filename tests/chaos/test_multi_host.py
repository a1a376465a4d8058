"""A backfill across worker hosts on a network survives a cut cable, a lost host and a Redis restart.

Each worker host is a network namespace running ``celery -A celery_app worker``; Redis, the S3 server
and the sandbox run on a services host, all joined by a bridge (``tests/chaos/netns.py``). The run is
submitted with ``--no-wait``, the nightly CronJob's way: no CLI watches it, the cluster must finish it
by itself. Mid-run one host's cable is pulled for 30 s, one Redis node restarts (append-only file), and
another host is SIGKILLed whole; the faults come apart, or with Redis restarting just as the cut host
returns. Then every property ends completed or failed with a reason, nothing is stored twice and the
counts are exact. The outcome and what each fault cost are printed (``-s``).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

import pytest
import redis

from homeshots.core.settings import Settings
from managers import keys
from managers.state_manager import StateManager
from tests.chaos.conftest import CHAOS_ENV
from tests.chaos.invariants import assert_every_property_accounted, s3_processed
from tests.chaos.netns import Lab, skip_unless_available
from tests.chaos.netns_services import BUCKET, PREFIX, Services
from tests.chaos.timeline import Timeline
from tests.conftest import Cluster, base_env, wait_until
from tests.integration.helpers import status_json, write_csv

PROPERTIES, PHOTOS_EACH, LATENCY = 400, 2, 1.0
"""A photo takes ``LATENCY`` seconds to serve: the run lasts long enough for the faults at little CPU."""
HOSTS, CONCURRENCY = 3, 2
CUT_SECONDS, REDIS_DOWN_SECONDS = 30.0, 3.0
SETTLE_SECONDS = 10.0
"""At least this long between the end of one fault and the next, so each one's cost is its own."""
RUN = "netns-chaos"
_KINDS = os.environ.get("HOMESHOTS_CHAOS_REDIS")
CASES = (
    [(kind, overlap) for kind in _KINDS.split(",") for overlap in (False, True)]
    if _KINDS
    else [("single", False), ("single", True), ("cluster", False)]
)
"""(Redis, faults overlapping): ``single`` is one node (the default deployment), ``cluster`` the state on a
3-master Redis Cluster in the services namespace (a cluster node is what restarts). ``HOMESHOTS_CHAOS_REDIS``
(e.g. ``cluster``) runs both schedules on the kinds it names."""
LIMITS = {} if os.environ.get("HOMESHOTS_CHAOS_LIMITS") == "default" else CHAOS_ENV
"""Short task limits (the broker redelivers a lost task within a minute), or with ``HOMESHOTS_CHAOS_LIMITS=default``
the production ones: what a lost host costs a ``--no-wait`` run there (the broker alone takes 21 minutes)."""
_HARD = int(LIMITS.get("HOMESHOTS_TASK_TIME_LIMIT", Settings.model_fields["task_time_limit"].default))
VISIBILITY = int(LIMITS.get("HOMESHOTS_VISIBILITY_TIMEOUT", 2 * _HARD + 60))
FINISH_TIMEOUT = 2 * VISIBILITY + 300
"""How long the run may take to finish by itself after the last fault: twice the broker's redelivery, and more."""
LOST_HOST_GOAL = 180.0
"""The most a lost host may delay a ``--no-wait`` run: the workers left re-send its work (issue 13), whatever
the broker's visibility timeout."""


class Watch:
    """Reads the run's progress from the services host and records it on the timeline."""

    def __init__(self, lab: Lab, services: Services, timeline: Timeline, cluster: Cluster) -> None:
        self.lab, self.timeline, self.cluster = lab, timeline, cluster
        self.client = lab.call(services.redis.client)
        self.run = keys.RunKeys(RUN)
        self.last = 0

    def done(self) -> int:
        """Properties completed or failed; during a Redis restart, the last count read."""

        def read() -> int:
            summary = StateManager(self.client, RUN).summary()
            return summary.completed + summary.failed

        with contextlib.suppress(redis.RedisError):
            self.last = self.timeline.sample(self.lab.call(read))
        return self.last

    def finished(self) -> bool:
        self.done()
        try:
            return self.lab.call(self.client.hget, self.run.meta, "status") == "finished"
        except redis.RedisError:
            return False

    def until_done(self, share: float) -> None:
        """Until ``share`` of the properties are done (a lost callback may hold the run a visibility timeout)."""
        target = int(PROPERTIES * share)
        wait_until(lambda: self.done() >= target, timeout=FINISH_TIMEOUT, what=f"{target} properties done",
                   diagnostics=self.diagnostics, poll=0.25)  # fmt: skip

    def hold(self, seconds: float) -> None:
        """Keep sampling for ``seconds`` (while a fault lasts)."""
        end = self.timeline.now() + seconds
        while self.timeline.now() < end:
            self.done()
            time.sleep(0.25)

    def diagnostics(self) -> str:
        """The run's status (if Redis answers) and the tail of every host's and service's log."""
        try:
            status = self.cluster.cli("status", RUN, timeout=60)
            said = status.stdout + status.stderr
        except subprocess.TimeoutExpired:
            said = "homeshots status did not answer in 60 s"
        return f"{said}\n{self.cluster.worker_log()}"


@pytest.mark.timeout(FINISH_TIMEOUT + 600)
@pytest.mark.parametrize(
    ("redis_kind", "overlap"),
    CASES,
    ids=[f"{kind}-{'redis-restarts-as-host-returns' if overlap else 'faults-apart'}" for kind, overlap in CASES],
)
def test_run_across_hosts_survives_cut_kill_and_redis_restart(tmp_path, redis_kind, overlap, record_property):
    """``faults-apart``: each fault alone (10 s between), so each one's cost is its own.
    ``redis-restarts-as-host-returns``: Redis restarts the moment the cut host is back, while that host's
    stalled tasks finish and acknowledge: acknowledgements are lost and tasks run a second time."""
    skip_unless_available()
    with Lab(HOSTS) as lab:
        services = Services(lab, tmp_path, redis_kind, properties=PROPERTIES, photos_each=PHOTOS_EACH, latency=LATENCY)
        try:
            services.start()
            summary = _scenario(lab, services, tmp_path, overlap)
        finally:
            services.stop()
    record_property("outcome", "\n".join(summary))
    print("\n".join([f"multi-host chaos run ({redis_kind} Redis, {'overlapping' if overlap else 'apart'}):", *summary]))


def _scenario(lab: Lab, services: Services, tmp_path, overlap: bool) -> list[str]:
    props = write_csv(tmp_path / "props.csv", services.sandbox.listings)
    env = base_env(tmp_path) | LIMITS | services.env() | {"HOMESHOTS_WINDOW_SIZE": str(PROPERTIES // 10)}
    cluster = Cluster(env, tmp_path / "store", logs=tmp_path / "logs", cli_netns=lab.services.netns)
    for i, host in enumerate(lab.hosts, start=1):
        host.procs.append(cluster.start_worker(CONCURRENCY, name=f"host{i}", netns=host.netns))

    timeline = Timeline(PROPERTIES)
    try:
        return _run(lab, services, cluster, props, timeline, overlap)
    except BaseException:
        print("\n".join(["", "timeline of the failed run:", *timeline.summary()]))
        print(f"run records kept in {_keep_records(cluster, tmp_path / 'records')}")
        raise


def _run(lab: Lab, services: Services, cluster: Cluster, props, timeline: Timeline, overlap: bool) -> list[str]:
    cut, killed = lab.hosts[0], lab.hosts[1]
    watch = Watch(lab, services, timeline, cluster)
    submitted = cluster.cli("backfill", str(props), "--run-id", RUN, "--no-wait", timeout=120)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr

    watch.until_done(0.15)
    mark = timeline.mark(f"host1 cut off for {CUT_SECONDS:.0f}s")
    lab.cut(cut)
    watch.hold(CUT_SECONDS)
    lab.reconnect(cut)
    mark.recovered = timeline.now()

    if not overlap:
        watch.hold(SETTLE_SECONDS)
        watch.until_done(0.40)
    mark = timeline.mark("Redis node restarted")
    what = services.redis.restart_one(down_for=REDIS_DOWN_SECONDS)
    mark.recovered = timeline.now()
    mark.name += f" ({what}, down {REDIS_DOWN_SECONDS:.0f}s)"

    watch.hold(SETTLE_SECONDS)
    watch.until_done(0.60)
    assert not watch.finished(), "the run ended before the last fault: make it longer (PROPERTIES, LATENCY)"
    mark = timeline.mark("host2 SIGKILLed")
    processes = lab.kill(killed)
    mark.name += f" ({processes} processes)"

    killed_at = time.monotonic()
    finish = "the run to finish by itself"
    wait_until(watch.finished, timeout=FINISH_TIMEOUT, what=finish, diagnostics=watch.diagnostics, poll=0.5)
    after_kill = time.monotonic() - killed_at
    timeline.finish()

    report = status_json(cluster, RUN)
    result = lab.call(
        assert_every_property_accounted,
        cluster,
        RUN,
        watch.client,
        listings=services.sandbox.listings,
        processed_objects=s3_processed(services.s3(), BUCKET, PREFIX),
    )
    kinds = sorted({r.get("kind", "?") for r in report["failed_properties"].values()})
    assert after_kill <= LOST_HOST_GOAL, f"the run finished {after_kill:.0f} s after host2 was lost"
    return [
        f"{result['properties_completed']} properties completed, {result['properties_failed']} failed {kinds}; "
        f"{result['total_images']} photos found, {result['unique_images']} images stored once each, "
        f"{result['duplicate_images']} duplicates, {result['failed_downloads']} failed downloads",
        f"task hard limit {_HARD}s, visibility timeout {VISIBILITY}s; finished {after_kill:.0f}s after host2 was lost",
        *timeline.summary(),
    ]


def _keep_records(cluster: Cluster, folder: Path) -> Path:
    """The run's status, manifest and failures as files, for a failure's post-mortem (the hosts are gone)."""
    folder.mkdir(exist_ok=True)
    for name, args in {"status.json": ["status", RUN, "--json"], "manifest.jsonl": ["manifest", RUN],
                       "failures.jsonl": ["manifest", RUN, "--failures"]}.items():  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc = cluster.cli(*args, timeout=60)
            (folder / name).write_text(proc.stdout + proc.stderr)
    return folder
