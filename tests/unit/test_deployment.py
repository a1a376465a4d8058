"""docker-compose.yml and infra/k8s use only commands, options and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml
from homeshots_sandbox.cli import main as sandbox_main

from celery_app.app import QUEUE, app
from homeshots.core.settings import Settings
from homeshots.ops.cli import main

ROOT = Path(__file__).resolve().parents[2]
FIELDS = set(Settings.model_fields)


def check_command(command: list[str]) -> None:
    """A homeshots (or homeshots-sandbox) subcommand with its real options, or the Celery worker of this app."""
    if command[0] in ("homeshots", "homeshots-sandbox"):
        group = main if command[0] == "homeshots" else sandbox_main
        sub = group.commands.get(command[1])
        assert isinstance(sub, click.Command), f"no command `{command[0]} {command[1]}`"
        known = {opt for param in sub.params for opt in param.opts + param.secondary_opts}
        for word in command[2:]:
            if word.startswith("--"):
                assert word.split("=", 1)[0] in known, f"`homeshots {command[1]}` has no option {word}"
    elif command[0] == "celery":
        assert command[1:3] == ["-A", "celery_app"] and command[3] in ("worker", "flower")
        app.loader.import_default_modules()  # what the worker does at start: the include list
        assert "homeshots.extract_property" in app.tasks and "homeshots.finish_window" in app.tasks
    else:
        pytest.fail(f"unexpected command {command}")


def check_env(names: list[str]) -> None:
    for name in names:
        if name.startswith("HOMESHOTS_"):
            assert name.removeprefix("HOMESHOTS_").lower() in FIELDS, f"{name} is not a setting"


def test_docker_compose_services_exist_and_are_safe() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"redis", "minio", "minio-bucket", "worker", "flower", "metrics", "sandbox"} <= set(services)
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd and "--requirepass" in redis_cmd
    for service in services.values():
        command = service.get("command")
        if isinstance(command, list) and command[0] in ("homeshots", "celery"):
            check_command(command)
        check_env(list((service.get("environment") or {}).keys()))
    assert "HOMESHOTS_FLOWER_BASIC_AUTH" in services["flower"]["environment"]
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))
    grace = int(re.match(r"(\d+)m", services["worker"]["stop_grace_period"]).group(1)) * 60
    assert grace > Settings().task_time_limit
    assert services["sandbox"]["profiles"] == ["sandbox"]


def _k8s() -> list[dict]:
    docs = []
    for path in sorted((ROOT / "infra" / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_fit_together() -> None:
    docs = _k8s()
    by_kind: dict[str, list[dict]] = {}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata"} <= set(doc)
        by_kind.setdefault(doc["kind"], []).append(doc)
    config = by_kind["ConfigMap"][0]["data"]
    check_env(list(config))
    limit = int(config["HOMESHOTS_TASK_TIME_LIMIT"])
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    worker = deployments["homeshots-worker"]["spec"]["template"]["spec"]
    assert worker["terminationGracePeriodSeconds"] > limit, "SIGTERM grace must outlast the hard time limit"
    for deployment in deployments.values():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            check_command(container["command"])
    scaled = by_kind["ScaledObject"][0]["spec"]
    assert scaled["scaleTargetRef"]["name"] == "homeshots-worker"
    trigger = scaled["triggers"][0]
    assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == QUEUE
    job = by_kind["CronJob"][0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    check_command(job["command"])
    flower_service = next(s for s in by_kind["Service"] if s["metadata"]["name"] == "homeshots-flower")
    assert flower_service["spec"]["type"] == "ClusterIP", "Flower is never exposed publicly"
