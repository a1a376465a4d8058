"""Prometheus metrics Flower does not have: run progress, images by source, queue depth, politeness.

A small exporter (``homeshots metrics``) reads them from Redis and the broker at each scrape, so
any number of workers needs no metrics code and no shared registry.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import redis
from kombu import Connection
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from celery_app.app import CALLBACK_QUEUE, QUEUE
from homeshots.core.settings import Settings
from managers import keys
from managers.extraction_stats import SOURCE_FIELDS
from managers.run_manager import RunManager

IMAGE_FIELDS = [f for f in SOURCE_FIELDS if f.kind]
"""The per-source image counters, labelled ``kind`` (found, downloaded, stored, duplicate, upgraded, failed)."""


class HomeshotsCollector(Collector):
    """Collects on scrape; bounded to the ``recent_runs`` latest runs to keep label cardinality small."""

    def __init__(self, client: redis.Redis, settings: Settings, recent_runs: int = 20) -> None:
        self.client = client
        self.settings = settings
        self.recent_runs = recent_runs

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield self._queues()
        props = GaugeMetricFamily("homeshots_run_properties", "Properties of a run by state", labels=["run", "state"])
        images = GaugeMetricFamily(
            "homeshots_run_images", "Images of a run by source and outcome", labels=["run", "source", "kind"]
        )
        finished = GaugeMetricFamily("homeshots_run_finished", "1 once the run result is written", labels=["run"])
        for run_id in self.client.zrevrange(keys.RUNS, 0, self.recent_runs - 1):
            runs = RunManager(self.client, run_id)
            result = runs.result()  # the final one once finished: a nightly run's state sets have left Redis
            for state in ("total", "completed", "failed", "skipped", "deferred"):
                key = "total_properties" if state == "total" else f"properties_{state}"
                props.add_metric([run_id, state], float(result.get(key, 0)))
            for source, stats in result.get("by_source", {}).items():
                for column in IMAGE_FIELDS:
                    images.add_metric([run_id, source, column.kind], float(stats.get(column.name, 0)))
            finished.add_metric([run_id], 1.0 if runs.meta().get("status") == "finished" else 0.0)
        yield props
        yield images
        yield finished
        waits = CounterMetricFamily(
            "homeshots_token_bucket_wait_seconds",
            "Seconds workers waited for a source's cluster-wide rate limit",
            labels=["source"],
        )
        for source, seconds in self.client.hgetall(keys.BUCKET_WAITS).items():
            waits.add_metric([source], float(seconds))
        yield waits

    def _queues(self) -> GaugeMetricFamily:
        depth = GaugeMetricFamily("homeshots_queue_depth", "Messages waiting in a broker queue", labels=["queue"])
        with Connection(self.settings.effective_broker_url, connect_timeout=5) as conn:
            channel = conn.default_channel
            for queue in (QUEUE, CALLBACK_QUEUE):
                try:
                    depth.add_metric([queue], float(channel.queue_declare(queue, passive=True).message_count))
                except Exception:  # a queue not declared yet holds nothing
                    depth.add_metric([queue], 0.0)
        return depth


def serve_metrics(client: redis.Redis, settings: Settings, address: str, port: int) -> None:
    """Serve ``/metrics`` until interrupted."""
    REGISTRY.register(HomeshotsCollector(client, settings))
    start_http_server(port, addr=address)
    while True:
        time.sleep(3600)
