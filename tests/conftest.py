"""Shared test setup: fixture step modules importable in-process and in subprocesses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_PKGS = REPO / "tests" / "fixtures" / "pkgs"
GOLDEN = REPO / "golden"

# Step callables used by golden flows and runtime tests live in tests/fixtures/pkgs (package
# ``flowc_demo`` and friends). Make them importable here and in every child process.
if str(FIXTURE_PKGS) not in sys.path:
    sys.path.insert(0, str(FIXTURE_PKGS))
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(FIXTURE_PKGS), os.environ.get("PYTHONPATH", "")) if p
)
