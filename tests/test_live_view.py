"""The live view of ``flowc run`` on a terminal (a real pseudo-terminal): a one-line title,
elapsed time and foreach progress ``n/m`` of running steps; Ctrl-C: exit 130, "interrupted" and
the resume command."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STEPS = """\
import time
from pathlib import Path


def make():
    return [0, 1, 2]


def work(i):
    if i == 0:
        return i
    deadline = time.monotonic() + 120
    while not Path("go").exists():  # the test creates it once it has seen what it waits for
        if time.monotonic() > deadline:
            raise TimeoutError("go")
        time.sleep(0.02)
    return i
"""

FLOW = """\
flowc: 1
name: live
steps:
  make: {run: live_steps:make, outputs: [items]}
  work:
    run: live_steps:work
    foreach: "${steps.make.outputs.items}"
    with: {i: "${item}"}
    outputs: [r]
"""

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    (tmp_path / "live_steps.py").write_text(STEPS)
    (tmp_path / "flow.yaml").write_text(FLOW)
    return tmp_path


def test_live_table_title_elapsed_and_foreach_progress(project: Path) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # the child: flowc on a terminal 100 columns wide
        os.chdir(project)
        os.environ["COLUMNS"] = "100"
        os.execv(sys.executable, [sys.executable, "-m", "flowc", "run", "flow.yaml"])
    raw = b""
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], deadline - time.monotonic())
            if not ready:
                break
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            raw += chunk
            if b"1/3 items" in raw and not (project / "go").exists():
                (project / "go").write_text("")  # progress seen: let items 1 and 2 finish
    finally:
        if time.monotonic() >= deadline:  # a hung run fails the test, not the suite
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    text = ANSI.sub("", raw.decode("utf-8", "replace"))
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert re.search(r"work\s+running\s+1/3 items, \d+\.\ds", text), text
    titles = re.findall(r"live · run \d{8}T\d{6}-[0-9a-f]{6} · (\d)/2 steps · \d+\.\ds", text)
    assert "1" in titles and titles[-1] == "2"


def test_ctrl_c_exits_130_with_the_resume_command(project: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", "flow.yaml"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    run_id = None
    try:
        for line in proc.stdout:
            if line.startswith("run ") and line.rstrip().endswith(" started"):
                run_id = line.split()[1]
            if line.strip() == "work: running":
                proc.send_signal(signal.SIGINT)
                break
        (project / "go").write_text("")  # the steps already running may finish
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Aborted!" not in err
    assert err.splitlines()[-2:] == [
        f"run {run_id} interrupted",
        f"  resume with: flowc run flow.yaml --resume {run_id}",
    ]
    done = subprocess.run(
        [sys.executable, "-m", "flowc", "run", "flow.yaml", "--resume", str(run_id), "-q"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"run {run_id} success")
