"""The Grafana dashboard, the Prometheus alerts and KEDA's query use only what the real exporter serves.

A real run (a finished backfill with a blocked source and a failed photo, then a second run waiting in
the queue) and real request latency observations go into Redis; ``homeshots metrics`` is scraped over
HTTP; every PromQL expression of ``infra/grafana/homeshots.json``, ``infra/prometheus/alerts.yml`` and
the KEDA prometheus trigger is parsed (``promql-parser``, Prometheus' grammar) and each metric it selects
must be served, with the labels it matches on. ``promtool`` is not available: alerts.yml is checked
against a schema of Prometheus' rule file format instead.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from homeshots.ops.embedded import free_port
from managers.request_metrics import RequestRecorder
from tests.conftest import ROOT
from tests.integration.helpers import make_catalog, sandbox_for, write_csv

DASHBOARD = ROOT / "infra" / "grafana" / "homeshots.json"
ALERTS = ROOT / "infra" / "prometheus" / "alerts.yml"
KEDA = ROOT / "infra" / "k8s" / "keda-scaledobject.yaml"
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$run": ".*"}
"""What Grafana puts in place of its variables before the query reaches Prometheus."""

_DURATION = r"^(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$"
_LABELS = {
    "type": "object",
    "propertyNames": {"pattern": r"^[a-zA-Z_][a-zA-Z0-9_]*$"},
    "additionalProperties": {"type": "string"},
}
RULE_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["groups"],
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "rules"],
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "interval": {"type": "string", "pattern": _DURATION},
                    "query_offset": {"type": "string", "pattern": _DURATION},
                    "limit": {"type": "integer", "minimum": 0},
                    "labels": _LABELS,
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "oneOf": [
                                {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": _DURATION},
                                        "keep_firing_for": {"type": "string", "pattern": _DURATION},
                                        "labels": _LABELS,
                                        "annotations": _LABELS,
                                    },
                                },
                                {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["record", "expr"],
                                    "properties": {
                                        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "labels": _LABELS,
                                    },
                                },
                            ]
                        },
                    },
                },
            },
        }
    },
}
"""Prometheus' rule file format (docs: configuration/recording_rules, alerting_rules)."""


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = list(dashboard["panels"])
    queries = []
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])  # rows may hold their panels
        queries += [(f"dashboard: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = re.fullmatch(r"label_values\((\w+), *(\w+)\)", variable["definition"])
            assert match, f"variable {variable['name']}: label_values(metric, label)"
            queries.append((f"dashboard variable {variable['name']}", f"{match.group(1)}{{{match.group(2)}!=''}}"))
    return queries


def _alert_queries() -> list[tuple[str, str]]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [(f"alert {r['alert']}", r["expr"]) for g in rules["groups"] for r in g["rules"]]


def _keda_queries() -> list[tuple[str, str]]:
    docs = [d for d in yaml.safe_load_all(KEDA.read_text()) if d and d["kind"] == "ScaledObject"]
    return [
        ("KEDA trigger", t["metadata"]["query"])
        for d in docs
        for t in d["spec"]["triggers"]
        if t["type"] == "prometheus"
    ]


def parse(expr: str) -> promql_parser.Expr:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return promql_parser.parse(expr)


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names it matches on) of every series selector of ``expr``."""
    found: list[tuple[str, set[str]]] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
            assert name, f"a selector without a metric name in {expr}"
            found.append((name, {m.name for m in matchers if m.name != "__name__"}))

    promql_parser.walk(parse(expr), visit)
    return found


def grouping_labels(expr: str) -> set[str]:
    """Labels of ``by (...)`` and ``on (...)`` clauses."""
    labels: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            labels.update(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None and node.modifier.matching:
            labels.update(node.modifier.matching.labels)

    promql_parser.walk(parse(expr), visit)
    return labels


ALL_QUERIES = _dashboard_queries() + _alert_queries() + _keda_queries()


def test_every_query_parses_as_promql() -> None:
    assert len(ALL_QUERIES) > 25
    for where, expr in ALL_QUERIES:
        try:
            parse(expr)
        except ValueError as exc:
            pytest.fail(f"{where}: {exc}\n{expr}")


def test_alerts_file_is_a_valid_rule_file() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    jsonschema.validate(rules, RULE_FILE_SCHEMA)
    names = [g["name"] for g in rules["groups"]]
    assert len(names) == len(set(names)), "group names are unique"
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {
        "HomeshotsRunStalled",
        "HomeshotsSourceBlocked",
        "HomeshotsImageFailureRateHigh",
        "HomeshotsQueueOnlyGrows",
        "HomeshotsRedisMemoryHigh",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in ("info", "warning", "critical"), name
        assert rule["annotations"]["summary"], name
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}"), f"{name}: unbalanced template"


def test_dashboard_is_importable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "homeshots" and dashboard["schemaVersion"] >= 36
    assert "__inputs" not in dashboard, "the datasource is a variable: import needs no mapping"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {p["title"] for p in dashboard["panels"]}
    for needed in (
        "Queue depth",
        "Images per second by source",
        "Failures by kind",
        "Failures by source",
        "Blocked sources",
        "Rate-limit waits",
        "Run progress",
        "ETA",
        "Redis memory",
        "Request latency by source",
    ):
        assert needed in titles
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def _scrape(port: int, exporter: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).raise_for_status().text
        except httpx.TransportError:
            assert time.monotonic() < deadline and exporter.poll() is None, "the exporter did not start"
            time.sleep(0.2)


def test_every_metric_the_dashboard_alerts_and_keda_use_is_served(
    tmp_path: Path, cluster_factory, redis_server
) -> None:
    listings, photos = make_catalog(3, photos_each=2, size=(640, 480))
    for n, listing in enumerate(listings, start=1):
        listing.zpid = str(1000 + n)
    listings[2].blocked = frozenset({"zillow"})  # a bot wall: homeshots_run_blocked_properties
    listings[0].photos.append("T1_missing.jpg")  # listed, never served: an image failure
    props = write_csv(tmp_path / "props.csv", listings)
    with sandbox_for(listings, photos, services=["mls", "zillow"]) as sandbox:
        cluster = cluster_factory(sandbox.env() | {"HOMESHOTS_MLS_RATE": "2"})  # politeness waits
        done = cluster.cli("backfill", str(props), "--run-id", "d1")
        assert done.returncode == 0, done.stdout + done.stderr + cluster.worker_log()
        cluster.stop()  # no worker: the next run waits in the queue (running, remaining > 0)
        waiting = cluster.cli("backfill", str(props), "--run-id", "d2", "--no-wait")
        assert waiting.returncode == 0, waiting.stderr
        night = cluster.cli("nightly", str(props), "--no-wait")  # a night's plan: visited and deferred per source
        assert night.returncode == 0, night.stdout + night.stderr
    client = redis_server.client()
    client.config_set("maxmemory", "256mb")
    for source, seconds, status in (("mls", 0.04, 200), ("mls", 1.5, 503), ("zillow", 0.3, 0)):
        RequestRecorder(client, source, flush_every=0)(seconds, status)  # what the workers' fetchers record
    port = free_port()
    exporter = subprocess.Popen(
        [sys.executable, "-m", "homeshots", "metrics", "--port", str(port)],
        env=cluster.env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cluster.workers.append(exporter)
    text = _scrape(port, exporter)
    assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).text == "ok\n"

    served: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            served.setdefault(sample.name, set()).update(sample.labels)
    assert served["homeshots_run_blocked_properties"] >= {"run", "source"}
    assert "homeshots_run_failures" in served and "homeshots_source_request_seconds_bucket" in served

    missing = []
    for where, expr in ALL_QUERIES:
        used = selectors(expr)
        assert used, f"{where}: selects no metric"
        labels_in_expr: set[str] = set()
        for name, labels in used:
            if name not in served:
                missing.append(f"{where}: {name} is not served")
                continue
            labels_in_expr |= served[name]
            unknown = labels - served[name]
            if unknown:
                missing.append(f"{where}: {name} has no label(s) {sorted(unknown)}")
        stray = grouping_labels(expr) - labels_in_expr
        if stray:
            missing.append(f"{where}: groups by label(s) {sorted(stray)} that its metrics do not have")
    assert not missing, "\n".join(missing)
    for rule in (r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]):
        labels = {label for name, _ in selectors(rule["expr"]) for label in served.get(name, set())}
        for text_ in rule["annotations"].values():
            for label in re.findall(r"\$labels\.(\w+)", text_):
                assert label in labels | grouping_labels(rule["expr"]), f"{rule['alert']}: no label {label}"
