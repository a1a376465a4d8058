"""The side-by-side benchmark: its arithmetic, and a smoke run on two tiny generated photos.

The smoke run never installs img2dataset (that leg is skipped) and never reads the shared data set,
so the default suite stays fast and offline.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import side_by_side
from benchmarks.side_by_side_legs import LegRun, Sample


def test_measure_uses_the_steady_window_and_the_cpu_sampled_in_it() -> None:
    """40 images finished one every 0.1 s from t=100; the tree used 1.5 cores, others 0.25, we 0.05."""
    stamps = [100 + 0.1 * i for i in range(40)]
    samples = [Sample(99 + t, 1.5 * t, 1.8 * t, 0.05 * t) for t in range(0, 7)]
    run = LegRun("homeshots", 40, stamps, samples, seconds=8.0, cpu=7.0)
    m = side_by_side.measure(run, cores=2)
    # 2 stamps trimmed at each end: 35 intervals of 0.1 s
    assert m.per_core == pytest.approx(35 / 3.5 / 2)
    assert m.per_free_core == pytest.approx(35 / 3.5 / 1.7)
    assert m.e2e_per_core == pytest.approx(40 / 8.0 / 2)
    assert m.cpu_ms == pytest.approx(1000 * 1.5 * 3.5 / 35)
    assert m.e2e_cpu_ms == pytest.approx(1000 * 7.0 / 40)
    assert m.busy == pytest.approx(0.75)
    assert m.other == pytest.approx(0.25)
    assert m.server == pytest.approx(0.05)
    assert m.busy_left == pytest.approx(1.5 / (2 - 0.25 - 0.05))


def test_summary_pairs_ratios_round_by_round() -> None:
    def m(leg: str, per_core: float, cpu_ms: float) -> side_by_side.Measure:
        return side_by_side.Measure(leg, per_core, per_core, per_core, cpu_ms, cpu_ms, 0.97, 0.99, 0.1, 0.02, 100)

    results = {
        "3000 px": {
            "homeshots": [m("homeshots", 12.0, 80), m("homeshots", 6.0, 80)],
            "img2dataset": [m("img2dataset", 10.0, 100), m("img2dataset", 4.0, 100)],
            "floor": [m("floor", 12.0, 80), m("floor", 12.0, 80)],
        }
    }
    lines = side_by_side.summary(results, cores=2)
    assert "| 3000 px | homeshots | 9.0 (6.0-12.0) |" in lines[2]
    ratios = "\n".join(lines)
    assert (
        "homeshots/img2dataset per core 1.35 (1.20-1.50), goal >= 1.2: met; per free core 1.35 (1.20-1.50); "
        "per CPU second 1.25" in ratios
    )
    assert "homeshots/floor per core 0.75 (0.50-1.00), goal >= 0.95: NOT met" in ratios
    assert "kept 97% of 2 cores busy" in ratios


def test_smoke_run_on_two_tiny_photos_without_img2dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = side_by_side.main(
        [
            *("--images", "2", "--rounds", "1", "--sizes", "1100", "--each", "2", "--generated", "--no-install"),
            *("--img2dataset-venv", str(tmp_path / "no-venv")),
        ]
    )
    out = capsys.readouterr().out
    assert "img2dataset: not installed" in out and "leg skipped" in out
    legs = results["1100 px"]
    assert set(legs) == {"homeshots", "floor"}
    for runs in legs.values():
        # two tiny photos may fit between two CPU clock ticks: the whole run's CPU is what must register
        assert runs[0].images == 2 and runs[0].per_core > 0 and runs[0].e2e_cpu_ms > 0
    # homeshots' whole pipeline stores exactly the floor's picture: same size, PNG, same pixels
    assert "1100 px: homeshots vs floor on 2 photos: size differs on 0, formats PNG, mean abs pixel diff 0.00" in out
    assert "| 1100 px | homeshots |" in out and "homeshots/floor per core" in out
