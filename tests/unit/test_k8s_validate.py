"""infra/k8s passes review: valid for Kubernetes 1.30 (strict schemas, offline), locked down, probed,
sized, pinned, and scaled by KEDA up to its maximum.

Every manifest is checked with ``kubernetes-validate --strict`` (its bundled schemas: an unknown or
misspelt field fails). KEDA's kinds (ScaledObject, TriggerAuthentication) are custom resources that
kubernetes-validate has no schema for: they are checked here against a small schema of the KEDA v2 fields
this project uses (unknown fields and non-string trigger metadata fail), and the HPA behaviour they carry
is validated as the Kubernetes ``autoscaling/v2`` object KEDA hands it to. Any other unknown kind fails.
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from celery_app.app import CALLBACK_QUEUE, lane_queue
from homeshots.core.settings import Settings
from tasks.lanes import chunk_size

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
KUBERNETES_VERSION = "1.30"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]

_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_REF = {"type": "object", "properties": {"name": {"type": "string"}, "kind": {"type": "string"}}, "required": ["name"]}
_META = {"type": "object", "required": ["name"]}
KEDA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["scaleTargetRef", "triggers"],
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string"},
                            "kind": {"type": "string"},
                            "apiVersion": {"type": "string"},
                            "envSourceContainerName": {"type": "string"},
                        },
                    },
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                    "idleReplicaCount": {"type": "integer", "minimum": 0},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "fallback": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {"failureThreshold": {"type": "integer"}, "replicas": {"type": "integer"}},
                    },
                    "advanced": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            "horizontalPodAutoscalerConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                            },
                            "scalingModifiers": {"type": "object"},
                        },
                    },
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["type", "metadata"],
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metadata": _STR_MAP,  # KEDA reads every metadata value as a string
                                "authenticationRef": _REF,
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "useCachedMetrics": {"type": "boolean"},
                            },
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "additionalProperties": False,
                            "required": ["parameter", "name", "key"],
                            "properties": {p: {"type": "string"} for p in ("parameter", "name", "key")},
                        },
                    },
                    "env": {"type": "array"},
                    "podIdentity": {"type": "object"},
                },
            },
        },
    },
}
"""The KEDA v2 (keda.sh/v1alpha1) fields this project uses; kubernetes-validate has no schema for them."""


def _docs() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


DOCS = _docs()


def _by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in DOCS if doc["kind"] == kind]


def _named(kind: str, name: str) -> dict[str, Any]:
    return next(doc for doc in _by_kind(kind) if doc["metadata"]["name"] == name)


def _pod_specs() -> list[tuple[str, dict[str, Any]]]:
    """Every pod template: Deployments' and the CronJob's."""
    pods = [(d["metadata"]["name"], d["spec"]["template"]["spec"]) for d in _by_kind("Deployment")]
    pods += [(c["metadata"]["name"], c["spec"]["jobTemplate"]["spec"]["template"]["spec"]) for c in _by_kind("CronJob")]
    return pods


def validate(doc: dict[str, Any]) -> None:
    """Strict Kubernetes validation, or the KEDA schema for KEDA's kinds; other unknown kinds fail."""
    if doc["apiVersion"].startswith("keda.sh/"):
        jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])
        behavior = doc["spec"].get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
        if behavior is not None:  # what KEDA passes on to the HPA it makes
            hpa = {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": {"name": doc["metadata"]["name"]},
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x"},
                    "maxReplicas": doc["spec"].get("maxReplicaCount", 100),
                    "behavior": behavior,
                },
            }
            kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)
        return
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("doc", [d for _, d in DOCS], ids=[f"{f}:{d['kind']}/{d['metadata']['name']}" for f, d in DOCS])
def test_every_manifest_is_valid(doc: dict[str, Any]) -> None:
    validate(doc)


def test_strict_validation_catches_what_review_would() -> None:
    worker = copy.deepcopy(_named("Deployment", "homeshots-worker"))
    worker["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFileSystem"] = True  # typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(worker)
    scaled = copy.deepcopy(_by_kind("ScaledObject")[0])
    scaled["spec"]["triggers"][0]["metadata"]["listLength"] = 20  # KEDA wants "20"
    with pytest.raises(jsonschema.ValidationError):
        validate(scaled)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate({"apiVersion": "example.com/v1", "kind": "Unknown", "metadata": {"name": "x"}})


@pytest.mark.parametrize("name,pod", _pod_specs(), ids=[n for n, _ in _pod_specs()])
def test_every_pod_is_locked_down_sized_and_pinned(name: str, pod: dict[str, Any]) -> None:
    security = pod["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] == 10001, name
    assert security["runAsGroup"] == 10001 and security["fsGroup"] == 10001, name
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
    assert pod["automountServiceAccountToken"] is False, f"{name}: no API token in a pod that never calls the API"
    assert pod["enableServiceLinks"] is False, f"{name}: Service links would add HOMESHOTS_* variables"
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod.get("initContainers", []) + pod["containers"]:
        where = f"{name}/{container['name']}"
        sc = container["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False, where
        assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True, where
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert any(m["mountPath"] == "/tmp" and m["name"] in tmp_volumes for m in container["volumeMounts"]), where
        resources = container["resources"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(resources[part]), f"{where}: {part} of cpu and memory"
        image, _, tag = container["image"].rpartition(":")
        assert image and tag == VERSION, f"{where}: pinned to the project's version {VERSION}, not {tag or 'latest'}"


def test_workers_are_probed_through_their_own_celery_node() -> None:
    worker = _named("Deployment", "homeshots-worker")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("startupProbe", "livenessProbe"):
        spec = worker[probe]
        command = " ".join(spec["exec"]["command"])
        assert re.search(r"celery -A celery_app inspect ping -d \\?\"?celery@\$HOSTNAME", command), command
        timeout = int(re.search(r"--timeout (\d+)", command).group(1))
        assert spec["timeoutSeconds"] > timeout, f"{probe}: the probe outlasts the ping's own timeout"
    live = worker["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] >= 300, "a Redis restart must not restart every worker"
    startup = worker["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120


def test_flower_and_the_exporter_are_probed_over_http() -> None:
    paths = {}
    for name in ("homeshots-flower", "homeshots-metrics"):
        container = _named("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe in ("readinessProbe", "livenessProbe"):
            get = container[probe]["httpGet"]
            assert get["port"] in ports, f"{name} {probe}: a named port of the container"
            paths[name, probe] = get["path"]
    assert paths["homeshots-flower", "livenessProbe"] == "/healthcheck"  # Flower's, answered without auth
    assert (paths["homeshots-metrics", "readinessProbe"], paths["homeshots-metrics", "livenessProbe"]) == (
        "/readyz",
        "/healthz",
    )


def test_keda_owns_the_worker_count_and_can_reach_its_maximum() -> None:
    worker = _named("Deployment", "homeshots-worker")
    assert "replicas" not in worker["spec"], "KEDA's HPA owns the count; a replicas field resets it on every apply"
    scaled = _by_kind("ScaledObject")[0]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "homeshots-worker"
    top = scaled["maxReplicaCount"]
    assert top == 100 and scaled["minReplicaCount"] >= 1
    config = _named("ConfigMap", "homeshots-config")["data"]
    settings = Settings(**{k.removeprefix("HOMESHOTS_").lower(): v for k, v in config.items() if "_URL" not in k})
    redis_triggers = {t["metadata"]["listName"]: t for t in scaled["triggers"] if t["type"] == "redis"}
    assert set(redis_triggers) == {lane_queue(s) for s in settings.sources}, "one trigger per lane queue"
    asks = []
    for lane in settings.sources:
        # A lane queue never holds more than its chunks in flight.
        most_queued = settings.windows_in_flight * chunk_size(settings, lane)
        length = int(redis_triggers[lane_queue(lane)]["metadata"]["listLength"])
        assert length == max(1, math.ceil(most_queued / top)), f"{lane}: listLength = most queued / {top}"
        asks.append(math.ceil(most_queued / length))
    assert max(asks) >= top, f"a full queue of the fastest lane must ask for {top} workers"
    prometheus = [t for t in scaled["triggers"] if t["type"] == "prometheus"]
    assert len(prometheus) == 1
    query, threshold = prometheus[0]["metadata"]["query"], int(prometheus[0]["metadata"]["threshold"])
    assert "homeshots_remaining_properties" in query and "homeshots_queue_depth" in query
    assert f'queue!="{CALLBACK_QUEUE}"' in query, "per-source queues count without an edit; callbacks do not"
    assert 1 <= threshold <= 1000, "one worker per `threshold` remaining properties: 100 workers from 100 x that"


def test_worker_disruption_budget_allows_drains() -> None:
    budget = _named("PodDisruptionBudget", "homeshots-worker")["spec"]
    worker = _named("Deployment", "homeshots-worker")
    assert budget["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert "maxUnavailable" in budget and "minAvailable" not in budget, "minAvailable would block drains at 1 worker"


def test_nightly_job_keeps_its_command_and_reads_its_input_read_only() -> None:
    cron = _by_kind("CronJob")[0]["spec"]
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["homeshots", "nightly", "/data/properties.csv", "--no-wait", "--skip-bad-rows"]
    assert cron["concurrencyPolicy"] == "Forbid" and cron["timeZone"] == "Etc/UTC", "nightly-YYYY-MM-DD is UTC"
    assert {"name": "input", "mountPath": "/data", "readOnly": True} in container["volumeMounts"]
