"""The package installs under ``flowc.`` only and ``python -m flowc`` works like ``flowc``."""

import subprocess
import sys

import flowc


def test_version_flag_matches_package() -> None:
    out = subprocess.run([sys.executable, "-m", "flowc", "--version"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert flowc.__version__ in out.stdout


def test_no_bare_top_level_packages_installed() -> None:
    import importlib.util

    for bare in ("compiler", "runtime", "targets", "grammar"):
        spec = importlib.util.find_spec(bare)
        assert spec is None or "flowc" not in (spec.origin or ""), bare
