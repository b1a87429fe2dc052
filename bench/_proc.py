"""Whole-process timing, the one way every bench measures a command as users wait for it.

- :func:`bytecode_env`: the environment of every timed process. Bytecode caching is set
  explicitly as installed software has it: ``PYTHONDONTWRITEBYTECODE`` and
  ``PYTHONPYCACHEPREFIX`` removed (never inherited from the caller), ``PYTHONHASHSEED`` fixed.
- :func:`precompile`: compiles the interpreter's site-packages and flowc's own sources to
  ``.pyc`` once, before anything is timed (as ``pip install`` does), so no measured run pays
  for writing caches.
- :func:`paired`: runs a command and its baseline alternately, ``n`` pairs (one untimed warm-up
  pair first); both sides get the same rule (median, with min-max), and the ratio is the median
  of the per-pair ratios, so a load spike from other processes hits both sides of a pair alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY_PASS = [sys.executable, "-c", "pass"]


def bytecode_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` with bytecode caching as an installed package has it (see module doc)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX", "PYTHONPROFILEIMPORTTIME")
    }
    env["PYTHONHASHSEED"] = "0"
    env.pop("FLOWC_BENCH_JSON", None)
    if extra:
        env.update(extra)
    return env


_DONE: set[str] = set()


def precompile(python: str = sys.executable) -> None:
    """Write the ``.pyc`` of ``python``'s site-packages and of flowc's source folders (once)."""
    if python in _DONE:
        return
    code = (
        "import compileall, site, sys; "
        "paths = [p for p in site.getsitepackages() if p] + sys.argv[1:]; "
        "[compileall.compile_dir(p, quiet=2, workers=0) for p in paths]"
    )
    dirs = [str(REPO / d) for d in ("compiler", "runtime", "targets", "grammar", "flowc")]
    subprocess.run(
        [python, "-c", code, *dirs], env=bytecode_env(), check=False, capture_output=True
    )
    _DONE.add(python)


def once(cmd: list[str], cwd: Path | str | None = None, env: dict[str, str] | None = None) -> float:
    """Wall seconds of one run of ``cmd`` (output captured; a failure stops the bench)."""
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env or bytecode_env(), capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(
            f"failed ({res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout[-2000:]}\n"
            f"{res.stderr[-2000:]}"
        )
    return dt


@dataclass
class Paired:
    """``n`` alternating runs of a command (``a``) and its baseline (``b``), in seconds."""

    a: list[float]
    b: list[float]

    @property
    def ratios(self) -> list[float]:
        return [x / y for x, y in zip(self.a, self.b, strict=True)]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def a_med(self) -> float:
        return statistics.median(self.a)

    @property
    def b_med(self) -> float:
        return statistics.median(self.b)

    @property
    def diffs(self) -> list[float]:
        return [x - y for x, y in zip(self.a, self.b, strict=True)]

    def span(self, which: str = "ratio", unit: str = "x") -> str:
        """``median (min-max)`` of ``a``, ``b`` or the per-pair ``ratio``."""
        vals = {"a": self.a, "b": self.b, "ratio": self.ratios}[which]
        scale, fmt = (1000, "{:.0f}") if unit == "ms" else (1, "{:.2f}")
        med, lo, hi = (
            fmt.format(v * scale) for v in (statistics.median(vals), min(vals), max(vals))
        )
        return f"{med} {unit} ({lo}-{hi})"


def paired(
    cmd: list[str],
    base: list[str],
    n: int,
    cwd: Path | str | None = None,
    env: dict[str, str] | None = None,
    base_env: dict[str, str] | None = None,
    base_cwd: Path | str | None = None,
    warmup: bool = True,
) -> Paired:
    """Run ``cmd`` and ``base`` alternately ``n`` times each (after one warm-up pair)."""
    env = env or bytecode_env()
    base_env = base_env or env
    base_cwd = base_cwd if base_cwd is not None else cwd
    if warmup:
        once(cmd, cwd, env)
        once(base, base_cwd, base_env)
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        # alternate which side goes first, so neither always runs right after the other
        if i % 2 == 0:
            a.append(once(cmd, cwd, env))
            b.append(once(base, base_cwd, base_env))
        else:
            b.append(once(base, base_cwd, base_env))
            a.append(once(cmd, cwd, env))
    return Paired(a, b)
