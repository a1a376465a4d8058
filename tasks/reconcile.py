"""Finishing what a crash left hanging: the logic behind ``homeshots resume`` and ``--wait``'s watchdog.

A window whose callback never ran (its message lost with a worker or a Redis), a window whose
tasks vanished, or a run whose last callback died before finalizing: each is found from the run's
state in Redis and sent again. Everything re-sent is idempotent, so reconciling twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from homeshots.core.errors import ConfigError
from homeshots.core.settings import get_settings
from homeshots.storage import open_store
from managers.run_manager import RunManager
from managers.state_manager import StateManager
from tasks.window import finalize_run, send_finish, submit_window


@dataclass
class Reconciled:
    callbacks_sent: list[int] = field(default_factory=list)
    windows_resent: list[int] = field(default_factory=list)
    finalized: bool = False

    @property
    def anything(self) -> bool:
        return bool(self.callbacks_sent or self.windows_resent or self.finalized)


def reconcile(client: redis.Redis, run_id: str) -> Reconciled:
    """Send again whatever the current submission of ``run_id`` is missing."""

    runs, state = RunManager(client, run_id), StateManager(client, run_id)
    meta = runs.meta()
    if not meta:
        raise ConfigError(f"no run {run_id!r} in this Redis")
    status = meta.get("status")
    if status in ("submitting", "rejected", "interrupted"):
        raise ConfigError(
            f"run {run_id} was not fully submitted ({status}); submit it again with "
            f"`homeshots backfill {meta.get('input', 'FILE')} --run-id {run_id}`"
        )
    out = Reconciled()
    generation = runs.generation()
    if runs.is_finished(generation):
        return out
    done = runs.done_windows(generation)
    for index in range(runs.sent_windows(generation)):
        if index in done:
            continue
        ids = [p["property_id"] for p in runs.window_properties(generation, index)]
        if len(state.terminal_among(ids)) == len(ids):
            send_finish(run_id, generation, index)
            out.callbacks_sent.append(index)
        else:
            submit_window(client, run_id, generation, index)
            out.windows_resent.append(index)
    if runs.all_windows_done(generation):
        finalize_run(runs, generation, open_store(get_settings()))
        out.finalized = True
    return out
