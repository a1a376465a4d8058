"""``homeshots flower``: Flower for this cluster, never open to the world by accident.

It refuses to start without authentication (basic auth, or Flower's OAuth settings), binds to
127.0.0.1 unless told otherwise, and passes the credentials through the environment, not the
command line (which any local user can read in ``ps``).
"""

from __future__ import annotations

import os
import subprocess
import sys

from homeshots.core.errors import ConfigError
from homeshots.core.settings import Settings


def flower_command(settings: Settings, address: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The Flower command line and environment for ``settings``; ConfigError when auth is missing."""
    if not settings.effective_broker_url:
        raise ConfigError("Flower needs HOMESHOTS_REDIS_URL (or HOMESHOTS_BROKER_URL) to see the workers")
    env = dict(os.environ)
    basic = settings.flower_basic_auth.get_secret_value()
    if basic:
        if any(":" not in pair or not pair.split(":", 1)[1] for pair in basic.split(",")):
            raise ConfigError("HOMESHOTS_FLOWER_BASIC_AUTH must be user:password[,user2:password2]")
        env["FLOWER_BASIC_AUTH"] = basic
    elif settings.flower_auth and settings.flower_oauth2_key:
        env |= {
            "FLOWER_AUTH": settings.flower_auth,
            "FLOWER_OAUTH2_KEY": settings.flower_oauth2_key,
            "FLOWER_OAUTH2_SECRET": settings.flower_oauth2_secret.get_secret_value(),
            "FLOWER_OAUTH2_REDIRECT_URI": settings.flower_oauth2_redirect_uri or "",
            "FLOWER_AUTH_PROVIDER": settings.flower_auth_provider,
        }
    else:
        raise ConfigError(
            "refusing to start Flower without authentication: set HOMESHOTS_FLOWER_BASIC_AUTH="
            "user:password, or HOMESHOTS_FLOWER_AUTH with the HOMESHOTS_FLOWER_OAUTH2_* settings"
        )
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "flower",
        f"--address={address}",
        f"--port={port}",
        "--persistent=False",
        "--purge_offline_workers=300",
    ]
    return cmd, env


def run_flower(settings: Settings, address: str, port: int) -> int:
    cmd, env = flower_command(settings, address, port)
    return subprocess.call(cmd, env=env)
