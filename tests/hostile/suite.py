"""Running the hostile cases: servers, a Redis, one fresh worker-like process per case, two at a time.

Used by ``test_hostile.py`` and by ``python -m tests.hostile.table [NAME ...]`` (the table for a report).
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis as redis_lib

from tests.conftest import ROOT, RedisServer, base_env
from tests.hostile import inputs
from tests.hostile.cases import BENIGN, CASES, LISTING_KEY, Case, Scene, body, media_item, reso_page
from tests.hostile.server import CanaryServer, Exchange, RawServer

SUITE_ENV = {
    "HOMESHOTS_SOURCES": "mls",
    "HOMESHOTS_ALLOW_PRIVATE_HOSTS": "127.0.0.1",  # the canary's 127.0.0.2 stays outside
    "HOMESHOTS_MLS_CLIENT_ID": "hostile",
    "HOMESHOTS_MLS_CLIENT_SECRET": "hostile-secret",
    "HOMESHOTS_MLS_MAX_RETRIES": "1",
    "HOMESHOTS_MLS_TIMEOUT": "2",
    "HOMESHOTS_REQUEST_DEADLINE": "4",
    "HOMESHOTS_DOWNLOAD_TIMEOUT": "2",
    "HOMESHOTS_DOWNLOAD_DEADLINE": "4",
    "HOMESHOTS_DOWNLOAD_RETRIES": "1",
    "HOMESHOTS_MAX_IMAGE_BYTES": str(40 << 20),
}


def _token(ex: Exchange) -> None:
    ex.respond(
        200,
        json.dumps({"access_token": "hostile-token", "expires_in": 3600}).encode(),
        {"Content-Type": "application/json"},
    )


def run_case(
    index: int, case: Case, server: RawServer, canary: CanaryServer, redis_url: str, work: Path
) -> dict[str, Any]:
    """Serve the case under its own prefix and run its property in a fresh process."""
    scene = Scene(server, canary, prefix=f"/c{index}")
    for path, handler in case.routes(scene).items():
        server.routes[scene.prefix + path] = handler
    server.routes[scene.prefix + "/ok/"] = lambda ex: ex.respond(
        200, inputs.benign(int(ex.path.split("/ok/", 1)[1].split(".", 1)[0])), {"Content-Type": "image/jpeg"}
    )
    media = [media_item(i, scene.url(f"/ok/{i}.jpg")) for i in range(BENIGN)]
    media += [media_item(BENIGN + i, url) for i, url in enumerate(case.media(scene))]
    server.routes[scene.prefix + "/oauth2/token"] = _token
    server.routes[scene.prefix + "/reso/odata/Property"] = (
        case.reso(scene, media) if case.reso else body(reso_page(media), "application/json")
    )
    env = (
        base_env(work)
        | SUITE_ENV
        | case.env
        | {
            "HOMESHOTS_REDIS_URL": f"{redis_url.rsplit('/', 1)[0]}/{index % 16}",
            "HOMESHOTS_STORE_URL": f"file://{work / f'store-{index}'}",
            "HOMESHOTS_MLS_BASE_URL": scene.url("/reso/odata"),
            "HOMESHOTS_MLS_TOKEN_URL": scene.url("/oauth2/token"),
        }
    )
    redis_lib.Redis.from_url(env["HOMESHOTS_REDIS_URL"]).flushdb()
    prop = json.dumps({"property_id": f"h-{case.name}", "address": "1 Hostile St", "mls_listing_key": LISTING_KEY})
    proc = subprocess.run(
        [sys.executable, "-m", "tests.hostile.runner", f"hostile-{index}", prop],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if proc.returncode != 0:
        return {"status": "crashed", "error": proc.stderr[-2000:]}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["log"] = proc.stderr
    return result


def run_cases(cases: list[Case], work: Path) -> dict[str, dict[str, Any]]:
    """Every case's result by name; a case that crashes or hangs is a result too, never an exception."""
    inputs.make_all()  # before any case runs: a body made on first request would count against its time
    redis = RedisServer(work / "redis")
    redis.start()
    try:
        with RawServer() as server, CanaryServer() as canary:
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = {
                    case.name: pool.submit(run_case, i, case, server, canary, redis.url, work)
                    for i, case in enumerate(CASES)
                }
                out = {name: future.result() for name, future in futures.items()}
            for result in out.values():
                result["canary"] = canary.connections
            return out
    finally:
        redis.stop()
