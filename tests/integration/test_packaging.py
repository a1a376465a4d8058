"""The runtime wheel a worker installs holds the runtime only: no sandbox, no tests, no benchmarks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import ROOT


def test_runtime_wheel_has_no_sandbox(tmp_path: Path) -> None:
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("homeshots-*.whl")
    tops = {name.split("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert {"homeshots", "celery_app", "tasks", "managers"} <= tops
    assert not {"homeshots_sandbox", "sandbox", "tests", "benchmarks", "examples"} & tops, tops
    assert "homeshots/ops/templates/report.html.j2" in zipfile.ZipFile(wheel).namelist()
