"""``python -m tests.hostile.table [NAME ...]``: run the hostile cases and print their table (markdown)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from tests.hostile.cases import CASES
from tests.hostile.suite import run_cases


def main(names: list[str]) -> None:
    cases = [c for c in CASES if not names or c.name in names]
    with tempfile.TemporaryDirectory() as work:
        results = run_cases(cases, Path(work))
    print("| case | group | outcome | image failures | stored | seconds | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        got = results[case.name]
        reason = (got.get("reason") or {}).get("kind", "")
        outcome = got["status"] + (f" ({reason})" if reason else "")
        print(
            f"| {case.name} | {case.group} | {outcome} | {', '.join(got.get('image_kinds', [])) or '-'} | "
            f"{got.get('stored', '-')} | {got.get('seconds', '-')} | {got.get('peak_mb', '-')} |"
        )
        if got["status"] in ("crashed", "hung"):
            print(got.get("error", ""), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
