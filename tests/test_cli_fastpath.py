"""The start-up paths of ``flowc`` (compiler/cli.main) behave exactly like click's:

- ``flowc validate [--no-import] [-q] FLOW...`` runs without importing click; its stdout,
  stderr and exit status equal the click command's for valid, invalid, missing and mixed flows;
- the process ends without tearing down the heap, yet atexit handlers still run, output piped
  to a file is complete, and ``sys.exit`` codes and messages come out as Python's own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = """\
flowc: 1
name: good
steps:
  load: {run: m:f, outputs: [x]}
  count: {run: m:g, with: {v: "${steps.load.outputs.x}"}}
"""
BAD = """\
flowc: 1
name: bad
steps:
  load: {run: m:f, outputs: [x]}
  count: {run: m:g, with: {v: "${steps.nope.outputs.x}"}}
"""

# The click command, parsed by click (cli.main with argv never takes the fast path).
CLICK = "import sys; from flowc.compiler.cli import main; main(sys.argv[1:])"


def _run(cmd: list[str], cwd: Path) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_FLOWC_COMPLETE")}
    res = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    return res.returncode, res.stdout, res.stderr


@pytest.fixture
def flows(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "bad.yaml").write_text(BAD)
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["good.yaml"],
        ["bad.yaml"],
        ["missing.yaml"],
        ["good.yaml", "bad.yaml", "missing.yaml", "good.yaml"],
        ["-q", "good.yaml", "bad.yaml"],
        ["good.yaml", "--no-import", "--quiet"],
    ],
)
def test_fast_validate_equals_click(flows: Path, args: list[str]) -> None:
    fast = _run([sys.executable, "-m", "flowc", "validate", *args], flows)
    slow = _run([sys.executable, "-c", CLICK, "validate", *args], flows)
    assert fast == slow
    assert fast[0] == (
        0 if all(a in ("good.yaml", "-q", "--quiet", "--no-import") for a in args) else 1
    )


def test_fast_validate_imports_no_click(flows: Path) -> None:
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('click' in sys.modules, file=sys.stderr))\n"
        "sys.argv = ['flowc', *sys.argv[1:]]\n"
        "from flowc.compiler.cli import main\n"
        "main()\n"
    )
    code, out, err = _run([sys.executable, "-c", probe, "validate", "good.yaml"], flows)
    assert (code, out, err) == (0, "good.yaml: ok (2 steps)\n", "False\n")
    # any other option goes through click (and imports it)
    code, out, err = _run(
        [sys.executable, "-c", probe, "validate", "-t", "local", "good.yaml"], flows
    )
    assert (code, out, err) == (0, "good.yaml: ok (2 steps)\n", "True\n")


def test_exit_runs_atexit_and_flushes(tmp_path: Path) -> None:
    """A command whose output is large and buffered: all of it reaches the file; an atexit
    handler registered during the command runs after the output, before the process ends."""
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stdout.write('atexit ran\\n'))\n"
        "sys.argv = ['flowc', 'schema']\n"
        "from flowc.compiler.cli import main\n"
        "main()\n"
    )
    with open(tmp_path / "out.txt", "w") as fh:
        res = subprocess.run([sys.executable, "-c", probe], stdout=fh, timeout=300)
    text = (tmp_path / "out.txt").read_text()
    assert res.returncode == 0
    assert text.endswith("}\natexit ran\n")
    want = subprocess.run(
        [sys.executable, "-c", CLICK, "schema"], capture_output=True, text=True, timeout=300
    ).stdout
    assert text == want + "atexit ran\n"


@pytest.mark.parametrize(
    ("code", "status", "stderr"),
    [("None", 0, ""), ("3", 3, ""), ("'boom'", 1, "boom\n"), ("-1", 255, "")],
)
def test_exit_codes_as_python_gives_them(code: str, status: int, stderr: str) -> None:
    probe = f"from flowc.compiler import cli; cli._exit({code})"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    plain = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.exit({code})"], capture_output=True, text=True
    )
    assert (res.returncode, res.stderr) == (status, stderr) == (plain.returncode, plain.stderr)


def test_live_thread_keeps_the_normal_exit() -> None:
    """A non-daemon thread still running at the end is joined, as Python's own exit does: here
    it waits for a lock the main thread holds until ``_exit`` raises SystemExit through it (a
    fast exit would end the process first, and the line would never be printed)."""
    probe = (
        "import threading\n"
        "from flowc.compiler import cli\n"
        "lock = threading.Lock()\n"
        "lock.acquire()\n"
        "def work():\n"
        "    with lock:\n"
        "        print('thread done', flush=True)\n"
        "threading.Thread(target=work).start()\n"
        "try:\n"
        "    cli._exit(0)\n"
        "finally:\n"
        "    lock.release()\n"
    )
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert (res.returncode, res.stdout) == (0, "thread done\n")


def test_run_exits_normally_and_checkpoints_its_database(tmp_path: Path) -> None:
    """``flowc run`` is not a fast-exit command: its SQLite history is closed by the normal exit
    (WAL checkpointed, no ``-wal`` file left beside metadata.db), and every run is listed."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "steps_mod.py").write_text("def noop(x=None):\n    return x\n")
    (tmp_path / "flow.yaml").write_text(
        "flowc: 1\nname: tiny\nsteps:\n  a: {run: 'steps_mod:noop', with: {x: 1}, outputs: [out]}\n"
    )
    for _ in range(2):
        code, _, err = _run([sys.executable, "-m", "flowc", "run", "flow.yaml"], tmp_path)
        assert code == 0, err
    assert sorted(p.name for p in (tmp_path / ".flowc").glob("metadata.db*")) == ["metadata.db"]
    code, out, _ = _run([sys.executable, "-m", "flowc", "runs", "list"], tmp_path)
    assert code == 0 and out.count("tiny") == 2
