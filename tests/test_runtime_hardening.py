"""Runtime hardening (issue 19): artifact paths stay in the run folder, secrets are masked on the
stream, steps die with their runner, a run being executed is locked, run history is right."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from flowc.compiler.api import load_text
from flowc.runtime.executor import run_plan

_ids = itertools.count()


def plan_with_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: str, flow: str):
    """Write ``code`` as a fresh module next to the flow; ``MOD`` in ``flow`` names it."""
    mod = f"flowc_hardening_{next(_ids)}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{mod}.py").write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)
    text = textwrap.dedent(flow).replace("MOD", mod)
    return load_text(text, str(tmp_path / "flow.yaml")).to_data()


# -- item 5: ctx.artifact_path stays inside the step's folder ------------------------------------


@pytest.mark.parametrize("name", ["../../escaped.txt", "ABSOLUTE", "a/../../escaped.txt"])
def test_artifact_path_refuses_names_leaving_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    target = tmp_path / "escaped.txt"
    if name == "ABSOLUTE":
        name = str(target)
    plan = plan_with_module(
        tmp_path,
        monkeypatch,
        """
        def write(ctx, name):
            ctx.artifact_path(name).write_text("x")
            return 1
        """,
        f"""
        flowc: 1
        name: paths
        steps:
          w: {{run: "MOD:write", with: {{name: "{name}"}}, outputs: [v]}}
        """,
    )
    r = run_plan(plan, root=tmp_path / "state" / ".flowc")
    assert not r.ok
    assert "leaves the step's artifact folder" in r.error.error or "relative name" in r.error.error
    assert not target.exists()
    assert not list(tmp_path.rglob("escaped.txt"))


def test_artifact_path_allows_sub_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    plan = plan_with_module(
        tmp_path,
        monkeypatch,
        """
        def write(ctx):
            p = ctx.artifact_path("plots/a.txt")
            p.write_text("x")
            return str(p)
        """,
        """
        flowc: 1
        name: paths
        steps:
          w: {run: "MOD:write", outputs: [v]}
        """,
    )
    r = run_plan(plan, root=tmp_path / ".flowc")
    assert r.ok, r.error
    assert (
        Path(r.outputs["w"]["v"]).resolve()
        == (tmp_path / ".flowc" / "runs" / r.run_id / "w" / "plots" / "a.txt").resolve()
    )


# -- item 4: steps die with their runner; a running run is locked; Ctrl-C exits 130 ------------

REPO = Path(__file__).resolve().parent.parent


def flowc_env() -> dict[str, str]:
    """The environment of a `flowc` child process importing this checkout's code."""
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def _wait_for(check, what: str, proc: subprocess.Popen | None = None, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        assert proc is None or proc.poll() is None, proc.communicate()
        time.sleep(0.05)


def command_flow(tmp_path: Path, pidfile: Path) -> Path:
    script = (
        f"import os, time; open({str(pidfile)!r}, 'w').write(str(os.getpid())); time.sleep(600)"
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: held\nsteps:\n"
        f"  hold: {{command: [{sys.executable}, -c, {json.dumps(script)}]}}\n"
    )
    return flow


def _started(pidfile: Path) -> bool:
    return pidfile.exists() and bool(pidfile.read_text())


def test_kill_9_of_flowc_run_kills_its_command_steps(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid.txt"
    flow = command_flow(tmp_path, pidfile)
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(tmp_path / ".f")],
        cwd=tmp_path,
        env=flowc_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: _started(pidfile), "the command to start", proc)
        child = int(pidfile.read_text())
        proc.kill()
        proc.wait(30)
        _wait_for(lambda: not _alive(child), "the command to die with its runner", seconds=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if _started(pidfile) and _alive(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_running_run_is_locked_and_ctrl_c_interrupts_it(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid.txt"
    flow = command_flow(tmp_path, pidfile)
    root = tmp_path / ".f"
    cmd = [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(root)]
    proc = subprocess.Popen(
        cmd,
        cwd=tmp_path,
        env=flowc_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        run_id = proc.stdout.readline().split()[1]  # "run <id> started"
        _wait_for(lambda: _started(pidfile), "the command to start", proc)
        child = int(pidfile.read_text())
        again = subprocess.run(
            [*cmd, "--resume", run_id],
            cwd=tmp_path,
            env=flowc_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 1, again.stdout + again.stderr
        assert f"run {run_id} is being executed by process {proc.pid}" in again.stderr
        assert "Traceback" not in again.stderr
        assert _alive(child) and int(pidfile.read_text()) == child  # not started twice

        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, out + err
        assert f"flowc run {flow} --resume {run_id}" in err
        _wait_for(lambda: not _alive(child), "the command to be stopped", seconds=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if _alive(int(pidfile.read_text() or 0)):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
    con = sqlite3.connect(root / "metadata.db")
    assert con.execute("SELECT status FROM runs").fetchall() == [("interrupted",)]
    assert con.execute("SELECT step, status FROM steps").fetchall() == [("hold", "interrupted")]
    con.close()


# -- item 3: secrets are masked on the stream, in every form, before reaching disk or console ---

SECRET = 'pa"ss\\w\u00f6rd-7731'  # a quote, a backslash and a non-ASCII letter: escaped forms

STEPS = """
import json, os, subprocess, sys, time

def split_writes(token):
    sys.stdout.write("split " + token[:4])
    sys.stdout.write(token[4:] + " done\\n")
    print("json", json.dumps({"t": token}))
    print("repr", repr([token]), repr(token.encode()))
    os.write(1, ("fd " + token + "\\n").encode())
    subprocess.run([sys.executable, "-c", "import os; print('sub', os.environ['HARD_TOKEN'])"])
    return 1

def fail_escaped(token):
    raise RuntimeError("bad " + repr({"t": token}) + " " + json.dumps(token))
"""

CMD = (
    "import json, os, sys; t = os.environ['HARD_TOKEN']; "
    "sys.stdout.write('cmd ' + t[:3]); sys.stdout.flush(); "
    "sys.stdout.write(t[3:] + chr(10)); print(json.dumps(t)); sys.stdout.flush(); "
    "os.write(2, repr(t).encode() + b'\\n')"
)


def _forms(value: str) -> list[str]:
    return [
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    ]


def _leaks(text: str) -> list[str]:
    return [f for f in _forms(SECRET) if f in text]


def test_secrets_are_masked_across_writes_escapes_fds_and_subprocesses(tmp_path: Path) -> None:
    (tmp_path / "hard_steps.py").write_text(STEPS)
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: masked\nsecrets:\n  token: {env: HARD_TOKEN}\nsteps:\n"
        '  inproc: {run: "hard_steps:split_writes", with: {token: "${secrets.token}"},'
        " outputs: [n]}\n"
        '  boom: {run: "hard_steps:fail_escaped", with: {token: "${secrets.token}"}}\n'
        f"  cmd: {{command: [{sys.executable}, -c, {json.dumps(CMD)}]}}\n"
        '  isolated: {run: "hard_steps:split_writes", with: {token: "${secrets.token}"},'
        " outputs: [n], timeout: 5m}\n"
    )
    env = {**flowc_env(), "HARD_TOKEN": SECRET}
    root = tmp_path / ".f"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "flowc",
            "run",
            str(flow),
            "--root",
            str(root),
            "--max-workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=300,
    )
    out = run.stdout.decode("utf-8", "replace") + run.stderr.decode("utf-8", "replace")
    assert run.returncode == 1, out  # boom fails
    assert _leaks(out) == [], out
    run_id = next((root / "runs").iterdir()).name
    logs = {
        p.relative_to(root).as_posix(): p.read_text("utf-8", "replace") for p in root.rglob("*.log")
    }
    for path, text in logs.items():
        assert _leaks(text) == [], (path, text)
    everything = b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())
    for form in _forms(SECRET):
        assert form.encode() not in everything, form
    text = "\n".join(logs.values()) + out
    assert "split *** done" in text and "cmd ***" in text, text
    for marker in ('json {"t": "***"}', "repr ['***'] b'***'", "fd ***", "sub ***"):
        assert marker in text, (marker, text)
    shown = subprocess.run(
        [sys.executable, "-m", "flowc", "runs", "show", run_id, "--root", str(root), "--json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    assert _leaks(shown.stdout) == [] and "bad {'t': '***'} \\\"***\\\"" in shown.stdout


def test_a_command_killed_with_its_runner_leaves_no_unmasked_log(tmp_path: Path) -> None:
    script = (
        "import os, sys, time; print('token', os.environ['HARD_TOKEN'], flush=True); "
        "print('printed', flush=True); time.sleep(600)"
    )
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        "flowc: 1\nname: killed\nsecrets:\n  token: {env: HARD_TOKEN}\nsteps:\n"
        f"  talk: {{command: [{sys.executable}, -c, {json.dumps(script)}]}}\n"
    )
    root = tmp_path / ".f"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowc", "run", str(flow), "--root", str(root)],
        cwd=tmp_path,
        env={**flowc_env(), "HARD_TOKEN": SECRET},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def printed() -> bool:
            return any("printed" in p.read_text("utf-8", "replace") for p in root.rglob("*.log"))

        _wait_for(printed, "the command's output in its log", proc)
        proc.kill()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (log,) = root.rglob("*.log")
    text = log.read_text("utf-8", "replace")
    assert "token ***" in text and _leaks(text) == [], text


# -- item 10: run history -------------------------------------------------------------------------

HISTORY_STEPS = """
import os

def flaky(flag, item=None):
    print("attempt of", item)
    if item == "bad" and not os.path.exists(flag):
        raise RuntimeError("not yet")
    return item

def once(flag):
    with open(flag, "a") as fh:  # fails until its second call
        fh.write("x")
    if open(flag).read() == "x":
        raise RuntimeError("first call fails")
    return 1
"""


def test_resumed_run_history_is_right(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "flag"
    plan = plan_with_module(
        tmp_path,
        monkeypatch,
        HISTORY_STEPS,
        f"""
        flowc: 1
        name: history
        steps:
          fan:
            run: "MOD:flaky"
            foreach: [ok1, bad, ok2]
            with: {{flag: "{flag}", item: "${{item}}"}}
            outputs: [v]
          retried:
            run: "MOD:once"
            retries: 1
            with: {{flag: "{tmp_path / 'once'}"}}
            outputs: [v]
          done: {{run: "MOD:flaky", with: {{flag: "{flag}", item: last}}, outputs: [v],
                  after: [fan]}}
        """,
    )
    root = tmp_path / ".flowc"
    first = run_plan(plan, root=root, max_workers=2)
    assert not first.ok and first.states["fan"] == "failed"
    bad_log = root / "runs" / first.run_id / "fan" / "item-1.attempt-1.log"
    before = bad_log.read_text()
    flag.write_text("now")
    events: list[tuple[str | None, str]] = []
    again = run_plan(
        plan,
        root=root,
        resume=first.run_id,
        progress=lambda e: events.append((e["step"], e["status"])),
    )
    assert again.ok, again.error
    # reused steps are reported as such (the table shows them, not "pending")
    assert ("retried", "reused") in events and ("fan", "reused") not in events
    # the resumed item wrote a new attempt log, the old one is untouched
    assert bad_log.read_text() == before
    assert "attempt of bad" in (bad_log.parent / "item-1.attempt-2.log").read_text()
    con = sqlite3.connect(root / "metadata.db")
    attempts = dict(con.execute("SELECT step, attempts FROM steps"))
    con.close()
    assert attempts["fan"] == 2  # item "bad": attempt 1 (first run), 2 (resumed); not 3 items
    assert attempts["retried"] == 2  # one failure, one retry
    from flowc.runtime.metadata import MetadataStore

    store = MetadataStore(root=root)
    # graph order, although "fan" started again after "retried" finished
    assert [s["step"] for s in store.steps(first.run_id)] == list(plan["order"])
    store.close()
