"""The conformance matrix (issue 16): every golden case and one flow per feature, run on every
engine that can run here, must record the same step behaviour as ``flowc run``.

The matrix runs ONCE per test session (``tests/conformance/matrix.py``; with xdist the first
worker runs it under a file lock and the others read its result), then each (case, engine) cell
is its own test: a cell passes when it equals ``flowc run``'s record, or when the target refuses
the flow exactly as its golden ``ERROR`` file says (a feature flow's: ``flows/refused/``), or
when it is declared not runnable here with a reason. Known, tracked differences (``tests/conformance/known.py``) are strict xfails.
``docs/conformance.md`` must equal the page rendered from this run
(``FLOWC_UPDATE_CONFORMANCE=1`` rewrites it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from tests.conformance.cases import ENGINES, GOLDEN, NOT_RUNNABLE, all_cases
from tests.conformance.known import KNOWN
from tests.conformance.matrix import Cell, build
from tests.conformance.report import PAGE, render

CASES = all_cases()


def _params() -> list[Any]:
    out = []
    for case in CASES:
        for engine in ENGINES:
            marks = []
            if (case.name, engine) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(case.name, engine)]))
            out.append(pytest.param(case.name, engine, marks=marks, id=f"{case.name}-{engine}"))
    return out


@pytest.fixture(scope="session")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Cell]:
    # xdist workers of one session share their base folder's parent (pytest-N); a run without
    # xdist has its own base folder (its parent is common to every session: never reused)
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    result = shared / "conformance-matrix.json"
    with FileLock(str(shared / "conformance-matrix.lock")):
        if not result.is_file():
            cells, seconds = build(shared / "conformance-work")
            data = {"seconds": seconds, "cells": [c.to_data() for c in cells]}
            result.write_text(json.dumps(data, default=repr), encoding="utf-8")
            print(f"conformance matrix: {len(cells)} cells in {seconds:.0f}s")
    data = json.loads(result.read_text(encoding="utf-8"))
    return {(c["case"], c["engine"]): Cell(**c) for c in data["cells"]}


def _error_file(case: str, engine: str) -> Path:
    """Where the compile error a target gives for ``case`` is written down: a golden case's
    ``ERROR`` file, or for a feature flow ``flows/refused/<case>.<target>``."""
    from tests.conformance.cases import ENGINE_TARGET, FLOWS

    target = ENGINE_TARGET[engine] or "local"
    if (GOLDEN / case).is_dir():
        return GOLDEN / case / target / "ERROR"
    return FLOWS / "refused" / f"{case}.{target}"


def _golden_error(case: str, engine: str) -> str | None:
    err = _error_file(case, engine)
    return err.read_text(encoding="utf-8") if err.is_file() else None


@pytest.mark.parametrize(("case", "engine"), _params())
def test_cell(matrix: dict[tuple[str, str], Cell], case: str, engine: str) -> None:
    cell = matrix[(case, engine)]
    if cell.status == "refused":
        err = _error_file(case, engine)
        if os.environ.get("FLOWC_UPDATE_CONFORMANCE") and not (GOLDEN / case).is_dir():
            err.parent.mkdir(exist_ok=True)
            err.write_text(cell.detail + "\n", encoding="utf-8")
        want = _golden_error(case, engine)
        assert (
            want is not None
        ), f"{case} is refused on {engine} but no golden ERROR says so:\n{cell.detail}"
        assert cell.detail + "\n" == want
        return
    if cell.status == "not runnable":
        assert cell.detail == NOT_RUNNABLE[(case, engine)]  # said, with its reason, in the docs
        return
    assert cell.status == "pass", f"{case} on {engine}: {cell.status}\n{cell.detail}"


def test_every_feature_runs_on_flowc_run_and_records(matrix: dict[tuple[str, str], Cell]) -> None:
    """The reference column itself: every feature flow ran and its steps recorded something
    (a matrix whose steps record nothing compares nothing)."""
    for case in CASES:
        if case.feature is None:
            continue
        cell = matrix[(case.name, "flowc_run")]
        assert cell.status == "pass", cell
        assert all(run["records"] for run in cell.observed), case.name


def test_docs_page_matches_the_matrix(matrix: dict[tuple[str, str], Cell]) -> None:
    page = render(list(matrix.values()))
    if os.environ.get("FLOWC_UPDATE_CONFORMANCE"):
        PAGE.write_text(page, encoding="utf-8")
    assert (
        Path(PAGE).read_text(encoding="utf-8") == page
    ), "docs/conformance.md is stale: FLOWC_UPDATE_CONFORMANCE=1 pytest tests/test_conformance.py"
