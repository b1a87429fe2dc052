"""The tree stays ``ruff`` and ``black`` clean (the project's style rules, checked in CI)."""

from __future__ import annotations

import subprocess
import sys

from tests.golden_harness import REPO


def test_ruff_clean() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=REPO, capture_output=True, text=True
    )
    assert res.returncode == 0, res.stdout + res.stderr


def test_black_clean() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "black", "--check", "-q", "."],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stdout + res.stderr
