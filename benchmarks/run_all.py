"""Run every benchmark script in ``benchmarks/`` one after the other and print all their output.

Run from the repo root: ``python -m benchmarks.run_all [--only NAME,...] [--skip NAME,...]`` (``make bench``).

The known scripts run first, in this order and with these arguments (kept short enough for a laptop);
any other ``benchmarks/*.py`` with a ``__main__`` block runs after them with no arguments. A script
that does not exist is skipped. Exits non-zero when any script failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KNOWN: list[tuple[str, list[str]]] = [
    ("dedup_index", ["--sizes", "10000,100000,1000000"]),
    ("dedup_quality", []),
    ("state_o1", []),
    ("redis_cost", []),
    ("capacity", ["--cores", "2", "--seconds", "15", "--corpus", "100000"]),
    ("nightly", []),
    ("listing_memory", []),
    ("report_scale", []),
    ("memory", []),
    ("submission", []),
    ("throughput", []),
    ("side_by_side", []),
]
NOT_SCRIPTS = {"__init__", "run_all", "redis_server", "side_by_side_legs"}
"""Helpers with a ``__main__`` of their own that are not benchmarks (``side_by_side_legs`` is the floor worker)."""


def scripts() -> list[tuple[str, list[str]]]:
    """(module name, arguments) of every benchmark present, known ones first."""
    present = {
        p.stem
        for p in HERE.glob("*.py")
        if p.stem not in NOT_SCRIPTS and 'if __name__ == "__main__"' in p.read_text(encoding="utf-8", errors="replace")
    }
    known = [(name, args) for name, args in KNOWN if name in present]
    others = sorted(present - {name for name, _ in KNOWN})
    return known + [(name, []) for name in others]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--only", default="", help="comma-separated script names to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated script names not to run")
    args = parser.parse_args(argv)
    only = set(filter(None, args.only.split(",")))
    skip = set(filter(None, args.skip.split(",")))
    chosen = [(n, a) for n, a in scripts() if (not only or n in only) and n not in skip]
    missing = [n for n, _ in KNOWN if n not in {c for c, _ in scripts()}]
    if missing:
        print(f"not present, skipped: {', '.join(missing)}", flush=True)
    results: list[tuple[str, int, float]] = []
    for name, extra in chosen:
        command = [sys.executable, "-m", f"benchmarks.{name}", *extra]
        print(f"\n{'=' * 100}\n$ python -m benchmarks.{name} {' '.join(extra)}".rstrip() + f"\n{'=' * 100}", flush=True)
        started = time.monotonic()
        code = subprocess.call(command, cwd=ROOT)
        results.append((name, code, time.monotonic() - started))
    print(f"\n{'=' * 100}\nbenchmarks run:")
    for name, code, seconds in results:
        print(f"  {name:<16} {'ok' if code == 0 else f'FAILED (exit {code})':<18} {seconds:7.1f} s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
