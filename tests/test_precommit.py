"""The real ``pre-commit`` tool runs flowc's hooks as the README's two snippets give them, verbatim
(``rev:`` a release tag of this repository, and ``repo: local``): they pass on fresh outputs and
fail on stale ones with the diff and the exact command that updates them."""

from __future__ import annotations

import os
import re
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


README = REPO / "README.md"
UPSTREAM = "https://github.com/flowc/flowc"
TAG = "v0.1.0"  # the README's rev: the release tag of flowc's repository


def readme_snippets() -> list[str]:
    """The ``.pre-commit-config.yaml`` blocks of the README, verbatim."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    return [b for b in blocks if b.startswith("# .pre-commit-config.yaml")]


def _pre_commit() -> str:
    found = shutil.which("pre-commit", path=os.path.dirname(sys.executable)) or shutil.which(
        "pre-commit"
    )
    assert found, "pre-commit must be installed (dev extra)"
    return found


def _hook_source(tmp_path: Path) -> Path:
    """A snapshot commit of this working tree, tagged like the release the README names, so
    uncommitted work is tested too."""
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
    git("tag", TAG, cwd=src)
    return src


def _fresh_then_stale(tmp_path: Path, config: str) -> None:
    pre_commit = _pre_commit()
    user = tmp_path / "user-repo"
    user.mkdir()
    git("init", "-q", "-b", "main", cwd=user)
    (user / "flow.yaml").write_text(FLOW)
    (user / ".pre-commit-config.yaml").write_text(config)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pc-cache"),
        "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "flowc",
            "compile",
            "flow.yaml",
            "--target",
            "airflow",
            "-o",
            "dags",
        ],
        cwd=user,
        check=True,
        env=env,
    )
    header = (user / "dags" / "tiny.py").read_text().splitlines()[1]
    assert header.endswith("`flowc compile flow.yaml --target airflow -o dags`.")
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
    assert "+++ b/dags/tiny.py" in stale.stdout  # with the output folder in its paths
    assert (
        "flowc: outputs are stale; update them with: "
        "flowc compile flow.yaml --target airflow -o dags"
    ) in stale.stdout


def test_readme_has_both_snippets() -> None:
    snippets = readme_snippets()
    assert len(snippets) == 2
    assert f"repo: {UPSTREAM}\n    rev: {TAG}\n" in snippets[0]
    assert "repo: local" in snippets[1]


def test_readme_snippet_with_rev_passes_on_fresh_and_fails_on_stale(tmp_path: Path) -> None:
    (snippet,) = [s for s in readme_snippets() if UPSTREAM in s]
    # the README's text, with only the repository's address pointing at the local snapshot
    _fresh_then_stale(tmp_path, snippet.replace(UPSTREAM, str(_hook_source(tmp_path))))


def test_readme_snippet_with_repo_local(tmp_path: Path) -> None:
    (snippet,) = [s for s in readme_snippets() if "repo: local" in s]
    _fresh_then_stale(tmp_path, snippet)


def test_hooks_file_matches_the_local_snippet() -> None:
    import yaml

    hooks = {h["id"]: h for h in yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())}
    (snippet,) = [s for s in readme_snippets() if "repo: local" in s]
    local = {h["id"]: h for h in yaml.safe_load(snippet)["repos"][0]["hooks"]}
    assert set(hooks) == set(local) == {"flowc-validate", "flowc-check"}
    for hid, hook in hooks.items():
        assert local[hid]["files"] == hook["files"]
        assert local[hid]["entry"].startswith(hook["entry"])
