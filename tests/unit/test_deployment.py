"""docker-compose.yml and infra/k8s use only commands, options and settings that exist."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml
from homeshots_sandbox.cli import main as sandbox_main
from homeshots_sandbox.server import SandboxServer

from celery_app.app import app, lane_queue
from homeshots.core.settings import SOURCES, Settings
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
        assert "homeshots.extract_lane" in app.tasks and "homeshots.finish_chunk" in app.tasks
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
    lanes = {t["metadata"]["listName"] for t in scaled["triggers"] if t["type"] == "redis"}
    assert lanes == {lane_queue(source) for source in SOURCES}, "KEDA watches every source's lane queue"
    job = by_kind["CronJob"][0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    check_command(job["command"])
    flower_service = next(s for s in by_kind["Service"] if s["metadata"]["name"] == "homeshots-flower")
    assert flower_service["spec"]["type"] == "ClusterIP", "Flower is never exposed publicly"


# --- docker-compose.yml runs as written ---------------------------------------------------------------
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
SECRETS = ("REDIS_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "FLOWER_BASIC_AUTH", "SOURCES_ENV_FILE")
JOBS = {"minio-bucket"}
"""Services that run once and exit; every other one runs for good."""


def _env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if line.strip() and line[0] != "#")
    return {name.strip(): value.strip() for name, value in pairs}


def test_compose_secrets_are_required_never_defaulted() -> None:
    assert "change-me" not in COMPOSE_TEXT
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", COMPOSE_TEXT)
        assert uses, f"{name} is not used"
        assert all(u.startswith(":?") and len(u) > 2 for u in uses), f"${{{name}}} must be ${{{name}:?message}}"


def test_compose_services_are_healthchecked_restarted_and_ordered() -> None:
    services = yaml.safe_load(COMPOSE_TEXT)["services"]
    for name, service in services.items():
        if name in JOBS:
            assert service["restart"] == "no", f"{name}: a job is not restarted after it succeeded"
            continue
        assert service["restart"] == "unless-stopped", name
        check = service["healthcheck"]
        assert check["test"][0] in ("CMD", "CMD-SHELL") and {"interval", "timeout", "retries"} <= set(check), name
    tests = {name: " ".join(s["healthcheck"]["test"][1:]) for name, s in services.items() if name not in JOBS}
    assert "redis-cli" in tests["redis"] and "ping" in tests["redis"]
    assert "REDISCLI_AUTH" in services["redis"]["environment"], "the password never on a command line"
    assert tests["minio"] == "mc ready local"
    assert re.search(r"celery -A celery_app inspect ping -d celery@\$\$HOSTNAME --timeout \d+", tests["worker"])
    assert "/healthcheck" in tests["flower"] and "/readyz" in tests["metrics"]

    def waits_for(name: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}

    assert waits_for("minio-bucket") == {"minio": "service_healthy"}
    assert waits_for("worker") == {
        "redis": "service_healthy",
        "minio-bucket": "service_completed_successfully",
        "sandbox": "service_healthy",
    }
    assert services["worker"]["depends_on"]["sandbox"]["required"] is False, "the sandbox only runs in its profile"
    assert waits_for("flower") == waits_for("metrics") == {"redis": "service_healthy"}


def test_compose_images_are_pinned() -> None:
    services = yaml.safe_load(COMPOSE_TEXT)["services"]
    images = {name: s["image"] for name, s in services.items()}
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+", images["redis"])
    assert re.fullmatch(r"minio/minio:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", images["minio"])
    assert re.fullmatch(r"minio/mc:RELEASE\.\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ", images["minio-bucket"])
    for name in ("worker", "flower", "metrics", "sandbox"):
        assert "build" in services[name] and not images[name].endswith(":latest"), f"{name}: built here, tagged"


def test_compose_points_at_the_sandbox_only_in_its_profile() -> None:
    services = yaml.safe_load(COMPOSE_TEXT)["services"]
    for name, service in services.items():
        if "sandbox" not in service.get("profiles", []):
            values = " ".join(str(v) for v in (service.get("environment") or {}).values())
            assert "sandbox" not in values, f"{name}'s environment points at the sandbox"
    env_file = services["worker"]["env_file"]
    assert len(env_file) == 1 and env_file[0].startswith("${SOURCES_ENV_FILE:?"), "source settings from one file"
    command = services["sandbox"]["command"]
    assert command[:6] == ["homeshots-sandbox", "serve", "--host", "0.0.0.0", "--port", "8765"]
    assert command[command.index("--advertise-url") + 1] == "http://sandbox:8765"
    known = {o for p in sandbox_main.commands["serve"].params for o in p.opts}
    assert {w for w in command if w.startswith("--")} <= known
    sandbox_env = _env_file(ROOT / "infra" / "compose" / "sandbox.env")
    assert sandbox_env == SandboxServer([], {}, host="sandbox", port=8765).env()
    assert sandbox_env["HOMESHOTS_ALLOW_PRIVATE_HOSTS"] == "sandbox"
    for path in (ROOT / "infra" / "compose").glob("*.env*"):
        check_env(list(_env_file(path)))
        assert all(name.startswith("HOMESHOTS_") for name in _env_file(path)), path


def test_compose_containers_of_ours_are_hardened() -> None:
    services = yaml.safe_load(COMPOSE_TEXT)["services"]
    for name in ("worker", "flower", "metrics", "sandbox"):
        s = services[name]
        assert s["user"] == "10001:10001" and s["read_only"] is True and "/tmp" in s["tmpfs"], name
        assert s["cap_drop"] == ["ALL"] and "no-new-privileges:true" in s["security_opt"], name


# --- Dockerfile -------------------------------------------------------------------------------------------
def _stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            current = stages.setdefault(line.split()[-1], [line])
        else:
            current.append(line)
    return stages


def test_dockerfile_is_pinned_layered_and_unprivileged() -> None:
    stages = _stages()
    assert list(stages)[-1] == "runtime", "the default target is the runtime image"
    assert re.fullmatch(r"FROM python:3\.11\.\d+-slim-bookworm AS base", stages["base"][0])
    assert any("useradd --uid 10001" in line for line in stages["base"])
    for name in ("runtime", "sandbox"):
        assert "USER 10001:10001" in stages[name], name
    deps = " ".join(stages["deps"])
    assert "pyproject.toml" in deps and "pip install -r" in deps and "COPY homeshots" not in deps
    runtime = " ".join(stages["runtime"])
    assert stages["runtime"][0].startswith("FROM deps ") and "pip install --no-deps" in runtime
    for absent in ("sandbox", "tests", "examples"):
        assert absent not in runtime and absent not in " ".join(stages["wheel"]), f"no {absent} in the runtime image"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "!tests" not in ignored and "!examples" not in ignored
