"""The runtime as users drive it, in real processes: `flowc run`, SIGKILL + `--resume`,
concurrent runs on one store, and the module emitted by `--target local`."""

from __future__ import annotations

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

FLOWC = [sys.executable, "-m", "flowc"]


def write_flow(tmp_path: Path, text: str) -> Path:
    flow = tmp_path / "flow.yaml"
    flow.write_text(textwrap.dedent(text))
    return flow


def chain_flow(tmp_path: Path, seconds: float) -> tuple[Path, Path]:
    log = tmp_path / "calls.txt"
    steps = {
        "a": [],
        "b": ["a"],
        "c": ["b"],
        "p1": ["a"],
        "p2": ["a"],
        "d": ["c", "p1"],
        "e": ["d", "p2"],
    }
    body = ["flowc: 1", "name: chain", "steps:"]
    for name, ups in steps.items():
        value = '"${steps.' + ups[0] + '.outputs.v}"' if ups else "0"
        after = f", after: [{', '.join(ups[1:])}]" if len(ups) > 1 else ""
        body.append(
            f'  {name}: {{run: "flowc_rt.steps:record", with: {{log: "{log}", name: {name}, '
            f"value: {value}, seconds: {seconds}}}, outputs: [v]{after}}}"
        )
    flow = tmp_path / "flow.yaml"
    flow.write_text("\n".join(body) + "\n")
    return flow, log


def db_states(root: Path) -> tuple[str | None, dict[str, str]]:
    db = root / "metadata.db"
    if not db.exists():
        return None, {}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            runs = con.execute("SELECT run_id FROM runs").fetchall()
            rows = con.execute("SELECT step, status FROM steps").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:
        return None, {}
    return (runs[0][0] if runs else None), dict(rows)


@pytest.mark.parametrize("kill_after", [1, 3])
def test_sigkill_mid_run_then_resume(tmp_path: Path, kill_after: int) -> None:
    flow, log = chain_flow(tmp_path, seconds=0.4)
    root = tmp_path / ".flowc"
    proc = subprocess.Popen(
        [*FLOWC, "run", str(flow), "--root", str(root), "--max-workers", "2"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run_id, states = db_states(root)
        if sum(s == "success" for s in states.values()) >= kill_after:
            break
        assert proc.poll() is None, "run finished before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id, states = db_states(root)
    completed = {s for s, st in states.items() if st == "success"}
    assert run_id and len(completed) >= kill_after and len(completed) < 7, states
    if kill_after == 1:
        listing = subprocess.run(
            [*FLOWC, "runs", "list", "--root", str(root)], capture_output=True, text=True
        )
        assert run_id in listing.stdout and "killed" in listing.stdout, listing.stdout

    out = subprocess.run(
        [*FLOWC, "run", str(flow), "--root", str(root), "--resume", run_id],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    calls = log.read_text().splitlines()
    for step in completed:
        assert calls.count(step) == 1, f"completed step {step} ran again: {calls}"
    assert set(calls) == {"a", "b", "c", "p1", "p2", "d", "e"}
    _, states = db_states(root)
    assert set(states.values()) == {"success"}
    for art in (root / "runs" / run_id).rglob("*.json"):
        if art.name != "plan.json":
            assert json.loads(art.read_text()) == 0  # every output intact (0 passed along)


def test_concurrent_runs_share_one_store(tmp_path: Path) -> None:
    flow, log = chain_flow(tmp_path, seconds=0.0)
    root = tmp_path / ".flowc"
    procs = [
        subprocess.Popen(
            [*FLOWC, "run", str(flow), "--root", str(root)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(8)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    con = sqlite3.connect(root / "metadata.db")
    runs = con.execute("SELECT run_id, status FROM runs").fetchall()
    assert len(runs) == 8 and {s for _, s in runs} == {"success"}
    per_run = con.execute("SELECT run_id, count(*) FROM steps GROUP BY run_id").fetchall()
    assert sorted(n for _, n in per_run) == [7] * 8
    assert len(log.read_text().splitlines()) == 56
    assert len(list((root / "runs").iterdir())) == 8


def test_flowc_run_cli_success_failure_and_runs_commands(tmp_path: Path) -> None:
    (tmp_path / "my_steps.py").write_text(
        "def hello(name):\n    print('hi', name)\n    return f'hello {name}'\n"
        "def fail():\n    raise KeyError('nope')\n"
    )
    flow = write_flow(
        tmp_path,
        """
        flowc: 1
        name: cli
        params: {who: {type: str, default: world}}
        steps:
          greet: {run: "my_steps:hello", with: {name: "${params.who}"}, outputs: [msg]}
          broken: {run: "my_steps:fail", retries: 1}
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()  # run from another folder: the flow's folder is on the import path
    out = subprocess.run(
        [*FLOWC, "run", str(flow), "--param", "who=007", "--only", "greet"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "greet: success" in out.stdout
    run_id = out.stdout.strip().splitlines()[-1].split()[1]
    show = subprocess.run(
        [*FLOWC, "runs", "show", run_id, "--json"], cwd=elsewhere, capture_output=True, text=True
    )
    assert show.returncode == 0, show.stderr
    data = json.loads(show.stdout)
    assert data["run"]["params"] == {"who": "007"}
    assert [s["step"] for s in data["steps"]] == ["greet"]
    out = subprocess.run([*FLOWC, "run", str(flow)], cwd=elsewhere, capture_output=True, text=True)
    assert out.returncode == 1
    assert "step 'broken' failed (attempt 2): KeyError: 'nope'" in out.stderr
    assert "log: " in out.stderr and "Traceback" not in out.stderr
    listing = subprocess.run(
        [*FLOWC, "runs", "list"], cwd=elsewhere, capture_output=True, text=True
    )
    assert listing.returncode == 0 and listing.stdout.count("cli") == 2
    bad = subprocess.run(
        [*FLOWC, "run", str(flow), "--param", "nope=1"],
        cwd=elsewhere,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    missing = subprocess.run(
        [*FLOWC, "runs", "show", "nope"], cwd=elsewhere, capture_output=True, text=True
    )
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr


def test_local_target_module_runs_with_params_and_import(tmp_path: Path) -> None:
    flow = write_flow(
        tmp_path,
        """
        flowc: 1
        name: demo_local
        params:
          rows: {type: int, default: 3}
          tag: {type: str, default: x}
        steps:
          load: {run: "flowc_demo.steps:load", with: {rows: "${params.rows}", path: "${params.tag}"}, outputs: [frame]}
          count: {run: "flowc_demo.steps:count", with: {frame: "${steps.load.outputs.frame}"}, outputs: [n]}
        """,
    )
    out_dir = tmp_path / "out"
    comp = subprocess.run(
        [*FLOWC, "compile", str(flow), "--target", "local", "-o", str(out_dir)],
        capture_output=True,
        text=True,
    )
    assert comp.returncode == 0, comp.stderr
    module = out_dir / "demo_local_flow.py"
    assert module.exists()
    run = subprocess.run(
        [sys.executable, str(module), "--param", "rows=5", "--param", "tag=007"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "count: success" in run.stdout
    code = (
        "from demo_local_flow import run\n"
        "r = run({'rows': '4'}, root='.flowc2')\n"
        "print(r.status, r.outputs['count']['n'], r.outputs['load']['frame'][0]['src'])\n"
    )
    imp = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(out_dir), os.environ["PYTHONPATH"]])},
    )
    assert imp.returncode == 0, imp.stderr
    assert imp.stdout.split() == ["success", "4", "x"]
    bad = subprocess.run(
        [sys.executable, str(module), "--param", "rows=many"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 1 and "not a valid int" in bad.stderr


def test_quickstart_example_runs_from_the_repo_root(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    root = tmp_path / ".flowc"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # nothing but the example
    out = subprocess.run(
        [*FLOWC, "run", "examples/quickstart/flow.yaml", "--root", str(root)],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "report: success" in out.stdout
    report = next(root.glob("runs/*/report/report.md")).read_text()
    assert "| north | 27 | 319.00 |" in report
    result = json.loads(next(root.glob("runs/*/report/result.json")).read_text())
    assert result["total"] == 928.75
    out = subprocess.run(
        [
            *FLOWC,
            "run",
            "examples/quickstart/flow.yaml",
            "--root",
            str(root),
            "--param",
            "min_rows=100",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )
    assert out.returncode == 0 and "report: skipped" in out.stdout


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state  # a zombie waiting for its reaper is dead


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_stopping_flowc_run_stops_isolated_attempts(tmp_path: Path, sig: int) -> None:
    pidfile = tmp_path / "pid.txt"
    flow = write_flow(
        tmp_path,
        f"""
        flowc: 1
        name: stoppable
        steps:
          slow: {{run: "flowc_rt.steps:pid_then_sleep", with: {{path: "{pidfile}"}}, timeout: 1h}}
        """,
    )
    root = tmp_path / ".flowc"
    proc = subprocess.Popen(
        [*FLOWC, "run", str(flow), "--root", str(root)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    child = int(pidfile.read_text())
    assert _alive(child)
    os.kill(proc.pid, sig)
    proc.communicate(timeout=120)
    assert proc.returncode == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    deadline = time.monotonic() + 30
    while _alive(child):
        assert time.monotonic() < deadline, "the step's process outlived flowc run"
        time.sleep(0.05)
    if sig == signal.SIGINT:
        _, states = db_states(root)
        con = sqlite3.connect(root / "metadata.db")
        assert con.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"


@pytest.mark.parametrize(
    "case",
    ["basic", "foreach", "when", "replicas", "cache", "retries_timeout", "command", "escaping"],
)
def test_golden_local_modules_run(tmp_path: Path, case: str) -> None:
    repo = Path(__file__).resolve().parent.parent
    (module,) = (repo / "golden" / case / "local").glob("*_flow.py")
    out = subprocess.run(
        [sys.executable, str(module), "--root", str(tmp_path / ".flowc")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert " success in " in out.stdout.splitlines()[-1]
