"""``flowc init`` / ``flowc new`` through the CLI in a fresh folder: the project runs at once,
and its generated pre-commit config passes the real ``pre-commit`` (offline: local hooks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """PATH with a ``flowc`` that is this interpreter's ``python -m flowc`` (the code under test),
    a private pre-commit cache, and git identities."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "flowc"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m flowc "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PRE_COMMIT_HOME": str(tmp_path / "pc-cache"),
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }


def sh(cmd: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def pre_commit(cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pre-commit", path=os.path.dirname(sys.executable)) or shutil.which(
        "pre-commit"
    )
    assert exe, "pre-commit must be installed (dev extra)"
    subprocess.run(["git", "add", "-A"], cwd=cwd, env=env, check=True)
    return subprocess.run(
        [exe, "run", "--all-files"], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_init_then_run_in_a_fresh_folder(tmp_path: Path, env: dict[str, str]) -> None:
    done = sh("flowc init demo && cd demo && flowc run flows/*.yaml", tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "created project 'demo' in demo/" in done.stdout
    assert "success in" in done.stdout and "(2 success)" in done.stdout
    demo = tmp_path / "demo"
    for rel in (
        "pyproject.toml",
        "README.md",
        ".pre-commit-config.yaml",
        ".gitignore",
        "flows/hello.yaml",
        "steps/hello.py",
        "dags/hello.py",
    ):
        assert (demo / rel).is_file(), rel
    assert (demo / ".git").is_dir()
    readme = (demo / "README.md").read_text()
    assert "flowc run flows/hello.yaml" in readme
    assert "flowc compile flows/hello.yaml --target airflow -o dags" in readme
    # the run's values: the greeting and its word count
    runs = sorted((demo / ".flowc" / "runs").iterdir())
    (run,) = runs
    assert json.loads((run / "greet" / "greeting.json").read_text()) == "Hello, world!"
    assert json.loads((run / "count" / "words.json").read_text()) == 2
    # the README's second command writes exactly what init wrote
    before = (demo / "dags" / "hello.py").read_text()
    again = sh("flowc compile flows/hello.yaml --target airflow -o dags", demo, env)
    assert again.returncode == 0, again.stderr
    assert (demo / "dags" / "hello.py").read_text() == before


def test_generated_pre_commit_config_passes_then_catches_stale_output(
    tmp_path: Path, env: dict[str, str]
) -> None:
    assert sh("flowc init demo", tmp_path, env).returncode == 0
    demo = tmp_path / "demo"
    fresh = pre_commit(demo, env)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "flowc validate" in fresh.stdout and "flowc compile --check" in fresh.stdout
    assert "Passed" in fresh.stdout
    # new flows (both kinds) are compiled into dags/ as they are made: still passing
    made = sh("flowc new etl && flowc new feats --functions", demo, env)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (demo / "dags" / "etl.py").is_file() and (demo / "dags" / "feats.py").is_file()
    ok = pre_commit(demo, env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # an edited flow whose output was not recompiled fails the hook
    flow = demo / "flows" / "hello.yaml"
    flow.write_text(flow.read_text().replace("count its words", "count its letters"))
    stale = pre_commit(demo, env)
    assert stale.returncode != 0
    assert "count its letters" in stale.stdout  # the diff is shown
    # and an invalid flow fails validation with its location
    flow.write_text(flow.read_text().replace("name: hello", "name: Hello World"))
    bad = pre_commit(demo, env)
    assert bad.returncode != 0 and "flows/hello.yaml:" in bad.stdout


def test_new_flows_run_and_validate_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    assert sh("flowc init demo", tmp_path, env).returncode == 0
    demo = tmp_path / "demo"
    made = sh("flowc new etl && flowc new feats --functions", demo, env)
    assert made.returncode == 0, made.stderr
    checked = sh("flowc validate flows/*.yaml", demo, env)
    assert checked.returncode == 0, checked.stderr
    assert "flows/feats.yaml: ok (3 steps)" in checked.stdout
    ran = sh("flowc run flows/feats.yaml --param n=3", demo, env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (run,) = sorted((demo / ".flowc" / "runs").iterdir())
    assert json.loads((run / "summary" / "summary.json").read_text()) == {"count": 3, "total": 14}
    assert sh("flowc run flows/etl.yaml", demo, env).returncode == 0


def test_init_and_new_refuse_to_overwrite(tmp_path: Path, env: dict[str, str]) -> None:
    assert sh("flowc init demo", tmp_path, env).returncode == 0
    again = sh("flowc init demo", tmp_path, env)
    assert again.returncode == 1
    assert again.stderr.startswith("flowc: error: 'demo' already exists and is not empty")
    demo = tmp_path / "demo"
    assert sh("flowc new etl", demo, env).returncode == 0
    steps = (demo / "steps" / "etl.py").read_text()
    twice = sh("flowc new etl --functions", demo, env)
    assert twice.returncode == 1
    assert "flows/etl.yaml, steps/etl.py already exist" in twice.stderr
    assert (demo / "steps" / "etl.py").read_text() == steps  # nothing was written
    bad = sh("flowc new My-Flow", demo, env)
    assert bad.returncode == 1 and "invalid flow name 'My-Flow'" in bad.stderr
    assert "Traceback" not in bad.stderr + twice.stderr + again.stderr
