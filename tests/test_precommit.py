"""The real ``pre-commit`` tool runs flowc's hooks from this repository (.pre-commit-hooks.yaml):
they pass on fresh outputs and fail on stale ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.golden_harness import REPO
from tests.test_compile_cli import FLOW


def git(*args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout


def test_precommit_hooks_pass_on_fresh_and_fail_on_stale(tmp_path: Path) -> None:
    pre_commit = shutil.which("pre-commit", path=os.path.dirname(sys.executable)) or shutil.which(
        "pre-commit"
    )
    assert pre_commit, "pre-commit must be installed (dev extra)"
    # The hook source: a snapshot commit of this working tree, so uncommitted work is tested too.
    src = tmp_path / "hook-src"
    shutil.copytree(
        REPO,
        src,
        ignore=shutil.ignore_patterns(
            ".venv*",
            ".git",
            "__pycache__",
            ".flowc",
            "build",
            "*.egg-info",
            ".pytest_cache",
            ".hypothesis",
        ),
    )
    git("init", "-q", "-b", "main", cwd=src)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "snapshot", cwd=src)
    rev = git("rev-parse", "HEAD", cwd=src).strip()

    user = tmp_path / "user-repo"
    user.mkdir()
    git("init", "-q", "-b", "main", cwd=user)
    (user / "flow.yaml").write_text(FLOW)
    (user / ".pre-commit-config.yaml").write_text(f"""repos:
- repo: {src}
  rev: {rev}
  hooks:
  - id: flowc-validate
  - id: flowc-check
    args: [--target, local, -o, out]
""")
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pc-cache")}
    subprocess.run(
        [sys.executable, "-m", "flowc", "compile", "flow.yaml", "--target", "local", "-o", "out"],
        cwd=user,
        check=True,
        env=env,
    )
    git("add", "-A", cwd=user)
    fresh = subprocess.run(
        [pre_commit, "run", "--all-files"],
        cwd=user,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    (user / "flow.yaml").write_text(FLOW.replace("a tiny flow", "a stale flow"))
    git("add", "-A", cwd=user)
    stale = subprocess.run(
        [pre_commit, "run", "--all-files"],
        cwd=user,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert stale.returncode != 0
    assert "flowc compile --check" in stale.stdout and "Failed" in stale.stdout
    assert "stale flow" in stale.stdout  # the diff is shown
