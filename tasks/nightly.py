"""A night: a new run incremental against everything collected before, within each source's budget.

``submit_nightly`` first asks the MLS what changed since the last completed sync (RESO replication:
a few requests instead of one per property) and keeps the changes of the listings we follow; then it
plans the night from the listing memory: each source's request budget is its cluster-wide rate times
the night's hours, properties are visited most-stale and most-likely-to-change first, and what does
not fit is deferred to the next night (per source; a property no source fits is not sent at all).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import redis

from celery_app import app
from homeshots.core.errors import ConfigError, HomeshotsError
from homeshots.core.inputs import BadRow, read_properties
from homeshots.core.models import Property
from homeshots.core.settings import Settings, get_settings
from homeshots.pipeline.lane_pipeline import Plan
from homeshots.pipeline.worker_context import get_context
from homeshots.sources.mls import MlsExtractor
from managers import keys
from managers.listing_memory import ListingMemory, ListingMemoryManager
from managers.run_manager import RunManager
from managers.source_limiter import SourceLimiter
from managers.state_manager import chunked
from tasks.lanes import request_cost
from tasks.submission import Submission, submit_run

NEVER_VISITED = 1e12
"""Priority of a property a source has never been asked about: first, always."""


def nightly_run_id(day: date | None = None) -> str:
    return f"nightly-{(day or datetime.now(UTC).date()).isoformat()}"


@dataclass
class Replication:
    """What the MLS said changed since the last completed sync."""

    status: str = "skipped"
    """``first`` (the sync point was set now), ``completed``, ``failed`` or ``skipped`` (MLS not in the run)."""
    since: str | None = None
    until: str | None = None
    changed: int = 0
    """Listings the MLS reported changed (ours or not)."""
    kept: int = 0
    """Of those, listings of our properties, kept for their visit tonight."""
    pages: int = 0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


async def _replicate(client: redis.Redis, settings: Settings) -> Replication:
    since = client.get(keys.MLS_SYNC)
    out = Replication("completed", since=since, until=since)
    policy = settings.policy("mls")
    limiter = SourceLimiter(client, "mls", policy.rate)
    async with httpx.AsyncClient(
        headers={"User-Agent": policy.user_agent}, proxy=policy.proxy_url, trust_env=False, follow_redirects=False
    ) as http:
        mls = MlsExtractor(http, settings, limiter=limiter)
        try:
            if since is None:
                # The first night: tonight's visits see every listing as of at least the MLS's latest change
                # (by its own clock), so tomorrow's sync starts there and cannot miss a later one.
                latest = await mls.latest_change()
                if latest:
                    client.set(keys.MLS_SYNC, latest)
                return Replication("first", until=latest)
            async for page in mls.changed_since(since):
                out.pages += 1
                out.changed += len(page)
                if not page:
                    continue
                check = client.pipeline(transaction=False)
                for change in page:
                    check.sismember(keys.mls_tracked(change.listing_key), change.listing_key)
                tracked = check.execute()
                pipe = client.pipeline(transaction=False)
                for change, ours in zip(page, tracked, strict=True):
                    if ours:
                        out.kept += 1
                        pipe.set(keys.mls_changed(change.listing_key), json.dumps({"value": [change.document]}))
                    out.until = max(out.until or "", change.modified)
                pipe.execute()
        except HomeshotsError as exc:
            return Replication(
                "failed", since=since, error=str(exc), changed=out.changed, kept=out.kept, pages=out.pages
            )
    client.set(keys.MLS_SYNC, out.until or since)  # advanced only now that the sync completed
    return out


def replicate_mls(client: redis.Redis, settings: Settings) -> Replication:
    """Run the RESO replication from the stored sync point (see module doc)."""
    return asyncio.run(_replicate(client, settings))


# --- planning ------------------------------------------------------------------------------------


def priority(memory: ListingMemory | None, today: date) -> float:
    """Most stale and most likely to change first (an adaptive revisit schedule, as Nutch's)."""
    if memory is None:
        return NEVER_VISITED
    age = max(0, (today - date.fromisoformat(memory.visited)).days)
    return (age + 1) * (1 + 4 * memory.change_rate)


@dataclass
class NightPlan:
    """Which properties each source visits tonight, by row number among the file's valid rows."""

    sources: list[str]
    hours: float
    budgets: dict[str, int] = field(default_factory=dict)
    visit: dict[str, np.ndarray] = field(default_factory=dict)
    applies: dict[str, np.ndarray] = field(default_factory=dict)
    """Rows whose ``sources`` column (if any) names the source."""
    used: dict[str, int] = field(default_factory=dict)

    def choose(self, number: int, _prop: Property) -> list[str] | None:
        chosen = [s for s in self.sources if self.visit[s][number]]
        return chosen or None

    def summary(self) -> dict[str, Any]:
        return {
            "hours": self.hours,
            "sources": {
                s: {
                    "budget": self.budgets[s],
                    "requests_planned": self.used[s],
                    "visited": int(self.visit[s].sum()),
                    "deferred": int((self.applies[s] & ~self.visit[s]).sum()),
                }
                for s in self.sources
            },
        }


def plan_night(
    client: redis.Redis,
    settings: Settings,
    path: Path,
    sources: list[str],
    hours: float,
    replicated: bool,
    *,
    skip_bad_rows: bool,
    today: date | None = None,
) -> NightPlan:
    """Read the file once with the listing memory and choose, per source, what fits its budget."""
    today = today or datetime.now(UTC).date()
    memory = ListingMemoryManager(client)
    priorities: dict[str, list[float]] = {s: [] for s in sources}
    costs: dict[str, list[int]] = {s: [] for s in sources}
    applies: dict[str, list[bool]] = {s: [] for s in sources}
    for batch in chunked(_valid(path, skip_bad_rows), 1000):  # type: ignore[arg-type]
        remembered = memory.get_many(p.property_id for p in batch)
        for prop in batch:
            for source in sources:
                known = remembered[prop.property_id].get(source)
                fits = not prop.sources or source in prop.sources
                applies[source].append(fits)
                priorities[source].append(priority(known, today) if fits else -1.0)
                costs[source].append(request_cost(source, prop, known, replicated and source == "mls") if fits else 0)
    plan = NightPlan(sources, hours)
    for source in sources:
        budget = int(settings.policy(source).rate * hours * 3600)
        order = np.argsort(-np.asarray(priorities[source], dtype=np.float64), kind="stable")
        cost = np.asarray(costs[source], dtype=np.int64)[order]
        fits = np.cumsum(cost) <= budget
        visit = np.zeros(len(cost), dtype=bool)
        visit[order[fits]] = True
        plan.applies[source] = np.asarray(applies[source], dtype=bool)
        visit &= plan.applies[source]
        plan.budgets[source], plan.visit[source] = budget, visit
        plan.used[source] = int(cost[fits].sum())
    return plan


def _valid(path: Path, skip_bad_rows: bool) -> Iterator[Property]:
    return (item for item in read_properties(path, skip_bad_rows=skip_bad_rows) if not isinstance(item, BadRow))


@dataclass(frozen=True)
class NightlySubmission:
    submission: Submission
    replication: Replication
    plan: NightPlan


def submit_nightly(
    client: redis.Redis,
    settings: Settings,
    path: Path,
    *,
    run_id: str,
    sources: list[str],
    hours: float | None = None,
    skip_bad_rows: bool = False,
) -> NightlySubmission:
    """Replicate the MLS, plan the night within each source's budget, and submit the run."""
    hours = hours or settings.night_hours
    replication = replicate_mls(client, settings) if "mls" in sources else Replication()
    replicated = replication.status == "completed"
    # Every row is read (and a bad one stops the night) before anything is sent.
    plan = plan_night(client, settings, path, sources, hours, replicated, skip_bad_rows=skip_bad_rows)
    night = plan.summary() | {"replication": replication.to_dict()}
    run_plan = Plan(incremental=True, mls_replicated=replicated, day=datetime.now(UTC).date().isoformat())
    submission = submit_run(
        client,
        settings,
        path,
        run_id=run_id,
        sources=sources,
        resume=True,
        skip_bad_rows=skip_bad_rows,
        choose=plan.choose,
        meta={"plan": run_plan.to_dict(), "night": night},
    )
    return NightlySubmission(submission, replication, plan)


def budget_note(plan: NightPlan) -> list[str]:
    """A line per source for the operator: its budget, and how many properties it defers."""
    lines = []
    for source, info in plan.summary()["sources"].items():
        nights = math.ceil((info["visited"] + info["deferred"]) / max(1, info["visited"])) if info["deferred"] else 1
        lines.append(
            f"{source}: budget {info['budget']} requests, {info['visited']} properties tonight"
            + (f", {info['deferred']} deferred (about {nights} nights for all)" if info["deferred"] else "")
        )
    return lines


@app.task(name="homeshots.nightly", ignore_result=True)
def nightly(path: str | None = None) -> dict[str, Any]:
    """The night's submission as a Celery task, for ``celery -A celery_app beat`` (no CronJob needed):
    ``HOMESHOTS_NIGHTLY_FILE`` names the properties file, ``HOMESHOTS_NIGHTLY_AT`` the time (UTC)."""
    settings = get_settings()
    target = Path(path or str(settings.nightly_file or ""))
    if not target.is_file():
        raise ConfigError(f"HOMESHOTS_NIGHTLY_FILE {str(target)!r} is not a file")
    run_id = nightly_run_id()
    if RunManager(get_context().redis, run_id).meta().get("status") == "finished":
        return {"run_id": run_id, "status": "already finished"}
    done = submit_nightly(
        get_context().redis, settings, target, run_id=run_id, sources=settings.sources, skip_bad_rows=True
    )
    return {"run_id": run_id, "windows": done.submission.windows, "deferred": done.submission.deferred}
