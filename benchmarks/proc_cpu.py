"""CPU seconds from ``/proc``: a process tree's, and the whole machine's (the benchmarks' one reader)."""

from __future__ import annotations

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int, *, children_only: bool = False, reaped: bool = False) -> float:
    """CPU seconds (user + system) of ``root`` and every live descendant.

    ``children_only`` leaves ``root`` itself out (a Celery pool without its main process); ``reaped`` adds
    what their already-reaped children used (``cutime`` + ``cstime``: short-lived helpers of a leg).
    """
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    last = 15 if reaped else 13  # utime stime [cutime cstime]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        times[int(entry)] = sum(int(x) for x in fields[11:last]) / CLK_TCK
    children: dict[int, list[int]] = {}
    for pid, parent in parents.items():
        children.setdefault(parent, []).append(pid)
    total, frontier = 0.0, list(children.get(root, [])) if children_only else [root]
    while frontier:
        pid = frontier.pop()
        total += times.get(pid, 0.0)
        frontier += children.get(pid, [])
    return total


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (everyone's, ours and others'), from /proc/stat."""
    with open("/proc/stat") as fh:
        ticks = [int(x) for x in fh.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLK_TCK  # minus idle and iowait
