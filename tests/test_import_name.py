"""One import name: from a checkout and installed, only ``flowc.*`` imports (no bare
``compiler``/``grammar``/``runtime``/``targets``, no ``flowc.flowc``, no ``flowc.tests``), and
every package folder is in pyproject.toml's package list."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUBPACKAGES = ("compiler", "grammar", "runtime", "targets")


def _run_in_checkout(code: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` in the repository root with the checkout on sys.path (as pytest's
    ``pythonpath``, ``python -m flowc`` there, and PYTHONPATH=<worktree> all do)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env
    )


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_bare_folder_name_does_not_import(name: str) -> None:
    res = _run_in_checkout(f"import {name}")
    assert res.returncode != 0
    assert f"ImportError: import flowc.{name}, not {name}" in res.stderr


@pytest.mark.parametrize("name", ["flowc.flowc", "flowc.tests", "flowc.bench", "flowc.golden"])
def test_other_checkout_folders_are_not_flowc_subpackages(name: str) -> None:
    res = _run_in_checkout(f"import {name}")
    assert res.returncode != 0
    assert f"No module named '{name}'" in res.stderr


def test_flowc_subpackages_come_from_this_checkout() -> None:
    code = (
        "import flowc.compiler.ir, flowc.grammar, flowc.runtime.executor, flowc.targets.k8s\n"
        "import sys\n"
        "for m in ('flowc.compiler.ir', 'flowc.grammar', 'flowc.runtime.executor',"
        " 'flowc.targets.k8s'):\n"
        "    print(sys.modules[m].__file__)\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] in"
        f" {SUBPACKAGES!r}))\n"
    )
    res = _run_in_checkout(code)
    assert res.returncode == 0, res.stderr
    *files, bare = res.stdout.splitlines()
    expected = ["compiler/ir.py", "grammar/__init__.py", "runtime/executor.py", "targets/k8s.py"]
    assert files == [str(REPO / f) for f in expected]
    assert bare == "[]"  # no second copy of any module under a bare name


def test_python_dash_m_flowc_works_from_the_repo_root() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-m", "flowc", "--version"],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    assert "0.1.0" in res.stdout


def test_every_package_folder_is_installed() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {"flowc"}
    for top in SUBPACKAGES:
        for init in (REPO / top).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO).parts
            found.add(".".join(("flowc", *rel)))
    assert found == listed


def test_tests_import_flowc_names_only() -> None:
    bad = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.split()
            if (
                len(words) >= 2
                and words[0] in ("import", "from")
                and (words[1].split(".")[0] in SUBPACKAGES)
            ):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert bad == []
