"""Commands that run a service: Flower and the Prometheus exporter."""

from __future__ import annotations

import sys

import click

from homeshots.core.settings import get_settings
from homeshots.ops.flower import run_flower
from homeshots.ops.metrics import serve_metrics
from homeshots.ops.run_view import console
from managers.connection import connect


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True, help="Listen address (0.0.0.0 to expose it).")
@click.option("--port", default=5555, show_default=True)
def flower(address: str, port: int) -> None:
    """Flower for this cluster; refuses to start without HOMESHOTS_FLOWER_BASIC_AUTH or OAuth settings."""
    sys.exit(run_flower(get_settings(), address, port))


@click.command()
@click.option("--address", default="127.0.0.1", show_default=True)
@click.option("--port", default=9808, show_default=True)
def metrics(address: str, port: int) -> None:
    """Serve Prometheus metrics (queues, runs, sources, latency, Redis) on /metrics; /healthz and /readyz for probes."""
    settings = get_settings()
    if not settings.redis_url:
        raise click.UsageError("the metrics exporter needs HOMESHOTS_REDIS_URL")
    console.print(f"metrics on http://{address}:{port}/metrics")
    serve_metrics(connect(settings.redis_url, cluster=settings.redis_cluster), settings, address, port)
