"""Progress of a chaos run over time, with its faults marked: what each fault cost, in seconds.

The cost of a fault is the time from it to the next fault (or to the end of the run) minus the time
the work done in that stretch would have taken at the rate before any fault. Their sum is the whole
run's delay against a fault-free run at that rate (start-up aside).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field


@dataclass
class Mark:
    name: str
    at: float
    """Seconds since the run was submitted."""
    done: int
    """Properties finished (completed or failed) when the fault struck."""
    recovered: float | None = None
    """When the fault was undone (link back, Redis up), if it is undone."""


@dataclass
class Timeline:
    total: int
    start: float = field(default_factory=time.monotonic)
    samples: list[tuple[float, int]] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    finished: float | None = None

    def now(self) -> float:
        return time.monotonic() - self.start

    def sample(self, done: int) -> int:
        if not self.samples or self.samples[-1][1] != done:
            self.samples.append((self.now(), done))
        return done

    def mark(self, name: str) -> Mark:
        mark = Mark(name, self.now(), self.samples[-1][1] if self.samples else 0)
        self.marks.append(mark)
        return mark

    def finish(self) -> None:
        self.finished = self.now()

    def baseline_rate(self) -> float:
        """Properties per second from the first one finished to the first fault (all hosts up)."""
        first = next((t for t, done in self.samples if done > 0), None)
        end = self.marks[0] if self.marks else None
        if first is None or end is None or end.at <= first or end.done == 0:
            return 0.0
        return end.done / (end.at - first)

    def done_at(self, moment: float) -> int:
        done = 0
        for t, count in self.samples:
            if t > moment:
                break
            done = count
        return done

    def longest_stall(self, after: float, until: float) -> float:
        """The longest time without a property finishing between two moments."""
        times = [after] + [t for t, _ in self.samples if after < t < until] + [until]
        return max(b - a for a, b in itertools.pairwise(times))

    def costs(self) -> list[tuple[Mark, float, float]]:
        """Each fault with the end of its stretch (the next fault, or the end) and the time it cost."""
        rate = self.baseline_rate()
        end = self.finished if self.finished is not None else self.now()
        out = []
        for i, mark in enumerate(self.marks):
            until = self.marks[i + 1].at if i + 1 < len(self.marks) else end
            done = self.done_at(until) - mark.done if i + 1 < len(self.marks) else self.total - mark.done
            out.append((mark, until, (until - mark.at) - (done / rate if rate else 0.0)))
        return out

    def summary(self) -> list[str]:
        rate = self.baseline_rate()
        lines = [f"run finished {self.finished:.1f}s after submission" if self.finished else "run did not finish"]
        lines.append(f"rate before any fault: {rate:.2f} properties/s")
        for mark, until, cost in self.costs():
            back = f", undone at {mark.recovered:.1f}s" if mark.recovered is not None else ""
            lines.append(
                f"{mark.name}: at {mark.at:.1f}s ({mark.done}/{self.total} done){back}; time lost {cost:.1f}s; "
                f"longest stall before {until:.1f}s: {self.longest_stall(mark.at, until):.1f}s"
            )
        if self.marks and self.finished is not None:
            lines.append(
                f"finished {self.finished - self.marks[-1].at:.1f}s after the last fault ({self.marks[-1].name})"
            )
        return lines
