"""The exporter's collector over hand-made runs in a real Redis: every family the dashboards and KEDA use."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from kombu import Queue
from prometheus_client.core import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from celery_app.app import CALLBACK_QUEUE, QUEUE, app, lane_queue
from homeshots.core.settings import SOURCES, Settings
from homeshots.ops.metrics import HomeshotsCollector, exporter_app, probe_client, queue_names
from managers import keys
from managers.lane_recorder import LaneRecord, LaneRecorder
from managers.run_manager import LaneChunks, RunManager
from managers.state_manager import LaneOutcome

NIGHT = {"hours": 8, "sources": {"zillow": {"budget": 14400, "visited": 3, "deferred": 2}}}


def _run(client, run_id: str, *, total: int, deferred: int, completed: int, failed: int, counters: dict) -> RunManager:
    runs = RunManager(client, run_id)
    generation = runs.start_submission(
        input_file="props.csv", sources=["mls", "zillow"], reset=True, extra={"night": NIGHT}
    )
    lanes = {"mls": LaneChunks(10, 1, 1), "zillow": LaneChunks(10, 1, 1)}
    runs.finish_submission(
        generation,
        total_properties=total,
        skipped=0,
        windows=1,
        lanes=lanes,
        in_flight=2,
        bad_rows=[],
        deferred=deferred,
    )
    recorder = LaneRecorder(client, run_id)
    for i in range(completed):
        for lane in lanes:
            stats = counters if (i, lane) == (0, "mls") else {}
            recorder.record(LaneRecord(f"p{i}", lane, list(lanes), LaneOutcome("completed"), [], [], stats))
    for i in range(failed):
        recorder.record(LaneRecord(f"f{i}", "mls", ["mls"], LaneOutcome("failed", {"kind": "source"}), [], [], {}))
    return runs


def _scrape(client, url: str, now: float | None = None) -> dict[str, dict[tuple, float]]:
    registry = CollectorRegistry()
    clock = (lambda: now) if now is not None else None
    collector = HomeshotsCollector(client, Settings(redis_url=url), **({"clock": clock} if clock else {}))
    registry.register(collector)
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_collector_serves_failures_blocks_deltas_remaining_and_redis_memory(redis_server) -> None:
    client = redis_server.client()
    client.config_set("maxmemory", "64mb")
    counters = {
        "src.mls.images_found": 5,
        "src.mls.images_stored": 4,
        "src.mls.photos_new": 4,
        "src.mls.photos_removed": 1,
        "fail.mls.image_timeout": 1,
        "fail.zillow.source_blocked": 2,
    }
    _run(client, "done", total=4, deferred=0, completed=4, failed=0, counters=counters)
    done = RunManager(client, "done")
    done.finalize(done.generation(), done.final_result_draft())
    _run(client, "busy", total=10, deferred=2, completed=3, failed=1, counters=counters)
    client.rpush(QUEUE, "a", "b", "c")
    later = datetime.now(UTC).timestamp() + 60

    m = _scrape(client, redis_server.url, now=later)

    assert m["homeshots_queue_depth"][(("queue", QUEUE),)] == 3
    assert m["homeshots_queue_depth"][(("queue", CALLBACK_QUEUE),)] == 0
    assert m["homeshots_queue_depth"][(("queue", "homeshots.src.zillow"),)] == 0, "every lane's queue is measured"
    assert m["homeshots_remaining_properties"] == {(): 10 - 2 - 3 - 1}, "only running runs count"
    assert m["homeshots_active_runs"] == {(): 1}
    assert m["homeshots_run_remaining_properties"] == {(("run", "busy"),): 4, (("run", "done"),): 0}
    assert m["homeshots_run_properties"][(("run", "busy"), ("state", "deferred"))] == 2
    eta = m["homeshots_run_eta_seconds"]
    assert eta[(("run", "done"),)] == 0 and 0 < eta[(("run", "busy"),)] < math.inf
    assert m["homeshots_run_status"] == {
        (("run", "busy"), ("status", "running")): 1,
        (("run", "done"), ("status", "finished")): 1,
    }
    assert m["homeshots_run_finished"] == {(("run", "busy"),): 0, (("run", "done"),): 1}
    started = m["homeshots_run_started_timestamp_seconds"][(("run", "busy"),)]
    progress = m["homeshots_run_last_progress_timestamp_seconds"][(("run", "busy"),)]
    assert started <= progress <= later
    for run in ("busy", "done"):
        r = ("run", run)
        assert m["homeshots_run_failures"][(("kind", "image_timeout"), r, ("source", "mls"))] == 1
        assert m["homeshots_run_failures"][(("kind", "source_blocked"), r, ("source", "zillow"))] == 2
        assert m["homeshots_run_blocked_properties"] == {
            (("run", "busy"), ("source", "zillow")): 2,
            (("run", "done"), ("source", "zillow")): 2,
        }
        assert m["homeshots_run_photos"][(("change", "new"), r, ("source", "mls"))] == 4
        assert m["homeshots_run_photos"][(("change", "removed"), r, ("source", "mls"))] == 1
        assert m["homeshots_run_photos"][(("change", "changed"), r, ("source", "zillow"))] == 0
        assert m["homeshots_run_images"][(("kind", "stored"), r, ("source", "mls"))] == 4
        assert m["homeshots_run_night_properties"][(r, ("source", "zillow"), ("state", "deferred"))] == 2
    assert m["homeshots_redis_memory_max_bytes"] == {(): 64 << 20}
    assert m["homeshots_redis_memory_used_bytes"][()] > 0
    assert m["homeshots_source_paused"][(("source", "zillow"),)] == 0


def test_a_run_without_progress_has_an_infinite_eta_and_pauses_show(redis_server) -> None:
    client = redis_server.client()
    _run(client, "stuck", total=5, deferred=0, completed=0, failed=0, counters={})
    client.set(keys.pause("zillow"), "1", px=60_000)
    m = _scrape(client, redis_server.url)
    assert m["homeshots_run_eta_seconds"][(("run", "stuck"),)] == math.inf
    assert m["homeshots_remaining_properties"] == {(): 5}
    assert m["homeshots_source_paused"][(("source", "zillow"),)] == 1


def test_every_declared_queue_is_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    assert queue_names() == [QUEUE, CALLBACK_QUEUE, *(lane_queue(s) for s in SOURCES)]
    monkeypatch.setitem(app.conf, "task_queues", [*app.conf.task_queues, Queue("homeshots.extra")])
    assert queue_names()[-1] == "homeshots.extra"


def test_probes_answer_without_collecting(redis_server) -> None:
    app = exporter_app(probe_client(redis_server.url), CollectorRegistry())
    statuses: list[str] = []

    def call(path: str) -> bytes:
        return b"".join(app({"PATH_INFO": path, "REQUEST_METHOD": "GET"}, lambda s, h: statuses.append(s)))

    assert call("/healthz") == b"ok\n" and call("/readyz") == b"ok\n"
    redis_server.stop()
    assert call("/readyz").startswith(b"redis:") and statuses[-1].startswith("503")
    assert statuses[:2] == ["200 OK", "200 OK"]
