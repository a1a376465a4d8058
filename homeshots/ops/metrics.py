"""Prometheus metrics Flower does not have: run progress, images by source, queue depth, politeness.

A small exporter (``homeshots metrics``) reads them from Redis and the broker at each scrape, so
any number of workers needs no metrics endpoint and no shared registry. What it serves (gauges
unless said; ``run`` is one of the ``recent_runs`` latest runs, to keep label cardinality small):

| metric | labels | what |
|---|---|---|
| ``homeshots_queue_depth`` | queue | messages waiting in each declared broker queue (``app.conf.task_queues``) |
| ``homeshots_remaining_properties`` | | properties still to do in all running runs (KEDA scales on it) |
| ``homeshots_active_runs`` | | runs being submitted or running |
| ``homeshots_run_properties`` | run, state | total, completed, failed, skipped, deferred |
| ``homeshots_run_remaining_properties`` | run | total - deferred - completed - failed (0 once finished) |
| ``homeshots_run_eta_seconds`` | run | remaining / the run's rate so far (+Inf: no progress yet) |
| ``homeshots_run_status`` | run, status | 1 for its status: submitting, running, finished, rejected.. |
| ``homeshots_run_finished`` | run | 1 once the run result is written |
| ``homeshots_run_started_timestamp_seconds`` | run | when the run was first submitted |
| ``homeshots_run_last_progress_timestamp_seconds`` | run | latest submission, property outcome or finish |
| ``homeshots_run_images`` | run, source, kind | found, downloaded, stored, duplicate, upgraded, failed, skipped |
| ``homeshots_run_photos`` | run, source, change | new, changed, unchanged, removed (against the listing memory) |
| ``homeshots_run_failures`` | run, source, kind | the run's ``fail.<source>.<kind>`` counters (image_timeout..) |
| ``homeshots_run_blocked_properties`` | run, source | properties a source's bot wall refused |
| ``homeshots_run_night_properties`` | run, source, state | a nightly run's plan: visited, deferred |
| ``homeshots_token_bucket_wait_seconds_total`` | source | counter: seconds workers waited for the rate limit |
| ``homeshots_source_paused`` | source | 1 while a 429 / Retry-After pauses the whole cluster's traffic |
| ``homeshots_source_request_seconds`` | source | histogram: time to the response headers of every attempt |
| ``homeshots_source_responses_total`` | source, code | counter: attempts by status class (2xx..5xx, error) |
| ``homeshots_source_request_recording_errors_total`` | source | counter: latency writes that failed |
| ``homeshots_redis_memory_used_bytes`` | | Redis ``used_memory`` |
| ``homeshots_redis_memory_max_bytes`` | | Redis ``maxmemory`` (0: no limit) |

Besides ``/metrics`` it answers ``/healthz`` (the process serves) and ``/readyz`` (Redis answers).
"""

from __future__ import annotations

import json
import math
import socketserver
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from kombu import Connection
from prometheus_client import make_wsgi_app
from prometheus_client.core import (
    REGISTRY,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString
from redis.backoff import NoBackoff
from redis.retry import Retry

from celery_app.app import app
from homeshots.core.settings import SOURCES, Settings
from managers import keys
from managers.connection import primaries
from managers.extraction_stats import SOURCE_FIELDS
from managers.request_metrics import LATENCY_BUCKETS
from managers.run_manager import RunManager
from managers.state_manager import StateManager

IMAGE_FIELDS = [f for f in SOURCE_FIELDS if f.kind]
"""The per-source image counters, labelled ``kind`` (found, downloaded, stored, duplicate, upgraded, failed)."""
PHOTO_CHANGES = ("new", "changed", "unchanged", "removed")
"""The deltas of a visit, ``photos_<change>`` per source."""
RUN_STATES = ("total", "completed", "failed", "skipped", "deferred")
ACTIVE = frozenset({"submitting", "running"})
"""Statuses of a run whose properties are still being sent or worked on."""


def queue_names() -> list[str]:
    """Every queue the Celery app declares (the default one first), so new queues are measured as they come."""
    names = [app.conf.task_default_queue]
    for queue in app.conf.task_queues or ():
        if queue.name not in names:
            names.append(queue.name)
    return names


class HomeshotsCollector(Collector):
    """Collects on scrape; bounded to the ``recent_runs`` latest runs to keep label cardinality small."""

    def __init__(
        self,
        client: redis.Redis,
        settings: Settings,
        recent_runs: int = 20,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.settings = settings
        self.recent_runs = recent_runs
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield self._queues()
        yield from self._active()
        yield from self._runs()
        yield from self._politeness()
        yield from self._requests()
        yield from self._redis_memory()

    # --- the broker -------------------------------------------------------------------------------
    def _queues(self) -> GaugeMetricFamily:
        depth = GaugeMetricFamily("homeshots_queue_depth", "Messages waiting in a broker queue", labels=["queue"])
        with Connection(self.settings.effective_broker_url, connect_timeout=5) as conn:
            channel = conn.default_channel
            for queue in queue_names():
                try:
                    depth.add_metric([queue], float(channel.queue_declare(queue, passive=True).message_count))
                except Exception:  # a queue not declared yet holds nothing
                    depth.add_metric([queue], 0.0)
        return depth

    # --- all runs: the outstanding work -------------------------------------------------------------
    def _active(self) -> Iterator[GaugeMetricFamily]:
        """Remaining properties of every running run (not only the recent ones): what KEDA scales on."""
        run_ids = sorted(self.client.smembers(keys.ACTIVE))
        pipe = self.client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(keys.RunKeys(run_id).meta, "status", "total_properties", "properties_deferred")
        active = [(run_id, meta) for run_id, meta in zip(run_ids, pipe.execute(), strict=True) if meta[0] in ACTIVE]
        remaining = 0
        for run_id, (_, total, deferred) in active:
            summary = StateManager(self.client, run_id).summary()
            remaining += max(0, int(total or 0) - int(deferred or 0) - summary.completed - summary.failed)
        yield GaugeMetricFamily(
            "homeshots_remaining_properties", "Properties still to do in all running runs", value=float(remaining)
        )
        yield GaugeMetricFamily("homeshots_active_runs", "Runs being submitted or running", value=float(len(active)))

    # --- the recent runs --------------------------------------------------------------------------
    def _runs(self) -> Iterator[Metric]:
        f = _RunFamilies()
        now = self._clock()
        for run_id in self.client.zrevrange(keys.RUNS, 0, self.recent_runs - 1):
            runs = RunManager(self.client, run_id)
            meta = runs.meta()
            status = meta.get("status", "unknown")
            finished = status == "finished"
            # The final result once finished: a nightly run's state sets have left Redis by then.
            result = (runs.final_result() if finished else None) or runs.current_result().to_dict()
            for state in RUN_STATES:
                key = "total_properties" if state == "total" else f"properties_{state}"
                f.props.add_metric([run_id, state], float(result.get(key, 0)))
            done = int(result.get("properties_completed", 0)) + int(result.get("properties_failed", 0))
            todo = int(result.get("total_properties", 0)) - int(result.get("properties_deferred", 0))
            remaining = 0 if finished else max(0, todo - done)
            f.remaining.add_metric([run_id], float(remaining))
            started = _timestamp(meta.get("started_at"))
            if finished:
                f.eta.add_metric([run_id], 0.0)
            elif status in ACTIVE:
                fresh = done - int(result.get("properties_skipped", 0))
                elapsed = now - started if started else 0.0
                rate = fresh / elapsed if elapsed > 0 and fresh > 0 else 0.0
                f.eta.add_metric([run_id], remaining / rate if rate else (0.0 if remaining == 0 else math.inf))
            f.status.add_metric([run_id, status], 1.0)
            f.finished.add_metric([run_id], 1.0 if finished else 0.0)
            if started:
                f.started.add_metric([run_id], started)
            progress = [meta.get("submitted_at"), meta.get("finished_at") if finished else None]
            progress.append(StateManager(self.client, run_id).summary().last_updated)
            stamps = [t for t in map(_timestamp, progress) if t]
            if stamps:
                f.progress.add_metric([run_id], max(stamps))
            for source, stats in result.get("by_source", {}).items():
                for column in IMAGE_FIELDS:
                    f.images.add_metric([run_id, source, column.kind], float(stats.get(column.name, 0)))
                for change in PHOTO_CHANGES:
                    f.photos.add_metric([run_id, source, change], float(stats.get(f"photos_{change}", 0)))
                for kind, n in sorted(stats.get("failures", {}).items()):
                    f.failures.add_metric([run_id, source, kind], float(n))
            for source, n in result.get("blocked_sources", {}).items():
                f.blocked.add_metric([run_id, source], float(n))
            night = result.get("night") or _json(meta.get("night"))
            for source, info in ((night or {}).get("sources") or {}).items():
                for state in ("visited", "deferred"):
                    f.night.add_metric([run_id, source, state], float(info.get(state, 0)))
        yield from f

    # --- politeness ---------------------------------------------------------------------------------
    def _politeness(self) -> Iterator[Metric]:
        waits = CounterMetricFamily(
            "homeshots_token_bucket_wait_seconds",
            "Seconds workers waited for a source's cluster-wide rate limit",
            labels=["source"],
        )
        for source, seconds in sorted(self.client.hgetall(keys.BUCKET_WAITS).items()):
            waits.add_metric([source], float(seconds))
        yield waits
        paused = GaugeMetricFamily(
            "homeshots_source_paused", "1 while a 429 / Retry-After pauses the cluster's requests", labels=["source"]
        )
        pipe = self.client.pipeline(transaction=False)
        for source in SOURCES:
            pipe.exists(keys.pause(source))
        for source, exists in zip(SOURCES, pipe.execute(), strict=True):
            paused.add_metric([source], 1.0 if exists else 0.0)
        yield paused

    # --- request latency, recorded by the workers (managers.request_metrics) --------------------------
    def _requests(self) -> Iterator[Metric]:
        latency = HistogramMetricFamily(
            "homeshots_source_request_seconds",
            "Seconds from sending a request to a source (API call or photo) to its response headers",
            labels=["source"],
        )
        codes = CounterMetricFamily(
            "homeshots_source_responses",
            "Request attempts by status class (error: no response)",
            labels=["source", "code"],
        )
        errors = CounterMetricFamily(
            "homeshots_source_request_recording_errors",
            "Request latency writes to Redis that failed (the counts were kept for a later write)",
            labels=["source"],
        )
        pipe = self.client.pipeline(transaction=False)
        for source in SOURCES:
            pipe.hgetall(keys.request_latency(source))
        for source, fields in zip(SOURCES, pipe.execute(), strict=True):
            if not fields:
                continue
            # A bucket never written holds no observation: the recorder adds to every bucket at or above one.
            counts = {float(name[3:]): int(n) for name, n in fields.items() if name.startswith("le:")}
            counts.setdefault(math.inf, int(fields.get("count", 0)))
            buckets = [(bound, counts.get(bound, 0)) for bound in sorted({*LATENCY_BUCKETS, *counts})]
            latency.add_metric(
                [source], [(floatToGoString(bound), float(n)) for bound, n in buckets], float(fields.get("sum", 0.0))
            )
            for name, n in sorted(fields.items()):
                if name.startswith("code:"):
                    codes.add_metric([source, name[5:]], float(n))
            errors.add_metric([source], float(fields.get("errors", 0)))
        yield latency
        yield codes
        yield errors

    # --- Redis itself -------------------------------------------------------------------------------
    def _redis_memory(self) -> Iterator[GaugeMetricFamily]:
        nodes = [node.info("memory") for node in primaries(self.client)]
        used = sum(float(info.get("used_memory", 0)) for info in nodes)
        limit = sum(float(info.get("maxmemory", 0)) for info in nodes)
        yield GaugeMetricFamily("homeshots_redis_memory_used_bytes", "Redis used_memory (all nodes)", value=used)
        yield GaugeMetricFamily("homeshots_redis_memory_max_bytes", "Redis maxmemory (0: no limit)", value=limit)
        fullest = max(
            (float(i.get("used_memory", 0)) / float(i["maxmemory"]) for i in nodes if i.get("maxmemory")), default=0
        )
        yield GaugeMetricFamily(
            "homeshots_redis_memory_fullest_ratio", "used/maxmemory of the fullest node (0: no limit)", value=fullest
        )


class _RunFamilies:
    """The per-run families of one scrape, in the order they are served."""

    def __init__(self) -> None:
        def gauge(name: str, doc: str, *labels: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=["run", *labels])

        self.props = gauge("homeshots_run_properties", "Properties of a run by state", "state")
        self.remaining = gauge("homeshots_run_remaining_properties", "Properties of a run still to do")
        self.eta = gauge("homeshots_run_eta_seconds", "Seconds until the run is done at its rate so far")
        self.status = gauge("homeshots_run_status", "1 for the run's status", "status")
        self.finished = gauge("homeshots_run_finished", "1 once the run result is written")
        self.started = gauge("homeshots_run_started_timestamp_seconds", "When the run was first submitted")
        self.progress = gauge(
            "homeshots_run_last_progress_timestamp_seconds", "Latest submission, property outcome or finish"
        )
        self.images = gauge("homeshots_run_images", "Images of a run by source and outcome", "source", "kind")
        self.photos = gauge("homeshots_run_photos", "Photos of a run by source and change", "source", "change")
        self.failures = gauge("homeshots_run_failures", "Failures of a run by source and kind", "source", "kind")
        self.blocked = gauge("homeshots_run_blocked_properties", "Properties a source's bot wall refused", "source")
        self.night = gauge("homeshots_run_night_properties", "A nightly run's properties per source", "source", "state")

    def __iter__(self) -> Iterator[GaugeMetricFamily]:
        return iter(vars(self).values())


def _timestamp(value: str | None) -> float | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _json(value: str | None) -> Any:
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None


# --- serving ---------------------------------------------------------------------------------------
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def exporter_app(probe: redis.Redis, registry: CollectorRegistry = REGISTRY) -> WSGIApp:
    """``/metrics`` (any other path too, as prometheus_client does), ``/healthz``, and ``/readyz`` (``probe`` pings)."""
    metrics = make_wsgi_app(registry)

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            try:
                probe.ping()
            except redis.RedisError as exc:
                start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
                return [f"redis: {type(exc).__name__}\n".encode()]
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return metrics(environ, start_response)

    return serve


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # probes every few seconds: no access log
        pass


def probe_client(url: str) -> redis.Redis:
    """A client for ``/readyz`` that answers within seconds: no retries (the collector's client rides out
    a Redis restart for a minute, longer than any probe waits)."""
    return redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, retry=Retry(NoBackoff(), 0))


def serve_metrics(client: redis.Redis, settings: Settings, address: str, port: int) -> None:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` until interrupted."""
    REGISTRY.register(HomeshotsCollector(client, settings))
    probe = probe_client(settings.redis_url or "")
    server = make_server(address, port, exporter_app(probe), _ThreadingServer, handler_class=_QuietHandler)
    server.serve_forever()
