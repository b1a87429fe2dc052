"""Golden files: every case under golden/ compiled for every registered target, bytes compared.

Regenerate after an intended change with ``FLOWC_UPDATE_GOLDEN=1 pytest tests/test_golden.py``
and read every diff before committing it.
"""

from __future__ import annotations

import difflib
import os

import pytest

from tests.golden_harness import (
    GOLDEN,
    case_targets,
    cases,
    compile_case,
    expected_files,
    target_names,
    write_expected,
)

UPDATE = os.environ.get("FLOWC_UPDATE_GOLDEN") == "1"
CASES = cases()
TARGETS = target_names()


def test_there_are_golden_cases_for_every_target() -> None:
    assert len(CASES) >= 5, CASES
    assert set(TARGETS) >= {"local", "airflow", "kfp", "vertex", "k8s"}, TARGETS


@pytest.mark.parametrize(
    ("case", "target"), [(c, t) for c in CASES for t in case_targets(GOLDEN / c)]
)
def test_golden(case: str, target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(GOLDEN.parent)
    case_dir = GOLDEN / case
    got = compile_case(case_dir, target)
    if UPDATE:
        write_expected(case_dir, target, got)
        return
    want = expected_files(case_dir, target)
    assert (
        want is not None
    ), f"no golden output for {case}/{target}: run FLOWC_UPDATE_GOLDEN=1 pytest tests/test_golden.py"
    assert sorted(got) == sorted(
        want
    ), f"{case}/{target}: files differ: {sorted(got)} vs {sorted(want)}"
    for rel in sorted(want):
        if got[rel] != want[rel]:
            diff = "".join(
                difflib.unified_diff(
                    want[rel].splitlines(True),
                    got[rel].splitlines(True),
                    f"golden/{case}/{target}/{rel}",
                    "compiled",
                )
            )
            pytest.fail(f"{case}/{target}/{rel} is stale:\n{diff}")
