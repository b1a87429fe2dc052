"""Outputs are byte-identical across hash seeds, working directories and checkout paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.golden_harness import GOLDEN, REPO

DIGEST_SCRIPT = r"""
import hashlib, os, sys
sys.path.insert(0, sys.argv[1])
from tests.golden_harness import case_targets, cases, compile_case
from pathlib import Path
root = Path(sys.argv[2])
h = hashlib.sha256()
for case in cases(root):
    for target in case_targets(root / case):
        for rel, text in sorted(compile_case(root / case, target).items()):
            h.update(f"{case}/{target}/{rel}\0".encode()); h.update(text.encode()); h.update(b"\0")
print(h.hexdigest())
"""


def _digest(golden_root: Path, cwd: Path, seed: str) -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, "-c", DIGEST_SCRIPT, str(REPO), str(golden_root)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_outputs_identical_across_seeds_cwds_and_checkouts(tmp_path: Path) -> None:
    # A second checkout at another absolute path: same repository-relative layout.
    other = tmp_path / "elsewhere" / "checkout"
    shutil.copytree(GOLDEN, other / "golden")
    (other / ".git").mkdir()
    digests = {
        _digest(GOLDEN, REPO, "0"),
        _digest(GOLDEN, REPO, "1"),
        _digest(GOLDEN, REPO, "4242"),
        _digest(other / "golden", other, "7"),
    }
    assert len(digests) == 1, digests
