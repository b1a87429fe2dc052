"""The package installs under ``flowc.`` only and ``python -m flowc`` works like ``flowc``."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import flowc

REPO = Path(__file__).resolve().parent.parent


def test_version_flag_matches_package() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "flowc", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert flowc.__version__ in out.stdout


def test_no_bare_top_level_packages_installed(tmp_path: Path) -> None:
    """Build the wheel from a copy of the package sources and check that every file it installs
    lives under ``flowc/`` (or the dist-info): no bare ``compiler``/``runtime``/... package."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE", "setup.cfg", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for pkg in ("flowc", "compiler", "grammar", "targets", "runtime"):
        shutil.copytree(REPO / pkg, src / pkg, ignore=ignore)
    out = tmp_path / "dist"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(src),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    (wheel,) = out.glob("flowc-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    dist_info = f"flowc-{flowc.__version__}.dist-info/"
    stray = [n for n in names if not (n.startswith("flowc/") or n.startswith(dist_info))]
    assert stray == [], stray
    for needed in (
        "flowc/__init__.py",
        "flowc/compiler/cli.py",
        "flowc/compiler/passes/__init__.py",
        "flowc/compiler/commands/validate.py",
        "flowc/grammar/expr.lark",
        "flowc/runtime/__init__.py",
        "flowc/targets/__init__.py",
    ):
        assert needed in names, needed
    entry_points = zipfile.ZipFile(wheel).read(dist_info + "entry_points.txt").decode()
    assert "flowc = flowc.compiler.cli:main" in entry_points
