"""The project's own hostile suite: every case over real servers on 127.0.0.1, one fresh process each.

Each case must end in its named outcome, within its time, under ``MAX_MB`` of peak RSS, with the
listing's benign photos stored, no secret in any record or log line, and nothing reaching the canary
(a server on 127.0.0.2, outside the allow-list). ``python -m tests.hostile.table`` prints the table.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.hostile.cases import CASES, MAX_MB, Case
from tests.hostile.suite import run_cases

SECRETS = ("s3cr3tsig", "t0ken", "hostile-secret")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return run_cases(CASES, tmp_path_factory.mktemp("hostile"))


def test_the_suite_has_forty_cases_or_more() -> None:
    assert len(CASES) >= 40 and len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_ends_in_its_named_outcome(case: Case, results: dict[str, dict[str, Any]]) -> None:
    got = results[case.name]
    assert got["status"] == case.status, got
    assert tuple(got["image_kinds"]) == tuple(sorted(case.kinds)), got
    if case.source_kind is not None:
        assert got["reason"]["kind"] == case.source_kind, got
    assert got["stored"] == case.stored, got
    assert got["seconds"] <= case.max_seconds, got
    assert got["peak_mb"] <= MAX_MB, got
    assert got["canary"] == 0, "a request reached the canary outside the allow-list"
    for secret in SECRETS:
        assert secret not in got["records"] and secret not in got["log"], f"{secret} leaked"
